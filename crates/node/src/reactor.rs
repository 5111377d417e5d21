use std::sync::OnceLock;

use mp_core::reactor::Reactor;
use napi::bindgen_prelude::Function;
use napi::Env;
use napi_derive::napi;

use crate::error::{coded, os};
use crate::notify::Notifier;

struct State {
    reactor: Reactor,
    notifier: Notifier<i32>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Start the reactor thread; `onReady(fds)` is called on the JS thread with each
/// batch of descriptors that became readable. Once per process.
#[napi]
pub fn reactor_start(on_ready: Function<Vec<i32>, ()>) -> napi::Result<()> {
    if STATE.get().is_some() {
        return Err(coded("Value", "reactor already started"));
    }
    let notifier = Notifier::new(on_ready)?;
    let reactor = Reactor::start(notifier.sender()).map_err(os)?;
    let _ = STATE.set(State { reactor, notifier });
    Ok(())
}

fn state() -> napi::Result<&'static State> {
    STATE.get().ok_or_else(|| coded("Value", "reactor not started"))
}

/// Report `fd` once when readable.
#[napi]
pub fn reactor_watch(fd: i32) -> napi::Result<()> {
    state()?.reactor.watch(fd).map_err(os)
}

/// Report `fd` once when writable.
#[napi]
pub fn reactor_watch_writable(fd: i32) -> napi::Result<()> {
    state()?.reactor.watch_writable(fd).map_err(os)
}

#[napi]
pub fn reactor_forget(fd: i32) -> napi::Result<()> {
    state()?.reactor.forget(fd);
    Ok(())
}

/// Keep the event loop alive (true) while waits are pending, or let it exit (false).
#[napi]
pub fn reactor_ref(env: Env, keep_alive: bool) -> napi::Result<()> {
    state()?.notifier.set_ref(&env, keep_alive)
}
