use std::os::fd::IntoRawFd;

use mp_core::frame::{self, FrameReader, Mode};
use mp_core::sys::deadline;
use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi::Env;

const COPY_LIMIT: usize = 64 * 1024;
use napi_derive::napi;

use crate::error::{coded, os, recv};

/// One end of a framed connection over a stream socket. Owns its descriptor.
#[napi]
pub struct NativeConnection {
    pub(crate) fd: i32,
    pub(crate) reader: FrameReader,
}

#[napi]
impl NativeConnection {
    /// Take ownership of `fd`.
    #[napi(constructor)]
    pub fn new(fd: i32) -> Self {
        NativeConnection { fd, reader: FrameReader::new() }
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
            // Small messages are copied into V8's heap (cheaper than an external buffer
            // and its finalizer); large ones are handed over without a copy.
            Ok(Some(v)) if v.len() <= COPY_LIMIT => Ok(Some(BufferSlice::copy_from(env, &v)?)),
            Ok(Some(v)) => Ok(Some(BufferSlice::from_data(env, v)?)),
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
    /// Receive one message, waiting for ever: first polls without sleeping for up to
    /// `spin_us` microseconds (a reply from a peer on another core usually arrives
    /// sooner than a sleeping thread could be woken), then blocks.
    #[napi]
    pub fn recv_spin(&mut self, spin_us: u32, maxlength: Option<f64>) -> napi::Result<Buffer> {
        self.check_open()?;
        let limit = maxlength.map(|m| if m < 0.0 { 0 } else { m as u64 });
        let spin = std::time::Duration::from_micros(spin_us.into());
        let start = std::time::Instant::now();
        loop {
            match self.reader.recv(self.fd, Mode::NonBlocking, limit) {
                Ok(Some(v)) => return Ok(v.into()),
                Ok(None) if start.elapsed() < spin => std::hint::spin_loop(),
                Ok(None) => break,
                Err(e) => return Err(recv(e)),
            }
        }
        match self.reader.recv(self.fd, Mode::Until(None), limit) {
            Ok(Some(v)) => Ok(v.into()),
            Ok(None) => Err(coded("OS", "errno=0 a blocking receive returned nothing")),
            Err(e) => Err(recv(e)),
        }
    }
}
