//! CPython's `multiprocessing.connection` framing over a stream socket.
//!
//! A message is a 4-byte big-endian signed length followed by the payload; a payload
//! longer than `i32::MAX` bytes is announced by the length -1 followed by an 8-byte
//! big-endian length. Descriptors ride along with SCM_RIGHTS on the first bytes of
//! the message that carries them and are queued in arrival order.
//!
//! A claimed length is never allocated up front: the buffer grows with what has
//! actually arrived, so a broken peer announcing 2 GiB costs nothing.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::sys::wait_readable;

/// Received bytes are kept here until a whole frame is in; frames larger than this
/// get a buffer of their own.
const STASH: usize = 64 * 1024;
/// Most descriptors accepted with one read.
const MAX_FDS_PER_READ: usize = 64;

#[derive(Debug)]
pub enum RecvError {
    /// The peer closed the connection and nothing is left.
    Eof,
    /// The peer closed in the middle of a message.
    Truncated,
    /// The announced length is over the caller's limit: the connection is now unreadable.
    TooLong(u64),
    /// The connection was made unreadable by an earlier error.
    Broken,
    Io(io::Error),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Eof => write!(f, "connection closed by the peer"),
            RecvError::Truncated => write!(f, "connection closed in the middle of a message"),
            RecvError::TooLong(n) => write!(f, "bad message length: {n} bytes is over the limit"),
            RecvError::Broken => write!(f, "connection is no longer readable after an earlier error"),
            RecvError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for RecvError {
    fn from(e: io::Error) -> Self {
        RecvError::Io(e)
    }
}

/// The header for a payload of `len` bytes.
pub fn header(len: usize) -> ([u8; 12], usize) {
    let mut h = [0u8; 12];
    if len > i32::MAX as usize {
        h[..4].copy_from_slice(&(-1i32).to_be_bytes());
        h[4..].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 12)
    } else {
        h[..4].copy_from_slice(&(len as i32).to_be_bytes());
        (h, 4)
    }
}

/// Write one framed message (and its descriptors) completely, blocking as needed.
pub fn send_frame(fd: RawFd, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let (h, hlen) = header(payload.len());
    send_all(fd, &[&h[..hlen], payload], fds)
}

/// Write the given slices completely; descriptors go with the first chunk sent.
pub fn send_all(fd: RawFd, parts: &[&[u8]], fds: &[RawFd]) -> io::Result<()> {
    const MAX_PARTS: usize = 4;
    assert!(parts.len() <= MAX_PARTS, "at most {MAX_PARTS} parts");
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut sent = 0usize;
    let mut fds_pending = !fds.is_empty();
    // Control buffer on the stack for the usual few descriptors, on the heap beyond.
    let cmsg_space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut small = [0u64; 16];
    let mut large = Vec::new();
    let cmsg_buf: &mut [u64] = if cmsg_space <= std::mem::size_of_val(&small) {
        &mut small
    } else {
        large.resize(cmsg_space.div_ceil(8), 0u64);
        &mut large
    };
    while sent < total || fds_pending {
        let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_PARTS];
        let mut n_iov = 0;
        let mut skip = sent;
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            iov[n_iov] = libc::iovec { iov_base: p[skip..].as_ptr() as *mut _, iov_len: p.len() - skip };
            n_iov += 1;
            skip = 0;
        }
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n_iov;
        if fds_pending {
            msg.msg_control = cmsg_buf.as_mut_ptr() as *mut _;
            msg.msg_controllen = cmsg_space;
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
                std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut RawFd, fds.len());
            }
        }
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    wait_writable(fd)?;
                    continue;
                }
                // Not a socket: a plain write (no descriptors can go this way).
                Some(libc::ENOTSOCK) if !fds_pending => {
                    let w = unsafe { libc::writev(fd, iov.as_ptr(), n_iov as i32) };
                    if w < 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() == io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Err(e);
                    }
                    sent += w as usize;
                    continue;
                }
                _ => return Err(e),
            }
        }
        fds_pending = false;
        sent += r as usize;
    }
    Ok(())
}

fn wait_writable(fd: RawFd) -> io::Result<()> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    loop {
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A frame received by `FrameReader::recv_frame`.
pub enum Got {
    /// In the reader's stash, at this range (see `FrameReader::stashed`).
    Stash(Range<usize>),
    /// Too large for the stash: a buffer of its own.
    Big(Vec<u8>),
}

/// Whether a read may wait.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Return `Ok(None)` when no whole frame can be had without waiting.
    NonBlocking,
    /// Wait until the deadline (None: forever); `Ok(None)` when it passes.
    Until(Option<Instant>),
}

/// The receiving half of a framed connection.
#[derive(Default)]
pub struct FrameReader {
    stash: Vec<u8>,
    pos: usize,
    /// A frame too large for the stash, being filled: (bytes so far, expected length).
    big: Option<(Vec<u8>, usize)>,
    fds: VecDeque<OwnedFd>,
    eof: bool,
    broken: bool,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Descriptors received so far and not yet taken, oldest first.
    pub fn take_fds(&mut self, n: usize) -> Option<Vec<OwnedFd>> {
        if self.fds.len() < n {
            return None;
        }
        Some(self.fds.drain(..n).collect())
    }

    /// Whether bytes (or EOF) are waiting, so that a read would not block.
    pub fn has_buffered(&self) -> bool {
        self.pos < self.stash.len() || self.big.is_some() || self.eof || self.broken
    }

    /// Receive one frame. `maxlength` bounds the accepted payload length.
    pub fn recv(&mut self, fd: RawFd, mode: Mode, maxlength: Option<u64>) -> Result<Option<Vec<u8>>, RecvError> {
        Ok(match self.recv_frame(fd, mode, maxlength)? {
            Some(Got::Stash(r)) => Some(self.stash[r].to_vec()),
            Some(Got::Big(v)) => Some(v),
            None => None,
        })
    }

    /// The bytes of a frame that `recv_frame` left in the stash (valid until the next call).
    pub fn stashed(&self, r: Range<usize>) -> &[u8] {
        &self.stash[r]
    }

    /// As `recv`, but a frame that fits the stash is not copied out: the caller reads it
    /// with `stashed` (a blocking receive then allocates nothing).
    pub fn recv_frame(&mut self, fd: RawFd, mode: Mode, maxlength: Option<u64>) -> Result<Option<Got>, RecvError> {
        if self.broken {
            return Err(RecvError::Broken);
        }
        loop {
            if let Some((buf, want)) = &mut self.big {
                if buf.len() == *want {
                    let (buf, _) = self.big.take().unwrap();
                    return Ok(Some(Got::Big(buf)));
                }
                if self.eof {
                    self.broken = true;
                    return Err(RecvError::Truncated);
                }
                let left = *want - buf.len();
                if buf.capacity() == buf.len() {
                    // Grow with what has arrived: at most doubling, never to the claim at once.
                    buf.reserve_exact(left.min(buf.len().max(1 << 20)));
                }
                let room = (buf.capacity() - buf.len()).min(left);
                let spare = &mut buf.spare_capacity_mut()[..room];
                match read_into(fd, spare, &mut self.fds, mode)? {
                    ReadOutcome::Data(n) => unsafe { buf.set_len(buf.len() + n) },
                    ReadOutcome::Eof => self.eof = true,
                    ReadOutcome::WouldBlock => return Ok(None),
                }
                continue;
            }
            let avail = &self.stash[self.pos..];
            if avail.len() >= 4 {
                let short = i32::from_be_bytes(avail[..4].try_into().unwrap());
                let parsed = if short == -1 {
                    (avail.len() >= 12).then(|| (u64::from_be_bytes(avail[4..12].try_into().unwrap()), 12))
                } else if short < 0 {
                    self.broken = true;
                    return Err(RecvError::TooLong(short as u64));
                } else {
                    Some((short as u64, 4))
                };
                if let Some((len, hlen)) = parsed {
                    if maxlength.is_some_and(|m| len > m) || len > isize::MAX as u64 {
                        self.broken = true;
                        return Err(RecvError::TooLong(len));
                    }
                    let len = len as usize;
                    if avail.len() >= hlen + len {
                        // The stash is emptied by the next read (below), not now: the
                        // caller reads the frame in place.
                        let start = self.pos + hlen;
                        self.pos = start + len;
                        return Ok(Some(Got::Stash(start..start + len)));
                    }
                    if hlen + len > STASH {
                        let have = &avail[hlen..];
                        let mut buf = Vec::with_capacity(len.min(have.len().max(1 << 20)));
                        buf.extend_from_slice(have);
                        self.stash.clear();
                        self.pos = 0;
                        self.big = Some((buf, len));
                        continue;
                    }
                }
            }
            if self.eof {
                if self.pos < self.stash.len() {
                    self.broken = true;
                    return Err(RecvError::Truncated);
                }
                return Err(RecvError::Eof);
            }
            // Read more into the stash.
            if self.pos > 0 {
                self.stash.drain(..self.pos);
                self.pos = 0;
            }
            if self.stash.capacity() < STASH {
                self.stash.reserve_exact(STASH - self.stash.len());
            }
            let room = STASH - self.stash.len();
            let spare = &mut self.stash.spare_capacity_mut()[..room];
            match read_into(fd, spare, &mut self.fds, mode)? {
                ReadOutcome::Data(n) => unsafe { self.stash.set_len(self.stash.len() + n) },
                ReadOutcome::Eof => self.eof = true,
                ReadOutcome::WouldBlock => return Ok(None),
            }
        }
    }
}

enum ReadOutcome {
    Data(usize),
    Eof,
    WouldBlock,
}

/// One recvmsg into `buf`, collecting descriptors (close-on-exec) into `fds`.
fn read_into(fd: RawFd, buf: &mut [MaybeUninit<u8>], fds: &mut VecDeque<OwnedFd>, mode: Mode) -> io::Result<ReadOutcome> {
    let cmsg_space = unsafe { libc::CMSG_SPACE((MAX_FDS_PER_READ * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cmsg_buf = [0u64; 64];
    debug_assert!(cmsg_space <= std::mem::size_of_val(&cmsg_buf));
    loop {
        if let Mode::Until(deadline) = mode {
            if deadline.is_some() && !wait_readable(fd, deadline)? {
                return Ok(ReadOutcome::WouldBlock);
            }
        }
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut _, iov_len: buf.len() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg_buf.as_mut_ptr() as *mut _;
        msg.msg_controllen = cmsg_space;
        let flags = libc::MSG_CMSG_CLOEXEC | if mode == Mode::NonBlocking { libc::MSG_DONTWAIT } else { 0 };
        let r = unsafe { libc::recvmsg(fd, &mut msg, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Not a socket (e.g. a pipe from elsewhere): plain read.
                Some(libc::ENOTSOCK) => return read_plain(fd, buf, mode),
                Some(libc::EAGAIN) if mode == Mode::NonBlocking => return Ok(ReadOutcome::WouldBlock),
                Some(libc::EAGAIN) => {
                    wait_readable(fd, None)?;
                    continue;
                }
                _ => return Err(e),
            }
        }
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let n = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                    let data = libc::CMSG_DATA(c) as *const RawFd;
                    for i in 0..n {
                        fds.push_back(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other("too many descriptors in one message"));
        }
        return Ok(if r == 0 { ReadOutcome::Eof } else { ReadOutcome::Data(r as usize) });
    }
}

fn read_plain(fd: RawFd, buf: &mut [MaybeUninit<u8>], mode: Mode) -> io::Result<ReadOutcome> {
    if mode == Mode::NonBlocking && !wait_readable(fd, Some(Instant::now()))? {
        return Ok(ReadOutcome::WouldBlock);
    }
    loop {
        let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(if r == 0 { ReadOutcome::Eof } else { ReadOutcome::Data(r as usize) });
    }
}

/// Spins in a row that found nothing before receives stop spinning for a while.
const SPIN_MISSES_BEFORE_PAUSE: u32 = 3;
/// Receives that do not spin after a pause begins.
const SPIN_PAUSE: u32 = 64;
/// A yield that takes longer than this gave the CPU to other processes: the machine has
/// more runnable work than cores, and spinning only delays this receive (a sleeping
/// receiver is woken ahead of the others when its message comes; a spinning one waits
/// for its turn). The wait then sleeps at once, and the next ones do not spin.
const YIELD_LOST: Duration = Duration::from_micros(50);

/// Bounded spinning before a blocking wait sleeps, one per connection: a reply from a
/// peer on another core usually comes sooner than a sleeping thread is woken (the wake-up
/// dominates a round trip), so a wait first checks for it without sleeping, yielding the
/// CPU between checks. Adaptive, so that it costs little where it does not pay: after a
/// few spins that found nothing, or a yield that lost the CPU to other processes, the
/// next waits sleep at once.
#[derive(Default)]
pub struct Spin {
    misses: u32,
    off: u32,
}

impl Spin {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call `try_now` (which must not wait) until it has something, for at most `spin`
    /// and never past `deadline`; None when the spin ends (or is skipped) without it.
    fn spin<T, E>(&mut self, deadline: Option<Instant>, spin: Duration, mut try_now: impl FnMut() -> Result<Option<T>, E>) -> Result<Option<T>, E> {
        if spin.is_zero() {
            return Ok(None);
        }
        let start = Instant::now();
        let limit = deadline.map_or(spin, |d| spin.min(d.saturating_duration_since(start)));
        if limit.is_zero() {
            return Ok(None);
        }
        if self.off > 0 {
            self.off -= 1;
            return Ok(None);
        }
        loop {
            if let Some(v) = try_now()? {
                self.misses = 0;
                return Ok(Some(v));
            }
            if start.elapsed() >= limit {
                self.misses += 1;
                if self.misses >= SPIN_MISSES_BEFORE_PAUSE {
                    self.misses = 0;
                    self.off = SPIN_PAUSE;
                }
                return Ok(None);
            }
            let y = Instant::now();
            std::thread::yield_now();
            if y.elapsed() > YIELD_LOST {
                self.misses = 0;
                self.off = SPIN_PAUSE;
                return Ok(None);
            }
        }
    }

    /// `reader.recv_frame` waiting until `deadline` (None: for ever), spinning up to `spin` first.
    pub fn recv_frame(&mut self, reader: &mut FrameReader, fd: RawFd, deadline: Option<Instant>, spin: Duration, maxlength: Option<u64>) -> Result<Option<Got>, RecvError> {
        if let Some(g) = self.spin(deadline, spin, || reader.recv_frame(fd, Mode::NonBlocking, maxlength))? {
            return Ok(Some(g));
        }
        reader.recv_frame(fd, Mode::Until(deadline), maxlength)
    }

    /// `poll` spinning up to `spin` first.
    pub fn poll(&mut self, reader: &FrameReader, fd: RawFd, deadline: Option<Instant>, spin: Duration) -> io::Result<bool> {
        if reader.has_buffered() {
            return Ok(true);
        }
        let now = || wait_readable(fd, Some(Instant::now())).map(|r| r.then_some(()));
        if self.spin(deadline, spin, now)?.is_some() {
            return Ok(true);
        }
        wait_readable(fd, deadline)
    }
}

/// Whether a frame can be read without waiting, or waits up to `deadline` for data.
pub fn poll(reader: &FrameReader, fd: RawFd, deadline: Option<Instant>) -> io::Result<bool> {
    if reader.has_buffered() {
        return Ok(true);
    }
    wait_readable(fd, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socketpair;
    use std::os::fd::AsRawFd;

    #[test]
    fn roundtrip_small_and_large() {
        let (a, b) = socketpair().unwrap();
        let big = vec![7u8; 3 << 20];
        let writer = {
            let big = big.clone();
            let fd = a.as_raw_fd();
            std::thread::spawn(move || {
                send_frame(fd, b"hello", &[]).unwrap();
                send_frame(fd, &big, &[]).unwrap();
                send_frame(fd, b"", &[]).unwrap();
            })
        };
        let mut r = FrameReader::new();
        let m = Mode::Until(None);
        assert_eq!(r.recv(b.as_raw_fd(), m, None).unwrap().unwrap(), b"hello");
        assert_eq!(r.recv(b.as_raw_fd(), m, None).unwrap().unwrap(), big);
        assert_eq!(r.recv(b.as_raw_fd(), m, None).unwrap().unwrap(), b"");
        writer.join().unwrap();
        drop(a);
        assert!(matches!(r.recv(b.as_raw_fd(), m, None), Err(RecvError::Eof)));
    }

    #[test]
    fn spin_then_sleep_finds_late_and_quick_frames() {
        let (a, b) = socketpair().unwrap();
        let mut r = FrameReader::new();
        let mut spin = Spin::new();
        let fd = b.as_raw_fd();
        let us = |n| std::time::Duration::from_micros(n);
        // Nothing comes: the deadline ends the wait (after the spin), and misses pause spinning.
        let t = Instant::now();
        for _ in 0..SPIN_MISSES_BEFORE_PAUSE {
            assert!(spin.recv_frame(&mut r, fd, Some(Instant::now() + us(2000)), us(50), None).unwrap().is_none());
        }
        assert!(t.elapsed() >= us(2000 * SPIN_MISSES_BEFORE_PAUSE as u64));
        assert!(spin.off > 0, "spinning paused");
        // A frame already there is taken by the spin's first look; one that comes late, by the sleep.
        send_frame(a.as_raw_fd(), b"now", &[]).unwrap();
        let Some(Got::Stash(g)) = spin.recv_frame(&mut r, fd, None, us(50), None).unwrap() else { panic!() };
        assert_eq!(r.stashed(g), b"now");
        let late = std::thread::spawn({
            let fd = a.as_raw_fd();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                send_frame(fd, b"late", &[]).unwrap();
            }
        });
        let Some(Got::Stash(g)) = spin.recv_frame(&mut r, fd, None, us(50), None).unwrap() else { panic!() };
        assert_eq!(r.stashed(g), b"late");
        late.join().unwrap();
        // A poll spins the same way and sees the end of the stream.
        drop(a);
        assert!(spin.poll(&r, fd, None, us(50)).unwrap());
        assert!(matches!(spin.recv_frame(&mut r, fd, None, us(50), None), Err(RecvError::Eof)));
    }

    #[test]
    fn header_format_is_cpythons() {
        assert_eq!(&header(5).0[..4], &[0, 0, 0, 5]);
        let (h, n) = header(1usize << 32);
        assert_eq!(n, 12);
        assert_eq!(&h[..4], &[0xff; 4]);
        assert_eq!(&h[4..12], &(1u64 << 32).to_be_bytes());
    }

    #[test]
    fn huge_claim_is_not_allocated() {
        let (a, b) = socketpair().unwrap();
        // Claims 2 GiB - 1 and sends 10 bytes, then closes.
        send_all(a.as_raw_fd(), &[&i32::MAX.to_be_bytes(), b"0123456789"], &[]).unwrap();
        let mut r = FrameReader::new();
        assert!(r.recv(b.as_raw_fd(), Mode::NonBlocking, None).unwrap().is_none());
        let (buf, want) = r.big.as_ref().unwrap();
        assert_eq!(*want, i32::MAX as usize);
        assert!(buf.capacity() <= 2 << 20, "allocated {}", buf.capacity());
        drop(a);
        assert!(matches!(r.recv(b.as_raw_fd(), Mode::Until(None), None), Err(RecvError::Truncated)));
    }

    #[test]
    fn maxlength_breaks_the_connection() {
        let (a, b) = socketpair().unwrap();
        send_frame(a.as_raw_fd(), &[1u8; 100], &[]).unwrap();
        send_frame(a.as_raw_fd(), b"next", &[]).unwrap();
        let mut r = FrameReader::new();
        assert!(matches!(r.recv(b.as_raw_fd(), Mode::Until(None), Some(10)), Err(RecvError::TooLong(100))));
        assert!(matches!(r.recv(b.as_raw_fd(), Mode::Until(None), None), Err(RecvError::Broken)));
    }

    #[test]
    fn nonblocking_and_timeout() {
        let (a, b) = socketpair().unwrap();
        let mut r = FrameReader::new();
        assert!(r.recv(b.as_raw_fd(), Mode::NonBlocking, None).unwrap().is_none());
        let t = Instant::now();
        let d = Some(t + std::time::Duration::from_millis(50));
        assert!(r.recv(b.as_raw_fd(), Mode::Until(d), None).unwrap().is_none());
        assert!(t.elapsed().as_millis() >= 50);
        // A partial header, then the rest: nothing is lost between calls.
        send_all(a.as_raw_fd(), &[&[0, 0]], &[]).unwrap();
        assert!(r.recv(b.as_raw_fd(), Mode::NonBlocking, None).unwrap().is_none());
        send_all(a.as_raw_fd(), &[&[0, 2], b"ok"], &[]).unwrap();
        assert_eq!(r.recv(b.as_raw_fd(), Mode::NonBlocking, None).unwrap().unwrap(), b"ok");
    }

    #[test]
    fn descriptors_travel_in_order() {
        let (a, b) = socketpair().unwrap();
        let (x, y) = socketpair().unwrap();
        send_frame(a.as_raw_fd(), b"one", &[x.as_raw_fd()]).unwrap();
        send_frame(a.as_raw_fd(), b"two", &[y.as_raw_fd(), x.as_raw_fd()]).unwrap();
        let mut r = FrameReader::new();
        assert_eq!(r.recv(b.as_raw_fd(), Mode::Until(None), None).unwrap().unwrap(), b"one");
        let got = r.take_fds(1).unwrap();
        assert_eq!(r.recv(b.as_raw_fd(), Mode::Until(None), None).unwrap().unwrap(), b"two");
        let got2 = r.take_fds(2).unwrap();
        // The received x talks to y: prove they are the same sockets.
        send_frame(got[0].as_raw_fd(), b"via-x", &[]).unwrap();
        let mut ry = FrameReader::new();
        assert_eq!(ry.recv(got2[0].as_raw_fd(), Mode::Until(None), None).unwrap().unwrap(), b"via-x");
        assert!(r.take_fds(1).is_none());
    }
}

/// The frame reader under hostile input: arbitrary bytes in arbitrary pieces.
#[cfg(test)]
mod props {
    use super::*;
    use crate::sys::socketpair;
    use proptest::prelude::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Write `bytes` cut at `cuts` from another thread, then hang up.
    fn feed(bytes: Vec<u8>, cuts: Vec<usize>) -> (OwnedFd, std::thread::JoinHandle<()>) {
        let (a, b) = socketpair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut at = 0;
            let mut cuts = cuts.into_iter();
            while at < bytes.len() {
                let n = cuts.next().unwrap_or(bytes.len()).clamp(1, bytes.len() - at);
                send_all(a.as_raw_fd(), &[&bytes[at..at + n]], &[]).unwrap();
                at += n;
            }
            drop(a);
        });
        (b, writer)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Garbage gives messages no longer than what arrived, then an error: no panic, no
        /// hang, and no buffer sized by a claimed length.
        #[test]
        fn arbitrary_bytes_end_in_an_error(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            cuts in prop::collection::vec(1usize..64, 0..32),
            maxlength in prop::option::of(0u64..4096),
            header_tricks in prop::sample::select(vec![0u8, 1, 2, 3]),
        ) {
            // Bias some inputs towards the headers that matter: huge, negative, -1 (64-bit).
            let mut head: Vec<u8> = match header_tricks {
                1 => i32::MAX.to_be_bytes().to_vec(),
                2 => (-1i32).to_be_bytes().into_iter().chain(u64::MAX.to_be_bytes()).collect(),
                3 => (-7i32).to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            head.extend(bytes);
            let bytes = head;
            let total = bytes.len();
            let (b, writer) = feed(bytes, cuts);
            let mut r = FrameReader::new();
            let mut received = 0usize;
            let mut ended = false;
            for _ in 0..=total + 2 {
                let deadline = Instant::now() + Duration::from_secs(5);
                match r.recv(b.as_raw_fd(), Mode::Until(Some(deadline)), maxlength) {
                    Ok(Some(m)) => {
                        received += m.len();
                        prop_assert!(maxlength.is_none_or(|l| m.len() as u64 <= l));
                    }
                    Ok(None) => prop_assert!(false, "timed out although the peer hung up"),
                    Err(RecvError::Io(e)) => prop_assert!(false, "{e}"),
                    Err(_) => {
                        ended = true;
                        break;
                    }
                }
                if let Some((buf, _)) = &r.big {
                    prop_assert!(buf.capacity() <= (2 << 20).max(2 * total), "allocated {}", buf.capacity());
                }
            }
            prop_assert!(ended, "no end after {total} bytes");
            prop_assert!(received <= total);
            // Once ended, it stays ended.
            prop_assert!(r.recv(b.as_raw_fd(), Mode::NonBlocking, maxlength).is_err());
            writer.join().unwrap();
        }

        /// Well-formed frames cut anywhere arrive whole and in order, then EOF.
        #[test]
        fn frames_cut_anywhere_arrive_whole(
            payloads in prop::collection::vec(
                prop_oneof![
                    8 => prop::collection::vec(any::<u8>(), 0..200),
                    1 => prop::collection::vec(any::<u8>(), 60_000..140_000),
                ],
                0..6,
            ),
            cuts in prop::collection::vec(1usize..100_000, 0..16),
        ) {
            let mut bytes = Vec::new();
            for p in &payloads {
                let (h, n) = header(p.len());
                bytes.extend_from_slice(&h[..n]);
                bytes.extend_from_slice(p);
            }
            let (b, writer) = feed(bytes, cuts);
            let mut r = FrameReader::new();
            for p in &payloads {
                let m = r.recv(b.as_raw_fd(), Mode::Until(None), None).unwrap().unwrap();
                prop_assert_eq!(&m, p);
            }
            prop_assert!(matches!(r.recv(b.as_raw_fd(), Mode::Until(None), None), Err(RecvError::Eof)));
            writer.join().unwrap();
        }
    }
}

