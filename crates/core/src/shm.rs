//! Anonymous shared memory: a memfd mapped read-write and shared.
//!
//! Segments have no name anywhere (nothing in /dev/shm): they are shared by passing
//! the descriptor (SCM_RIGHTS) and vanish when the last process closes and unmaps them.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use memmap2::{Mmap, MmapOptions, MmapRaw};

/// A mapped shared memory segment. Its descriptor is needed only to share it: it can be
/// released early ([`Segment::release_fd`]) while the mapping stays.
pub struct Segment {
    /// The memfd, or -1 once released.
    fd: AtomicI32,
    map: MmapRaw,
}

impl Segment {
    /// A new zero-filled segment of `len` bytes.
    pub fn create(len: usize, name: &str) -> io::Result<Segment> {
        Self::map(Self::new_file(len, name)?)
    }

    /// As `create`, with every page allocated and mapped now (`MAP_POPULATE`): in one call
    /// rather than one page fault per page at first touch (for memory that will all be used).
    pub fn create_populated(len: usize, name: &str) -> io::Result<Segment> {
        let file = Self::new_file(len, name)?;
        let map = MmapOptions::new().populate().map_raw(&file)?;
        Ok(Segment { fd: AtomicI32::new(file.into_raw_fd()), map })
    }

    fn new_file(len: usize, name: &str) -> io::Result<File> {
        let cname = std::ffi::CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(len as u64)?;
        Ok(file)
    }

    /// Map a segment received from another process.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Segment> {
        Self::map(File::from(fd))
    }

    /// Map only the first `len` bytes of a segment received from another process (the
    /// file may be larger, e.g. a queue's out-of-ring items, which are read apart).
    pub fn from_fd_prefix(fd: OwnedFd, len: usize) -> io::Result<Segment> {
        let file = File::from(fd);
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "shared memory segment is truncated"));
        }
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        Ok(Segment { fd: AtomicI32::new(file.into_raw_fd()), map })
    }

    fn open_fd(&self) -> io::Result<RawFd> {
        let fd = self.raw_fd();
        if fd < 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the segment's descriptor was released (the queue is closed)"));
        }
        Ok(fd)
    }

    /// Write `bytes` at `offset` of the memfd (beyond the mapping, which grows the file).
    pub fn write_at(&self, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
        let fd = self.open_fd()?;
        while !bytes.is_empty() {
            let n = unsafe { libc::pwrite(fd, bytes.as_ptr() as *const libc::c_void, bytes.len(), offset as libc::off_t) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            bytes = &bytes[n as usize..];
            offset += n as u64;
        }
        Ok(())
    }

    /// A read-only mapping of `len` bytes at `offset` (page-aligned), populated at once.
    pub fn map_range(&self, offset: u64, len: usize) -> io::Result<Mmap> {
        let fd = self.open_fd()?;
        unsafe { MmapOptions::new().offset(offset).len(len).populate().map(fd) }
    }

    /// Give back the memory of `len` bytes at `offset` (page-aligned) of the memfd; the
    /// file keeps its size. Harmless on a range already given back.
    pub fn punch_hole(&self, offset: u64, len: u64) {
        let fd = self.raw_fd();
        if fd >= 0 {
            unsafe {
                libc::fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, offset as libc::off_t, len as libc::off_t)
            };
        }
    }

    /// Bytes of memory the memfd holds.
    pub fn allocated_bytes(&self) -> io::Result<u64> {
        let fd = self.open_fd()?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.st_blocks as u64 * 512)
    }

    fn map(file: File) -> io::Result<Segment> {
        let map = MmapRaw::map_raw(&file)?;
        Ok(Segment { fd: AtomicI32::new(file.into_raw_fd()), map })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Base address of the mapping, valid as long as `self` lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The memfd, or -1 once released.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.load(Ordering::Acquire)
    }

    /// Close the descriptor now (the segment can no longer be shared); the mapping stays
    /// until `self` is dropped. Returns whether it was open.
    pub fn release_fd(&self) -> bool {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            unsafe { libc::close(fd) };
        }
        fd >= 0
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.release_fd();
    }
}

// The mapping is plain shared memory; synchronisation is up to its users.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::dup_cloexec;

    #[test]
    fn two_mappings_see_the_same_bytes() {
        let a = Segment::create(4096, "test").unwrap();
        let b = Segment::from_fd(dup_cloexec(a.raw_fd()).unwrap()).unwrap();
        unsafe { *a.as_ptr().add(100) = 42 };
        assert_eq!(unsafe { *b.as_ptr().add(100) }, 42);
        assert_eq!(b.len(), 4096);
    }

    #[test]
    fn a_released_descriptor_leaves_the_mapping() {
        let a = Segment::create(4096, "test").unwrap();
        let fd = a.raw_fd();
        assert!(a.release_fd());
        assert_eq!(a.raw_fd(), -1);
        assert!(!a.release_fd());
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) }, -1, "the descriptor is closed");
        unsafe { *a.as_ptr().add(10) = 7 };
        assert_eq!(unsafe { *a.as_ptr().add(10) }, 7);
    }
}
