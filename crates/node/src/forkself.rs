//! Forking this node process (the forkserver's server, src/forkserver_main.ts).
//!
//! A forked child has only the forking thread. What node and V8 need of the others:
//! - libuv's loop: `uv_loop_fork` re-creates its epoll descriptor, its wakeup descriptors
//!   and its signal pipe (libuv's own thread pool re-initialises itself after a fork);
//! - the platform's worker threads, which run V8's background tasks (parts of a GC, jobs):
//!   in the child, the platform object's entries for them (`CallOnWorkerThread`,
//!   `CallDelayedOnWorkerThread`, `DrainTasks`) are redirected to a worker thread of this
//!   module. The entries are found by the addresses of node's own exported functions, so
//!   a node whose platform differs is refused (`forkSelf` fails) rather than misdriven;
//! - node's teardown joins the platform's threads, which the child does not have: the
//!   child ends with `exitNow` (`_exit`) once its 'exit' event has run.
//!
//! The addon's own threads (the reactor, the wait engine) start on first use in the child;
//! the server never starts them (`forkSelf` refuses to fork once they run).

use std::collections::VecDeque;
use std::ffi::{c_void, CStr};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use napi_derive::napi;

use crate::error::{coded, os};

extern "C" {
    /// libuv's re-initialisation of a loop in a forked child (exported by node).
    fn uv_loop_fork(lp: *mut napi::sys::uv_loop_s) -> libc::c_int;
}

const CALL_ON_WORKER: &CStr = c"_ZN4node12NodePlatform18CallOnWorkerThreadESt10unique_ptrIN2v84TaskESt14default_deleteIS3_EE";
const CALL_DELAYED: &CStr = c"_ZN4node12NodePlatform25CallDelayedOnWorkerThreadESt10unique_ptrIN2v84TaskESt14default_deleteIS3_EEd";
const DRAIN: &CStr = c"_ZN4node12NodePlatform10DrainTasksEPN2v87IsolateE";
const FLUSH: &CStr = c"_ZN4node12NodePlatform20FlushForegroundTasksEPN2v87IsolateE";
const CURRENT_PLATFORM: &CStr = c"_ZN2v88internal2V818GetCurrentPlatformEv";

/// How far the platform's table of virtual functions is searched and copied.
const VTABLE_SLOTS: usize = 128;

fn symbol(name: &CStr) -> Option<usize> {
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p as usize)
}

/// Where the redirected entries are, found before the first fork (in the server).
#[derive(Clone, Copy)]
struct Platform {
    object: *mut *const usize,
    call: usize,
    delayed: usize,
    drain: usize,
    flush: usize,
}
unsafe impl Send for Platform {}

static PLATFORM: Mutex<Option<Platform>> = Mutex::new(None);

fn platform() -> Result<Platform, &'static str> {
    let mut g = PLATFORM.lock().unwrap();
    if let Some(p) = *g {
        return Ok(p);
    }
    let missing = "this node's platform is not the one the forkserver knows how to fork";
    let get = symbol(CURRENT_PLATFORM).ok_or(missing)?;
    let (call, delayed, drain, flush) = (
        symbol(CALL_ON_WORKER).ok_or(missing)?,
        symbol(CALL_DELAYED).ok_or(missing)?,
        symbol(DRAIN).ok_or(missing)?,
        symbol(FLUSH).ok_or(missing)?,
    );
    let get: unsafe extern "C" fn() -> *mut c_void = unsafe { std::mem::transmute(get) };
    let object = unsafe { get() } as *mut *const usize;
    if object.is_null() {
        return Err(missing);
    }
    let vtable = unsafe { *object };
    let slots = unsafe { std::slice::from_raw_parts(vtable, VTABLE_SLOTS) };
    let find = |f: usize| slots.iter().position(|&s| s == f);
    let (Some(call), Some(delayed), Some(drain)) = (find(call), find(delayed), find(drain)) else {
        return Err(missing);
    };
    let p = Platform { object, call, delayed, drain, flush };
    *g = Some(p);
    Ok(p)
}

/// A V8 task (`v8::Task*`): its table holds the two destructors, then `Run`.
struct Task(*mut c_void);
unsafe impl Send for Task {}

impl Task {
    unsafe fn run_and_delete(self) {
        let vt = *(self.0 as *const *const usize);
        let run: unsafe extern "C" fn(*mut c_void) = std::mem::transmute(*vt.add(2));
        let delete: unsafe extern "C" fn(*mut c_void) = std::mem::transmute(*vt.add(1));
        run(self.0);
        delete(self.0);
    }
}

struct Queue {
    ready: VecDeque<Task>,
    delayed: Vec<(Instant, Task)>,
    running: usize,
    started: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { ready: VecDeque::new(), delayed: Vec::new(), running: 0, started: false });
static CHANGED: Condvar = Condvar::new();
static FLUSH_FN: Mutex<usize> = Mutex::new(0);

fn worker() {
    let mut q = QUEUE.lock().unwrap();
    loop {
        let now = Instant::now();
        while let Some(i) = q.delayed.iter().position(|(at, _)| *at <= now) {
            let (_, t) = q.delayed.swap_remove(i);
            q.ready.push_back(t);
        }
        if let Some(t) = q.ready.pop_front() {
            q.running += 1;
            drop(q);
            unsafe { t.run_and_delete() };
            q = QUEUE.lock().unwrap();
            q.running -= 1;
            CHANGED.notify_all();
            continue;
        }
        let next = q.delayed.iter().map(|(at, _)| *at).min();
        q = match next {
            Some(at) => CHANGED.wait_timeout(q, at.saturating_duration_since(now)).unwrap().0,
            None => CHANGED.wait(q).unwrap(),
        };
    }
}

fn post(task: Task, delay: Option<Duration>) {
    let mut q = QUEUE.lock().unwrap();
    if !q.started {
        q.started = true;
        let _ = std::thread::Builder::new().name("mp-v8-worker".into()).spawn(worker);
    }
    match delay {
        None => q.ready.push_back(task),
        Some(d) => q.delayed.push((Instant::now() + d, task)),
    }
    CHANGED.notify_all();
}

// The redirected entries (`this` first, then the arguments; a `std::unique_ptr` argument
// is passed as the address of the caller's, which the callee empties when it takes it).
unsafe extern "C" fn call_on_worker(_this: *mut c_void, task: *mut *mut c_void) {
    post(Task(std::mem::replace(&mut *task, std::ptr::null_mut())), None);
}

unsafe extern "C" fn call_delayed(_this: *mut c_void, task: *mut *mut c_void, seconds: f64) {
    let d = Duration::from_secs_f64(seconds.max(0.0));
    post(Task(std::mem::replace(&mut *task, std::ptr::null_mut())), Some(d));
}

/// node's DrainTasks: the pending background tasks, then the isolate's foreground tasks, until none is left.
unsafe extern "C" fn drain(this: *mut c_void, isolate: *mut c_void) {
    let flush: unsafe extern "C" fn(*mut c_void, *mut c_void) -> bool = std::mem::transmute(*FLUSH_FN.lock().unwrap());
    loop {
        let mut q = QUEUE.lock().unwrap();
        while !q.ready.is_empty() || q.running > 0 {
            q = CHANGED.wait(q).unwrap();
        }
        drop(q);
        if !flush(this, isolate) {
            break;
        }
    }
}

/// In the child: point the platform object at a copy of its table with the three entries redirected.
unsafe fn redirect(p: Platform) {
    *FLUSH_FN.lock().unwrap() = p.flush;
    let vtable = *p.object;
    // The two words before the entries (offset to top, type information) are copied too.
    let mut copy: Vec<usize> = std::slice::from_raw_parts(vtable.sub(2), VTABLE_SLOTS + 2).to_vec();
    copy[2 + p.call] = call_on_worker as *const () as usize;
    copy[2 + p.delayed] = call_delayed as *const () as usize;
    copy[2 + p.drain] = drain as *const () as usize;
    let copy = Box::leak(copy.into_boxed_slice());
    *p.object = copy.as_ptr().add(2);
}

/// Fork this node process: returns the child's pid here, 0 in the child. Refused once
/// this process has started the addon's own threads (the child would not have them).
#[napi]
pub fn fork_self(env: napi::Env) -> napi::Result<i32> {
    if crate::reactor::started() || crate::sync::started() {
        return Err(coded("Value", "cannot fork a process that has started asynchronous waits"));
    }
    let p = platform().map_err(|m| coded("OS", m))?;
    let mut lp: *mut napi::sys::uv_loop_s = std::ptr::null_mut();
    let status = unsafe { napi::sys::napi_get_uv_event_loop(env.raw(), &mut lp) };
    if status != napi::sys::Status::napi_ok || lp.is_null() {
        return Err(coded("Value", "no event loop"));
    }
    let pid = mp_core::forkself::fork_self().map_err(os)?;
    if pid == 0 {
        unsafe {
            redirect(p);
            if uv_loop_fork(lp) != 0 {
                libc::_exit(70);
            }
        }
    }
    Ok(pid)
}

/// Whether this process may still fork itself (it has not started the addon's own threads):
/// the fork server checks it after loading a module of a target.
#[napi]
pub fn fork_self_possible() -> bool {
    !(crate::reactor::started() || crate::sync::started())
}

/// End this process at once with `code` (`_exit`): a forked child cannot go through node's
/// teardown, which joins the platform's threads that only its server has.
#[napi]
pub fn exit_now(code: i32) {
    unsafe { libc::_exit(code) };
}

/// This process's id (node keeps the one it started with in `process.pid`).
#[napi]
pub fn getpid() -> i32 {
    unsafe { libc::getpid() }
}

/// Which of `fds` are readable (or at their end), waiting up to `timeout` seconds (null:
/// forever) for one of them. Blocks the calling thread: for the fork server's loop.
#[napi]
pub fn poll_readable(fds: Vec<i32>, timeout: Option<f64>) -> napi::Result<Vec<i32>> {
    mp_core::sys::poll_readable(&fds, mp_core::sys::deadline(timeout)).map_err(os)
}
