//! The shared heap behind `Value`, `Array` and the synchronization primitives.
//!
//! Memory comes in arenas: memfd [`Segment`]s of [`ARENA_SIZE`] (or one dedicated,
//! page-rounded arena for a request too big for the largest size class). Small requests
//! are carved out of shared arenas so that thousands of small objects cost a handful of
//! descriptors and mappings. Nothing is ever named in /dev/shm.
//!
//! A block is identified across processes by [`BlockId`] (arena id, offset, size,
//! generation). Another process maps the arena from its descriptor ([`Heap::attach`])
//! and adopts the block ([`Heap::adopt`]).
//!
//! Layout, all in shared memory:
//! - arena header at offset 0: magic, random 64-bit id, size, a robust futex lock, the
//!   bump offset and one free-list head per size class (power-of-two slots, 32 B..64 KiB);
//! - each slot starts with a 16-byte block header: `refs` (generation << 32 | count) and
//!   the slot size; the payload follows, 16-byte aligned.
//!
//! Lifetime: every process holding a [`Block`] owns one count in `refs`. The process that
//! drops the count to zero bumps the generation (so stale `BlockId`s no longer adopt) and
//! pushes the slot on the arena's free list under the arena lock; any process may do so.
//! Only the creating process allocates from an arena (its [`Heap`] keeps it), so the free
//! lists are shared but the choice of arena is local. A dedicated arena is not kept by its
//! creator: it disappears when the last process unmaps it.

use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::shm::Segment;
use crate::sync::SemState;

/// Size of an ordinary (shared) arena. memfd pages are allocated on first touch, so an
/// arena costs only what is used.
pub const ARENA_SIZE: usize = 1 << 20;
const MAGIC: u64 = 0x6d70_6865_6170_0001;
const BLOCK_HEADER: usize = 16;
const MIN_SHIFT: u32 = 5;
const MAX_SHIFT: u32 = 16;
const NCLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Largest payload served from a shared arena; bigger requests get their own arena.
pub const MAX_SMALL: usize = (1 << MAX_SHIFT) - BLOCK_HEADER;

#[repr(C)]
struct ArenaHeader {
    magic: AtomicU64,
    id: AtomicU64,
    size: AtomicU64,
    dedicated: AtomicU32,
    _pad: AtomicU32,
    lock: SemState,
    bump: AtomicU64,
    live: AtomicU64,
    free: [AtomicU64; NCLASSES],
}

const HEADER_SIZE: usize = size_of::<ArenaHeader>().div_ceil(64) * 64;

#[repr(C)]
struct BlockHeader {
    refs: AtomicU64,
    slot: AtomicU64,
}

/// One mapped arena. Shared by every [`Block`] in it; unmapped when the last goes.
pub struct Arena {
    seg: Segment,
    id: u64,
}

impl Arena {
    fn create(len: usize, dedicated: bool) -> io::Result<Arena> {
        // A dedicated arena is one array's (RawArray('d', n) and the like), which is there to
        // be used: its pages are made at once (Python's sharedctypes zero-fills it with
        // memset), not by a fault per page at first touch. Shared arenas fill up slot by slot.
        let seg = if dedicated { Segment::create_populated(len, "mp-heap")? } else { Segment::create(len, "mp-heap")? };
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
        let id = u64::from_ne_bytes(b) | 1; // never 0
        let a = Arena { seg, id };
        let h = a.header();
        h.id.store(id, Relaxed);
        h.size.store(len as u64, Relaxed);
        h.dedicated.store(dedicated as u32, Relaxed);
        h.lock.init_lock();
        h.bump.store(HEADER_SIZE as u64, Relaxed);
        h.magic.store(MAGIC, Release);
        Ok(a)
    }

    fn open(fd: OwnedFd) -> io::Result<Arena> {
        let seg = Segment::from_fd(fd)?;
        if seg.len() < HEADER_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a heap arena"));
        }
        let h = unsafe { &*(seg.as_ptr() as *const ArenaHeader) };
        if h.magic.load(Acquire) != MAGIC || h.size.load(Relaxed) as usize != seg.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a heap arena"));
        }
        let id = h.id.load(Relaxed);
        Ok(Arena { seg, id })
    }

    fn header(&self) -> &ArenaHeader {
        unsafe { &*(self.seg.as_ptr() as *const ArenaHeader) }
    }

    fn block_header(&self, offset: usize) -> &BlockHeader {
        unsafe { &*(self.seg.as_ptr().add(offset) as *const BlockHeader) }
    }

    /// The arena's random id, the same in every process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The descriptor to send (SCM_RIGHTS) to a process that will adopt blocks from it.
    pub fn raw_fd(&self) -> RawFd {
        self.seg.raw_fd()
    }

    pub fn len(&self) -> usize {
        self.seg.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seg.is_empty()
    }

    /// Blocks currently allocated from this arena (all processes).
    pub fn live_blocks(&self) -> u64 {
        self.header().live.load(Relaxed)
    }

    /// Take a slot of `1 << shift` bytes; returns its offset.
    fn take_slot(&self, shift: u32) -> Option<usize> {
        let h = self.header();
        let class = (shift - MIN_SHIFT) as usize;
        let slot = 1usize << shift;
        h.lock.lock_raw();
        let head = h.free[class].load(Relaxed) as usize;
        let got = if head != 0 {
            let next = unsafe { &*(self.seg.as_ptr().add(head + BLOCK_HEADER) as *const AtomicU64) };
            h.free[class].store(next.load(Relaxed), Relaxed);
            // A reused slot holds old data (and the free-list link): zero it.
            unsafe { std::ptr::write_bytes(self.seg.as_ptr().add(head + BLOCK_HEADER), 0, slot - BLOCK_HEADER) };
            Some(head)
        } else {
            let b = h.bump.load(Relaxed) as usize;
            if b + slot <= self.len() {
                h.bump.store((b + slot) as u64, Relaxed);
                Some(b)
            } else {
                None
            }
        };
        if let Some(off) = got {
            h.live.fetch_add(1, Relaxed);
            let bh = self.block_header(off);
            bh.slot.store(slot as u64, Relaxed);
            let gen = bh.refs.load(Relaxed) & !0xffff_ffff;
            bh.refs.store(gen | 1, Release);
        }
        h.lock.unlock_raw();
        got
    }

    fn free_slot(&self, offset: usize) {
        let h = self.header();
        h.live.fetch_sub(1, Relaxed);
        if h.dedicated.load(Relaxed) != 0 {
            return;
        }
        let slot = self.block_header(offset).slot.load(Relaxed) as usize;
        let class = (slot.trailing_zeros() - MIN_SHIFT) as usize;
        h.lock.lock_raw();
        let next = unsafe { &*(self.seg.as_ptr().add(offset + BLOCK_HEADER) as *const AtomicU64) };
        next.store(h.free[class].load(Relaxed), Relaxed);
        h.free[class].store(offset as u64, Relaxed);
        h.lock.unlock_raw();
    }
}

/// How another process finds a block: send this with the arena's descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockId {
    pub arena: u64,
    pub offset: u64,
    pub size: u64,
    pub generation: u32,
}

/// A reference to a block of shared memory; holds one count of the block's refcount.
pub struct Block {
    arena: Arc<Arena>,
    offset: usize,
    size: usize,
    generation: u32,
}

impl Block {
    /// Start of the payload (zero-filled at allocation), 16-byte aligned.
    pub fn as_ptr(&self) -> *mut u8 {
        unsafe { self.arena.seg.as_ptr().add(self.offset + BLOCK_HEADER) }
    }

    /// The requested size in bytes.
    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn id(&self) -> BlockId {
        BlockId { arena: self.arena.id, offset: self.offset as u64, size: self.size as u64, generation: self.generation }
    }

    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// Processes (counts) holding the block right now.
    pub fn refcount(&self) -> u32 {
        self.arena.block_header(self.offset).refs.load(Relaxed) as u32
    }

    /// Add a count for a reference in flight to another process, which takes it over
    /// with [`Heap::adopt_transferred`]; the block then cannot be freed in between.
    pub fn retain_for_transfer(&self) -> BlockId {
        self.arena.block_header(self.offset).refs.fetch_add(1, AcqRel);
        self.id()
    }

}

/// Another handle on the same block: one more count.
impl Clone for Block {
    fn clone(&self) -> Block {
        self.arena.block_header(self.offset).refs.fetch_add(1, AcqRel);
        Block { arena: self.arena.clone(), ..*self }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let refs = &self.arena.block_header(self.offset).refs;
        let mut v = refs.load(Acquire);
        loop {
            let count = v as u32;
            if count == 0 {
                return; // Already freed: a foreign process over-released. Don't corrupt lists.
            }
            // The last count bumps the generation in the same step, so no stale id
            // can adopt the block between "count is 0" and "slot is on the free list".
            let nv = if count == 1 { ((v >> 32) as u32).wrapping_add(1) as u64 * (1 << 32) } else { v - 1 };
            match refs.compare_exchange_weak(v, nv, AcqRel, Acquire) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        if v as u32 == 1 {
            self.arena.free_slot(self.offset);
        }
    }
}

// The payload is plain shared memory; synchronisation is up to its users.
unsafe impl Send for Block {}
unsafe impl Sync for Block {}

#[derive(Default)]
struct HeapInner {
    /// Shared arenas this process created and allocates from.
    own: Vec<Arc<Arena>>,
    /// Every mapped arena by id, so a second descriptor for it is not mapped twice.
    known: HashMap<u64, Weak<Arena>>,
}

/// A process's view of the shared heap.
#[derive(Default)]
pub struct Heap {
    inner: Mutex<HeapInner>,
}

impl Heap {
    pub fn new() -> Heap {
        Heap::default()
    }

    /// The process-wide heap.
    pub fn global() -> &'static Heap {
        static HEAP: OnceLock<Heap> = OnceLock::new();
        HEAP.get_or_init(Heap::new)
    }

    /// A zero-filled block of `size` bytes.
    pub fn alloc(&self, size: usize) -> io::Result<Block> {
        let need = size.max(1) + BLOCK_HEADER;
        let mut inner = self.inner.lock().unwrap();
        if need > 1 << MAX_SHIFT {
            let len = (HEADER_SIZE + need).div_ceil(4096) * 4096;
            let arena = Arc::new(Arena::create(len, true)?);
            let off = arena.take_slot_dedicated(len);
            inner.known.insert(arena.id, Arc::downgrade(&arena));
            return Ok(Block { arena, offset: off, size, generation: 0 });
        }
        let shift = need.next_power_of_two().trailing_zeros().max(MIN_SHIFT);
        // Newest arena first: it is the one most likely to have room.
        for arena in inner.own.iter().rev() {
            if let Some(off) = arena.take_slot(shift) {
                return Ok(Self::block_at(arena.clone(), off, size));
            }
        }
        let arena = Arc::new(Arena::create(ARENA_SIZE, false)?);
        inner.known.insert(arena.id, Arc::downgrade(&arena));
        inner.own.push(arena.clone());
        let off = arena.take_slot(shift).expect("fresh arena has room");
        Ok(Self::block_at(arena, off, size))
    }

    fn block_at(arena: Arc<Arena>, offset: usize, size: usize) -> Block {
        let generation = (arena.block_header(offset).refs.load(Relaxed) >> 32) as u32;
        Block { arena, offset, size, generation }
    }

    /// Map an arena received from another process (or return the mapping we have;
    /// `fd` is then closed).
    pub fn attach(&self, fd: OwnedFd) -> io::Result<Arc<Arena>> {
        let arena = Arena::open(fd)?;
        let mut inner = self.inner.lock().unwrap();
        inner.known.retain(|_, w| w.strong_count() > 0);
        if let Some(a) = inner.known.get(&arena.id).and_then(Weak::upgrade) {
            return Ok(a);
        }
        let arena = Arc::new(arena);
        inner.known.insert(arena.id, Arc::downgrade(&arena));
        Ok(arena)
    }

    /// An arena mapped in this process, by id.
    pub fn arena(&self, id: u64) -> Option<Arc<Arena>> {
        self.inner.lock().unwrap().known.get(&id).and_then(Weak::upgrade)
    }

    /// Number of arenas mapped in this process.
    pub fn arena_count(&self) -> usize {
        self.inner.lock().unwrap().known.values().filter(|w| w.strong_count() > 0).count()
    }

    fn locate(&self, id: &BlockId) -> io::Result<Arc<Arena>> {
        let arena = self.arena(id.arena).ok_or_else(|| invalid("arena not mapped in this process"))?;
        let off = id.offset as usize;
        let len = arena.len();
        if off < HEADER_SIZE || !off.is_multiple_of(BLOCK_HEADER) || off + BLOCK_HEADER > len {
            return Err(invalid("bad block offset"));
        }
        let slot = arena.block_header(off).slot.load(Acquire) as usize;
        if slot < BLOCK_HEADER || off + slot > len || (id.size as usize).max(1) + BLOCK_HEADER > slot {
            return Err(invalid("bad block size"));
        }
        Ok(arena)
    }

    /// A new handle on a block that some process still holds (adds a count). Fails if
    /// the block has been freed meanwhile.
    pub fn adopt(&self, id: &BlockId) -> io::Result<Block> {
        let arena = self.locate(id)?;
        let refs = &arena.block_header(id.offset as usize).refs;
        let mut v = refs.load(Acquire);
        loop {
            if v as u32 == 0 || (v >> 32) as u32 != id.generation {
                return Err(invalid("block was freed"));
            }
            match refs.compare_exchange_weak(v, v + 1, AcqRel, Acquire) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        Ok(Block { arena, offset: id.offset as usize, size: id.size as usize, generation: id.generation })
    }

    /// Take over the count added by [`Block::retain_for_transfer`] in the sender.
    pub fn adopt_transferred(&self, id: &BlockId) -> io::Result<Block> {
        let arena = self.locate(id)?;
        let v = arena.block_header(id.offset as usize).refs.load(Acquire);
        if v as u32 == 0 || (v >> 32) as u32 != id.generation {
            return Err(invalid("block was freed"));
        }
        Ok(Block { arena, offset: id.offset as usize, size: id.size as usize, generation: id.generation })
    }
}

impl Arena {
    fn take_slot_dedicated(&self, len: usize) -> usize {
        let off = HEADER_SIZE;
        let bh = self.block_header(off);
        bh.slot.store((len - off) as u64, Relaxed);
        bh.refs.store(1, Release);
        self.header().live.store(1, Relaxed);
        off
    }
}

impl AsRawFd for Arena {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::dup_cloexec;

    #[test]
    fn ten_thousand_small_blocks_share_few_arenas() {
        let heap = Heap::new();
        let blocks: Vec<Block> = (0..10_000).map(|_| heap.alloc(8).unwrap()).collect();
        assert!(heap.arena_count() <= 2, "{} arenas", heap.arena_count());
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.as_ptr() as usize % 16, 0);
            assert_eq!(unsafe { *(b.as_ptr() as *const u64) }, 0);
            unsafe { *(b.as_ptr() as *mut u64) = i as u64 };
        }
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(unsafe { *(b.as_ptr() as *const u64) }, i as u64);
        }
        let arena = blocks[0].arena().clone();
        let live = arena.live_blocks();
        drop(blocks);
        assert_eq!(arena.live_blocks(), 0);
        // Freed slots are reused (and zeroed) before fresh space.
        let again: Vec<Block> = (0..live).map(|_| heap.alloc(8).unwrap()).collect();
        assert!(heap.arena_count() <= 2);
        assert!(again.iter().all(|b| unsafe { *(b.as_ptr() as *const u64) } == 0));
    }

    #[test]
    fn another_mapping_adopts_and_refcounts() {
        let a = Heap::new();
        let b = Heap::new(); // stands for another process
        let blk = a.alloc(100).unwrap();
        unsafe { *blk.as_ptr().add(99) = 7 };
        let arena = b.attach(dup_cloexec(blk.arena().raw_fd()).unwrap()).unwrap();
        assert_eq!(arena.id(), blk.arena().id());
        // A second descriptor for the same arena reuses the mapping.
        let again = b.attach(dup_cloexec(blk.arena().raw_fd()).unwrap()).unwrap();
        assert!(Arc::ptr_eq(&arena, &again));
        let other = b.adopt(&blk.id()).unwrap();
        assert_eq!(unsafe { *other.as_ptr().add(99) }, 7);
        assert_eq!(blk.refcount(), 2);
        let id = blk.id();
        drop(blk);
        assert_eq!(other.refcount(), 1);
        drop(other);
        // Freed: the stale id no longer adopts, even after the slot is reused.
        assert!(b.adopt(&id).is_err());
        let reused = a.alloc(100).unwrap();
        assert_eq!(reused.id().offset, id.offset);
        assert_ne!(reused.id().generation, id.generation);
        assert!(b.adopt(&id).is_err());
        // In-flight references keep the block alive until taken over.
        let t = reused.retain_for_transfer();
        drop(reused);
        let got = b.adopt_transferred(&t).unwrap();
        assert_eq!(got.refcount(), 1);
        let twin = got.clone();
        assert_eq!(twin.refcount(), 2);
        drop(got);
        assert_eq!(twin.refcount(), 1);
    }

    #[test]
    fn big_blocks_get_their_own_arena() {
        let heap = Heap::new();
        let small = heap.alloc(16).unwrap();
        let big = heap.alloc(5 << 20).unwrap();
        assert!(!Arc::ptr_eq(small.arena(), big.arena()));
        assert!(big.arena().len() >= 5 << 20);
        unsafe { *big.as_ptr().add((5 << 20) - 1) = 1 };
        let n = heap.arena_count();
        drop(big);
        assert_eq!(heap.arena_count(), n - 1);
    }

    #[test]
    fn bad_ids_are_refused() {
        let heap = Heap::new();
        let blk = heap.alloc(8).unwrap();
        let mut id = blk.id();
        id.offset += 8;
        assert!(heap.adopt(&id).is_err());
        id = blk.id();
        id.size = 1 << 20;
        assert!(heap.adopt(&id).is_err());
        id = blk.id();
        id.arena ^= 2;
        assert!(heap.adopt(&id).is_err());
    }
}
