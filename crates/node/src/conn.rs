//! Framed connections (Connection, and the channels of spawn and the forkserver).
//!
//! `NativeConnection` (the channels of spawn and the forkserver) owns the descriptor and its
//! reader. Connection holds the same state in a raw External (`connFastPaths().open(fd)`)
//! and its hot calls (send, the receives and polls) are plain N-API callbacks over it:
//! napi-rs's class wrappers (construction, unwrap, argument checks) cost a good part of a
//! small message's round trip, and their first calls a good part of a fresh process's first.
//!
//! A received message up to the size of the calling thread's scratch buffer (registered
//! with `connScratch`) is copied there and the call returns its length (no Buffer made per
//! message); a bigger one comes back as a Buffer of its own.

use std::cell::Cell;
use std::ffi::CStr;
use std::os::fd::IntoRawFd;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mp_core::frame::{self, FrameReader, Got, Mode, Spin};
use mp_core::sys::deadline;
use napi::bindgen_prelude::{BufferSlice, Uint8Array};
use napi::{sys, Env, JsValue};
use napi_derive::napi;

use crate::error::{coded, os, recv};
use crate::raw_handle::{self, buffer_arg, f64_arg, fast_paths_object, handle_ref, new_handle, throw, FastCall};

const COPY_LIMIT: usize = 64 * 1024;

struct Inner {
    fd: i32,
    reader: FrameReader,
    spin: Spin,
}

impl Drop for Inner {
    /// A handle collected without `close` closes its descriptor (as Python's Connection does).
    fn drop(&mut self) {
        if self.fd >= 0 {
            unsafe { libc::close(self.fd) };
        }
    }
}

type Shared = Arc<Mutex<Inner>>;

fn shared(fd: i32) -> Shared {
    Arc::new(Mutex::new(Inner { fd, reader: FrameReader::new(), spin: Spin::new() }))
}

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn closed() -> napi::Error {
    coded("Closed", "handle is closed")
}

/// Small messages are copied into V8's heap (cheaper than an external buffer and its
/// finalizer); large ones are handed over without a copy.
fn to_js(env: &Env, v: Vec<u8>) -> napi::Result<BufferSlice<'_>> {
    if v.len() <= COPY_LIMIT {
        BufferSlice::copy_from(env, &v)
    } else {
        BufferSlice::from_data(env, v)
    }
}

/// One end of a framed connection over a stream socket. Owns its descriptor.
#[napi]
pub struct NativeConnection {
    inner: Shared,
}

#[napi]
impl NativeConnection {
    /// Take ownership of `fd`.
    #[napi(constructor)]
    pub fn new(fd: i32) -> Self {
        NativeConnection { inner: shared(fd) }
    }

    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        lock(&self.inner).fd
    }

    fn open_fd(&self) -> napi::Result<i32> {
        match lock(&self.inner).fd {
            fd if fd >= 0 => Ok(fd),
            _ => Err(closed()),
        }
    }

    /// Write one whole message (and descriptors, duplicated into the peer).
    #[napi]
    pub fn send(&self, data: &[u8], fds: Option<Vec<i32>>) -> napi::Result<()> {
        let fd = self.open_fd()?;
        frame::send_frame(fd, data, fds.as_deref().unwrap_or(&[])).map_err(os)
    }

    /// Write one whole message made of `head` then `tail`, in one write when the socket
    /// takes it (no copy joins them).
    #[napi]
    pub fn send_parts(&self, head: &[u8], tail: &[u8]) -> napi::Result<()> {
        let fd = self.open_fd()?;
        let total = head.len() + tail.len();
        let (h, hlen) = frame::header(total);
        frame::send_all(fd, &[&h[..hlen], head, tail], &[]).map_err(os)
    }

    /// Receive one message. `timeout`: seconds to wait (null: forever); with
    /// `block` false, never wait. Returns null when no whole message is available.
    #[napi]
    pub fn recv<'env>(&self, env: &'env Env, block: bool, timeout: Option<f64>, maxlength: Option<f64>) -> napi::Result<Option<BufferSlice<'env>>> {
        let mut g = lock(&self.inner);
        if g.fd < 0 {
            return Err(closed());
        }
        let mode = if block { Mode::Until(deadline(timeout)) } else { Mode::NonBlocking };
        let limit = maxlength.map(|m| if m < 0.0 { 0 } else { m as u64 });
        let fd = g.fd;
        match g.reader.recv(fd, mode, limit) {
            Ok(Some(v)) => Ok(Some(to_js(env, v)?)),
            Ok(None) => Ok(None),
            Err(e) => Err(recv(e)),
        }
    }

    /// Whether a read would not wait, waiting up to `timeout` seconds (null: forever).
    #[napi]
    pub fn poll(&self, timeout: Option<f64>) -> napi::Result<bool> {
        let g = lock(&self.inner);
        if g.fd < 0 {
            return Err(closed());
        }
        frame::poll(&g.reader, g.fd, deadline(timeout)).map_err(os)
    }

    /// Descriptors that arrived with messages, oldest first; the caller owns them.
    #[napi]
    pub fn take_fds(&self, n: u32) -> napi::Result<Vec<i32>> {
        let fds = lock(&self.inner).reader.take_fds(n as usize).ok_or_else(|| coded("Value", "message refers to descriptors that did not arrive"))?;
        Ok(fds.into_iter().map(IntoRawFd::into_raw_fd).collect())
    }

    #[napi]
    pub fn close(&self) {
        let mut g = lock(&self.inner);
        if g.fd >= 0 {
            unsafe { libc::close(g.fd) };
            g.fd = -1;
        }
    }

    /// Give up ownership of the descriptor without closing it.
    #[napi]
    pub fn detach(&self) -> i32 {
        std::mem::replace(&mut lock(&self.inner).fd, -1)
    }
}

impl Drop for NativeConnection {
    fn drop(&mut self) {
        self.close();
    }
}

// ---- Connection's handle ------------------------------------------------------------
//
// src/connection.ts holds a raw External (made by `connFastPaths().open(fd)`) rather than a
// NativeConnection: its hot calls are the fast paths below, the others these functions.

fn handle_of(env: &Env, raw: &napi::Unknown) -> napi::Result<Shared> {
    unsafe { handle_ref::<Shared>(env.raw(), raw.raw(), RAW_MAGIC, "connection") }.cloned()
}

fn open_fd(s: &Shared) -> napi::Result<i32> {
    match lock(s).fd {
        fd if fd >= 0 => Ok(fd),
        _ => Err(closed()),
    }
}

/// Close the handle's descriptor (again: nothing).
#[napi]
pub fn conn_close(env: &Env, raw: napi::Unknown) -> napi::Result<()> {
    let s = handle_of(env, &raw)?;
    let mut g = lock(&s);
    if g.fd >= 0 {
        unsafe { libc::close(g.fd) };
        g.fd = -1;
    }
    Ok(())
}

/// Give up the descriptor without closing it.
#[napi]
pub fn conn_detach(env: &Env, raw: napi::Unknown) -> napi::Result<i32> {
    let s = handle_of(env, &raw)?;
    let fd = std::mem::replace(&mut lock(&s).fd, -1);
    Ok(fd)
}

/// Write one whole message with descriptors (duplicated into the peer).
#[napi]
pub fn conn_send_fds(env: &Env, raw: napi::Unknown, data: &[u8], fds: Vec<i32>) -> napi::Result<()> {
    let fd = open_fd(&handle_of(env, &raw)?)?;
    frame::send_frame(fd, data, &fds).map_err(os)
}

/// Write one whole message made of `head` then `tail` (no copy joins them).
#[napi]
pub fn conn_send_parts(env: &Env, raw: napi::Unknown, head: &[u8], tail: &[u8]) -> napi::Result<()> {
    let fd = open_fd(&handle_of(env, &raw)?)?;
    let (h, hlen) = frame::header(head.len() + tail.len());
    frame::send_all(fd, &[&h[..hlen], head, tail], &[]).map_err(os)
}

/// Descriptors that arrived with messages, oldest first; the caller owns them.
#[napi]
pub fn conn_take_fds(env: &Env, raw: napi::Unknown, n: u32) -> napi::Result<Vec<i32>> {
    let s = handle_of(env, &raw)?;
    let fds = lock(&s).reader.take_fds(n as usize).ok_or_else(|| coded("Value", "message refers to descriptors that did not arrive"))?;
    Ok(fds.into_iter().map(IntoRawFd::into_raw_fd).collect())
}

// ---- fast paths -----------------------------------------------------------------------

thread_local! {
    static SCRATCH: Cell<(*mut u8, usize)> = const { Cell::new((ptr::null_mut(), 0)) };
}

/// Register the calling thread's receive buffer for `connFastPaths().recv`. It must stay
/// alive (and attached) while the thread receives: src/connection.ts keeps one per thread
/// on globalThis, so that every copy of the module in a thread shares it.
#[napi]
pub fn conn_scratch(mut buf: Uint8Array) {
    let s = unsafe { buf.as_mut() };
    SCRATCH.with(|c| c.set((s.as_mut_ptr(), s.len())));
}

const RAW_MAGIC: u64 = u64::from_le_bytes(*b"mpraw-c1");

/// The arguments of a fast call: the connection, up to three more values.
unsafe fn fast_args<'a>(env: sys::napi_env, info: sys::napi_callback_info) -> Result<(&'a Shared, [sys::napi_value; 3]), napi::Error> {
    unsafe { raw_handle::fast_args(env, info, RAW_MAGIC, 1, "connection") }
}

/// Negative (or NaN): no limit.
fn opt_secs(t: f64) -> Option<f64> {
    (t >= 0.0).then_some(t)
}

/// `open(fd)`: a handle that owns `fd` (closed when collected, unless closed or detached).
unsafe extern "C" fn fast_open(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argv = [ptr::null_mut(); 1];
    let mut argc = 1usize;
    let mut fd = -1i32;
    unsafe {
        if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok
            || argc < 1
            || sys::napi_get_value_int32(env, argv[0], &mut fd) != sys::Status::napi_ok
        {
            return throw(env, coded("Value", "a descriptor is required"));
        }
    }
    match unsafe { new_handle(env, RAW_MAGIC, shared(fd), "connection") } {
        Ok(value) => value,
        Err(e) => unsafe { throw(env, e) },
    }
}

/// `send(raw, data)`: write `data` (any ArrayBufferView) as one message.
unsafe extern "C" fn fast_send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (inner, [data, _, _]) = match unsafe { fast_args(env, info) } {
        Ok(a) => a,
        Err(e) => return unsafe { throw(env, e) },
    };
    let bytes = match unsafe { buffer_arg(env, data, "message must be a Buffer") } {
        Ok(b) => b,
        Err(e) => return unsafe { throw(env, e) },
    };
    let fd = lock(inner).fd;
    if fd < 0 {
        return unsafe { throw(env, closed()) };
    }
    match frame::send_frame(fd, bytes, &[]) {
        Ok(()) => ptr::null_mut(),
        Err(e) => unsafe { throw(env, os(e)) },
    }
}

/// `recv(raw, timeout, maxlength, spinUs)`: one message, waiting up to `timeout` seconds
/// (negative: no limit; 0: do not wait), first spinning up to `spinUs` microseconds (see
/// mp_core::frame::Spin); `maxlength` negative: no limit. Returns the message's length in
/// the scratch buffer, a Buffer holding it, or -1 when none came.
unsafe extern "C" fn fast_recv(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (inner, [timeout, maxlength, spin_us]) = match unsafe { fast_args(env, info) } {
        Ok(a) => a,
        Err(e) => return unsafe { throw(env, e) },
    };
    let timeout = unsafe { f64_arg(env, timeout, -1.0) };
    let maxlength = unsafe { f64_arg(env, maxlength, -1.0) };
    let spin_us = unsafe { f64_arg(env, spin_us, 0.0) };
    let limit = (maxlength >= 0.0).then_some(maxlength as u64);
    let mut g = lock(inner);
    let Inner { fd, reader, spin } = &mut *g;
    if *fd < 0 {
        return unsafe { throw(env, closed()) };
    }
    let got = if timeout == 0.0 {
        reader.recv_frame(*fd, Mode::NonBlocking, limit)
    } else {
        let spin_for = Duration::from_micros(if spin_us > 0.0 { spin_us as u64 } else { 0 });
        spin.recv_frame(reader, *fd, deadline(opt_secs(timeout)), spin_for, limit)
    };
    let r = match got {
        Ok(None) => Ok(Out::Len(-1)),
        Ok(Some(Got::Stash(r))) => out_slice(env, reader.stashed(r)),
        Ok(Some(Got::Big(v))) => out_vec(env, v),
        Err(e) => Err(recv(e)),
    };
    drop(g);
    match r {
        Ok(Out::Len(n)) => {
            let mut out = ptr::null_mut();
            unsafe { sys::napi_create_int32(env, n, &mut out) };
            out
        }
        Ok(Out::Value(v)) => v,
        Err(e) => unsafe { throw(env, e) },
    }
}

enum Out {
    Len(i32),
    Value(sys::napi_value),
}

/// A message into the scratch buffer when it fits, else into a new Buffer.
fn out_slice(env: sys::napi_env, m: &[u8]) -> napi::Result<Out> {
    let (sp, slen) = SCRATCH.with(Cell::get);
    if m.len() <= slen && !sp.is_null() {
        unsafe { ptr::copy_nonoverlapping(m.as_ptr(), sp, m.len()) };
        return Ok(Out::Len(m.len() as i32));
    }
    let mut data = ptr::null_mut();
    let mut value = ptr::null_mut();
    if unsafe { sys::napi_create_buffer_copy(env, m.len(), m.as_ptr().cast(), &mut data, &mut value) } != sys::Status::napi_ok {
        return Err(coded("OS", format!("errno=12 cannot allocate a buffer of {} bytes for a message", m.len())));
    }
    Ok(Out::Value(value))
}

fn out_vec(env: sys::napi_env, v: Vec<u8>) -> napi::Result<Out> {
    if v.len() <= SCRATCH.with(Cell::get).1 {
        return out_slice(env, &v);
    }
    let e = Env::from_raw(env);
    let b = BufferSlice::from_data(&e, v)?;
    Ok(Out::Value(unsafe { napi::bindgen_prelude::ToNapiValue::to_napi_value(env, b)? }))
}

/// `poll(raw, timeout, spinUs)`: whether a message (or the end) can be read without
/// waiting, waiting up to `timeout` seconds (negative: no limit), spinning first.
unsafe extern "C" fn fast_poll(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (inner, [timeout, spin_us, _]) = match unsafe { fast_args(env, info) } {
        Ok(a) => a,
        Err(e) => return unsafe { throw(env, e) },
    };
    let timeout = unsafe { f64_arg(env, timeout, -1.0) };
    let spin_us = unsafe { f64_arg(env, spin_us, 0.0) };
    let mut g = lock(inner);
    let Inner { fd, reader, spin } = &mut *g;
    if *fd < 0 {
        return unsafe { throw(env, closed()) };
    }
    let spin_for = Duration::from_micros(if spin_us > 0.0 { spin_us as u64 } else { 0 });
    let r = spin.poll(reader, *fd, deadline(opt_secs(timeout)), spin_for);
    drop(g);
    match r {
        Ok(ready) => {
            let mut out = ptr::null_mut();
            unsafe { sys::napi_get_boolean(env, ready, &mut out) };
            out
        }
        Err(e) => unsafe { throw(env, os(e)) },
    }
}

/// `{ open(fd): raw, send(raw, data), recv(raw, timeout, maxlength, spinUs): number | Buffer,
/// poll(raw, timeout, spinUs): boolean }`.
#[napi(ts_return_type = "unknown")]
pub fn conn_fast_paths<'env>(env: &'env Env) -> napi::Result<napi::Unknown<'env>> {
    let calls: [(&CStr, FastCall); 4] = [(c"open", fast_open), (c"send", fast_send), (c"recv", fast_recv), (c"poll", fast_poll)];
    unsafe {
        let obj = fast_paths_object(env.raw(), &calls, "connection")?;
        Ok(napi::Unknown::from_raw_unchecked(env.raw(), obj))
    }
}
