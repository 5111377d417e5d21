//! Batches reported from a background thread (the epoll reactor, the futex waiter) to
//! one JavaScript callback, with the keep-alive switch src/wait.ts uses.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Function, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};

type BatchFn<T> = ThreadsafeFunction<Vec<T>, (), Vec<T>, Status, false, false, 0>;

/// A JavaScript callback `(batch: T[]) => void` callable from any thread.
pub struct Notifier<T: 'static>
where
    Vec<T>: ToNapiValue,
{
    tsfn: Arc<Mutex<BatchFn<T>>>,
}

impl<T: Send + 'static> Notifier<T>
where
    Vec<T>: ToNapiValue,
{
    pub fn new(callback: Function<Vec<T>, ()>) -> napi::Result<Self> {
        let tsfn: BatchFn<T> = callback.build_threadsafe_function().callee_handled::<false>().build()?;
        Ok(Notifier { tsfn: Arc::new(Mutex::new(tsfn)) })
    }

    /// A sender for the background thread.
    pub fn sender(&self) -> impl Fn(Vec<T>) + Send + 'static {
        let tsfn = self.tsfn.clone();
        move |batch| {
            tsfn.lock().unwrap().call(batch, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Keep the event loop alive (true) while waits are pending, or let it exit (false).
    #[allow(deprecated)]
    pub fn set_ref(&self, env: &Env, keep_alive: bool) -> napi::Result<()> {
        let mut tsfn = self.tsfn.lock().unwrap();
        if keep_alive {
            tsfn.refer(env)
        } else {
            tsfn.unref(env)
        }
    }
}
