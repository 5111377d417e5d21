//! Sockets for `Listener` and `Client`: TCP, Unix paths and Linux abstract Unix
//! addresses, as raw close-on-exec descriptors.
//!
//! Connected sockets are blocking, like every other connection descriptor. Listening
//! sockets are non-blocking so that the JS layer can wait for readability with the
//! reactor and then [`try_accept`] without ever blocking the event loop on a
//! connection that another acceptor took first; [`accept`] waits with poll instead.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use crate::sys::{cvt, poll_millis, wait_readable};

/// A socket address as the JS layer shows it: `[host, port]` or a Unix path
/// (empty for an unnamed peer, starting with NUL for an abstract address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Inet(String, u16),
    Unix(String),
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn new_socket(domain: libc::c_int, nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    let fd = cvt(unsafe { libc::socket(domain, flags, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int_opt(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    cvt(unsafe {
        libc::setsockopt(fd, level, name, &value as *const _ as *const libc::c_void, size_of::<libc::c_int>() as u32)
    })?;
    Ok(())
}

/// Resolve `host` (empty: any address), IPv4 first as CPython's AF_INET family only
/// knows IPv4; IPv6 results are kept as a fallback.
fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if host.is_empty() {
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)]);
    }
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no address found for {host}")));
    }
    Ok(addrs)
}

fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_raw(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Addr {
    let len = len as usize;
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Addr::Inet(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).to_string(), u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Addr::Inet(Ipv6Addr::from(sin6.sin6_addr.s6_addr).to_string(), u16::from_be(sin6.sin6_port))
        }
        libc::AF_UNIX => {
            let sun = unsafe { &*(ss as *const _ as *const libc::sockaddr_un) };
            let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
            let n = len.saturating_sub(offset).min(sun.sun_path.len());
            let bytes: Vec<u8> = sun.sun_path[..n].iter().map(|&c| c as u8).collect();
            // Abstract addresses keep every byte (leading NUL included); paths end at NUL.
            let bytes = if bytes.first() == Some(&0) {
                &bytes[..]
            } else {
                &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
            };
            Addr::Unix(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => Addr::Unix(String::new()),
    }
}

/// A Unix address: a filesystem path, or an abstract name when it starts with NUL.
fn unix_raw(path: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    let abstract_ = bytes.first() == Some(&0);
    if bytes.is_empty() || (!abstract_ && bytes.contains(&0)) {
        return Err(invalid("invalid Unix socket path"));
    }
    // A path needs room for its terminating NUL; an abstract name has none.
    let room = sun.sun_path.len() - usize::from(!abstract_);
    if bytes.len() > room {
        return Err(invalid("Unix socket path too long"));
    }
    for (d, &s) in sun.sun_path.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let len = offset + bytes.len() + usize::from(!abstract_);
    Ok((sun, len as libc::socklen_t))
}

/// The address a socket is bound to.
pub fn local_addr(fd: RawFd) -> io::Result<Addr> {
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    cvt(unsafe { libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) })?;
    Ok(from_raw(&ss, len))
}

/// The address of a connected socket's peer.
pub fn peer_addr(fd: RawFd) -> io::Result<Addr> {
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    cvt(unsafe { libc::getpeername(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) })?;
    Ok(from_raw(&ss, len))
}

/// A listening TCP socket (non-blocking, close-on-exec, SO_REUSEADDR as CPython sets
/// on POSIX). Port 0 picks a free port. Returns the socket and the bound host/port.
pub fn listen_tcp(host: &str, port: u16, backlog: i32) -> io::Result<(OwnedFd, String, u16)> {
    let mut last = None;
    for addr in resolve(host, port)? {
        let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let attempt = (|| {
            let fd = new_socket(domain, true)?;
            set_int_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            let (ss, len) = to_raw(&addr);
            cvt(unsafe { libc::bind(fd.as_raw_fd(), &ss as *const _ as *const libc::sockaddr, len) })?;
            cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
            match local_addr(fd.as_raw_fd())? {
                Addr::Inet(h, p) => Ok((fd, h, p)),
                Addr::Unix(_) => Err(io::Error::other("bound a TCP socket to a non-IP address")),
            }
        })();
        match attempt {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| invalid("no address to listen on")))
}

/// A listening Unix socket (non-blocking, close-on-exec) at `path`, or at a Linux
/// abstract address when `path` starts with NUL. The caller removes a path file.
pub fn listen_unix(path: &str, backlog: i32) -> io::Result<OwnedFd> {
    let (sun, len) = unix_raw(path)?;
    let fd = new_socket(libc::AF_UNIX, true)?;
    cvt(unsafe { libc::bind(fd.as_raw_fd(), &sun as *const _ as *const libc::sockaddr, len) })?;
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// One accept attempt on a (non-blocking) listening socket: `Ok(None)` when no
/// connection is pending. The new socket is blocking and close-on-exec (Linux
/// accept4 does not pass O_NONBLOCK on), with TCP_NODELAY for TCP.
pub fn try_accept(listener: RawFd) -> io::Result<Option<(OwnedFd, Addr)>> {
    loop {
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let r =
            unsafe { libc::accept4(listener, &mut ss as *mut _ as *mut libc::sockaddr, &mut len, libc::SOCK_CLOEXEC) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(None),
                // Interrupted, or the pending connection went away: look again.
                Some(libc::EINTR | libc::ECONNABORTED) => continue,
                _ => return Err(e),
            }
        }
        let fd = unsafe { OwnedFd::from_raw_fd(r) };
        let addr = from_raw(&ss, len);
        if let Addr::Inet(..) = addr {
            set_int_opt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
        }
        return Ok(Some((fd, addr)));
    }
}

/// Accept a connection, waiting until `deadline` (None: forever); `Ok(None)` when it passes.
pub fn accept(listener: RawFd, deadline: Option<Instant>) -> io::Result<Option<(OwnedFd, Addr)>> {
    loop {
        if let Some(c) = try_accept(listener)? {
            return Ok(Some(c));
        }
        if !wait_readable(listener, deadline)? {
            return Ok(None);
        }
    }
}

/// Blocking connect that survives EINTR (the connection then goes on in the
/// background: wait for it and read its outcome).
fn connect_raw(fd: RawFd, addr: *const libc::sockaddr, len: libc::socklen_t) -> io::Result<()> {
    if unsafe { libc::connect(fd, addr, len) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINTR) {
        return Err(e);
    }
    loop {
        let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        if unsafe { libc::poll(&mut pfd, 1, poll_millis(None)) } >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    pending_error(fd)
}

/// A connect started without waiting: the socket, and whether the connect is still in
/// progress (then wait until it is writable and call [`connect_finish`]).
pub fn connect_start(addr: &SocketAddr) -> io::Result<(OwnedFd, bool)> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let fd = new_socket(domain, true)?;
    let (ss, len) = to_raw(addr);
    if unsafe { libc::connect(fd.as_raw_fd(), &ss as *const _ as *const libc::sockaddr, len) } == 0 {
        return Ok((fd, false));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => Ok((fd, true)),
        _ => Err(e),
    }
}

/// Try to connect to a Unix listener without waiting: `None` while its backlog is full.
pub fn connect_unix_start(path: &str) -> io::Result<Option<OwnedFd>> {
    let (sun, len) = unix_raw(path)?;
    let fd = new_socket(libc::AF_UNIX, true)?;
    if unsafe { libc::connect(fd.as_raw_fd(), &sun as *const _ as *const libc::sockaddr, len) } == 0 {
        return Ok(Some(fd));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

/// Ask for a send buffer of `bytes` on `fd` (the kernel doubles the request, capped by
/// net.core.wmem_max) and return what it granted: how much may be written without a
/// reader before a send blocks.
pub fn set_send_buffer(fd: RawFd, bytes: usize) -> io::Result<usize> {
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes.min(i32::MAX as usize) as libc::c_int)?;
    let mut granted: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    cvt(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &mut granted as *mut _ as *mut libc::c_void, &mut len)
    })?;
    Ok(granted.max(0) as usize)
}

/// The error a non-blocking connect ended with (SO_ERROR), if any.
fn pending_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    cvt(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut _ as *mut libc::c_void, &mut len)
    })?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// Complete a connect from [`connect_start`]/[`connect_unix_start`]: report its error,
/// make the socket blocking again, and set TCP_NODELAY on TCP sockets.
pub fn connect_finish(fd: RawFd) -> io::Result<()> {
    pending_error(fd)?;
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    if !matches!(local_addr(fd)?, Addr::Unix(_)) {
        set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    }
    Ok(())
}

/// The addresses of `host` to try in order (IPv4 first).
pub fn resolve_host(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    resolve(host, port)
}

/// Connect to a TCP listener: blocking, close-on-exec, TCP_NODELAY.
pub fn connect_tcp(host: &str, port: u16) -> io::Result<OwnedFd> {
    let mut last = None;
    for addr in resolve(host, port)? {
        let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let attempt = (|| {
            let fd = new_socket(domain, false)?;
            let (ss, len) = to_raw(&addr);
            connect_raw(fd.as_raw_fd(), &ss as *const _ as *const libc::sockaddr, len)?;
            set_int_opt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
            Ok(fd)
        })();
        match attempt {
            Ok(fd) => return Ok(fd),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| invalid("no address to connect to")))
}

/// Connect to a Unix listener (path, or abstract name starting with NUL): blocking, close-on-exec.
pub fn connect_unix(path: &str) -> io::Result<OwnedFd> {
    let (sun, len) = unix_raw(path)?;
    let fd = new_socket(libc::AF_UNIX, false)?;
    connect_raw(fd.as_raw_fd(), &sun as *const _ as *const libc::sockaddr, len)?;
    Ok(fd)
}

fn random_suffix() -> io::Result<String> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A fresh private directory (mode 0700) and a socket path inside it, for a Unix
/// listener with no address (CPython: `listener-XXXX` in a `pymp-` temp dir). The
/// caller removes both when the listener closes.
pub fn private_socket_path() -> io::Result<(PathBuf, String)> {
    let mut base = std::env::temp_dir();
    // sun_path holds 107 bytes: fall back to /tmp when TMPDIR is too deep.
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    let template = base.join("nodemp-XXXXXX");
    let template = CString::new(template.into_os_string().into_encoded_bytes())
        .map_err(|_| invalid("temporary directory path contains NUL"))?;
    let mut raw = template.into_bytes_with_nul();
    // mkdtemp creates the directory with mode 0700.
    if unsafe { libc::mkdtemp(raw.as_mut_ptr() as *mut libc::c_char) }.is_null() {
        return Err(io::Error::last_os_error());
    }
    raw.pop();
    let dir = PathBuf::from(String::from_utf8(raw).map_err(|_| invalid("temporary directory path is not UTF-8"))?);
    let path = dir.join(format!("listener-{}", random_suffix()?));
    let path = path.to_str().ok_or_else(|| invalid("socket path is not UTF-8"))?.to_string();
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{send_frame, FrameReader, Mode};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn a_larger_send_buffer_holds_more_unread_bytes() {
        let (a, _b) = crate::sys::socketpair().unwrap();
        let granted = set_send_buffer(a.as_raw_fd(), 1 << 20).unwrap();
        assert!(granted >= 1 << 20, "granted {granted}");
        unsafe { libc::fcntl(a.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        // Nobody reads: count what fits in 100 KiB writes before one would block.
        let chunk = vec![7u8; 100 * 1024];
        let mut written = 0usize;
        loop {
            let n = unsafe { libc::write(a.as_raw_fd(), chunk.as_ptr() as *const libc::c_void, chunk.len()) };
            if n <= 0 {
                break;
            }
            written += n as usize;
        }
        assert!(written >= granted / 2, "only {written} of {granted}");
    }

    fn flags(fd: RawFd) -> (bool, bool) {
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        let fdfl = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        (fl & libc::O_NONBLOCK != 0, fdfl & libc::FD_CLOEXEC != 0)
    }

    fn echo_once(server: OwnedFd, client: OwnedFd) {
        send_frame(client.as_raw_fd(), b"ping", &[]).unwrap();
        let mut r = FrameReader::new();
        assert_eq!(r.recv(server.as_raw_fd(), Mode::Until(None), None).unwrap().unwrap(), b"ping");
    }

    #[test]
    fn tcp_listen_accept_connect() {
        let (l, host, port) = listen_tcp("127.0.0.1", 0, 1).unwrap();
        assert_eq!(host, "127.0.0.1");
        assert_ne!(port, 0);
        assert_eq!(flags(l.as_raw_fd()), (true, true));
        assert!(try_accept(l.as_raw_fd()).unwrap().is_none());
        let c = connect_tcp("localhost", port).unwrap();
        assert_eq!(flags(c.as_raw_fd()), (false, true));
        let (s, peer) = accept(l.as_raw_fd(), Some(Instant::now() + Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(flags(s.as_raw_fd()), (false, true));
        assert_eq!(peer, local_addr(c.as_raw_fd()).unwrap());
        assert_eq!(peer_addr(c.as_raw_fd()).unwrap(), Addr::Inet("127.0.0.1".into(), port));
        echo_once(s, c);
        // Nothing pending: the deadline passes.
        assert!(accept(l.as_raw_fd(), Some(Instant::now() + Duration::from_millis(50))).unwrap().is_none());
        drop(l);
        assert!(connect_tcp("127.0.0.1", port).is_err());
    }

    #[test]
    fn unix_path_listener_in_private_dir() {
        let (dir, path) = private_socket_path().unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(path.starts_with(dir.to_str().unwrap()));
        let l = listen_unix(&path, 1).unwrap();
        assert_eq!(local_addr(l.as_raw_fd()).unwrap(), Addr::Unix(path.clone()));
        assert!(listen_unix(&path, 1).is_err(), "address in use");
        let c = connect_unix(&path).unwrap();
        let (s, peer) = try_accept(l.as_raw_fd()).unwrap().unwrap();
        assert_eq!(peer, Addr::Unix(String::new()));
        assert_eq!(flags(s.as_raw_fd()), (false, true));
        echo_once(s, c);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn unix_abstract_address() {
        let name = format!("\0nodemp-test-{}", random_suffix().unwrap());
        let l = listen_unix(&name, 1).unwrap();
        assert_eq!(local_addr(l.as_raw_fd()).unwrap(), Addr::Unix(name.clone()));
        let c = connect_unix(&name).unwrap();
        let (s, _) = accept(l.as_raw_fd(), None).unwrap().unwrap();
        echo_once(s, c);
    }

    #[test]
    fn bad_unix_paths() {
        assert!(listen_unix(&"x".repeat(200), 1).is_err());
        assert!(listen_unix("", 1).is_err());
        assert!(connect_unix("/nonexistent/dir/sock").is_err());
    }
}
