//! One epoll thread per process that reports readable descriptors (to every JavaScript
//! thread of the process: the binding routes each descriptor to the thread watching it).
//!
//! Asynchronous waits (a Promise for `recv`, `join`, `accept`...) register the
//! descriptor here, one-shot, and get called back with the batch of descriptors
//! that became readable. No thread per waiter, nothing on libuv's thread pool.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::sys::cvt;

pub struct Reactor {
    epfd: Arc<OwnedFd>,
}

impl Reactor {
    /// Start the thread; `on_ready` receives each batch of ready descriptors.
    pub fn start(on_ready: impl Fn(Vec<RawFd>) + Send + 'static) -> io::Result<Reactor> {
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let epfd = Arc::new(unsafe { OwnedFd::from_raw_fd(epfd) });
        let ep = epfd.clone();
        std::thread::Builder::new().name("mp-reactor".into()).spawn(move || {
            let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
            loop {
                let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, -1) };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                let ready: Vec<RawFd> = events[..n as usize].iter().map(|e| e.u64 as RawFd).collect();
                on_ready(ready);
            }
        })?;
        Ok(Reactor { epfd })
    }

    /// Report `fd` once when it becomes readable (or hangs up). Re-arms a descriptor
    /// that was watched before.
    pub fn watch(&self, fd: RawFd) -> io::Result<()> {
        self.watch_events(fd, libc::EPOLLIN | libc::EPOLLRDHUP)
    }

    /// Report `fd` once when it becomes writable (e.g. a non-blocking connect completed).
    pub fn watch_writable(&self, fd: RawFd) -> io::Result<()> {
        self.watch_events(fd, libc::EPOLLOUT)
    }

    fn watch_events(&self, fd: RawFd, events: libc::c_int) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: (events | libc::EPOLLONESHOT) as u32, u64: fd as u64 };
        let ep = self.epfd.as_raw_fd();
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, &mut ev) } == 0 {
            return Ok(());
        }
        cvt(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
    }

    /// Stop watching `fd`; call before closing it (a duplicate would keep it registered).
    pub fn forget(&self, fd: RawFd) {
        unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::send_frame;
    use crate::sys::socketpair;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn reports_readable_once_until_rearmed() {
        let (tx, rx) = mpsc::channel();
        let r = Reactor::start(move |fds| {
            for fd in fds {
                tx.send(fd).unwrap();
            }
        })
        .unwrap();
        let (a, b) = socketpair().unwrap();
        r.watch(b.as_raw_fd()).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        send_frame(a.as_raw_fd(), b"x", &[]).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), b.as_raw_fd());
        // One-shot: no second report until re-armed, even though data is still there.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        r.watch(b.as_raw_fd()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), b.as_raw_fd());
        r.forget(b.as_raw_fd());
    }
}
