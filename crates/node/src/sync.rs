//! Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier over mp-core's
//! shared-memory primitives, and the futex waiter that settles asynchronous waits.
//!
//! Asynchronous waits: an operation that would block registers a token with the one
//! [`Waiter`] of the process (`...OrWatch(token, timeout)` methods) and returns; the
//! waiter thread reports tokens to the JavaScript thread that registered them (each
//! thread's callback from `waiterStart`), and src/wait.ts settles the Promises, which retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use mp_core::heap::Heap;
use mp_core::sync::{Acquired, Arrival, Barrier, CondWait, Condition, Event, Kind, SemLock, SyncError, Try};
use mp_core::sys::deadline;
use mp_core::waiter::{WaitOn, Waiter};
use napi::bindgen_prelude::Function;
use napi::Env;
use napi_derive::napi;

use crate::error::{coded, os};
use crate::notify::{this_thread, Routes};
use crate::heap::{adopt_transferred, arena_buffer_of, byte_offset_of, id_to_js, BlockIdJs};
use napi::bindgen_prelude::ArrayBuffer;

// ---- the waiter ---------------------------------------------------------------------

/// The process's one futex waiter; a watch's key is (JavaScript thread << 32 | token), so
/// that each thread's tokens go back to it.
static WAITER: OnceLock<Waiter> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());
static ROUTES: Routes<u32> = Routes::new();

fn route(keys: Vec<u64>) {
    let mut by: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for k in keys {
        by.entry((k >> 32) as u32).or_default().push(k as u32);
    }
    for (t, tokens) in by {
        ROUTES.send(t, tokens);
    }
}

/// Start reporting to this JavaScript thread: `onReady(tokens)` is called on it with each
/// batch of its tokens whose word changed, was woken, or whose deadline passed. Once per
/// thread; the waiter itself starts with the first.
#[napi]
pub fn waiter_start(env: Env, on_ready: Function<Vec<u32>, ()>) -> napi::Result<()> {
    ROUTES.register(&env, on_ready, "waiter")?;
    let _g = STARTING.lock().unwrap();
    if WAITER.get().is_none() {
        let w = Waiter::start(route).map_err(os)?;
        let _ = WAITER.set(w);
    }
    Ok(())
}

fn waiter() -> napi::Result<&'static Waiter> {
    WAITER.get().ok_or_else(|| coded("Value", "waiter not started"))
}

fn key(token: u32) -> u64 {
    ((this_thread() as u64) << 32) | token as u64
}

/// Keep this thread's event loop alive (true) while its waits are pending, or let it exit (false).
#[napi]
pub fn waiter_ref(env: Env, keep_alive: bool) -> napi::Result<()> {
    ROUTES.set_ref(&env, keep_alive, "waiter")
}

/// Forget a token of this thread; returns whether it was still pending.
#[napi]
pub fn waiter_cancel(token: u32) -> bool {
    WAITER.get().is_some_and(|w| w.cancel(key(token)))
}

pub(crate) fn watch(token: u32, on: WaitOn, timeout: Option<f64>) -> napi::Result<()> {
    waiter()?.watch(key(token), on, deadline(timeout)).map_err(os)
}

fn sync_err(e: SyncError) -> napi::Error {
    match e {
        SyncError::NotLocked | SyncError::TooManyReleases => coded("Value", e),
        SyncError::NotOwner => coded("Assertion", e),
        SyncError::Broken => coded("Broken", e),
        SyncError::Value(m) => coded("Value", m),
        SyncError::Os(e) => os(e),
    }
}

/// 1: acquired; 0: not acquired; -pid: acquired from `pid`, which died holding it;
/// i32::MIN: acquired from a process that died while taking or releasing it (pid unknown).
#[inline]
fn acquired(a: Option<Acquired>) -> i32 {
    match a {
        Some(Acquired::Clean) => 1,
        Some(Acquired::Recovered { dead_pid }) if dead_pid > 0 => -dead_pid,
        Some(Acquired::Recovered { .. }) => i32::MIN,
        None => 0,
    }
}

fn kind_of(k: u32) -> napi::Result<Kind> {
    Ok(match k {
        1 => Kind::Lock,
        2 => Kind::RLock,
        3 => Kind::Semaphore,
        4 => Kind::BoundedSemaphore,
        _ => return Err(coded("Value", "bad lock kind")),
    })
}

// ---- SemLock ------------------------------------------------------------------------

/// Python's `_multiprocessing.SemLock`: kind 1 Lock, 2 RLock, 3 Semaphore, 4 BoundedSemaphore.
#[napi]
pub struct NativeSemLock {
    pub(crate) sem: Arc<SemLock>,
}

#[napi]
impl NativeSemLock {
    #[napi(constructor)]
    pub fn new(kind: u32, value: f64, max: f64) -> napi::Result<Self> {
        let kind = kind_of(kind)?;
        let range = 0.0..=u32::MAX as f64;
        if !range.contains(&value) || !range.contains(&max) || value.fract() != 0.0 {
            return Err(coded("Value", "semaphore initial value out of range"));
        }
        let sem = SemLock::new(Heap::global(), kind, value as u32, max as u32).map_err(sync_err)?;
        Ok(NativeSemLock { sem: Arc::new(sem) })
    }

    /// Received from another process (see `retainForTransfer`).
    #[napi(factory)]
    pub fn adopt(fd: i32, id: BlockIdJs) -> napi::Result<Self> {
        let sem = SemLock::from_block(adopt_transferred(fd, &id)?).map_err(sync_err)?;
        Ok(NativeSemLock { sem: Arc::new(sem) })
    }

    #[napi]
    pub fn retain_for_transfer(&self) -> BlockIdJs {
        id_to_js(self.sem.block().retain_for_transfer())
    }

    #[napi(getter)]
    pub fn arena_fd(&self) -> i32 {
        self.sem.block().arena().raw_fd()
    }

    #[napi(getter)]
    pub fn kind(&self) -> u32 {
        self.sem.kind() as u32
    }

    /// The state's arena as an ArrayBuffer (one per arena: see src/heap.ts), for the
    /// uncontended fast paths in src/synchronize.ts.
    #[napi]
    pub fn arena_buffer<'env>(&self, env: &'env Env) -> napi::Result<ArrayBuffer<'env>> {
        arena_buffer_of(env, self.sem.block())
    }

    #[napi(getter)]
    pub fn arena_key(&self) -> String {
        format!("{:016x}", self.sem.block().arena().id())
    }

    /// Where the state starts in the arena's ArrayBuffer.
    #[napi(getter)]
    pub fn byte_offset(&self) -> f64 {
        byte_offset_of(self.sem.block())
    }

    /// Blocking acquire (see [`acquired`] for the result).
    #[napi]
    pub fn acquire(&self, block: bool, timeout: Option<f64>) -> napi::Result<i32> {
        if let Try::Ready(a) = self.sem.try_acquire(false) {
            return Ok(acquired(Some(a)));
        }
        if !block {
            return Ok(0);
        }
        self.sem.acquire(true, deadline(timeout)).map(acquired).map_err(os)
    }

    /// Uncontended fast path: acquire if free, without blocking or checking the holder.
    #[napi]
    pub fn try_acquire(&self) -> i32 {
        match self.sem.try_acquire(false) {
            Try::Ready(a) => acquired(Some(a)),
            Try::WouldBlock(_) => 0,
        }
    }

    /// One non-blocking attempt (checking whether the holder died); if it would block,
    /// watch with `token` (0: don't) until the lock changes or `timeout` seconds pass.
    #[napi]
    pub fn acquire_or_watch(&self, token: u32, timeout: Option<f64>) -> napi::Result<i32> {
        match self.sem.try_acquire(true) {
            Try::Ready(a) => Ok(acquired(Some(a))),
            Try::WouldBlock(_) if token == 0 => Ok(0),
            Try::WouldBlock(on) => watch(token, on, timeout).map(|_| 0),
        }
    }

    #[napi]
    pub fn release(&self) -> napi::Result<()> {
        self.sem.release().map_err(sync_err)
    }

    #[napi(getter)]
    pub fn value(&self) -> u32 {
        self.sem.value()
    }

    #[napi(getter)]
    pub fn max_value(&self) -> u32 {
        self.sem.max_value()
    }

    #[napi]
    pub fn is_mine(&self) -> bool {
        self.sem.is_mine()
    }

    /// Recursion depth held by the calling thread.
    #[napi]
    pub fn count(&self) -> u32 {
        self.sem.count()
    }

    /// Holder's pid (Lock/RLock), or null.
    #[napi]
    pub fn owner_pid(&self) -> Option<i32> {
        self.sem.owner_pid()
    }
}

// ---- Condition ----------------------------------------------------------------------

/// A wait in progress on a Condition.
#[napi]
pub struct NativeCondWait {
    w: CondWait,
}

#[napi]
pub struct NativeCondition {
    cond: Condition,
}

#[napi]
impl NativeCondition {
    #[napi(constructor)]
    pub fn new(lock: &NativeSemLock) -> napi::Result<Self> {
        Ok(NativeCondition { cond: Condition::new(Heap::global(), lock.sem.clone()).map_err(sync_err)? })
    }

    #[napi(factory)]
    pub fn adopt(fd: i32, id: BlockIdJs, lock: &NativeSemLock) -> napi::Result<Self> {
        let cond = Condition::from_block(adopt_transferred(fd, &id)?, lock.sem.clone()).map_err(sync_err)?;
        Ok(NativeCondition { cond })
    }

    #[napi]
    pub fn retain_for_transfer(&self) -> BlockIdJs {
        id_to_js(self.cond.block().retain_for_transfer())
    }

    #[napi(getter)]
    pub fn arena_fd(&self) -> i32 {
        self.cond.block().arena().raw_fd()
    }

    /// Register as a waiter and release the lock (which must be held).
    #[napi]
    pub fn wait_begin(&self) -> napi::Result<NativeCondWait> {
        Ok(NativeCondWait { w: self.cond.wait_begin().map_err(sync_err)? })
    }

    /// 1 if notified; otherwise watch with `token` (0: don't) and return 0.
    #[napi]
    pub fn poll_or_watch(&self, w: &NativeCondWait, token: u32, timeout: Option<f64>) -> napi::Result<i32> {
        match self.cond.wait_poll(&w.w) {
            Try::Ready(()) => Ok(1),
            Try::WouldBlock(_) if token == 0 => Ok(0),
            Try::WouldBlock(on) => watch(token, on, timeout).map(|_| 0),
        }
    }

    /// Block until notified or `timeout`; true if notified. The lock is not re-acquired.
    #[napi]
    pub fn poll_wait(&self, w: &NativeCondWait, timeout: Option<f64>) -> napi::Result<bool> {
        let d = deadline(timeout);
        loop {
            match self.cond.wait_poll(&w.w) {
                Try::Ready(()) => return Ok(true),
                Try::WouldBlock(on) => {
                    if d.is_some_and(|d| std::time::Instant::now() >= d) {
                        return Ok(false);
                    }
                    on.wait(d).map_err(os)?;
                }
            }
        }
    }

    /// With the lock re-acquired: restore its depth; whether the waiter was notified.
    #[napi]
    pub fn wait_finish(&self, w: &NativeCondWait, notified: bool) -> bool {
        self.cond.wait_finish(w.w, notified)
    }

    #[napi]
    pub fn notify(&self, n: f64) -> napi::Result<u32> {
        let n = if n >= u32::MAX as f64 { u32::MAX } else if n > 0.0 { n as u32 } else { 0 };
        self.cond.notify(n).map_err(sync_err)
    }

    #[napi(getter)]
    pub fn n_waiting(&self) -> u32 {
        self.cond.n_waiting()
    }
}

// ---- Event --------------------------------------------------------------------------

#[napi]
pub struct NativeEvent {
    ev: Event,
}

#[napi]
impl NativeEvent {
    #[napi(constructor)]
    pub fn new() -> napi::Result<Self> {
        Ok(NativeEvent { ev: Event::new(Heap::global()).map_err(sync_err)? })
    }

    #[napi(factory)]
    pub fn adopt(fd: i32, id: BlockIdJs) -> napi::Result<Self> {
        Ok(NativeEvent { ev: Event::from_block(adopt_transferred(fd, &id)?).map_err(sync_err)? })
    }

    #[napi]
    pub fn retain_for_transfer(&self) -> BlockIdJs {
        id_to_js(self.ev.block().retain_for_transfer())
    }

    #[napi(getter)]
    pub fn arena_fd(&self) -> i32 {
        self.ev.block().arena().raw_fd()
    }

    #[napi]
    pub fn is_set(&self) -> bool {
        self.ev.is_set()
    }

    #[napi]
    pub fn set(&self) {
        self.ev.set()
    }

    #[napi]
    pub fn clear(&self) {
        self.ev.clear()
    }

    #[napi]
    pub fn wait(&self, timeout: Option<f64>) -> napi::Result<bool> {
        self.ev.wait(deadline(timeout)).map_err(os)
    }

    /// 1 if set; otherwise watch with `token` (0: don't) and return 0.
    #[napi]
    pub fn wait_or_watch(&self, token: u32, timeout: Option<f64>) -> napi::Result<i32> {
        match self.ev.try_wait() {
            Try::Ready(()) => Ok(1),
            Try::WouldBlock(_) if token == 0 => Ok(0),
            Try::WouldBlock(on) => watch(token, on, timeout).map(|_| 0),
        }
    }
}

// ---- Barrier ------------------------------------------------------------------------

#[napi(object)]
pub struct ArrivalJs {
    pub generation: u32,
    pub index: u32,
    pub last: bool,
}

fn arrival(a: &ArrivalJs) -> Arrival {
    Arrival { generation: a.generation, index: a.index, last: a.last }
}

/// Barrier operations report "broken" as -1 (src/synchronize.ts throws BrokenBarrierError).
const BROKEN: i32 = -1;

#[napi]
pub struct NativeBarrier {
    b: Barrier,
}

#[napi]
impl NativeBarrier {
    #[napi(constructor)]
    pub fn new(parties: f64) -> napi::Result<Self> {
        if !(1.0..=i32::MAX as f64).contains(&parties) || parties.fract() != 0.0 {
            return Err(coded("Value", "parties must be a positive integer"));
        }
        Ok(NativeBarrier { b: Barrier::new(Heap::global(), parties as u32).map_err(sync_err)? })
    }

    #[napi(factory)]
    pub fn adopt(fd: i32, id: BlockIdJs) -> napi::Result<Self> {
        Ok(NativeBarrier { b: Barrier::from_block(adopt_transferred(fd, &id)?).map_err(sync_err)? })
    }

    #[napi]
    pub fn retain_for_transfer(&self) -> BlockIdJs {
        id_to_js(self.b.block().retain_for_transfer())
    }

    #[napi(getter)]
    pub fn arena_fd(&self) -> i32 {
        self.b.block().arena().raw_fd()
    }

    #[napi(getter)]
    pub fn parties(&self) -> u32 {
        self.b.parties()
    }

    #[napi(getter)]
    pub fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }

    #[napi(getter)]
    pub fn broken(&self) -> bool {
        self.b.broken()
    }

    /// Arrive; null if a previous pass is still finishing (then `token` is watched, unless
    /// 0). Throws `[Broken]` if broken.
    #[napi]
    pub fn arrive_or_watch(&self, token: u32, timeout: Option<f64>) -> napi::Result<Option<ArrivalJs>> {
        match self.b.try_arrive().map_err(sync_err)? {
            Try::Ready(a) => Ok(Some(ArrivalJs { generation: a.generation, index: a.index, last: a.last })),
            Try::WouldBlock(_) if token == 0 => Ok(None),
            Try::WouldBlock(on) => watch(token, on, timeout).map(|_| None),
        }
    }

    /// Arrive, waiting while a previous pass finishes; null on timeout (barrier then broken).
    #[napi]
    pub fn arrive(&self, timeout: Option<f64>) -> napi::Result<Option<ArrivalJs>> {
        let d = deadline(timeout);
        loop {
            match self.b.try_arrive().map_err(sync_err)? {
                Try::Ready(a) => return Ok(Some(ArrivalJs { generation: a.generation, index: a.index, last: a.last })),
                Try::WouldBlock(on) => {
                    if d.is_some_and(|d| std::time::Instant::now() >= d) {
                        self.b.abort();
                        return Ok(None);
                    }
                    on.wait(d).map_err(os)?;
                }
            }
        }
    }

    /// The pass is over: its index; -1 broken; -2 still waiting (`token` watched unless 0).
    #[napi]
    pub fn poll_or_watch(&self, a: ArrivalJs, token: u32, timeout: Option<f64>) -> napi::Result<i32> {
        match self.b.poll(&arrival(&a)) {
            Err(SyncError::Broken) => Ok(BROKEN),
            Err(e) => Err(sync_err(e)),
            Ok(Try::Ready(i)) => Ok(i as i32),
            Ok(Try::WouldBlock(_)) if token == 0 => Ok(-2),
            Ok(Try::WouldBlock(on)) => watch(token, on, timeout).map(|_| -2),
        }
    }

    /// Block until the pass is over: its index, or -1 if broken (a timeout breaks it).
    #[napi]
    pub fn poll_wait(&self, a: ArrivalJs, timeout: Option<f64>) -> napi::Result<i32> {
        let a = arrival(&a);
        let d = deadline(timeout);
        loop {
            match self.b.poll(&a) {
                Err(SyncError::Broken) => return Ok(BROKEN),
                Err(e) => return Err(sync_err(e)),
                Ok(Try::Ready(i)) => return Ok(i as i32),
                Ok(Try::WouldBlock(on)) => {
                    if d.is_some_and(|d| std::time::Instant::now() >= d) {
                        return Ok(self.timed_out(&a));
                    }
                    on.wait(d).map_err(os)?;
                }
            }
        }
    }

    /// The wait of `a` timed out: break the barrier (unless the pass just completed).
    #[napi(js_name = "timedOut")]
    pub fn timed_out_js(&self, a: ArrivalJs) -> i32 {
        self.timed_out(&arrival(&a))
    }

    /// The last arrival, after its action: release everyone. Its index, or -1 if broken.
    #[napi]
    pub fn pass(&self, a: ArrivalJs) -> napi::Result<i32> {
        match self.b.pass(&arrival(&a)) {
            Ok(i) => Ok(i as i32),
            Err(SyncError::Broken) => Ok(BROKEN),
            Err(e) => Err(sync_err(e)),
        }
    }

    #[napi]
    pub fn abort(&self) {
        self.b.abort()
    }

    #[napi]
    pub fn reset(&self) {
        self.b.reset()
    }
}

impl NativeBarrier {
    fn timed_out(&self, a: &Arrival) -> i32 {
        self.b.timed_out(a);
        match self.b.poll(a) {
            Ok(Try::Ready(i)) => i as i32,
            _ => BROKEN,
        }
    }
}

/// Whether this process's wait engine has been started (a forking server must not have one).
pub(crate) fn started() -> bool {
    WAITER.get().is_some()
}
