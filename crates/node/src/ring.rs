//! `multiprocessing.Queue`'s engine: mp-core's kill-safe shared-memory ring, as plain
//! functions over an External handle (a napi function call costs a fraction of a class
//! method call, and `putSync`/`getSync` are one call each on the uncontended path).
//!
//! Received items up to the size of the calling thread's scratch buffer (registered once
//! with `ringScratch`) are copied there and the call returns their length; bigger ones
//! come back as a Buffer that the item is copied into directly.
//!
//! Asynchronous waits use the process's one futex waiter (src/wait.ts): an `...OrWatch`
//! call that would block registers `token` and returns; once the token is reported the
//! caller calls `ringDisarm(token)` and retries.

use std::cell::Cell;
use std::ffi::CStr;
use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mp_core::ring::{QueueError, Ring, RingWait};
use mp_core::sys::deadline;
use napi::bindgen_prelude::{BufferSlice, Either, External, FromNapiValue, Uint8Array};
use napi::{sys, Env};
use napi_derive::napi;

use crate::error::{coded, os};
use crate::raw_handle::{self, buffer_arg, f64_arg, fast_paths_object, new_handle, throw, FastCall};
use crate::sync::watch;

pub struct RingHandle {
    ring: Arc<Ring>,
    /// Waits registered by `...OrWatch` calls, by token, until `ringDisarm`.
    armed: Mutex<HashMap<u32, RingWait>>,
}


thread_local! {
    static SCRATCH: Cell<(*mut u8, usize)> = const { Cell::new((ptr::null_mut(), 0)) };
}

fn handle(ring: Ring) -> External<RingHandle> {
    let cap = ring.capacity();
    External::new_with_size_hint(RingHandle { ring: Arc::new(ring), armed: Mutex::new(HashMap::new()) }, cap.min(1 << 20))
}

fn qerr(e: QueueError) -> napi::Error {
    match e {
        QueueError::TooLong { .. } | QueueError::Value(_) => coded("Value", e),
        QueueError::Os(e) => os(e),
        QueueError::Corrupt(_) => coded("OS", format!("errno=0 {e}")),
        QueueError::Timeout | QueueError::WouldBlock(_) => coded("Timeout", e),
    }
}

/// A new queue ring of about `capacity` bytes; `maxsize <= 0`: no limit on items.
#[napi]
pub fn ring_create(capacity: f64, maxsize: f64) -> napi::Result<External<RingHandle>> {
    if !(capacity.is_finite() && capacity >= 0.0) {
        return Err(coded("Value", "queue capacity must be a non-negative number of bytes"));
    }
    let maxsize = if maxsize.is_finite() { maxsize as i64 } else { 0 };
    Ring::create(capacity as usize, maxsize).map(handle).map_err(os)
}

/// The ring whose descriptor arrived from another process (takes ownership of `fd`).
#[napi]
pub fn ring_adopt(fd: i32) -> napi::Result<External<RingHandle>> {
    if fd < 0 {
        return Err(coded("Value", "bad descriptor"));
    }
    Ring::from_fd(unsafe { OwnedFd::from_raw_fd(fd) }).map(handle).map_err(os)
}

#[napi]
pub fn ring_fd(h: &External<RingHandle>) -> napi::Result<i32> {
    match h.ring.raw_fd() {
        fd if fd >= 0 => Ok(fd),
        _ => Err(coded("Closed", "handle is closed")),
    }
}

/// Close the queue's descriptor (Queue.close()); the mapping stays for pending puts.
#[napi]
pub fn ring_release_fd(h: &External<RingHandle>) {
    h.ring.release_fd();
}

/// [maxsize (0: unbounded), capacity in bytes, largest item in the ring in bytes, largest
/// item of a `putBatch` in bytes]
#[napi]
pub fn ring_info(h: &External<RingHandle>) -> Vec<f64> {
    vec![h.ring.maxsize() as f64, h.ring.capacity() as f64, h.ring.max_item_len() as f64, h.ring.max_batch_item_len() as f64]
}

/// Register the calling thread's receive buffer. It must stay alive (and attached) for
/// as long as the thread calls `ringGet`/`ringGetOrWatch`.
#[napi]
pub fn ring_scratch(mut buf: Uint8Array) {
    let s = unsafe { buf.as_mut() };
    SCRATCH.with(|c| c.set((s.as_mut_ptr(), s.len())));
}

/// Bytes below which malloc serves requests from its heap rather than fresh mappings
/// (glibc's own limit when it adapts the threshold).
const MALLOC_HEAP_BELOW: i32 = 32 << 20;
/// Bytes of free memory at the heap's top that malloc keeps rather than returns to the
/// system: about what V8 lets build up in large buffers before it collects them.
const MALLOC_KEEP: i32 = 64 << 20;

/// Large items leave in Buffers that V8 frees in batches, at its collections. By default
/// glibc maps each such buffer afresh and unmaps it when freed (or trims the heap as soon
/// as a batch is freed), so every item of a stream faults in all its pages (256 for 1 MiB,
/// more time than the copy); kept in the heap, the next items reuse those pages. Done once,
/// when the process first receives a large item (glibc only: musl has no such knobs).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_HEAP_BELOW);
            libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_KEEP);
        });
    }
}

/// Copy an item out: into the scratch buffer (returns its length), or into a new Buffer.
fn receive<'env>(env: &'env Env, a: &[u8], b: &[u8]) -> napi::Result<Either<i32, BufferSlice<'env>>> {
    let len = a.len() + b.len();
    let (sp, slen) = SCRATCH.with(Cell::get);
    if len <= slen && len <= i32::MAX as usize {
        unsafe {
            ptr::copy_nonoverlapping(a.as_ptr(), sp, a.len());
            ptr::copy_nonoverlapping(b.as_ptr(), sp.add(a.len()), b.len());
        }
        return Ok(Either::A(len as i32));
    }
    keep_freed_memory();
    let mut data = ptr::null_mut();
    let mut value = ptr::null_mut();
    let status = unsafe { sys::napi_create_buffer(env.raw(), len, &mut data, &mut value) };
    if status != sys::Status::napi_ok {
        return Err(coded("OS", format!("errno=12 cannot allocate a buffer of {len} bytes for a queue item")));
    }
    unsafe {
        let d = data as *mut u8;
        ptr::copy_nonoverlapping(a.as_ptr(), d, a.len());
        ptr::copy_nonoverlapping(b.as_ptr(), d.add(a.len()), b.len());
        Ok(Either::B(BufferSlice::from_napi_value(env.raw(), value)?))
    }
}

fn timeout_deadline(timeout: f64) -> Option<Instant> {
    if timeout < 0.0 || timeout.is_nan() {
        None
    } else {
        deadline(Some(timeout))
    }
}

/// Put `data`, waiting up to `timeout` seconds (negative: no limit; 0: don't wait).
/// True when put, false when the queue stayed full.
#[napi]
pub fn ring_put(h: &External<RingHandle>, data: &[u8], timeout: f64) -> napi::Result<bool> {
    let r = if timeout == 0.0 { h.ring.put_parts_now(&[data]) } else { h.ring.put(data, timeout_deadline(timeout)).map(|_| true) };
    match r {
        Ok(put) => Ok(put),
        Err(QueueError::Timeout) => Ok(false),
        Err(e) => Err(qerr(e)),
    }
}

/// Take an item, waiting up to `timeout` seconds (negative: no limit; 0: don't wait).
/// Its length in the scratch buffer, a Buffer holding it, or -1 when none came.
#[napi]
pub fn ring_get<'env>(env: &'env Env, h: &External<RingHandle>, timeout: f64) -> napi::Result<Either<i32, BufferSlice<'env>>> {
    let r = if timeout == 0.0 {
        h.ring.get_now_with(|a, b| receive(env, a, b))
    } else {
        h.ring.get_with(timeout_deadline(timeout), |a, b| receive(env, a, b)).map(Some)
    };
    match r {
        Ok(Some(v)) => v,
        Ok(None) | Err(QueueError::Timeout) => Ok(Either::A(-1)),
        Err(e) => Err(qerr(e)),
    }
}

fn arm(h: &External<RingHandle>, token: u32, w: RingWait, timeout: Option<f64>) -> napi::Result<()> {
    let on = w.wait_on(&h.ring);
    if let Some(old) = h.armed.lock().unwrap().insert(token, w) {
        h.ring.disarm(&old);
    }
    watch(token, on, timeout).inspect_err(|_| disarm_token(h, token))
}

fn disarm_token(h: &External<RingHandle>, token: u32) {
    if let Some(w) = h.armed.lock().unwrap().remove(&token) {
        h.ring.disarm(&w);
    }
}

/// One attempt to put; if the queue is full, watch `token` (until space may have been made
/// or `timeout` seconds pass) and return false.
/// `tag`, when given, is a byte written before `data` (see `ringFastPaths().put`).
#[napi]
pub fn ring_put_or_watch(h: &External<RingHandle>, data: &[u8], token: u32, timeout: Option<f64>, tag: Option<u32>) -> napi::Result<bool> {
    let prefix = [tag.unwrap_or(0) as u8];
    let parts: &[&[u8]] = if tag.is_some() { &[&prefix, data] } else { &[data] };
    match h.ring.try_put_parts(parts) {
        Ok(()) => Ok(true),
        Err(QueueError::WouldBlock(w)) => arm(h, token, w, timeout).map(|_| false),
        Err(e) => Err(qerr(e)),
    }
}

/// One attempt to get (as `ringGet`); if the queue is empty, watch `token` and return -1.
#[napi]
pub fn ring_get_or_watch<'env>(
    env: &'env Env,
    h: &External<RingHandle>,
    token: u32,
    timeout: Option<f64>,
) -> napi::Result<Either<i32, BufferSlice<'env>>> {
    match h.ring.try_get_with(|a, b| receive(env, a, b)) {
        Ok(v) => v,
        Err(QueueError::WouldBlock(w)) => arm(h, token, w, timeout).map(|_| Either::A(-1)),
        Err(e) => Err(qerr(e)),
    }
}

/// The wait of `token` is over (reported or given up): undo its registration.
#[napi]
pub fn ring_disarm(h: &External<RingHandle>, token: u32) {
    disarm_token(h, token)
}

#[napi]
pub fn ring_qsize(h: &External<RingHandle>) -> u32 {
    h.ring.qsize() as u32
}

#[napi]
pub fn ring_empty(h: &External<RingHandle>) -> bool {
    h.ring.empty()
}

#[napi]
pub fn ring_full(h: &External<RingHandle>) -> bool {
    h.ring.full()
}

#[napi]
pub fn ring_unfinished_tasks(h: &External<RingHandle>) -> u32 {
    h.ring.unfinished_tasks()
}

/// JoinableQueue.task_done: `[Value]` when called more times than items were put.
#[napi]
pub fn ring_task_done(h: &External<RingHandle>) -> napi::Result<()> {
    h.ring.task_done().map_err(qerr)
}

/// Wait until every item put has been marked done; false on timeout (negative: no limit).
#[napi]
pub fn ring_join(h: &External<RingHandle>, timeout: f64) -> napi::Result<bool> {
    match h.ring.join(timeout_deadline(timeout)) {
        Ok(()) => Ok(true),
        Err(QueueError::Timeout) => Ok(false),
        Err(e) => Err(qerr(e)),
    }
}

/// True when every item put has been marked done; otherwise watch `token`, return false.
#[napi]
pub fn ring_join_or_watch(h: &External<RingHandle>, token: u32, timeout: Option<f64>) -> napi::Result<bool> {
    match h.ring.try_join() {
        Ok(()) => Ok(true),
        Err(QueueError::WouldBlock(w)) => arm(h, token, w, timeout).map(|_| false),
        Err(e) => Err(qerr(e)),
    }
}

// ---- fast paths -----------------------------------------------------------------------
//
// `putSync`/`getSync` are one call each; napi-rs's generated wrappers cost more than the
// ring operation itself, so these two are plain N-API callbacks over a raw External that
// holds the ring.

const RAW_MAGIC: u64 = u64::from_le_bytes(*b"mpraw-q1");

/// The handle for the fast paths of `ringFastPaths()`.
#[napi(ts_return_type = "unknown")]
pub fn ring_raw<'env>(env: &'env Env, h: &External<RingHandle>) -> napi::Result<napi::Unknown<'env>> {
    let value = unsafe { new_handle(env.raw(), RAW_MAGIC, h.ring.clone(), "queue") }?;
    Ok(unsafe { napi::Unknown::from_raw_unchecked(env.raw(), value) })
}

/// The arguments of a fast call: the ring, up to three more values.
unsafe fn fast_args<'a>(env: sys::napi_env, info: sys::napi_callback_info) -> Result<(&'a Arc<Ring>, [sys::napi_value; 3]), napi::Error> {
    unsafe { raw_handle::fast_args(env, info, RAW_MAGIC, 2, "queue") }
}

/// `put(raw, data, timeout, tag?)`: as `ringPut`.
unsafe extern "C" fn fast_put(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (ring, [data, timeout, tag]) = match unsafe { fast_args(env, info) } {
        Ok(a) => a,
        Err(e) => return unsafe { throw(env, e) },
    };
    let bytes = match unsafe { buffer_arg(env, data, "queue item must be a Buffer") } {
        Ok(b) => b,
        Err(e) => return unsafe { throw(env, e) },
    };
    let timeout = unsafe { f64_arg(env, timeout, -1.0) };
    let tag = unsafe { f64_arg(env, tag, -1.0) };
    let prefix = [tag as u8];
    let parts: &[&[u8]] = if (0.0..256.0).contains(&tag) { &[&prefix, bytes] } else { &[bytes] };
    let r = if timeout == 0.0 { ring.put_parts_now(parts) } else { ring.put_parts(parts, timeout_deadline(timeout)).map(|_| true) };
    let ok = match r {
        Ok(put) => put,
        Err(QueueError::Timeout) => false,
        Err(e) => return unsafe { throw(env, qerr(e)) },
    };
    let mut out = ptr::null_mut();
    unsafe { sys::napi_get_boolean(env, ok, &mut out) };
    out
}

/// `putBatch(raw, packed, nbytes, timeout)`: put the items packed in the first `nbytes` of
/// the Buffer `packed` (each a u32 LE length, then its bytes, at most `maxBatchItem`
/// bytes), in order, waiting for room up to `timeout` seconds (negative: no limit; 0:
/// don't wait). Returns the bytes whose items were put (all of them unless time ran out).
unsafe extern "C" fn fast_put_batch(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (ring, [data, nbytes, timeout]) = match unsafe { fast_args(env, info) } {
        Ok(a) => a,
        Err(e) => return unsafe { throw(env, e) },
    };
    let batch = match unsafe { buffer_arg(env, data, "queue batch must be a Buffer") } {
        Ok(b) => b,
        Err(e) => return unsafe { throw(env, e) },
    };
    let n = unsafe { f64_arg(env, nbytes, -1.0) };
    if !(n >= 0.0 && n <= batch.len() as f64) {
        return unsafe { throw(env, coded("Value", "bad queue batch length")) };
    }
    let packed = &batch[..n as usize];
    let timeout = unsafe { f64_arg(env, timeout, -1.0) };
    let r = if timeout == 0.0 { ring.try_put_batch(packed) } else { ring.put_batch(packed, timeout_deadline(timeout)) };
    match r {
        Ok(done) => {
            let mut out = ptr::null_mut();
            unsafe { sys::napi_create_double(env, done as f64, &mut out) };
            out
        }
        Err(e) => unsafe { throw(env, qerr(e)) },
    }
}

/// `get(raw, timeout)`: as `ringGet`.
unsafe extern "C" fn fast_get(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (ring, [timeout, _, _]) = match unsafe { fast_args(env, info) } {
        Ok(a) => a,
        Err(e) => return unsafe { throw(env, e) },
    };
    let timeout = unsafe { f64_arg(env, timeout, -1.0) };
    let e = Env::from_raw(env);
    let r = if timeout == 0.0 {
        ring.get_now_with(|a, b| receive_raw(&e, a, b))
    } else {
        ring.get_with(timeout_deadline(timeout), |a, b| receive_raw(&e, a, b)).map(Some)
    };
    let r = match r {
        Ok(Some(v)) => v,
        Ok(None) | Err(QueueError::Timeout) => Ok(Either::A(-1)),
        Err(e) => Err(qerr(e)),
    };
    match r {
        Ok(Either::A(n)) => {
            let mut out = ptr::null_mut();
            unsafe { sys::napi_create_int32(env, n, &mut out) };
            out
        }
        Ok(Either::B(v)) => v,
        Err(e) => unsafe { throw(env, e) },
    }
}

fn receive_raw(env: &Env, a: &[u8], b: &[u8]) -> napi::Result<Either<i32, sys::napi_value>> {
    match receive(env, a, b)? {
        Either::A(n) => Ok(Either::A(n)),
        Either::B(buf) => Ok(Either::B(unsafe { napi::bindgen_prelude::ToNapiValue::to_napi_value(env.raw(), buf)? })),
    }
}

/// `{ put(raw, data, timeout, tag?): boolean, get(raw, timeout): number | Buffer }`;
/// `tag` (0-255) is a byte written before `data`, so that a large payload is not first
/// copied into a buffer with its tag.
#[napi(ts_return_type = "unknown")]
pub fn ring_fast_paths<'env>(env: &'env Env) -> napi::Result<napi::Unknown<'env>> {
    let calls: [(&CStr, FastCall); 3] = [(c"put", fast_put), (c"get", fast_get), (c"putBatch", fast_put_batch)];
    unsafe {
        let obj = fast_paths_object(env.raw(), &calls, "queue")?;
        Ok(napi::Unknown::from_raw_unchecked(env.raw(), obj))
    }
}
