//! Batches reported from a background thread (the epoll reactor, the futex waiter) to
//! JavaScript, with the keep-alive switch src/wait.ts uses.
//!
//! The engines are one per process, but every JavaScript thread (the main thread and each
//! worker thread, one N-API environment each, each on its own OS thread) registers its own
//! callback: a batch goes to the thread that asked. A thread's callback is dropped when its
//! environment is torn down (the worker exited or was terminated).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;

use napi::bindgen_prelude::{Function, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};

use crate::error::coded;

type BatchFn<T> = ThreadsafeFunction<Vec<T>, (), Vec<T>, Status, false, false, 0>;

static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD: Cell<u32> = const { Cell::new(0) };
}

/// The calling JavaScript thread's number in this process (never 0).
pub fn this_thread() -> u32 {
    THREAD.with(|c| {
        if c.get() == 0 {
            c.set(NEXT_THREAD.fetch_add(1, Relaxed));
        }
        c.get()
    })
}

/// Each JavaScript thread's callback `(batch: T[]) => void`, callable from any thread.
pub struct Routes<T: 'static>
where
    Vec<T>: ToNapiValue,
{
    map: Mutex<BTreeMap<u32, BatchFn<T>>>,
}

impl<T: Send + 'static> Routes<T>
where
    Vec<T>: ToNapiValue,
{
    pub const fn new() -> Self {
        Routes { map: Mutex::new(BTreeMap::new()) }
    }

    /// Register the calling thread's callback (once per thread); returns its number.
    pub fn register(&'static self, env: &Env, callback: Function<Vec<T>, ()>, what: &str) -> napi::Result<u32> {
        let me = this_thread();
        let mut map = self.map.lock().unwrap();
        if map.contains_key(&me) {
            return Err(coded("Value", format!("{what} already started")));
        }
        let tsfn: BatchFn<T> = callback.build_threadsafe_function().callee_handled::<false>().build()?;
        map.insert(me, tsfn);
        drop(map);
        // At teardown the function is released while its environment still exists.
        env.add_env_cleanup_hook((), move |_| {
            let gone = self.map.lock().unwrap().remove(&me);
            drop(gone);
        })?;
        Ok(me)
    }

    /// Hand `batch` to thread `to` (dropped if that thread is gone).
    pub fn send(&self, to: u32, batch: Vec<T>) {
        if let Some(f) = self.map.lock().unwrap().get(&to) {
            f.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Keep the calling thread's event loop alive (true) while its waits are pending, or
    /// let it exit (false).
    #[allow(deprecated)]
    pub fn set_ref(&self, env: &Env, keep_alive: bool, what: &str) -> napi::Result<()> {
        let mut map = self.map.lock().unwrap();
        let f = map.get_mut(&this_thread()).ok_or_else(|| coded("Value", format!("{what} not started")))?;
        if keep_alive {
            f.refer(env)
        } else {
            f.unref(env)
        }
    }
}
