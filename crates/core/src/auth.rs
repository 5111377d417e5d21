//! CPython-compatible connection authentication (`deliver_challenge` /
//! `answer_challenge` of `multiprocessing.connection`), byte-exact with 3.11 (raw
//! HMAC-MD5 over a 20-byte challenge) and 3.12+ (`{digest}`-prefixed challenges and
//! replies, the MAC covering the prefix too).
//!
//! The messages are built and checked by pure functions: [`challenge`], [`answer`]
//! and [`verify`]. The binding exposes those, and src/connection.ts runs the message
//! flow on the event loop. [`server_handshake`] / [`client_handshake`] run the same
//! flow blocking on a descriptor (the python3 interop tests use them); every
//! handshake message is read there with CPython's 256-byte bound and under one
//! deadline, so a silent or hostile peer costs neither memory nor a stuck listener.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::frame::{send_frame, FrameReader, Mode, RecvError};

pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
pub const WELCOME: &[u8] = b"#WELCOME#";
pub const FAILURE: &[u8] = b"#FAILURE#";
/// CPython's bound on every handshake message (`recv_bytes(256)`).
pub const HANDSHAKE_MAXLEN: u64 = 256;
/// Random bytes in a challenge we deliver (3.12+; 3.11 sends 20 without prefix).
pub const MESSAGE_LENGTH: usize = 40;
/// Lengths that mean "legacy, unprefixed HMAC-MD5": a 3.11 challenge, a 3.11 reply.
const LEGACY_CHALLENGE_LEN: usize = 20;
const MD5_LEN: usize = 16;
/// Longest allowed digest name (`sha3_256`).
const MAX_DIGEST_NAME: usize = 8;

/// The digests CPython 3.12+ allows in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Md5,
    Sha256,
    Sha384,
    Sha3_256,
    Sha3_384,
}

impl Digest {
    pub const ALL: [Digest; 5] = [Digest::Md5, Digest::Sha256, Digest::Sha384, Digest::Sha3_256, Digest::Sha3_384];

    /// The name as it appears between braces on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_384 => "sha3_384",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Digest> {
        Digest::ALL.into_iter().find(|d| d.name().as_bytes() == name)
    }

    /// HMAC of `msg` under `key` with this digest.
    pub fn hmac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
            let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, msg),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, msg),
            Digest::Sha3_256 => run::<Hmac<sha3::Sha3_256>>(key, msg),
            Digest::Sha3_384 => run::<Hmac<sha3::Sha3_384>>(key, msg),
        }
    }
}

#[derive(Debug)]
pub enum AuthError {
    /// Authentication failed or the peer broke the protocol (Python's AuthenticationError).
    Rejected(String),
    /// The handshake deadline passed.
    Timeout,
    /// Reading a handshake message failed: EOF, a length over the bound...
    Recv(RecvError),
    Io(io::Error),
}

impl AuthError {
    /// The native error code the binding reports (see docs/ARCHITECTURE.md).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Rejected(_) => "Auth",
            AuthError::Timeout => "Timeout",
            AuthError::Recv(RecvError::Eof | RecvError::Truncated) => "EOF",
            AuthError::Recv(RecvError::TooLong(_)) => "TooLong",
            AuthError::Recv(RecvError::Broken) => "Broken",
            AuthError::Recv(RecvError::Io(_)) | AuthError::Io(_) => "OS",
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Rejected(m) => f.write_str(m),
            AuthError::Timeout => f.write_str("authentication handshake timed out"),
            AuthError::Recv(e) => write!(f, "{e}"),
            AuthError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AuthError {}

impl From<io::Error> for AuthError {
    fn from(e: io::Error) -> Self {
        AuthError::Io(e)
    }
}

fn rejected(msg: impl Into<String>) -> AuthError {
    AuthError::Rejected(msg.into())
}

/// One bounded handshake message.
fn recv_bounded(fd: RawFd, reader: &mut FrameReader, deadline: Option<Instant>) -> Result<Vec<u8>, AuthError> {
    match reader.recv(fd, Mode::Until(deadline), Some(HANDSHAKE_MAXLEN)) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(AuthError::Timeout),
        Err(e) => Err(AuthError::Recv(e)),
    }
}

/// Split a challenge or reply into (digest, payload); `None` is legacy raw HMAC-MD5.
fn split_digest(msg: &[u8]) -> Result<(Option<Digest>, &[u8]), AuthError> {
    // 3.12+ messages are always longer than these, so the length alone says legacy.
    if msg.len() == LEGACY_CHALLENGE_LEN || msg.len() == MD5_LEN {
        return Ok((None, msg));
    }
    if msg.first() == Some(&b'{') {
        let window = &msg[1..msg.len().min(MAX_DIGEST_NAME + 2)];
        if let Some(i) = window.iter().position(|&b| b == b'}') {
            if let Some(d) = Digest::from_name(&window[..i]) {
                return Ok((Some(d), &msg[i + 2..]));
            }
        }
    }
    Err(rejected(format!(
        "unsupported message length, missing digest prefix, or unsupported digest ({} bytes)",
        msg.len()
    )))
}

/// A challenge to deliver: `#CHALLENGE#`, `{digest}` and [`MESSAGE_LENGTH`] random
/// bytes. A 3.11 peer takes everything after `#CHALLENGE#` as its challenge and
/// answers with a raw HMAC-MD5 over it, which [`verify`] accepts.
pub fn challenge(digest: Digest) -> io::Result<Vec<u8>> {
    let mut random = [0u8; MESSAGE_LENGTH];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    let mut frame = CHALLENGE.to_vec();
    frame.extend_from_slice(format!("{{{}}}", digest.name()).as_bytes());
    frame.extend_from_slice(&random);
    Ok(frame)
}

/// The reply to a received challenge `frame` (`#CHALLENGE#` and the message).
pub fn answer(authkey: &[u8], frame: &[u8]) -> Result<Vec<u8>, AuthError> {
    let Some(message) = frame.strip_prefix(CHALLENGE) else {
        return Err(rejected("Protocol error, expected challenge"));
    };
    if message.len() < LEGACY_CHALLENGE_LEN {
        return Err(rejected(format!("challenge too short: {} bytes", message.len())));
    }
    response_for(authkey, message)
}

/// Check a `response` to the `challenge` frame we sent (as built by [`challenge`]).
/// Any allowed digest is accepted: the MAC covers the `{digest}` prefix of the
/// challenge, so a peer cannot downgrade what was asked without the key. The MACs
/// are compared in constant time.
pub fn verify(authkey: &[u8], challenge: &[u8], response: &[u8]) -> Result<(), AuthError> {
    let Some(message) = challenge.strip_prefix(CHALLENGE) else {
        return Err(rejected("not a challenge frame: it must start with #CHALLENGE#"));
    };
    let (digest, mac) = split_digest(response)?;
    let digest = digest.unwrap_or(Digest::Md5);
    let expected = digest.hmac(authkey, message);
    if expected.len() != mac.len() {
        return Err(rejected(format!("expected '{}' of length {} got {}", digest.name(), expected.len(), mac.len())));
    }
    if bool::from(expected.ct_eq(mac)) {
        Ok(())
    } else {
        Err(rejected("digest received was wrong"))
    }
}

/// The reply to a challenge `message` (everything after `#CHALLENGE#`).
pub fn response_for(authkey: &[u8], message: &[u8]) -> Result<Vec<u8>, AuthError> {
    Ok(match split_digest(message)?.0 {
        None => Digest::Md5.hmac(authkey, message),
        Some(d) => {
            let mut out = format!("{{{}}}", d.name()).into_bytes();
            out.extend_from_slice(&d.hmac(authkey, message));
            out
        }
    })
}

/// Send a `{sha256}` challenge, check the reply, answer `#WELCOME#` or `#FAILURE#`.
pub fn deliver_challenge(
    fd: RawFd,
    reader: &mut FrameReader,
    authkey: &[u8],
    deadline: Option<Instant>,
) -> Result<(), AuthError> {
    let frame = challenge(Digest::Sha256)?;
    // Handshake messages are tiny: the socket buffer of a fresh connection takes
    // them without blocking, so sends need no deadline.
    send_frame(fd, &frame, &[])?;
    let response = recv_bounded(fd, reader, deadline)?;
    match verify(authkey, &frame, &response) {
        Ok(()) => {
            send_frame(fd, WELCOME, &[])?;
            Ok(())
        }
        Err(e) => {
            // Best effort, as in CPython: the error that matters is ours.
            let _ = send_frame(fd, FAILURE, &[]);
            Err(e)
        }
    }
}

/// Read a challenge (legacy 20-byte or `{digest}`-prefixed), reply, expect `#WELCOME#`.
pub fn answer_challenge(
    fd: RawFd,
    reader: &mut FrameReader,
    authkey: &[u8],
    deadline: Option<Instant>,
) -> Result<(), AuthError> {
    let frame = recv_bounded(fd, reader, deadline)?;
    send_frame(fd, &answer(authkey, &frame)?, &[])?;
    if recv_bounded(fd, reader, deadline)? != WELCOME {
        return Err(rejected("digest sent was rejected"));
    }
    Ok(())
}

/// What `Listener.accept` does on a fresh connection: deliver, then answer.
/// `reader` must be the one the connection keeps using afterwards: bytes the peer
/// sent right after the handshake may already sit in it.
pub fn server_handshake(
    fd: RawFd,
    reader: &mut FrameReader,
    authkey: &[u8],
    deadline: Option<Instant>,
) -> Result<(), AuthError> {
    deliver_challenge(fd, reader, authkey, deadline)?;
    answer_challenge(fd, reader, authkey, deadline)
}

/// What `Client` does after connecting: answer, then deliver.
pub fn client_handshake(
    fd: RawFd,
    reader: &mut FrameReader,
    authkey: &[u8],
    deadline: Option<Instant>,
) -> Result<(), AuthError> {
    answer_challenge(fd, reader, authkey, deadline)?;
    deliver_challenge(fd, reader, authkey, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::send_all;
    use crate::sys::socketpair;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn pair_handshake(
        server_key: &'static [u8],
        client_key: &'static [u8],
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (a, b) = socketpair().unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        let client = std::thread::spawn(move || {
            let mut r = FrameReader::new();
            let res = client_handshake(b.as_raw_fd(), &mut r, client_key, deadline);
            if res.is_ok() {
                send_frame(b.as_raw_fd(), b"after", &[]).unwrap();
            }
            res
        });
        let mut r = FrameReader::new();
        let s = server_handshake(a.as_raw_fd(), &mut r, server_key, deadline);
        if s.is_ok() {
            assert_eq!(r.recv(a.as_raw_fd(), Mode::Until(deadline), None).unwrap().unwrap(), b"after");
        }
        let c = client.join().unwrap();
        (s, c)
    }

    #[test]
    fn right_key_both_ways() {
        let (s, c) = pair_handshake(b"secret", b"secret");
        s.unwrap();
        c.unwrap();
    }

    #[test]
    fn wrong_key_fails_on_both_sides() {
        let (s, c) = pair_handshake(b"secret", b"other");
        let s = s.unwrap_err();
        let c = c.unwrap_err();
        assert!(matches!(&s, AuthError::Rejected(m) if m == "digest received was wrong"), "{s:?}");
        assert!(matches!(&c, AuthError::Rejected(m) if m == "digest sent was rejected"), "{c:?}");
        assert_eq!(s.code(), "Auth");
    }

    #[test]
    fn huge_header_is_refused_at_once() {
        // 2 GiB - 1 in the short header, and 4 GiB in the -1 + 8-byte form.
        let short: &'static [u8] = &[0x7f, 0xff, 0xff, 0xff];
        let long: &'static [u8] = &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0];
        for header in [short, long] {
            let (a, b) = socketpair().unwrap();
            let t = Instant::now();
            let peer = std::thread::spawn(move || {
                let mut r = FrameReader::new();
                // Take the challenge, answer with a header claiming gigabytes.
                r.recv(b.as_raw_fd(), Mode::Until(None), Some(HANDSHAKE_MAXLEN)).unwrap().unwrap();
                send_all(b.as_raw_fd(), &[header, b"xxxx"], &[]).unwrap();
                b
            });
            let mut r = FrameReader::new();
            let e = server_handshake(a.as_raw_fd(), &mut r, b"k", Some(t + Duration::from_secs(10))).unwrap_err();
            // The bound is checked on the header, before any buffer for the claim exists.
            assert!(matches!(e, AuthError::Recv(RecvError::TooLong(n)) if n >= i32::MAX as u64), "{e:?}");
            // Refused at once, not after reading until the deadline (10 s); room for load.
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
            drop(peer.join().unwrap());
        }
    }

    #[test]
    fn silent_peer_hits_the_deadline() {
        let (a, _b) = socketpair().unwrap();
        let t = Instant::now();
        let mut r = FrameReader::new();
        let e = server_handshake(a.as_raw_fd(), &mut r, b"k", Some(t + Duration::from_millis(200))).unwrap_err();
        assert!(matches!(e, AuthError::Timeout), "{e:?}");
        assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_secs(3));
        // Client side too: nobody ever sends a challenge.
        let mut r = FrameReader::new();
        let e = client_handshake(a.as_raw_fd(), &mut r, b"k", Some(Instant::now() + Duration::from_millis(100)))
            .unwrap_err();
        assert!(matches!(e, AuthError::Timeout), "{e:?}");
    }

    #[test]
    fn peer_closing_is_eof() {
        let (a, b) = socketpair().unwrap();
        drop(b);
        let mut r = FrameReader::new();
        let e = client_handshake(a.as_raw_fd(), &mut r, b"k", None).unwrap_err();
        assert_eq!(e.code(), "EOF");
    }

    /// `#CHALLENGE#` + `message`, as a peer sends it.
    fn framed(message: &[u8]) -> Vec<u8> {
        [CHALLENGE, message].concat()
    }

    #[test]
    fn challenge_is_prefixed_random_and_fresh() {
        for d in Digest::ALL {
            let c = challenge(d).unwrap();
            let prefix = format!("#CHALLENGE#{{{}}}", d.name());
            assert!(c.starts_with(prefix.as_bytes()), "{d:?}");
            assert_eq!(c.len(), prefix.len() + MESSAGE_LENGTH);
            assert_ne!(challenge(d).unwrap(), c, "two challenges alike");
            // Within CPython's bound on a handshake message.
            assert!(c.len() as u64 <= HANDSHAKE_MAXLEN);
        }
    }

    #[test]
    fn every_digest_round_trips() {
        let key = b"key";
        for d in Digest::ALL {
            let c = challenge(d).unwrap();
            let resp = answer(key, &c).unwrap();
            let prefix = format!("{{{}}}", d.name());
            assert!(resp.starts_with(prefix.as_bytes()), "{d:?}");
            assert_eq!(&resp[prefix.len()..], &d.hmac(key, &c[CHALLENGE.len()..])[..]);
            verify(key, &c, &resp).unwrap();
            // A 3.11 peer's raw MD5 reply over the whole message is accepted too.
            verify(key, &c, &Digest::Md5.hmac(key, &c[CHALLENGE.len()..])).unwrap();
        }
    }

    #[test]
    fn wrong_key_is_rejected() {
        for d in Digest::ALL {
            let c = challenge(d).unwrap();
            let e = verify(b"key", &c, &answer(b"nope", &c).unwrap()).unwrap_err();
            assert!(matches!(&e, AuthError::Rejected(m) if m == "digest received was wrong"), "{e:?}");
            assert_eq!(e.code(), "Auth");
        }
        // Legacy too.
        let c = framed(&[7u8; 20]);
        assert!(verify(b"key", &c, &answer(b"nope", &c).unwrap()).is_err());
    }

    #[test]
    fn any_changed_byte_or_length_is_rejected() {
        // The comparison is subtle's constant-time ct_eq (not timed here): every
        // position counts, and a MAC of the wrong length is refused before comparing.
        let key = b"key";
        let c = challenge(Digest::Sha256).unwrap();
        let good = answer(key, &c).unwrap();
        for i in "{sha256}".len()..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            let e = verify(key, &c, &bad).unwrap_err();
            assert!(matches!(&e, AuthError::Rejected(m) if m == "digest received was wrong"), "{i}: {e:?}");
        }
        let e = verify(key, &c, &good[..good.len() - 1]).unwrap_err();
        assert!(matches!(&e, AuthError::Rejected(m) if m == "expected 'sha256' of length 32 got 31"), "{e:?}");
    }

    #[test]
    fn legacy_md5_challenge_gets_a_raw_md5_reply() {
        let key = b"key";
        let legacy = [7u8; 20];
        let resp = answer(key, &framed(&legacy)).unwrap();
        assert_eq!(resp, Digest::Md5.hmac(key, &legacy));
        assert_eq!(resp.len(), MD5_LEN);
        verify(key, &framed(&legacy), &resp).unwrap();
    }

    #[test]
    fn malformed_or_unknown_is_rejected() {
        let key = b"key";
        let msg = |m: &str| -> String {
            match answer(key, m.as_bytes()).unwrap_err() {
                AuthError::Rejected(m) => m,
                e => panic!("{e:?}"),
            }
        };
        assert!(msg("#CHALLENGE#{sha1}0123456789012345678901234567890123456789")
            .starts_with("unsupported message length, missing digest prefix, or unsupported digest (46 bytes)"));
        assert!(answer(key, &framed(&[0u8; 41])).is_err());
        assert_eq!(msg("#CHALLENGE#short"), "challenge too short: 5 bytes");
        assert_eq!(msg("#WELCOME#0123456789012345678901234"), "Protocol error, expected challenge");
        assert!(verify(key, &challenge(Digest::Sha256).unwrap(), b"{sha256}short").is_err());
        assert!(verify(key, &challenge(Digest::Sha256).unwrap(), b"{sha1}01234567890123456789").is_err());
        // Only CPython's allowed digests have names.
        assert_eq!(Digest::from_name(b"sha1"), None);
        assert_eq!(Digest::from_name(b"sha3_256"), Some(Digest::Sha3_256));
        // verify wants the frame that was sent, `#CHALLENGE#` included.
        assert!(verify(key, &[1u8; 40], &Digest::Md5.hmac(key, &[1u8; 40])).is_err());
    }

    #[test]
    fn hmac_known_answers() {
        // RFC 2104 / RFC 4231 test case 2 ("Jefe"), and Python's hmac for the SHA-3 ones.
        let k = b"Jefe";
        let m = b"what do ya want for nothing?";
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(Digest::Md5.hmac(k, m)), "750c783e6ab0b503eaa86e310a5db738");
        assert_eq!(hex(Digest::Sha256.hmac(k, m)), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(
            hex(Digest::Sha384.hmac(k, m)),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
        );
        assert_eq!(
            hex(Digest::Sha3_256.hmac(k, m)),
            "c7d4072e788877ae3596bbb0da73b887c9171f93095b294ae857fbe2645e1ba5"
        );
        assert_eq!(
            hex(Digest::Sha3_384.hmac(k, m)),
            "f1101f8cbf9766fd6764d2ed61903f21ca9b18f57cf3e1a23ca13508a93243ce48c045dc007f26a21b3f5e0e9df4c20a"
        );
    }
}

/// The handshake parser under hostile input.
#[cfg(test)]
mod props {
    use super::*;
    use crate::frame::send_all;
    use crate::sys::socketpair;
    use proptest::prelude::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn digest() -> impl Strategy<Value = Digest> {
        prop::sample::select(Digest::ALL.to_vec())
    }

    /// Messages that look like protocol: `#CHALLENGE#`, `{name}` prefixes, legacy lengths.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        let prefix = prop::sample::select(vec![
            b"".to_vec(), CHALLENGE.to_vec(), b"{".to_vec(), b"{sha256}".to_vec(), b"{md5".to_vec(),
            b"#CHALLENGE#{sha3_384}".to_vec(), b"{}".to_vec(), b"{sha256}}".to_vec(),
        ]);
        (prefix, prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(mut p, rest)| {
            p.extend(rest);
            p
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any challenge or reply: a result or a Rejected error, never a panic; a forged
        /// reply is never accepted.
        #[test]
        fn arbitrary_messages_are_rejected_cleanly(key in prop::collection::vec(any::<u8>(), 0..40), a in message(), b in message()) {
            let _ = answer(&key, &a);
            let _ = response_for(&key, &a);
            let _ = split_digest(&a);
            if let Err(e) = verify(&key, &a, &b) {
                prop_assert!(matches!(e, AuthError::Rejected(_)), "{e}");
            } else {
                // Only a reply computed with the key passes.
                prop_assert_eq!(response_for(&key, a.strip_prefix(CHALLENGE).unwrap()).ok(), Some(b));
            }
        }

        /// A real challenge answered with the key passes; with another key, or any byte of
        /// the reply changed, it fails.
        #[test]
        fn answers_verify_only_with_the_key(
            d in digest(),
            key in prop::collection::vec(any::<u8>(), 0..64),
            other in prop::collection::vec(any::<u8>(), 0..64),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let c = challenge(d).unwrap();
            prop_assert!(c.len() as u64 <= HANDSHAKE_MAXLEN);
            let r = answer(&key, &c).unwrap();
            prop_assert!(verify(&key, &c, &r).is_ok());
            if other != key {
                prop_assert!(verify(&other, &c, &answer(&other, &c).unwrap()).is_ok());
                prop_assert!(verify(&key, &c, &answer(&other, &c).unwrap()).is_err());
            }
            let mut bad = r.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(verify(&key, &c, &bad).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// A peer that sends anything (frames of garbage, a broken header, nothing) and hangs
        /// up: both sides of the handshake fail with an error, before their deadline.
        #[test]
        fn a_hostile_peer_fails_the_handshake(
            frames in prop::collection::vec(message(), 0..3),
            raw in prop::collection::vec(any::<u8>(), 0..40),
            server in any::<bool>(),
        ) {
            let (a, b) = socketpair().unwrap();
            for f in &frames {
                send_frame(b.as_raw_fd(), f, &[]).unwrap();
            }
            send_all(b.as_raw_fd(), &[&raw], &[]).unwrap();
            drop(b);
            let mut r = FrameReader::new();
            let t = Instant::now();
            let deadline = Some(t + Duration::from_secs(5));
            let res = if server {
                server_handshake(a.as_raw_fd(), &mut r, b"key", deadline)
            } else {
                client_handshake(a.as_raw_fd(), &mut r, b"key", deadline)
            };
            prop_assert!(res.is_err());
            prop_assert!(!matches!(res, Err(AuthError::Timeout)), "a hung-up peer is seen at once");
            prop_assert!(t.elapsed() < Duration::from_secs(5));
        }
    }
}

