//! Blocks of the shared heap for `Value`, `Array`, `RawValue` and `RawArray`, and the one
//! ArrayBuffer per arena mapping through which JavaScript reads and writes them.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, OnceLock};

use mp_core::futex;
use mp_core::heap::{Arena, Block, BlockId, Heap};
use mp_core::sys::deadline;
use napi::bindgen_prelude::{ArrayBuffer, FromNapiValue};
use napi::{sys, Env};
use napi_derive::napi;

use crate::error::{coded, os};

/// Bytes between a slot's start and its payload (mp-core's block header).
const BLOCK_HEADER: u64 = 16;

/// A block's identity as it crosses a process boundary. The arena id is a hex string
/// because it is a full 64-bit value.
#[napi(object)]
#[derive(Clone)]
pub struct BlockIdJs {
    pub arena: String,
    pub offset: f64,
    pub size: f64,
    pub generation: u32,
}

pub fn id_to_js(id: BlockId) -> BlockIdJs {
    BlockIdJs { arena: format!("{:016x}", id.arena), offset: id.offset as f64, size: id.size as f64, generation: id.generation }
}

pub fn id_from_js(id: &BlockIdJs) -> napi::Result<BlockId> {
    let arena = u64::from_str_radix(&id.arena, 16).map_err(|_| coded("Value", "bad arena id"))?;
    Ok(BlockId { arena, offset: id.offset as u64, size: id.size as u64, generation: id.generation })
}

/// Map the arena whose descriptor arrived (taking ownership of `fd`) and take over the
/// count the sender added with `retain_for_transfer`.
pub fn adopt_transferred(fd: i32, id: &BlockIdJs) -> napi::Result<Block> {
    if fd < 0 {
        return Err(coded("Value", "bad descriptor"));
    }
    let id = id_from_js(id)?;
    let heap = Heap::global();
    let arena = heap.attach(unsafe { OwnedFd::from_raw_fd(fd) }).map_err(os)?;
    if arena.id() != id.arena {
        return Err(coded("Value", "descriptor does not belong to the block's arena"));
    }
    let block = heap.adopt_transferred(&id).map_err(os)?;
    drop(arena);
    Ok(block)
}

/// Give back the count that `retain_for_transfer` added for a message that was never
/// sent (refused, failed to serialize, or the peer was gone): the block's arena is
/// attached in this process, the sender's.
#[napi]
pub fn release_transfer(id: BlockIdJs) -> napi::Result<()> {
    let id = id_from_js(&id)?;
    drop(Heap::global().adopt_transferred(&id).map_err(os)?);
    Ok(())
}

/// A block of shared memory held by this process (one count of its refcount).
#[napi]
pub struct NativeBlock {
    pub(crate) block: Option<Block>,
}

impl NativeBlock {
    fn get(&self) -> napi::Result<&Block> {
        self.block.as_ref().ok_or_else(|| coded("Value", "shared memory block was released"))
    }

    /// The aligned 32-bit word at byte `offset` of the payload.
    fn word(&self, offset: u32) -> napi::Result<&AtomicU32> {
        let b = self.get()?;
        let off = offset as usize;
        if !off.is_multiple_of(4) || off + 4 > b.len() {
            return Err(coded("Value", "bad word offset"));
        }
        // In bounds and aligned (payloads are 16-byte aligned); the block outlives the borrow.
        Ok(unsafe { &*(b.as_ptr().add(off) as *const AtomicU32) })
    }
}

#[napi]
impl NativeBlock {
    /// A new zero-filled block of `size` bytes.
    #[napi(factory)]
    pub fn alloc(size: f64) -> napi::Result<NativeBlock> {
        if !(0.0..=(1u64 << 48) as f64).contains(&size) {
            return Err(coded("Value", "bad size"));
        }
        let block = Heap::global().alloc(size as usize).map_err(os)?;
        Ok(NativeBlock { block: Some(block) })
    }

    /// The block sent by another process: `fd` is its arena's descriptor (owned from now
    /// on), `id` what the sender's `retainForTransfer` returned.
    #[napi(factory)]
    pub fn adopt(fd: i32, id: BlockIdJs) -> napi::Result<NativeBlock> {
        Ok(NativeBlock { block: Some(adopt_transferred(fd, &id)?) })
    }

    /// Add a count for a copy in flight to another process; returns the id to send.
    #[napi]
    pub fn retain_for_transfer(&self) -> napi::Result<BlockIdJs> {
        Ok(id_to_js(self.get()?.retain_for_transfer()))
    }

    /// The arena's descriptor (still owned by the heap; send a duplicate).
    #[napi(getter)]
    pub fn arena_fd(&self) -> napi::Result<i32> {
        Ok(self.get()?.arena().raw_fd())
    }

    /// The arena's id (hex), the key of its ArrayBuffer.
    #[napi(getter)]
    pub fn arena_key(&self) -> napi::Result<String> {
        Ok(format!("{:016x}", self.get()?.arena().id()))
    }

    /// Whether the arena holds only this block (a big allocation).
    #[napi(getter)]
    pub fn dedicated(&self) -> napi::Result<bool> {
        Ok(self.get()?.arena().len() != mp_core::heap::ARENA_SIZE)
    }

    /// Where the payload starts in the arena's ArrayBuffer.
    #[napi(getter)]
    pub fn byte_offset(&self) -> napi::Result<f64> {
        Ok(byte_offset_of(self.get()?))
    }

    #[napi(getter)]
    pub fn size(&self) -> napi::Result<f64> {
        Ok(self.get()?.len() as f64)
    }

    #[napi(getter)]
    pub fn refcount(&self) -> napi::Result<u32> {
        Ok(self.get()?.refcount())
    }

    #[napi(getter)]
    pub fn id(&self) -> napi::Result<BlockIdJs> {
        Ok(id_to_js(self.get()?.id()))
    }

    /// Give up this process's count now (rather than when collected).
    #[napi]
    pub fn release(&mut self) {
        self.block = None;
    }

    /// Sleep while the 32-bit word at byte `offset` of the block holds `expected`, up to
    /// `timeout` seconds (null: no limit). True when woken (or the word differed), false when
    /// the time passed. For channels whose words JavaScript reads and writes with Atomics.
    #[napi]
    pub fn wait_word(&self, offset: u32, expected: i32, timeout: Option<f64>) -> napi::Result<bool> {
        let word = self.word(offset)?;
        match futex::wait(word, expected as u32, deadline(timeout)) {
            Ok(futex::Wait::Woken) => Ok(true),
            Ok(futex::Wait::TimedOut) => Ok(false),
            Err(e) => Err(os(e)),
        }
    }

    /// Wake up to `n` processes sleeping in `waitWord` on the word at byte `offset`; how many were.
    #[napi]
    pub fn wake_word(&self, offset: u32, n: u32) -> napi::Result<u32> {
        Ok(futex::wake(self.word(offset)?, n) as u32)
    }

    /// A new ArrayBuffer over the whole arena mapping (see [`arena_buffer_of`]).
    #[napi]
    pub fn arena_buffer<'env>(&self, env: &'env Env) -> napi::Result<ArrayBuffer<'env>> {
        arena_buffer_of(env, self.get()?)
    }
}

/// Where `block`'s payload starts in its arena's ArrayBuffer.
pub fn byte_offset_of(block: &Block) -> f64 {
    (block.id().offset + BLOCK_HEADER) as f64
}

/// A new ArrayBuffer over the whole mapping of `block`'s arena. JavaScript keeps one per
/// arena (src/heap.ts) and asks again only after it was collected. If that one is
/// collected but not yet finalized, V8 may still know its memory: the new one then lies
/// over a second mapping of the same memfd, so that no two ArrayBuffers ever share an
/// address.
pub fn arena_buffer_of<'env>(env: &'env Env, block: &Block) -> napi::Result<ArrayBuffer<'env>> {
    let arena = block.arena().clone();
    let base = unsafe { block.as_ptr().sub((block.id().offset + BLOCK_HEADER) as usize) };
    let len = arena.len();
    let live = live_buffers();
    let mut map = live.lock().unwrap();
    let (ptr, hint) = if map.get(&arena.id()).is_some_and(|&p| p == base as usize) {
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, arena.raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(os(std::io::Error::last_os_error()));
        }
        (p as *mut u8, Hint::Alias { ptr: p as usize, len })
    } else {
        map.insert(arena.id(), base as usize);
        (base, Hint::Arena(arena))
    };
    drop(map);
    external(env, ptr, len, hint)
}

enum Hint {
    /// Keeps the arena mapped while the buffer lives.
    Arena(Arc<Arena>),
    /// A second mapping, unmapped with the buffer.
    Alias { ptr: usize, len: usize },
}

/// Arena id -> base address of the ArrayBuffer over its heap mapping, until finalized.
fn live_buffers() -> &'static Mutex<HashMap<u64, usize>> {
    static LIVE: OnceLock<Mutex<HashMap<u64, usize>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

unsafe extern "C" fn finalize(_env: sys::napi_env, _data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
    let hint = unsafe { Box::from_raw(hint as *mut Hint) };
    match *hint {
        Hint::Arena(arena) => {
            live_buffers().lock().unwrap().remove(&arena.id());
            drop(arena);
        }
        Hint::Alias { ptr, len } => unsafe {
            libc::munmap(ptr as *mut libc::c_void, len);
        },
    }
}

/// An external ArrayBuffer over `ptr`; fails (never copies) where the runtime refuses
/// external buffers, since a copy would silently stop sharing.
fn external<'env>(env: &'env Env, ptr: *mut u8, len: usize, hint: Hint) -> napi::Result<ArrayBuffer<'env>> {
    let hint = Box::into_raw(Box::new(hint));
    let mut value = std::ptr::null_mut();
    let status = unsafe {
        sys::napi_create_external_arraybuffer(env.raw(), ptr.cast(), len, Some(finalize), hint.cast(), &mut value)
    };
    if status != sys::Status::napi_ok {
        unsafe { finalize(env.raw(), ptr.cast(), hint.cast()) };
        let why = if status == sys::Status::napi_no_external_buffers_allowed {
            "this runtime does not allow external ArrayBuffers, so shared memory cannot be exposed without copying"
        } else {
            "cannot create an ArrayBuffer over shared memory"
        };
        return Err(coded("OS", format!("errno=0 {why} (napi status {status})")));
    }
    unsafe { ArrayBuffer::from_napi_value(env.raw(), value) }
}
