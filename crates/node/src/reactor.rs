use std::sync::{Arc, Mutex, OnceLock};

use mp_core::reactor::Reactor;
use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::error::{coded, os};

type ReadyFn = ThreadsafeFunction<Vec<i32>, (), Vec<i32>, Status, false, false, 0>;

struct State {
    reactor: Reactor,
    tsfn: Arc<Mutex<ReadyFn>>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Start the reactor thread; `onReady(fds)` is called on the JS thread with each
/// batch of descriptors that became readable. Once per process.
#[napi]
pub fn reactor_start(on_ready: Function<Vec<i32>, ()>) -> napi::Result<()> {
    if STATE.get().is_some() {
        return Err(coded("Value", "reactor already started"));
    }
    let tsfn: ReadyFn = on_ready.build_threadsafe_function().callee_handled::<false>().build()?;
    let tsfn = Arc::new(Mutex::new(tsfn));
    let caller = tsfn.clone();
    let reactor = Reactor::start(move |fds| {
        caller.lock().unwrap().call(fds, ThreadsafeFunctionCallMode::NonBlocking);
    })
    .map_err(os)?;
    let _ = STATE.set(State { reactor, tsfn });
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
#[allow(deprecated)]
pub fn reactor_ref(env: Env, keep_alive: bool) -> napi::Result<()> {
    let st = state()?;
    let mut tsfn = st.tsfn.lock().unwrap();
    if keep_alive {
        tsfn.refer(&env)
    } else {
        tsfn.unref(&env)
    }
}
