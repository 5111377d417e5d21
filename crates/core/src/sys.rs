//! Small wrappers over system calls used throughout the crate.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Turn a libc return value into an `io::Result`, retrying on EINTR is left to callers.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A connected pair of close-on-exec Unix stream sockets.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    cvt(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Duplicate a descriptor, close-on-exec.
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    let r = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Convert a timeout in seconds (None: forever, negative: zero) to a deadline.
pub fn deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + Duration::from_secs_f64(if t.is_finite() && t > 0.0 { t } else { 0.0 }))
}

/// Milliseconds left until `deadline` for poll(2): -1 waits forever.
pub fn poll_millis(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Round up so that a wait never ends before its deadline.
            let ms = left.as_micros().div_ceil(1000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    }
}

/// Wait until `fd` is readable (or at EOF/hang-up) or the deadline passes.
/// Returns whether it is readable.
pub fn wait_readable(fd: RawFd, deadline: Option<Instant>) -> io::Result<bool> {
    poll_until(&mut [libc::pollfd { fd, events: libc::POLLIN, revents: 0 }], deadline)
}

/// Which of `fds` are readable (or at their end), waiting until `deadline` (None: forever)
/// for one of them. Empty when the deadline passes first.
pub fn poll_readable(fds: &[RawFd], deadline: Option<Instant>) -> io::Result<Vec<RawFd>> {
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    if !poll_until(&mut pfds, deadline)? {
        return Ok(Vec::new());
    }
    Ok(pfds.iter().filter(|p| p.revents != 0).map(|p| p.fd).collect())
}

/// poll(2) until one of `pfds` has an event (true) or the deadline passes (false);
/// interrupted polls are resumed.
fn poll_until(pfds: &mut [libc::pollfd], deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, poll_millis(deadline)) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// Whether `fd` is readable right now, without waiting.
pub fn is_readable(fd: &impl AsRawFd) -> io::Result<bool> {
    wait_readable(fd.as_raw_fd(), Some(Instant::now()))
}
