//! Forking the calling process itself (the 'forkserver' start method's server): the child
//! goes on running the same program, with only the calling thread.
//!
//! The caller must make sure that no other thread holds a lock the child will need (the
//! server calls this from a quiescent state: see src/forkserver_main.ts and
//! crates/node/src/forkself.rs).

use std::io;

/// Fork the calling process. Returns the child's pid in the parent and 0 in the child.
/// In the child, the signal mask of the calling thread is emptied. Every mapping is made
/// inheritable first (see `share_all_mappings`).
pub fn fork_self() -> io::Result<i32> {
    share_all_mappings();
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        }
    }
    Ok(pid)
}

/// V8 marks every mapping it makes MADV_DONTFORK (its heap, its code): a forked child would
/// have none of them and crash on its first JavaScript. Undo that for every mapping of the
/// process (MADV_DOFORK is a no-op on the others; special mappings refuse it, ignored).
fn share_all_mappings() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        let Some((range, _)) = line.split_once(' ') else { continue };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DOFORK) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socketpair;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn the_child_goes_on_with_the_parents_memory() {
        let mut v = vec![1u8; 1 << 20];
        v[12345] = 7;
        let pid = fork_self().unwrap();
        if pid == 0 {
            // Only async-signal-safe calls here: the test harness has other threads.
            unsafe { libc::_exit(if v[12345] == 7 { 42 } else { 1 }) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 42);
    }

    #[test]
    fn poll_readable_reports_the_ready_ones() {
        use crate::sys::poll_readable;
        use std::time::Instant;
        let (a, b) = socketpair().unwrap();
        let (c, d) = socketpair().unwrap();
        let fds = [b.as_raw_fd(), d.as_raw_fd()];
        assert!(poll_readable(&fds, Some(Instant::now() + Duration::from_millis(20))).unwrap().is_empty());
        unsafe { libc::write(c.as_raw_fd(), b"x".as_ptr() as *const libc::c_void, 1) };
        assert_eq!(poll_readable(&fds, None).unwrap(), vec![d.as_raw_fd()]);
        drop(a);
        let mut ready = poll_readable(&fds, None).unwrap();
        ready.sort();
        let mut both = fds.to_vec();
        both.sort();
        assert_eq!(ready, both);
    }
}
