//! Authentication and framing against the real python3 on this machine: CPython's own
//! `multiprocessing.connection` (3.11 here: the legacy HMAC-MD5 flavour) and
//! `py_sha256_peer.py` for the 3.12+ `{digest}` flavour. python3 missing is a failure.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mp_core::auth::{client_handshake, server_handshake, AuthError, Digest};
use mp_core::frame::{send_frame, FrameReader, Mode};
use mp_core::net::{accept, connect_tcp, connect_unix, listen_tcp, listen_unix, private_socket_path};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py_sha256_peer.py");

/// A python3 child, killed if the test panics first.
struct Py {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Py {
    fn start(args: &[&str]) -> Py {
        let mut child = Command::new("python3")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot run python3, which the interop tests require");
        let out = BufReader::new(child.stdout.take().unwrap());
        Py { child, out }
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).unwrap();
        s.trim_end().to_string()
    }

    /// Exit status and the rest of stdout.
    fn finish(mut self) -> (i32, String) {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), rest)
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(20))
}

/// After a successful handshake as client: send "hello", expect the peer's "py:hello".
fn exchange_as_client(fd: &OwnedFd, reader: &mut FrameReader) {
    send_frame(fd.as_raw_fd(), b"hello", &[]).unwrap();
    let got = reader.recv(fd.as_raw_fd(), Mode::Until(soon()), None).unwrap().unwrap();
    assert_eq!(got, b"py:hello");
}

fn accept_one(l: &OwnedFd) -> OwnedFd {
    accept(l.as_raw_fd(), soon()).unwrap().expect("python never connected").0
}

const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
addr = ('127.0.0.1', 0) if sys.argv[2] == 'tcp' else sys.argv[2]
with Listener(addr, authkey=b'sesame') as l:
    print(l.address[1] if isinstance(l.address, tuple) else 'ready', flush=True)
    try:
        c = l.accept()
    except Exception as e:
        print('AUTHFAIL', type(e).__name__, e, flush=True)
        sys.exit(3)
    with c:
        c.send_bytes(b'py:' + c.recv_bytes())
    print('OK', sys.version_info[:2], flush=True)
"#;

const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
a = sys.argv[2]
# '@name' stands for the abstract address '\0name' (argv cannot hold NUL).
addr = ('127.0.0.1', int(a)) if a.isdigit() else '\0' + a[1:] if a.startswith('@') else a
try:
    c = Client(addr, authkey=sys.argv[1].encode())
except Exception as e:
    print('AUTHFAIL', type(e).__name__, e, flush=True)
    sys.exit(3)
with c:
    c.send_bytes(b'hi')
    print(c.recv_bytes().decode(), flush=True)
"#;

#[test]
fn rust_client_authenticates_with_python_listener_tcp() {
    let mut py = Py::start(&["-c", PY_LISTENER, "-", "tcp"]);
    let port: u16 = py.line().parse().unwrap();
    let fd = connect_tcp("127.0.0.1", port).unwrap();
    let mut r = FrameReader::new();
    client_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap();
    exchange_as_client(&fd, &mut r);
    let (code, out) = py.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK"), "{out}");
}

#[test]
fn rust_client_authenticates_with_python_listener_unix() {
    let (dir, path) = private_socket_path().unwrap();
    let mut py = Py::start(&["-c", PY_LISTENER, "-", &path]);
    assert_eq!(py.line(), "ready");
    let fd = connect_unix(&path).unwrap();
    let mut r = FrameReader::new();
    client_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap();
    exchange_as_client(&fd, &mut r);
    let (code, out) = py.finish();
    assert_eq!(code, 0, "{out}");
    let _ = std::fs::remove_file(&path);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn rust_client_with_wrong_key_is_refused_by_python() {
    let mut py = Py::start(&["-c", PY_LISTENER, "-", "tcp"]);
    let port: u16 = py.line().parse().unwrap();
    let fd = connect_tcp("127.0.0.1", port).unwrap();
    let mut r = FrameReader::new();
    let e = client_handshake(fd.as_raw_fd(), &mut r, b"wrong", soon()).unwrap_err();
    assert!(matches!(&e, AuthError::Rejected(m) if m == "digest sent was rejected"), "{e:?}");
    let (code, out) = py.finish();
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("AUTHFAIL AuthenticationError"), "{out}");
}

#[test]
fn python_client_authenticates_with_rust_listener_tcp() {
    let (l, _, port) = listen_tcp("127.0.0.1", 0, 1).unwrap();
    let py = Py::start(&["-c", PY_CLIENT, "sesame", &port.to_string()]);
    let fd = accept_one(&l);
    let mut r = FrameReader::new();
    server_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap();
    assert_eq!(r.recv(fd.as_raw_fd(), Mode::Until(soon()), None).unwrap().unwrap(), b"hi");
    send_frame(fd.as_raw_fd(), b"rust:hi", &[]).unwrap();
    let (code, out) = py.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "rust:hi");
}

#[test]
fn python_client_authenticates_with_rust_listener_abstract_unix() {
    let name = format!("nodemp-interop-{}", std::process::id());
    let l = listen_unix(&format!("\0{name}"), 1).unwrap();
    let py = Py::start(&["-c", PY_CLIENT, "sesame", &format!("@{name}")]);
    let fd = accept_one(&l);
    let mut r = FrameReader::new();
    server_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap();
    assert_eq!(r.recv(fd.as_raw_fd(), Mode::Until(soon()), None).unwrap().unwrap(), b"hi");
    send_frame(fd.as_raw_fd(), b"rust:hi", &[]).unwrap();
    let (code, out) = py.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "rust:hi");
}

#[test]
fn python_client_with_wrong_key_is_refused_by_rust() {
    let (l, _, port) = listen_tcp("127.0.0.1", 0, 1).unwrap();
    let py = Py::start(&["-c", PY_CLIENT, "wrong", &port.to_string()]);
    let fd = accept_one(&l);
    let mut r = FrameReader::new();
    let e = server_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap_err();
    assert!(matches!(&e, AuthError::Rejected(m) if m == "digest received was wrong"), "{e:?}");
    drop(fd);
    let (code, out) = py.finish();
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("AUTHFAIL AuthenticationError"), "{out}");
}

#[test]
fn rust_client_answers_every_312_digest() {
    for d in Digest::ALL {
        let mut py = Py::start(&[PEER, "listen", "sesame", "--challenge", d.name()]);
        let port: u16 = py.line().parse().unwrap();
        let fd = connect_tcp("127.0.0.1", port).unwrap();
        let mut r = FrameReader::new();
        client_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap_or_else(|e| panic!("{}: {e}", d.name()));
        exchange_as_client(&fd, &mut r);
        let (code, out) = py.finish();
        assert_eq!((code, out.trim()), (0, "OK"), "{}", d.name());
    }
}

#[test]
fn rust_listener_accepts_312_replies_in_any_allowed_digest() {
    // None: the peer replies with the challenge's own digest ({sha256}).
    for reply in [None, Some("md5"), Some("sha384"), Some("sha3_256"), Some("sha3_384")] {
        let (l, _, port) = listen_tcp("127.0.0.1", 0, 1).unwrap();
        let port = port.to_string();
        let mut args = vec![PEER, "connect", "sesame", &port];
        if let Some(d) = reply {
            args.extend(["--reply", d]);
        }
        let py = Py::start(&args);
        let fd = accept_one(&l);
        let mut r = FrameReader::new();
        server_handshake(fd.as_raw_fd(), &mut r, b"sesame", soon()).unwrap_or_else(|e| panic!("{reply:?}: {e}"));
        send_frame(fd.as_raw_fd(), b"hello", &[]).unwrap();
        assert_eq!(r.recv(fd.as_raw_fd(), Mode::Until(soon()), None).unwrap().unwrap(), b"py:hello");
        let (code, out) = py.finish();
        assert_eq!((code, out.trim()), (0, "OK"), "{reply:?}");
    }
}

#[test]
fn wrong_key_with_312_peer_fails_both_ways() {
    // Peer listens (delivers first): our answer is refused.
    let mut py = Py::start(&[PEER, "listen", "other"]);
    let port: u16 = py.line().parse().unwrap();
    let fd = connect_tcp("127.0.0.1", port).unwrap();
    let e = client_handshake(fd.as_raw_fd(), &mut FrameReader::new(), b"sesame", soon()).unwrap_err();
    assert!(matches!(&e, AuthError::Rejected(m) if m == "digest sent was rejected"), "{e:?}");
    let (code, out) = py.finish();
    assert_eq!(code, 3, "{out}");

    // Peer connects (answers first): we refuse its reply.
    let (l, _, port) = listen_tcp("127.0.0.1", 0, 1).unwrap();
    let port = port.to_string();
    let py = Py::start(&[PEER, "connect", "other", &port]);
    let fd = accept_one(&l);
    let e = server_handshake(fd.as_raw_fd(), &mut FrameReader::new(), b"sesame", soon()).unwrap_err();
    assert!(matches!(&e, AuthError::Rejected(m) if m == "digest received was wrong"), "{e:?}");
    drop(fd);
    let (code, out) = py.finish();
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("AUTHFAIL digest sent was rejected"), "{out}");
}
