use mp_core::frame::RecvError;
use napi::{Error, Status};

/// An error whose kind src/errors.ts maps to a class.
pub fn coded(code: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {msg}"))
}

pub fn os(e: std::io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    coded("OS", format!("errno={errno} {e}"))
}

pub fn recv(e: RecvError) -> Error {
    match e {
        RecvError::Eof => coded("EOF", e),
        RecvError::Truncated => coded("EOF", e),
        RecvError::TooLong(_) => coded("TooLong", e),
        RecvError::Broken => coded("Broken", e),
        RecvError::Io(e) => os(e),
    }
}
