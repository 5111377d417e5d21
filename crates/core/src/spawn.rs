//! Starting children by fork/exec and reaping them.
//!
//! Between fork and exec the child only makes async-signal-safe system calls:
//! everything it needs (argv, envp, descriptor table) is prepared before the fork,
//! because the parent is multi-threaded and the child may not allocate or lock.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::sys::{cvt, wait_readable};

/// What to start.
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    /// Full environment as `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// Descriptors handed to the child: `pass_fds[i]` becomes descriptor `3 + i`.
    pub pass_fds: Vec<RawFd>,
    /// Kill the child with SIGKILL when the parent dies (PR_SET_PDEATHSIG).
    pub die_with_parent: bool,
    /// Give the child `/dev/null` as its standard input (Python's `_close_stdin`) instead
    /// of the parent's.
    pub null_stdin: bool,
}

/// A started child.
pub struct Child {
    pub pid: i32,
    /// A pidfd: readable once the child has exited. Close-on-exec.
    pub pidfd: OwnedFd,
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

/// A pidfd for an existing process (e.g. the parent): readable once it exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Start `cmd`. Returns once the child has exec'd (or reports why exec failed).
pub fn spawn(cmd: &Command) -> io::Result<Child> {
    let program = cstring(&cmd.program)?;
    let args = std::iter::once(cmd.program.as_str())
        .chain(cmd.args.iter().map(String::as_str))
        .map(cstring)
        .collect::<io::Result<Vec<_>>>()?;
    let env = cmd.env.iter().map(|s| cstring(s)).collect::<io::Result<Vec<_>>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());

    // exec failures travel back through a close-on-exec pipe: EOF means exec succeeded.
    let mut pipe = [0 as RawFd; 2];
    cvt(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let (err_read, err_write) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };

    let n = cmd.pass_fds.len() as RawFd;
    // Descriptors are first moved above every number involved, so that placing them
    // at 3.. cannot overwrite one that is still to be placed.
    let high_base = cmd.pass_fds.iter().copied().chain([err_write.as_raw_fd(), 3 + n]).max().unwrap_or(3) + 1;
    let mut empty_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigemptyset(&mut empty_mask) };
    let parent_pid = unsafe { libc::getpid() };
    let pass = cmd.pass_fds.clone();
    let mut high = vec![0 as RawFd; pass.len()];
    let die_with_parent = cmd.die_with_parent;
    let null_stdin = cmd.null_stdin;
    let dev_null: &std::ffi::CStr = c"/dev/null";
    let errw = err_write.as_raw_fd();

    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // Child: async-signal-safe calls only, no allocation, no Rust panics.
        unsafe {
            let fail = |fd: RawFd| -> ! {
                let e = *libc::__errno_location();
                libc::write(fd, &e as *const i32 as *const libc::c_void, 4);
                libc::_exit(127);
            };
            let errw = {
                let r = libc::fcntl(errw, libc::F_DUPFD_CLOEXEC, high_base);
                if r < 0 {
                    fail(errw)
                }
                r
            };
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty_mask, std::ptr::null_mut());
            if die_with_parent {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
                    fail(errw);
                }
                if libc::getppid() != parent_pid {
                    libc::_exit(1);
                }
            }
            for (i, &fd) in pass.iter().enumerate() {
                let r = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, high_base);
                if r < 0 {
                    fail(errw);
                }
                *high.as_mut_ptr().add(i) = r;
            }
            for (i, &fd) in high.iter().enumerate() {
                // dup2 leaves the new descriptor without FD_CLOEXEC: it survives exec.
                if libc::dup2(fd, 3 + i as RawFd) < 0 {
                    fail(errw);
                }
            }
            if null_stdin {
                // The lowest free number: 0 itself if the parent had no standard input.
                let fd = libc::open(dev_null.as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    fail(errw);
                }
                if fd != 0 {
                    if libc::dup2(fd, 0) < 0 {
                        fail(errw);
                    }
                    libc::close(fd);
                }
            }
            // Standard streams are inherited even if the parent marked them close-on-exec.
            for fd in 0..3 {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            // Anything the parent left inheritable by mistake is closed at exec.
            libc::syscall(libc::SYS_close_range, (3 + n) as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC);
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(errw);
        }
    }
    drop(err_write);
    let mut errno = [0u8; 4];
    let got = loop {
        let r = unsafe { libc::read(err_read.as_raw_fd(), errno.as_mut_ptr() as *mut libc::c_void, 4) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    if got == 4 {
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let e = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
        return Err(io::Error::new(e.kind(), format!("cannot start {}: {e}", cmd.program)));
    }
    let pidfd = pidfd_open(pid)?;
    Ok(Child { pid, pidfd })
}

/// The exit code Python reports: the status for a normal exit, minus the signal number
/// for a death by signal.
fn decode_status(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// Reap `pid` if it has exited. `Ok(None)` while it runs.
pub fn try_wait(pid: i32) -> io::Result<Option<i32>> {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(if r == 0 { None } else { Some(decode_status(status)) });
    }
}

/// Wait for the child to exit, up to `deadline`, using its pidfd; reap it when it has.
pub fn wait_until(child_pid: i32, pidfd: RawFd, deadline: Option<Instant>) -> io::Result<Option<i32>> {
    if let Some(code) = try_wait(child_pid)? {
        return Ok(Some(code));
    }
    if !wait_readable(pidfd, deadline)? {
        return Ok(None);
    }
    try_wait(child_pid)
}

/// Send `signal` to the child through its pidfd (no risk of hitting a recycled pid).
pub fn send_signal(pidfd: RawFd, signal: i32) -> io::Result<()> {
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, signal, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r < 0 {
        let e = io::Error::last_os_error();
        // Already exited (but not yet reaped): nothing to signal, as in Python.
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socketpair;

    fn sh(script: &str, pass_fds: Vec<RawFd>) -> Command {
        Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            pass_fds,
            die_with_parent: false,
            null_stdin: false,
        }
    }

    #[test]
    fn exit_code_and_signal() {
        let c = spawn(&sh("exit 7", vec![])).unwrap();
        assert_eq!(wait_until(c.pid, c.pidfd.as_raw_fd(), None).unwrap(), Some(7));
        let c = spawn(&sh("sleep 30", vec![])).unwrap();
        assert_eq!(wait_until(c.pid, c.pidfd.as_raw_fd(), Some(Instant::now())).unwrap(), None);
        send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL).unwrap();
        assert_eq!(wait_until(c.pid, c.pidfd.as_raw_fd(), None).unwrap(), Some(-libc::SIGKILL));
    }

    #[test]
    fn passes_only_the_chosen_descriptors() {
        let (a, b) = socketpair().unwrap();
        let (_c, d) = socketpair().unwrap();
        // d is not passed: the child must not see it; b becomes descriptor 3.
        let script = format!("echo hi >&3; [ -e /proc/self/fd/{} ] && echo leak >&3; exit 0", d.as_raw_fd());
        let c = spawn(&sh(&script, vec![b.as_raw_fd()])).unwrap();
        drop(b);
        assert_eq!(wait_until(c.pid, c.pidfd.as_raw_fd(), None).unwrap(), Some(0));
        let mut buf = [0u8; 64];
        let n = unsafe { libc::read(a.as_raw_fd(), buf.as_mut_ptr() as *mut _, 64) };
        assert_eq!(&buf[..n as usize], b"hi\n");
    }

    #[test]
    fn standard_input_is_dev_null_when_asked() {
        let (a, b) = socketpair().unwrap();
        // The test's own stdin may be anything; the child's is /dev/null and reads EOF at once.
        let script = "readlink /proc/self/fd/0 >&3; cat; echo \"end $?\" >&3";
        let mut cmd = sh(script, vec![b.as_raw_fd()]);
        cmd.null_stdin = true;
        let c = spawn(&cmd).unwrap();
        drop(b);
        assert_eq!(wait_until(c.pid, c.pidfd.as_raw_fd(), None).unwrap(), Some(0));
        let mut buf = [0u8; 64];
        let n = unsafe { libc::read(a.as_raw_fd(), buf.as_mut_ptr() as *mut _, 64) };
        assert_eq!(&buf[..n as usize], b"/dev/null\nend 0\n");
    }

    #[test]
    fn exec_failure_is_reported() {
        let mut cmd = sh("", vec![]);
        cmd.program = "/nonexistent/program".into();
        let err = spawn(&cmd).err().expect("must fail");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
