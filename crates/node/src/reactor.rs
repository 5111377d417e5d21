use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use mp_core::reactor::Reactor;
use napi::bindgen_prelude::Function;
use napi::Env;
use napi_derive::napi;

use crate::error::{coded, os};
use crate::notify::{this_thread, Routes};

/// The process's one reactor thread.
static REACTOR: OnceLock<Reactor> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());
/// Each JavaScript thread's `onReady`.
static ROUTES: Routes<i32> = Routes::new();
/// Descriptor -> the JavaScript thread that watches it (descriptors are per process, and a
/// thread watches only descriptors it owns).
static OWNERS: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

fn route(fds: Vec<i32>) {
    let mut by: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
    {
        let owners = OWNERS.lock().unwrap();
        for fd in fds {
            if let Some(&t) = owners.get(&fd) {
                by.entry(t).or_default().push(fd);
            }
        }
    }
    for (t, batch) in by {
        ROUTES.send(t, batch);
    }
}

/// Start reporting to this JavaScript thread: `onReady(fds)` is called on it with each batch
/// of its descriptors that became readable. Once per thread; the reactor thread itself
/// starts with the first.
#[napi]
pub fn reactor_start(env: Env, on_ready: Function<Vec<i32>, ()>) -> napi::Result<()> {
    ROUTES.register(&env, on_ready, "reactor")?;
    let _g = STARTING.lock().unwrap();
    if REACTOR.get().is_none() {
        let r = Reactor::start(route).map_err(os)?;
        let _ = REACTOR.set(r);
    }
    Ok(())
}

fn reactor() -> napi::Result<&'static Reactor> {
    REACTOR.get().ok_or_else(|| coded("Value", "reactor not started"))
}

/// Report `fd` once when readable.
#[napi]
pub fn reactor_watch(fd: i32) -> napi::Result<()> {
    let r = reactor()?;
    OWNERS.lock().unwrap().insert(fd, this_thread());
    r.watch(fd).map_err(os)
}

/// Report `fd` once when writable.
#[napi]
pub fn reactor_watch_writable(fd: i32) -> napi::Result<()> {
    let r = reactor()?;
    OWNERS.lock().unwrap().insert(fd, this_thread());
    r.watch_writable(fd).map_err(os)
}

#[napi]
pub fn reactor_forget(fd: i32) -> napi::Result<()> {
    reactor()?.forget(fd);
    let mut owners = OWNERS.lock().unwrap();
    if owners.get(&fd) == Some(&this_thread()) {
        owners.remove(&fd);
    }
    Ok(())
}

/// Keep this thread's event loop alive (true) while its waits are pending, or let it exit (false).
#[napi]
pub fn reactor_ref(env: Env, keep_alive: bool) -> napi::Result<()> {
    ROUTES.set_ref(&env, keep_alive, "reactor")
}

/// Whether this process's reactor thread has been started (a forking server must not have one).
pub(crate) fn started() -> bool {
    REACTOR.get().is_some()
}
