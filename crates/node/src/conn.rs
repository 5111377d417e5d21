use std::os::fd::IntoRawFd;

use mp_core::frame::{self, FrameReader, Mode};
use mp_core::sys::deadline;
use napi::bindgen_prelude::BufferSlice;
use napi::Env;

const COPY_LIMIT: usize = 64 * 1024;
use napi_derive::napi;

use crate::error::{coded, os, recv};

/// One end of a framed connection over a stream socket. Owns its descriptor.
#[napi]
pub struct NativeConnection {
    pub(crate) fd: i32,
    pub(crate) reader: FrameReader,
    /// Spins in a row that found nothing, and receives left that will not spin.
    spin_misses: u32,
    spin_off: u32,
}

const SPIN_MISSES_BEFORE_PAUSE: u32 = 3;
const SPIN_PAUSE: u32 = 64;
/// A yield that takes longer than this gave the CPU to other processes: the machine has
/// more runnable work than cores, and spinning only delays this receive (a sleeping
/// receiver is woken ahead of the others when its message comes; a spinning one waits
/// for its turn). The receive then blocks at once, and the next ones do not spin.
const YIELD_LOST: std::time::Duration = std::time::Duration::from_micros(50);

/// Small messages are copied into V8's heap (cheaper than an external buffer and its
/// finalizer); large ones are handed over without a copy.
fn to_js(env: &Env, v: Vec<u8>) -> napi::Result<BufferSlice<'_>> {
    if v.len() <= COPY_LIMIT {
        BufferSlice::copy_from(env, &v)
    } else {
        BufferSlice::from_data(env, v)
    }
}

#[napi]
impl NativeConnection {
    /// Take ownership of `fd`.
    #[napi(constructor)]
    pub fn new(fd: i32) -> Self {
        NativeConnection { fd, reader: FrameReader::new(), spin_misses: 0, spin_off: 0 }
    }

    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Write one whole message (and descriptors, duplicated into the peer).
    #[napi]
    pub fn send(&self, data: &[u8], fds: Option<Vec<i32>>) -> napi::Result<()> {
        self.check_open()?;
        frame::send_frame(self.fd, data, fds.as_deref().unwrap_or(&[])).map_err(os)
    }

    /// Write one whole message made of `head` then `tail`, in one write when the socket
    /// takes it (no copy joins them).
    #[napi]
    pub fn send_parts(&self, head: &[u8], tail: &[u8]) -> napi::Result<()> {
        self.check_open()?;
        let total = head.len() + tail.len();
        let (h, hlen) = frame::header(total);
        frame::send_all(self.fd, &[&h[..hlen], head, tail], &[]).map_err(os)
    }

    /// Receive one message. `timeout`: seconds to wait (null: forever); with
    /// `block` false, never wait. Returns null when no whole message is available.
    #[napi]
    pub fn recv<'env>(
        &mut self,
        env: &'env Env,
        block: bool,
        timeout: Option<f64>,
        maxlength: Option<f64>,
    ) -> napi::Result<Option<BufferSlice<'env>>> {
        self.check_open()?;
        let mode = if block { Mode::Until(deadline(timeout)) } else { Mode::NonBlocking };
        let limit = maxlength.map(|m| if m < 0.0 { 0 } else { m as u64 });
        match self.reader.recv(self.fd, mode, limit) {
            Ok(Some(v)) => Ok(Some(to_js(env, v)?)),
            Ok(None) => Ok(None),
            Err(e) => Err(recv(e)),
        }
    }

    /// Whether a read would not wait, waiting up to `timeout` seconds (null: forever).
    #[napi]
    pub fn poll(&self, timeout: Option<f64>) -> napi::Result<bool> {
        self.check_open()?;
        frame::poll(&self.reader, self.fd, deadline(timeout)).map_err(os)
    }

    /// Descriptors that arrived with messages, oldest first; the caller owns them.
    #[napi]
    pub fn take_fds(&mut self, n: u32) -> napi::Result<Vec<i32>> {
        let fds = self.reader.take_fds(n as usize).ok_or_else(|| coded("Value", "message refers to descriptors that did not arrive"))?;
        Ok(fds.into_iter().map(IntoRawFd::into_raw_fd).collect())
    }

    #[napi]
    pub fn close(&mut self) {
        if self.fd >= 0 {
            unsafe { libc::close(self.fd) };
            self.fd = -1;
        }
    }

    /// Give up ownership of the descriptor without closing it.
    #[napi]
    pub fn detach(&mut self) -> i32 {
        std::mem::replace(&mut self.fd, -1)
    }

    pub(crate) fn check_open(&self) -> napi::Result<()> {
        if self.fd < 0 {
            return Err(coded("Closed", "handle is closed"));
        }
        Ok(())
    }
}

impl Drop for NativeConnection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Receiving for the blocking (`...Sync`) calls of Connection.
#[napi]
impl NativeConnection {
    /// Receive one message, waiting for ever: first polls for up to `spin_us`
    /// microseconds, yielding the CPU between polls (a reply from a peer on another
    /// core usually arrives sooner than a sleeping thread could be woken), then blocks.
    /// Spinning adapts: after a few spins that found nothing, the next receives block
    /// at once, so that an overloaded machine does not pay for it.
    #[napi]
    pub fn recv_spin<'env>(&mut self, env: &'env Env, spin_us: u32, maxlength: Option<f64>) -> napi::Result<BufferSlice<'env>> {
        self.check_open()?;
        let limit = maxlength.map(|m| if m < 0.0 { 0 } else { m as u64 });
        let got = if self.spin_off > 0 {
            self.spin_off -= 1;
            None
        } else {
            let spin = std::time::Duration::from_micros(spin_us.into());
            let start = std::time::Instant::now();
            loop {
                match self.reader.recv(self.fd, Mode::NonBlocking, limit) {
                    Ok(Some(v)) => {
                        self.spin_misses = 0;
                        break Some(v);
                    }
                    Ok(None) if start.elapsed() < spin => {
                        let y = std::time::Instant::now();
                        std::thread::yield_now();
                        if y.elapsed() > YIELD_LOST {
                            self.spin_misses = 0;
                            self.spin_off = SPIN_PAUSE;
                            break None;
                        }
                    }
                    Ok(None) => {
                        self.spin_misses += 1;
                        if self.spin_misses >= SPIN_MISSES_BEFORE_PAUSE {
                            self.spin_misses = 0;
                            self.spin_off = SPIN_PAUSE;
                        }
                        break None;
                    }
                    Err(e) => return Err(recv(e)),
                }
            }
        };
        let v = match got {
            Some(v) => v,
            None => match self.reader.recv(self.fd, Mode::Until(None), limit) {
                Ok(Some(v)) => v,
                Ok(None) => return Err(coded("OS", "errno=0 a blocking receive returned nothing")),
                Err(e) => return Err(recv(e)),
            },
        };
        to_js(env, v)
    }
}
