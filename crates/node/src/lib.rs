//! napi-rs binding of mp-core. Thin by design: argument conversion and error codes
//! only. Errors carry their kind as a `[Code] message` prefix that src/errors.ts
//! maps to the exported error classes (the one place where that happens).

#![deny(clippy::all)]
#![allow(clippy::new_without_default)]

mod auth;
mod conn;
mod error;
mod forkself;
mod heap;
mod net;
mod notify;
mod process;
mod reactor;
mod raw_handle;
mod ring;
mod sync;
