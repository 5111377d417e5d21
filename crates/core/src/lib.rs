//! The engine of node-multiprocessing. Pure Rust, no Node types: the napi binding
//! crate (`mp-node`) is a thin layer over what is here.
//!
//! - [`spawn`]: start a child by fork/exec with chosen descriptors, reap it.
//! - [`frame`]: CPython-compatible length-prefixed framing over a stream socket,
//!   with descriptors carried by SCM_RIGHTS.
//! - [`reactor`]: one epoll thread per process that reports readable descriptors,
//!   so asynchronous waits need neither a thread per waiter nor libuv's pool.
//! - [`ring`]: the shared-memory MPMC message queue behind Queue/JoinableQueue,
//!   safe against participants killed mid-operation.
//! - [`heap`]: shared arenas (memfds) with a small-block allocator and refcounted blocks.
//! - [`sync`]: Lock, RLock, Semaphore, Condition, Event, Barrier in shared memory.
//! - [`waiter`]: futex_waitv threads reporting changed words to asynchronous waiters.
//! - [`auth`]: CPython-compatible challenge/response authentication.
//! - [`net`]: TCP and Unix listening/connecting sockets for Listener/Client.

pub mod auth;
pub mod forkself;
pub mod frame;
pub mod futex;
pub mod heap;
pub mod net;
pub mod reactor;
pub mod ring;
pub mod shm;
pub mod spawn;
pub mod sync;
pub mod sys;
pub mod waiter;
