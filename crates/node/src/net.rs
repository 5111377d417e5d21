//! Sockets for `Listener` and `Client` (src/connection.ts): listening sockets are
//! non-blocking (the JS side waits for readability with the reactor, then tries
//! an accept); connects are started without blocking and completed when the
//! reactor reports the socket writable, so nothing waits on the JS thread or on
//! libuv's thread pool (the listener may even live in the same process).

use std::os::fd::IntoRawFd;

use mp_core::net::{self, Addr};
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

/// A connect in progress: `fd` is the socket; when `pending`, wait until it is
/// writable, then call `connectFinish(fd)`.
#[napi(object)]
pub struct ConnectStart {
    pub fd: i32,
    pub pending: bool,
}

/// Start connecting to `ip` (a numeric address: names are resolved by the caller, so
/// that nothing here waits) without blocking.
#[napi]
pub fn connect_tcp_start(ip: String, port: u32) -> napi::Result<ConnectStart> {
    let ip: std::net::IpAddr = ip.parse().map_err(|_| crate::error::coded("Value", format!("not a numeric address: {ip}")))?;
    let (fd, pending) = net::connect_start(&std::net::SocketAddr::new(ip, port_of(port)?)).map_err(os)?;
    Ok(ConnectStart { fd: fd.into_raw_fd(), pending })
}

/// Connect to a TCP listener, blocking the calling thread (names resolved here, IPv4
/// first): for the first call of a manager proxy made synchronously (`...Sync`), which
/// cannot wait on the event loop.
#[napi]
pub fn connect_tcp_blocking(host: String, port: u32) -> napi::Result<i32> {
    Ok(net::connect_tcp(&host, port_of(port)?).map_err(os)?.into_raw_fd())
}

/// Try to connect to a Unix listener without blocking; null while its backlog is full.
#[napi]
pub fn connect_unix_start(path: String) -> napi::Result<Option<i32>> {
    Ok(net::connect_unix_start(&path).map_err(os)?.map(|fd| fd.into_raw_fd()))
}

/// Complete a started connect: throws its error, else leaves a blocking connected socket.
#[napi]
pub fn connect_finish(fd: i32) -> napi::Result<()> {
    net::connect_finish(fd).map_err(os)
}

/// Ask for a send buffer of `bytes` on a socket; returns the size granted.
#[napi]
pub fn set_send_buffer(fd: i32, bytes: u32) -> napi::Result<u32> {
    let granted = net::set_send_buffer(fd, bytes as usize).map_err(os)?;
    Ok(u32::try_from(granted).unwrap_or(u32::MAX))
}
