//! The authentication handshake's messages (mp-core's `auth`): building a challenge,
//! answering one, checking a reply. Pure and quick; src/connection.ts runs the
//! message flow itself, asynchronously on the event loop.

use mp_core::auth::{self, AuthError, Digest};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::error::{coded, os};

fn auth_error(e: AuthError) -> napi::Error {
    match e {
        AuthError::Io(e) => os(e),
        e => coded(e.code(), e),
    }
}

/// A challenge frame to send: `#CHALLENGE#{digestName}` and 40 random bytes.
/// `[Value]` for a digest Python does not allow.
#[napi]
pub fn auth_challenge(digest_name: String) -> napi::Result<Buffer> {
    let digest = Digest::from_name(digest_name.as_bytes())
        .ok_or_else(|| coded("Value", format!("unsupported digest {digest_name}")))?;
    Ok(auth::challenge(digest).map_err(os)?.into())
}

/// The reply to a received challenge frame (legacy 20-byte or `{digest}`-prefixed).
/// `[Auth]` when it is not a challenge CPython could have sent.
#[napi]
pub fn auth_response(authkey: &[u8], challenge: &[u8]) -> napi::Result<Buffer> {
    Ok(auth::answer(authkey, challenge).map_err(auth_error)?.into())
}

/// Check `response` to the `challenge` frame we sent (constant-time compare);
/// `[Auth]` when it is wrong.
#[napi]
pub fn auth_verify(authkey: &[u8], challenge: &[u8], response: &[u8]) -> napi::Result<()> {
    auth::verify(authkey, challenge, response).map_err(auth_error)
}
