//! Sockets for `Listener` and `Client` (src/connection.ts): listening sockets are
//! non-blocking (the JS side waits for readability with the reactor, then tries
//! an accept); connecting runs off the JS thread, since a connect may wait (a full
//! Unix backlog, a slow network) and the listener may live in the same process.

use std::os::fd::IntoRawFd;

use mp_core::net::{self, Addr};
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

use crate::error::os;

/// A socket address as JS sees it: `host`/`port` for AF_INET, `path` for AF_UNIX
/// (empty for an unnamed peer, starting with NUL for an abstract address).
#[napi(object)]
pub struct SockAddr {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub path: Option<String>,
}

impl From<Addr> for SockAddr {
    fn from(a: Addr) -> Self {
        match a {
            Addr::Inet(h, p) => SockAddr { host: Some(h), port: Some(p.into()), path: None },
            Addr::Unix(p) => SockAddr { host: None, port: None, path: Some(p) },
        }
    }
}

#[napi(object)]
pub struct BoundTcp {
    /// The listening socket (non-blocking, close-on-exec); the caller owns it.
    pub fd: i32,
    pub host: String,
    pub port: u32,
}

#[napi(object)]
pub struct Accepted {
    /// The connected socket (blocking, close-on-exec); the caller owns it.
    pub fd: i32,
    pub peer: SockAddr,
}

fn port_of(port: u32) -> napi::Result<u16> {
    u16::try_from(port).map_err(|_| crate::error::coded("Value", format!("port must be 0-65535, not {port}")))
}

/// Bind and listen on TCP `host:port` (port 0 picks a free one).
#[napi]
pub fn listen_tcp(host: String, port: u32, backlog: i32) -> napi::Result<BoundTcp> {
    let (fd, host, port) = net::listen_tcp(&host, port_of(port)?, backlog).map_err(os)?;
    Ok(BoundTcp { fd: fd.into_raw_fd(), host, port: port.into() })
}

/// Bind and listen on a Unix path, or an abstract name starting with NUL.
#[napi]
pub fn listen_unix(path: String, backlog: i32) -> napi::Result<i32> {
    Ok(net::listen_unix(&path, backlog).map_err(os)?.into_raw_fd())
}

/// One accept attempt on a listening socket; null when no connection is pending.
#[napi]
pub fn try_accept(listener: i32) -> napi::Result<Option<Accepted>> {
    Ok(net::try_accept(listener).map_err(os)?.map(|(fd, peer)| Accepted { fd: fd.into_raw_fd(), peer: peer.into() }))
}

/// The address a socket is bound to.
#[napi]
pub fn sock_name(fd: i32) -> napi::Result<SockAddr> {
    Ok(net::local_addr(fd).map_err(os)?.into())
}

/// The address of a connected socket's peer.
#[napi]
pub fn peer_name(fd: i32) -> napi::Result<SockAddr> {
    Ok(net::peer_addr(fd).map_err(os)?.into())
}

#[napi(object)]
pub struct PrivateSocket {
    /// A fresh directory (mode 0700) that the caller removes.
    pub dir: String,
    /// A socket path inside it.
    pub path: String,
}

/// A socket path in a fresh private temporary directory.
#[napi]
pub fn private_socket_path() -> napi::Result<PrivateSocket> {
    let (dir, path) = net::private_socket_path().map_err(os)?;
    Ok(PrivateSocket { dir: dir.to_string_lossy().into_owned(), path })
}

pub enum Target {
    Tcp(String, u16),
    Unix(String),
}

/// A blocking connect, run on a worker thread.
pub struct Connect(Option<Target>);

impl Task for Connect {
    type Output = i32;
    type JsValue = i32;

    fn compute(&mut self) -> napi::Result<i32> {
        let fd = match self.0.take() {
            Some(Target::Tcp(host, port)) => net::connect_tcp(&host, port),
            Some(Target::Unix(path)) => net::connect_unix(&path),
            None => return Err(crate::error::coded("Value", "connect ran twice")),
        };
        Ok(fd.map_err(os)?.into_raw_fd())
    }

    fn resolve(&mut self, _env: Env, fd: i32) -> napi::Result<i32> {
        Ok(fd)
    }
}

/// Connect to a TCP listener; resolves to the connected socket (blocking, close-on-exec, TCP_NODELAY).
#[napi(ts_return_type = "Promise<number>")]
pub fn connect_tcp(host: String, port: u32) -> napi::Result<AsyncTask<Connect>> {
    Ok(AsyncTask::new(Connect(Some(Target::Tcp(host, port_of(port)?)))))
}

/// Connect to a Unix listener (path, or abstract name starting with NUL).
#[napi(ts_return_type = "Promise<number>")]
pub fn connect_unix(path: String) -> AsyncTask<Connect> {
    AsyncTask::new(Connect(Some(Target::Unix(path))))
}
