//! Futex waits and wakes on 32-bit words in memory shared between processes.
//!
//! Shared (not `FUTEX_PRIVATE_FLAG`) operations, because the words live in memfd
//! mappings used by several processes.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

/// Outcome of a wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// Woken, or the word no longer held `expected`, or a spurious return: re-check.
    Woken,
    TimedOut,
}

fn timespec_until(deadline: Instant) -> libc::timespec {
    let left = deadline.saturating_duration_since(Instant::now());
    libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long }
}

/// Sleep while `*word == expected`, until woken or `deadline`.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> io::Result<Wait> {
    let ts = deadline.map(timespec_until);
    if ts.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0) {
        return Ok(Wait::TimedOut);
    }
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, tsp, 0usize, 0u32) };
    if r == 0 {
        return Ok(Wait::Woken);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Wait::Woken),
        Some(libc::ETIMEDOUT) => Ok(Wait::TimedOut),
        _ => Err(e),
    }
}

/// Wake up to `n` waiters on `word`. Returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n, 0usize, 0usize, 0u32) };
    r.max(0) as usize
}

/// One entry of a `futex_waitv` call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WaitvEntry {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
    reserved: u32,
}

const FUTEX2_SIZE_U32: u32 = 0x02;
/// Most words one `futex_waitv` call can watch (kernel limit).
pub const WAITV_MAX: usize = 128;

impl WaitvEntry {
    /// Wait while `*word == expected` (shared futex, 32-bit).
    pub fn new(word: &AtomicU32, expected: u32) -> Self {
        WaitvEntry { val: expected as u64, uaddr: word.as_ptr() as u64, flags: FUTEX2_SIZE_U32, reserved: 0 }
    }
}

/// Sleep until one of the words differs from its expected value or is woken.
/// Returns the index of the woken word, or `None` on timeout. Linux 5.16+.
pub fn waitv(entries: &[WaitvEntry], deadline: Option<Instant>) -> io::Result<Option<usize>> {
    // futex_waitv takes an absolute CLOCK_MONOTONIC time.
    let ts = deadline.map(|d| {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let left = d.saturating_duration_since(Instant::now());
        let mut t = libc::timespec {
            tv_sec: now.tv_sec + left.as_secs() as libc::time_t,
            tv_nsec: now.tv_nsec + left.subsec_nanos() as libc::c_long,
        };
        if t.tv_nsec >= 1_000_000_000 {
            t.tv_sec += 1;
            t.tv_nsec -= 1_000_000_000;
        }
        t
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let r = unsafe {
        libc::syscall(libc::SYS_futex_waitv, entries.as_ptr(), entries.len() as u32, 0u32, tsp, libc::CLOCK_MONOTONIC)
    };
    if r >= 0 {
        return Ok(Some(r as usize));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // A word already differed: report "something changed" without an index.
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Some(usize::MAX)),
        Some(libc::ETIMEDOUT) => Ok(None),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn wait_wake_and_timeout() {
        let w = Arc::new(AtomicU32::new(0));
        let t = Instant::now();
        assert_eq!(wait(&w, 0, Some(t + Duration::from_millis(30))).unwrap(), Wait::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(wait(&w, 1, None).unwrap(), Wait::Woken); // value differs: returns at once
        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2.store(1, Ordering::SeqCst);
            wake(&w2, 1);
        });
        while w.load(Ordering::SeqCst) == 0 {
            wait(&w, 0, None).unwrap();
        }
        h.join().unwrap();
    }

    #[test]
    fn waitv_reports_the_changed_word() {
        let a = Arc::new(AtomicU32::new(0));
        let b = Arc::new(AtomicU32::new(0));
        let b2 = b.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b2.store(1, Ordering::SeqCst);
            wake(&b2, 1);
        });
        let entries = [WaitvEntry::new(&a, 0), WaitvEntry::new(&b, 0)];
        let got = waitv(&entries, Some(Instant::now() + Duration::from_secs(5))).unwrap();
        assert!(got == Some(1) || got == Some(usize::MAX));
        h.join().unwrap();
        let t = Instant::now();
        let entries = [WaitvEntry::new(&a, 0)];
        assert_eq!(waitv(&entries, Some(t + Duration::from_millis(20))).unwrap(), None);
    }
}
