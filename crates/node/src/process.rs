use std::os::fd::IntoRawFd;

use mp_core::spawn;
use mp_core::sys::deadline;
use napi_derive::napi;

use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

use napi::bindgen_prelude::Int32Array;

use crate::error::{coded, os};

#[napi(object)]
pub struct SpawnOptions {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// `passFds[i]` becomes descriptor 3 + i in the child.
    pub pass_fds: Vec<i32>,
    pub die_with_parent: bool,
    /// `/dev/null` as the child's standard input (Python gives children that).
    pub null_stdin: Option<bool>,
}

#[napi(object)]
pub struct SpawnedChild {
    pub pid: i32,
    /// Owned by the caller: close it with `closeFd` once the child is reaped.
    pub pidfd: i32,
}

/// Start a child by fork/exec.
#[napi]
pub fn spawn_child(opts: SpawnOptions) -> napi::Result<SpawnedChild> {
    let child = spawn::spawn(&spawn::Command {
        program: opts.program,
        args: opts.args,
        env: opts.env,
        pass_fds: opts.pass_fds,
        die_with_parent: opts.die_with_parent,
        null_stdin: opts.null_stdin.unwrap_or(false),
    })
    .map_err(os)?;
    Ok(SpawnedChild { pid: child.pid, pidfd: child.pidfd.into_raw_fd() })
}

/// Reap the child if it has exited, waiting up to `timeout` seconds (0: poll, null: forever).
/// Returns the exit code (negative signal number), or null while it runs.
#[napi]
pub fn wait_child(pid: i32, pidfd: i32, timeout: Option<f64>) -> napi::Result<Option<i32>> {
    spawn::wait_until(pid, pidfd, deadline(timeout)).map_err(os)
}

#[napi]
pub fn signal_child(pidfd: i32, signal: i32) -> napi::Result<()> {
    spawn::send_signal(pidfd, signal).map_err(os)
}

/// A connected pair of Unix stream sockets (close-on-exec).
#[napi]
pub fn socket_pair() -> napi::Result<Vec<i32>> {
    let (a, b) = mp_core::sys::socketpair().map_err(os)?;
    Ok(vec![a.into_raw_fd(), b.into_raw_fd()])
}

#[napi]
pub fn close_fd(fd: i32) {
    unsafe { libc::close(fd) };
}

#[napi]
pub fn dup_fd(fd: i32) -> napi::Result<i32> {
    Ok(mp_core::sys::dup_cloexec(fd).map_err(os)?.into_raw_fd())
}

/// Whether `fd` is readable (or at EOF) within `timeout` seconds (null: forever).
#[napi]
pub fn wait_readable(fd: i32, timeout: Option<f64>) -> napi::Result<bool> {
    mp_core::sys::wait_readable(fd, deadline(timeout)).map_err(os)
}

/// Shut down one direction of a socket (0 read, 1 write).
#[napi]
pub fn shutdown_fd(fd: i32, how: i32) {
    unsafe { libc::shutdown(fd, how) };
}

/// A pidfd for `pid` (close-on-exec), e.g. to watch the parent.
#[napi]
pub fn pidfd_open(pid: i32) -> napi::Result<i32> {
    Ok(spawn::pidfd_open(pid).map_err(os)?.into_raw_fd())
}

#[napi]
pub fn getppid() -> i32 {
    unsafe { libc::getppid() }
}

/// Take over `fd` for the calling JavaScript thread and close it when the thread's
/// environment is torn down, however the thread ends (its code returned, `process.exit`
/// in a worker, `worker.terminate()`): a thread's end of the socket pair whose other end
/// is its sentinel. `claim[0]` says who owns `fd`: 0 the thread that made it (the parent),
/// 1 this thread, 2 the parent took it back (this thread ended before it got here). The
/// claim and the hook happen in one native call, which termination cannot split. Returns
/// whether the descriptor is now this thread's.
#[napi]
pub fn close_fd_at_exit(env: napi::Env, fd: i32, claim: Int32Array) -> napi::Result<bool> {
    let word = claim.as_ref().first().ok_or_else(|| coded("Value", "empty claim"))? as *const i32 as *const AtomicI32;
    // The array is over a SharedArrayBuffer that the parent keeps.
    if unsafe { &*word }.compare_exchange(0, 1, SeqCst, SeqCst).is_err() {
        return Ok(false);
    }
    env.add_env_cleanup_hook((), move |_| unsafe {
        libc::close(fd);
    })?;
    Ok(true)
}

/// Set (SIGKILL) or clear the calling process's parent-death signal: a child started in
/// advance learns whether it is daemonic only when its Process object arrives. Returns
/// whether the parent is still `parent_pid` afterwards (if not, it died before the signal
/// was set).
#[napi]
pub fn set_parent_death_signal(on: bool, parent_pid: i32) -> napi::Result<bool> {
    let sig = if on { libc::SIGKILL as libc::c_ulong } else { 0 };
    mp_core::sys::cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) }).map_err(os)?;
    Ok(unsafe { libc::getppid() } == parent_pid)
}
