//! The core of `multiprocessing.Queue`: a multi-producer multi-consumer queue of byte
//! strings in one shared memory segment, which survives any user being SIGKILLed mid-call.
//! One file: the layout, the protocol and its recovery after a kill are one invariant (the
//! second half of the file is its tests).
//!
//! Layout: a 4 KiB header, then a ring of `ncells` 64-byte cells (a power of two). A message
//! takes `k` consecutive cells: its head cell starts with an 8-byte state word and an 8-byte
//! length, and the payload follows contiguously (wrapping once at the end of the ring), so
//! small messages cost one cache line and big ones two `memcpy`s. Positions are cell tickets
//! (u32, wrapping). `enq` and `deq` pack (item count, ticket) into one u64 so that reserving
//! or taking a message, with the item count that `maxsize`/`qsize`/`join` need, is committed
//! by a single store. `tail` (u64, never wraps) is the first cell not yet free for reuse.
//!
//! Kill safety:
//! - Reserving (producers) and taking (consumers) are tiny critical sections under two locks
//!   that hold the owner's pid; a lock whose owner is dead is taken over. Each section ends with
//!   its commit store (`enq`/`deq`); whatever a dead owner wrote before that is ignored or redone.
//! - Copying happens outside the locks. A reserved head reads RESERVED(pid) until the producer
//!   publishes it with one store. Consumers that find the oldest message reserved for longer
//!   than `POLL` check the pid and, if it is dead, skip the message without reading it.
//! - A consumer marks the head TAKEN(pid) before copying out and DONE after; the tail moves
//!   only over DONE heads, so nothing is overwritten while it is read. A head left TAKEN by a
//!   dead consumer is turned DONE once stale (that item is lost: its `get` never completed).
//! - Pids are checked with kill(pid, 0) and /proc (a killed but unreaped child counts as dead).
//!   A recycled pid only delays recovery until that process exits.
//!
//! Items bigger than the ring go beyond it, in the same memfd: the producer takes a range of
//! file offsets (never reused, so a range is freed at most once in effect), writes the item
//! there with `pwrite`, and the ring carries a one-cell message saying where (its head's
//! length word has the `INDIRECT` bit). The consumer maps the range, copies the item out and
//! frees its pages (`fallocate(PUNCH_HOLE)`). The ring's capacity bounds what waits in the
//! ring, not the size of an item. Kill safety is the ring's: a message reserved by a dead
//! producer, or taken by a dead consumer, is freed by whoever skips it, pages included
//! (punching a hole twice is harmless). Every process maps only the header and the ring.

use std::fmt;
use std::hint::spin_loop;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};
use std::any::Any;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::futex::{self, WaitvEntry};
use crate::shm::Segment;
use crate::waiter::WaitOn;

/// Bytes per cell.
pub const CELL: usize = 64;
/// A good default ring capacity in bytes.
pub const DEFAULT_CAPACITY: usize = 64 << 20;
/// How long an unfinished reservation or take (or a held lock) may last before its owner's
/// liveness is checked; also the longest sleep of a waiter that may have to do that check.
pub const POLL: Duration = Duration::from_millis(20);

const HEADER_BYTES: usize = 4096;
const HEAD_BYTES: usize = 16; // state word + length at the start of a head cell
const MAGIC: u64 = u64::from_le_bytes(*b"mpring03");
const MAX_CELLS: usize = 1 << 30;
/// In a head's length word: the item is out of the ring; the message's payload is its place.
const INDIRECT: u64 = 1 << 63;
/// The payload of an `INDIRECT` message: the item's file offset and length (two u64).
const PLACE_BYTES: usize = 16;
const PAGE: u64 = 4096;
/// The largest item of a batch (see `Ring::put_batch`).
const MAX_BATCH_ITEM: usize = 4096;
/// The largest item: far beyond any memory, well within a file offset.
const MAX_ITEM: u64 = 1 << 46;

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the queue's descriptor was released (the queue is closed)")
}

fn round_page(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

// Head cell states: ticket in bits 0..32, tag in 32..40, pid in 40..64.
const RESERVED: u8 = 1;
const PUBLISHED: u8 = 2;
const TAKEN: u8 = 3;
const DONE: u8 = 4;

fn pack(seq: u32, tag: u8, pid: u32) -> u64 {
    seq as u64 | (tag as u64) << 32 | (pid as u64) << 40
}

fn unpack(s: u64) -> (u32, u8, u32) {
    (s as u32, (s >> 32) as u8, (s >> 40) as u32)
}

/// (items, ticket) of an `enq`/`deq` word.
fn split(w: u64) -> (u32, u32) {
    ((w >> 32) as u32, w as u32)
}

fn join(items: u32, ticket: u32) -> u64 {
    (items as u64) << 32 | ticket as u64
}

#[repr(C, align(64))]
struct Meta {
    magic: u64,
    ncells: u32,
    maxsize: u32,
}

#[repr(C, align(64))]
struct End {
    lock: AtomicU32,
    pos: AtomicU64,
}

#[repr(C, align(64))]
struct Tail {
    pos: AtomicU64,
}

/// An eventcount. `avail` and `space`: bit 0 of `seq` says that someone may sleep on its
/// current value (set by each waiter before its last check); a notifier that finds it set
/// clears it and bumps the count (one CAS: `seq + 1`), then wakes the sleepers, so the
/// notifiers after it make no system call until someone waits again (a producer does not
/// wake on every put while the woken consumer waits for a CPU). `waiters` is unused.
/// `done`: `seq` counts completed tasks and `waiters` counts its sleepers.
#[repr(C, align(64))]
struct Event {
    seq: AtomicU32,
    waiters: AtomicU32,
}

#[repr(C)]
struct Header {
    meta: Meta,
    enq: End,
    deq: End,
    tail: Tail,
    /// Consumers wait here for a publish.
    avail: Event,
    /// Producers wait here for space (an item taken, cells freed).
    space: Event,
    /// `seq` counts completed tasks (JoinableQueue); join waits on it.
    done: Event,
    /// The next file offset for an out-of-ring item.
    big: Big,
}

#[repr(C, align(64))]
struct Big {
    next: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);

/// Errors of queue operations.
#[derive(Debug)]
pub enum QueueError {
    /// A `try_*` call could not complete now. The waiter count behind `RingWait` has been
    /// raised: wait until its word differs from `expected`, call [`Ring::disarm`], retry.
    WouldBlock(RingWait),
    /// The deadline passed (Python's `queue.Full` / `queue.Empty`).
    Timeout,
    /// The item is larger than any queue can hold (`MAX_ITEM`).
    TooLong { len: usize, max: usize },
    /// `task_done()` called more times than items were put.
    Value(&'static str),
    /// The shared memory does not hold a valid queue.
    Corrupt(&'static str),
    Os(io::Error),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::WouldBlock(_) => write!(f, "operation would block"),
            QueueError::Timeout => write!(f, "timed out"),
            QueueError::TooLong { len, max } => {
                write!(f, "item of {len} bytes is larger than a queue item can be ({max} bytes)")
            }
            QueueError::Value(m) => write!(f, "{m}"),
            QueueError::Corrupt(m) => write!(f, "queue memory is corrupt: {m}"),
            QueueError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl From<io::Error> for QueueError {
    fn from(e: io::Error) -> Self {
        QueueError::Os(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Avail,
    Space,
    Done,
}

/// What a blocked `try_*` call waits for: a futex word in the ring's mapping and the value
/// it must change from, for an async layer that watches many words with `futex_waitv`.
/// The ring counted it as a sleeper (so that notifiers wake it): call [`Ring::disarm`]
/// once the wait is over, before retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingWait {
    /// Address of the `AtomicU32`; valid while the `Ring` lives.
    pub addr: usize,
    pub expected: u32,
    /// Someone else is mid-operation and may have died: retry after this long even if the
    /// word does not change (the retry then checks the owner's liveness).
    pub retry_after: Option<Duration>,
    which: Which,
}

impl RingWait {
    /// The wait engine's form of this wait; it keeps `ring` (the one that returned it) mapped.
    pub fn wait_on(&self, ring: &Arc<Ring>) -> WaitOn {
        assert!(ring.owns(self.addr), "RingWait used with another ring");
        let keep: Arc<dyn Any + Send + Sync> = ring.clone();
        let w = unsafe { WaitOn::new(self.addr as *const AtomicU32, self.expected, Some(keep)) };
        match self.retry_after {
            Some(d) => w.with_recheck(d),
            None => w,
        }
    }

    /// The `futex_waitv` entry for this wait. The `Ring` must outlive its use.
    pub fn waitv_entry(&self) -> WaitvEntry {
        WaitvEntry::new(unsafe { &*(self.addr as *const AtomicU32) }, self.expected)
    }
}

enum Step<T> {
    Done(T),
    /// `poll`: the block may be caused by a dead process, so waits must be bounded by `POLL`.
    Blocked { poll: bool },
}

/// A message taken under the `deq` lock, to be copied out.
struct Claim {
    p: u32,
    /// Bytes of its payload in the ring.
    len: usize,
    /// The item is out of the ring (the payload is its place).
    indirect: bool,
}

/// Process-local memory of one suspicious state, so liveness is checked only when the same
/// state persists for `POLL`.
struct Suspect {
    key: AtomicU64,
    since: AtomicU64,
}

impl Suspect {
    fn new() -> Self {
        Suspect { key: AtomicU64::new(0), since: AtomicU64::new(0) }
    }

    fn stale(&self, key: u64, epoch: Instant) -> bool {
        let now = epoch.elapsed().as_nanos() as u64;
        if self.key.swap(key, Relaxed) != key {
            self.since.store(now, Relaxed);
            return false;
        }
        now.saturating_sub(self.since.load(Relaxed)) >= POLL.as_nanos() as u64
    }
}

static PID: AtomicU32 = AtomicU32::new(0);
/// 0: fork handler not registered, 1: being registered, 2: registered.
static ATFORK: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid() {
    PID.store(0, Relaxed);
}

/// getpid() is a real system call: cache it, forgetting it in forked children. No `Once`:
/// a child forked while another thread runs it would block on it for ever.
fn my_pid() -> u32 {
    let p = PID.load(Relaxed);
    if p != 0 {
        return p;
    }
    let pid = unsafe { libc::getpid() } as u32;
    match ATFORK.compare_exchange(0, 1, AcqRel, Acquire) {
        Ok(_) => {
            unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
            ATFORK.store(2, Release);
        }
        // Until the handler is in place a cached pid could leak into a child.
        Err(1) => return pid,
        Err(_) => {}
    }
    PID.store(pid, Relaxed);
    pid
}

/// Whether `pid` may still act on the ring. Zombies are dead: a killed child stays one until
/// its parent reaps it, and that parent may be the one waiting here.
fn is_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == my_pid() {
        return true;
    }
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.iter().rposition(|&c| c == b')').and_then(|i| s.get(i + 2));
            !matches!(state, Some(b'Z') | Some(b'X'))
        }
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// A queue of byte strings in shared memory. Share it by passing `raw_fd()` to another
/// process and opening it there with [`Ring::from_fd`].
pub struct Ring {
    seg: Segment,
    data: *mut u8,
    ncells: u32,
    maxsize: u32,
    epoch: Instant,
    head_suspect: Suspect,
    tail_suspect: Suspect,
}

// All shared state is atomics or bytes guarded by the protocol above.
unsafe impl Send for Ring {}
unsafe impl Sync for Ring {}

impl Ring {
    /// A new queue whose ring holds about `capacity` bytes (rounded up to a power of two of
    /// cells, at least 4 KiB). `maxsize <= 0` means no limit on the number of items.
    pub fn create(capacity: usize, maxsize: i64) -> io::Result<Ring> {
        let ncells = (capacity.div_ceil(CELL)).max(64).next_power_of_two();
        if ncells > MAX_CELLS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "queue capacity too large"));
        }
        let maxsize = if maxsize <= 0 { 0 } else { maxsize.min(1 << 30) as u32 };
        let seg = Segment::create(HEADER_BYTES + ncells * CELL, "mp-queue")?;
        // Nobody else sees the segment yet.
        unsafe {
            let m = seg.as_ptr() as *mut Meta;
            (*m).ncells = ncells as u32;
            (*m).maxsize = maxsize;
            (*m).magic = MAGIC;
            let h = &*(seg.as_ptr() as *const Header);
            h.big.next.store((HEADER_BYTES + ncells * CELL) as u64, Relaxed);
        }
        Ok(Self::wrap(seg, ncells as u32, maxsize))
    }

    /// Open a queue made by [`Ring::create`] in another process. Only the header and the
    /// ring are mapped (out-of-ring items are read apart).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Ring> {
        let bad = |m| io::Error::new(io::ErrorKind::InvalidData, m);
        let file = File::from(fd);
        let mut m = [0u8; 16];
        file.read_exact_at(&mut m, 0).map_err(|_| bad("not a queue segment"))?;
        let magic = u64::from_le_bytes(m[0..8].try_into().unwrap());
        let ncells = u32::from_le_bytes(m[8..12].try_into().unwrap()) as usize;
        if magic != MAGIC || !ncells.is_power_of_two() || ncells > MAX_CELLS {
            return Err(bad("not a queue segment"));
        }
        let seg = Segment::from_fd_prefix(OwnedFd::from(file), HEADER_BYTES + ncells * CELL)?;
        let maxsize = unsafe { &*(seg.as_ptr() as *const Meta) }.maxsize;
        Ok(Self::wrap(seg, ncells as u32, maxsize))
    }

    fn wrap(seg: Segment, ncells: u32, maxsize: u32) -> Ring {
        let data = unsafe { seg.as_ptr().add(HEADER_BYTES) };
        Ring {
            seg,
            data,
            ncells,
            maxsize,
            epoch: Instant::now(),
            head_suspect: Suspect::new(),
            tail_suspect: Suspect::new(),
        }
    }

    /// The memfd to hand to other processes.
    pub fn raw_fd(&self) -> RawFd {
        self.seg.raw_fd()
    }

    /// Close the queue's descriptor (it can no longer be passed on); puts and gets through
    /// this mapping go on. Returns whether it was open.
    pub fn release_fd(&self) -> bool {
        self.seg.release_fd()
    }

    /// The item limit; 0 means unbounded.
    pub fn maxsize(&self) -> u32 {
        self.maxsize
    }

    /// Bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.ncells as usize * CELL
    }

    /// The largest item kept in the ring itself; bigger ones go beyond it.
    pub fn max_item_len(&self) -> usize {
        self.capacity() - HEAD_BYTES
    }

    fn owns(&self, addr: usize) -> bool {
        let base = self.seg.as_ptr() as usize;
        (base..base + HEADER_BYTES).contains(&addr)
    }

    fn h(&self) -> &Header {
        unsafe { &*(self.seg.as_ptr() as *const Header) }
    }

    fn cell(&self, t: u32) -> *mut u8 {
        unsafe { self.data.add((t & (self.ncells - 1)) as usize * CELL) }
    }

    fn state(&self, t: u32) -> &AtomicU64 {
        unsafe { &*(self.cell(t) as *const AtomicU64) }
    }

    fn len_word(&self, t: u32) -> &AtomicU64 {
        unsafe { &*(self.cell(t).add(8) as *const AtomicU64) }
    }

    /// Cells taken by a message whose head's length word is `len` (may exceed the ring for
    /// garbage lengths).
    fn cells_of(len: u64) -> u64 {
        ((len & !INDIRECT).saturating_add(HEAD_BYTES as u64)).div_ceil(CELL as u64)
    }

    /// Where the out-of-ring item of the message at `p` is: (file offset, length).
    fn place(&self, p: u32) -> (u64, u64) {
        let (a, _) = self.payload(p, PLACE_BYTES);
        (u64::from_le_bytes(a[0..8].try_into().unwrap()), u64::from_le_bytes(a[8..16].try_into().unwrap()))
    }

    /// Write an out-of-ring item's parts at `off` in the segment's file.
    fn write_big(&self, off: u64, parts: &[&[u8]]) -> io::Result<()> {
        let mut at = off;
        for bytes in parts {
            self.seg.write_at(bytes, at)?;
            at += bytes.len() as u64;
        }
        Ok(())
    }

    /// Give back the pages of an out-of-ring item (harmless if already done).
    fn free_big(&self, (off, len): (u64, u64)) {
        self.seg.punch_hole(off, round_page(len));
    }

    /// Bytes of memory the segment holds (header, ring pages touched, out-of-ring items).
    pub fn resident_bytes(&self) -> io::Result<u64> {
        self.seg.allocated_bytes()
    }

    /// The payload of the message at `p` as (up to) two slices, split where the ring wraps.
    fn payload(&self, p: u32, len: usize) -> (&[u8], &[u8]) {
        let start = (p & (self.ncells - 1)) as usize * CELL + HEAD_BYTES;
        let first = len.min(self.capacity() - start);
        unsafe {
            (
                std::slice::from_raw_parts(self.data.add(start), first),
                std::slice::from_raw_parts(self.data, len - first),
            )
        }
    }

    /// Copy the parts of an item one after the other, wrapping at the end of the ring.
    fn write_payload(&self, q: u32, parts: &[&[u8]]) {
        let mut at = (q & (self.ncells - 1)) as usize * CELL + HEAD_BYTES;
        for bytes in parts {
            let first = bytes.len().min(self.capacity() - at);
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(at), first);
                std::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), self.data, bytes.len() - first);
            }
            at = if first < bytes.len() { bytes.len() - first } else { at + first };
        }
    }

    /// Take a pid-owned lock, taking it over from a dead owner. Impatient callers give up
    /// (false) when a live owner holds it for long (e.g. stopped by a debugger).
    fn lock(&self, w: &AtomicU32, patient: bool) -> bool {
        let me = my_pid();
        let mut n = 0u32;
        let mut seen: Option<(u32, Instant)> = None;
        loop {
            let owner = match w.compare_exchange_weak(0, me, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(0) => continue,
                Err(o) => o,
            };
            n += 1;
            if n < 128 {
                spin_loop();
                continue;
            }
            std::thread::yield_now();
            if !n.is_multiple_of(64) {
                continue;
            }
            let now = Instant::now();
            match seen {
                Some((o, t0)) if o == owner && now - t0 >= POLL => {
                    if !is_alive(owner) {
                        if w.compare_exchange(owner, me, Acquire, Relaxed).is_ok() {
                            return true;
                        }
                        continue;
                    }
                    if !patient {
                        return false;
                    }
                    seen = Some((owner, now));
                    std::thread::sleep(Duration::from_micros(200));
                }
                Some((o, _)) if o == owner => {}
                _ => seen = Some((owner, now)),
            }
        }
    }

    fn unlock(w: &AtomicU32) {
        w.store(0, Release);
    }

    /// Wake the sleepers of `avail` or `space` (see `Event`), with no system call when
    /// nobody has waited since the last wake.
    fn notify(ev: &Event) {
        fence(SeqCst);
        let mut s = ev.seq.load(Relaxed);
        while s & 1 != 0 {
            match ev.seq.compare_exchange_weak(s, s.wrapping_add(1), SeqCst, Relaxed) {
                Ok(_) => {
                    futex::wake(&ev.seq, i32::MAX as u32);
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Register as a waiter on `which` before the last check: the value of its word to
    /// sleep on. A `seq` that differs from it (or a wake) means: check again.
    fn arm(&self, which: Which) -> u32 {
        let ev = self.event(which);
        if which == Which::Done {
            ev.waiters.fetch_add(1, SeqCst);
            fence(SeqCst);
            return ev.seq.load(SeqCst);
        }
        // A write even when the bit is already set, so that a notifier's load after its
        // fence sees it (or a later value).
        let s = ev.seq.fetch_or(1, SeqCst) | 1;
        fence(SeqCst);
        s
    }

    /// Done waiting after `arm` (only `done` counts its sleepers; a flag left set costs
    /// one needless wake).
    fn unarm(&self, which: Which) {
        if which == Which::Done {
            self.event(which).waiters.fetch_sub(1, SeqCst);
        }
    }

    fn event(&self, w: Which) -> &Event {
        let h = self.h();
        match w {
            Which::Avail => &h.avail,
            Which::Space => &h.space,
            Which::Done => &h.done,
        }
    }

    fn put_step(&self, parts: &[&[u8]], patient: bool) -> Result<Step<()>, QueueError> {
        let h = self.h();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut k = Self::cells_of(len as u64);
        // Too big for the ring: the item goes beyond it and the ring says where.
        let big = k > self.ncells as u64;
        if big {
            if len as u64 > MAX_ITEM {
                return Err(QueueError::TooLong { len, max: MAX_ITEM as usize });
            }
            if self.seg.raw_fd() < 0 {
                return Err(QueueError::Os(closed()));
            }
            k = Self::cells_of(PLACE_BYTES as u64);
        }
        let k = k as u32;
        let me = my_pid();
        let mut advanced = false;
        loop {
            if !self.lock(&h.enq.lock, patient) {
                return Ok(Step::Blocked { poll: true });
            }
            let (items, q) = split(h.enq.pos.load(Acquire));
            if self.maxsize != 0 && items.wrapping_sub(split(h.deq.pos.load(Acquire)).0) >= self.maxsize {
                Self::unlock(&h.enq.lock);
                return Ok(Step::Blocked { poll: false });
            }
            let tail = h.tail.pos.load(Acquire) as u32;
            if q.wrapping_add(k).wrapping_sub(tail) > self.ncells {
                Self::unlock(&h.enq.lock);
                if advanced {
                    // Waiting for consumers to finish copying, which a dead one never will.
                    return Ok(Step::Blocked { poll: true });
                }
                self.advance_tail();
                advanced = true;
                continue;
            }
            // Nothing reads these cells until `enq` moves past them. An out-of-ring item's
            // place is written now, so that whoever skips the message can free its pages.
            let place = if big {
                let off = h.big.next.fetch_add(round_page(len as u64), Relaxed);
                self.write_payload(q, &[&off.to_le_bytes(), &(len as u64).to_le_bytes()]);
                self.len_word(q).store(INDIRECT | PLACE_BYTES as u64, Relaxed);
                Some((off, len as u64))
            } else {
                self.len_word(q).store(len as u64, Relaxed);
                None
            };
            self.state(q).store(pack(q, RESERVED, me), Relaxed);
            h.enq.pos.store(join(items.wrapping_add(1), q.wrapping_add(k)), Release);
            Self::unlock(&h.enq.lock);
            match place {
                None => self.write_payload(q, parts),
                Some(place) => {
                    if let Err(e) = self.write_big(place.0, parts) {
                        // Out of memory: the message is dropped as a dead producer's would be.
                        self.free_big(place);
                        self.state(q).store(pack(q, DONE, me), Release);
                        Self::notify(&h.avail);
                        return Err(QueueError::Os(e));
                    }
                }
            }
            self.state(q).store(pack(q, PUBLISHED, me), Release);
            Self::notify(&h.avail);
            return Ok(Step::Done(()));
        }
    }

    /// Put the leading items of `packed` (each a u32 LE length, then that many bytes) that
    /// there is room for, in order, in one reservation: returns the bytes of `packed` they
    /// took (at least one item), or Blocked when not even the first fits.
    ///
    /// The items are small, so they are written under the `enq` lock, heads already
    /// PUBLISHED, and the one `enq` store makes them all visible: a producer killed before
    /// it leaves cells beyond `enq`, which nothing reads and the next reservation rewrites.
    fn put_batch_step(&self, packed: &[u8], patient: bool) -> Result<Step<usize>, QueueError> {
        let h = self.h();
        let me = my_pid();
        let mut advanced = false;
        loop {
            if !self.lock(&h.enq.lock, patient) {
                return Ok(Step::Blocked { poll: true });
            }
            let (items, q) = split(h.enq.pos.load(Acquire));
            let mut room_items = u32::MAX;
            if self.maxsize != 0 {
                room_items = self.maxsize.saturating_sub(items.wrapping_sub(split(h.deq.pos.load(Acquire)).0));
            }
            let free = self.ncells - q.wrapping_sub(h.tail.pos.load(Acquire) as u32).min(self.ncells);
            let (mut off, mut used, mut n) = (0usize, 0u32, 0u32);
            let mut bad = None;
            while off < packed.len() && n < room_items {
                let Some(lb) = packed.get(off..off + 4) else {
                    bad = Some("truncated batch");
                    break;
                };
                let len = u32::from_le_bytes(lb.try_into().unwrap()) as usize;
                let Some(item) = packed.get(off + 4..off + 4 + len) else {
                    bad = Some("truncated batch");
                    break;
                };
                if len > self.max_batch_item_len() {
                    bad = Some("batch item too large");
                    break;
                }
                let k = Self::cells_of(len as u64);
                if used + k as u32 > free {
                    break;
                }
                let t = q.wrapping_add(used);
                self.len_word(t).store(len as u64, Relaxed);
                self.write_payload(t, &[item]);
                self.state(t).store(pack(t, PUBLISHED, me), Relaxed);
                used += k as u32;
                n += 1;
                off += 4 + len;
            }
            if n > 0 {
                h.enq.pos.store(join(items.wrapping_add(n), q.wrapping_add(used)), Release);
            }
            Self::unlock(&h.enq.lock);
            if n > 0 {
                Self::notify(&h.avail);
                return Ok(Step::Done(off));
            }
            if let Some(m) = bad {
                return Err(QueueError::Value(m));
            }
            if room_items == 0 {
                return Ok(Step::Blocked { poll: false });
            }
            if advanced {
                // Waiting for consumers to finish copying, which a dead one never will.
                return Ok(Step::Blocked { poll: true });
            }
            self.advance_tail();
            advanced = true;
        }
    }

    /// Take the oldest message under the `deq` lock, skipping messages whose producer died.
    fn claim(&self, patient: bool) -> Result<Step<Claim>, QueueError> {
        let h = self.h();
        let me = my_pid();
        loop {
            // Cheap emptiness check without the lock, for spinning waiters.
            if split(h.deq.pos.load(Acquire)).1 == split(h.enq.pos.load(Acquire)).1 {
                return Ok(Step::Blocked { poll: false });
            }
            if !self.lock(&h.deq.lock, patient) {
                return Ok(Step::Blocked { poll: true });
            }
            let (out, p) = split(h.deq.pos.load(Acquire));
            if p == split(h.enq.pos.load(Acquire)).1 {
                Self::unlock(&h.deq.lock);
                return Ok(Step::Blocked { poll: false });
            }
            let st = self.state(p).load(Acquire);
            let (seq, tag, pid) = unpack(st);
            let lw = self.len_word(p).load(Relaxed);
            let indirect = lw & INDIRECT != 0;
            let len = lw & !INDIRECT;
            let k = Self::cells_of(len);
            if seq != p || k > self.ncells as u64 || (indirect && len != PLACE_BYTES as u64) {
                Self::unlock(&h.deq.lock);
                return Err(QueueError::Corrupt("bad message head"));
            }
            let next = join(out.wrapping_add(1), p.wrapping_add(k as u32));
            match tag {
                // Out-of-ring items are read through the descriptor: leave them for others.
                PUBLISHED | TAKEN if indirect && self.seg.raw_fd() < 0 => {
                    Self::unlock(&h.deq.lock);
                    return Err(QueueError::Os(closed()));
                }
                // TAKEN here means a consumer died before committing: take it again.
                PUBLISHED | TAKEN => {
                    self.state(p).store(pack(p, TAKEN, me), Relaxed);
                    h.deq.pos.store(next, Release);
                    Self::unlock(&h.deq.lock);
                    if self.maxsize != 0 {
                        Self::notify(&h.space);
                    }
                    return Ok(Step::Done(Claim { p, len: len as usize, indirect }));
                }
                RESERVED => {
                    if !self.head_suspect.stale(st, self.epoch) || is_alive(pid) {
                        Self::unlock(&h.deq.lock);
                        return Ok(Step::Blocked { poll: true });
                    }
                    // The producer died before publishing: drop the message unread.
                    if indirect {
                        self.free_big(self.place(p));
                    }
                    self.state(p).store(pack(p, DONE, me), Release);
                }
                // DONE here means a consumer died while skipping: finish that.
                DONE => {}
                _ => {
                    Self::unlock(&h.deq.lock);
                    return Err(QueueError::Corrupt("bad message state"));
                }
            }
            h.deq.pos.store(next, Release);
            Self::unlock(&h.deq.lock);
            // A skipped item will never get its task_done().
            h.done.seq.fetch_add(1, AcqRel);
            fence(SeqCst);
            if h.done.waiters.load(Relaxed) != 0 {
                futex::wake(&h.done.seq, i32::MAX as u32);
            }
            self.advance_tail();
            Self::notify(&h.space);
        }
    }

    /// Copy a claimed message out and free its cells (and an out-of-ring item's pages).
    fn read_claim<R>(&self, c: Claim, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R, QueueError> {
        // Freed even if `f` panics, or the ring would wedge behind this message; the pages
        // first, so that a consumer killed in between leaves a TAKEN head (freed again).
        struct Free<'a>(&'a Ring, u32, Option<(u64, u64)>);
        impl Drop for Free<'_> {
            fn drop(&mut self) {
                if let Some(place) = self.2 {
                    self.0.free_big(place);
                }
                self.0.state(self.1).store(pack(self.1, DONE, my_pid()), Release);
                self.0.advance_tail();
            }
        }
        if !c.indirect {
            let _free = Free(self, c.p, None);
            let (a, b) = self.payload(c.p, c.len);
            return Ok(f(a, b));
        }
        let place = self.place(c.p);
        let _free = Free(self, c.p, Some(place));
        // Mapped (not read into a buffer) so that `f` copies it once, to where it goes.
        let map = self.seg.map_range(place.0, place.1 as usize)?;
        Ok(f(&map, &[]))
    }

    /// Move `tail` over finished messages, and free a message whose consumer died while
    /// copying it (once stale).
    fn advance_tail(&self) {
        let h = self.h();
        let mut moved = false;
        loop {
            let t = h.tail.pos.load(Acquire);
            if t as u32 == split(h.deq.pos.load(Acquire)).1 {
                break;
            }
            // `t` is a live head below `deq`: its cells cannot be reused while tail == t.
            // If tail moved meanwhile the reads below may be garbage, but the CAS then fails.
            let st = self.state(t as u32).load(Acquire);
            let (seq, tag, pid) = unpack(st);
            if seq != t as u32 {
                if h.tail.pos.load(Acquire) != t {
                    continue;
                }
                break;
            }
            match tag {
                DONE => {
                    let k = Self::cells_of(self.len_word(t as u32).load(Relaxed));
                    if h.tail.pos.compare_exchange(t, t + k, AcqRel, Acquire).is_ok() {
                        moved = true;
                    }
                }
                TAKEN if self.tail_suspect.stale(st, self.epoch) && !is_alive(pid) => {
                    // Under the deq lock nobody else can change this head meanwhile.
                    if !self.lock(&h.deq.lock, true) {
                        break;
                    }
                    if h.tail.pos.load(Acquire) == t
                        && self.state(t as u32).load(Acquire) == st
                        && split(h.deq.pos.load(Acquire)).1 != t as u32
                    {
                        // Its cells cannot be reused while tail == t: the place is its own.
                        if self.len_word(t as u32).load(Relaxed) & INDIRECT != 0 {
                            self.free_big(self.place(t as u32));
                        }
                        self.state(t as u32).store(pack(t as u32, DONE, my_pid()), Release);
                    }
                    Self::unlock(&h.deq.lock);
                }
                _ => break,
            }
        }
        if moved {
            Self::notify(&h.space);
        }
    }

    /// Run `step` until it completes, spinning briefly and then sleeping on `which`.
    fn block<T>(
        &self,
        which: Which,
        deadline: Option<Instant>,
        mut step: impl FnMut() -> Result<Step<T>, QueueError>,
    ) -> Result<T, QueueError> {
        let ev = self.event(which);
        let mut spins = 0u32;
        loop {
            if let Step::Done(v) = step()? {
                return Ok(v);
            }
            // The other side is usually mid-operation: a short spin avoids a sleep and a wake.
            // No sched_yield after it: on a loaded machine a yield gives the CPU away for a
            // whole scheduling period, while a sleeper on the futex is woken at once.
            if spins < 150 {
                spins += 1;
                for _ in 0..32 {
                    spin_loop();
                }
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(QueueError::Timeout);
            }
            let seen = self.arm(which);
            let poll = match step() {
                Ok(Step::Blocked { poll }) => poll,
                r => {
                    self.unarm(which);
                    match r? {
                        Step::Done(v) => return Ok(v),
                        Step::Blocked { .. } => unreachable!(),
                    }
                }
            };
            let until = match (poll, deadline) {
                (true, Some(d)) => Some(d.min(now + POLL)),
                (true, None) => Some(now + POLL),
                (false, d) => d,
            };
            let r = futex::wait(&ev.seq, seen, until);
            self.unarm(which);
            r?;
        }
    }

    /// One non-blocking attempt; when blocked, arm a wait on `which` and report it.
    fn attempt<T>(&self, which: Which, mut step: impl FnMut() -> Result<Step<T>, QueueError>) -> Result<T, QueueError> {
        if let Step::Done(v) = step()? {
            return Ok(v);
        }
        let ev = self.event(which);
        let seen = self.arm(which);
        match step() {
            Ok(Step::Blocked { poll }) => Err(QueueError::WouldBlock(RingWait {
                addr: &ev.seq as *const AtomicU32 as usize,
                expected: seen,
                retry_after: poll.then_some(POLL),
                which,
            })),
            r => {
                self.unarm(which);
                match r? {
                    Step::Done(v) => Ok(v),
                    Step::Blocked { .. } => unreachable!(),
                }
            }
        }
    }

    /// Undo the waiter registration of a `WouldBlock` once done waiting on it (a missed call
    /// only costs needless wake-ups).
    pub fn disarm(&self, w: &RingWait) {
        self.unarm(w.which);
    }

    /// Put an item, waiting for room until `deadline` (None: forever).
    pub fn put(&self, item: &[u8], deadline: Option<Instant>) -> Result<(), QueueError> {
        self.put_parts(&[item], deadline)
    }

    /// Put an item if there is room now.
    pub fn try_put(&self, item: &[u8]) -> Result<(), QueueError> {
        self.try_put_parts(&[item])
    }

    /// Put one item made of several parts (e.g. a tag and a large payload), without
    /// first joining them in a buffer.
    pub fn put_parts(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<(), QueueError> {
        self.block(Which::Space, deadline, || self.put_step(parts, true))
    }

    pub fn try_put_parts(&self, parts: &[&[u8]]) -> Result<(), QueueError> {
        self.attempt(Which::Space, || self.put_step(parts, false))
    }

    /// As `try_put_parts` for a caller that will not wait: false when there is no room now
    /// (no waiter is registered, so that the next get makes no wake-up call for it).
    pub fn put_parts_now(&self, parts: &[&[u8]]) -> Result<bool, QueueError> {
        Ok(matches!(self.put_step(parts, false)?, Step::Done(())))
    }

    /// Put small items packed one after the other (each a u32 LE length, then its bytes;
    /// each item at most [`Ring::max_batch_item_len`]), in order, waiting for room until
    /// `deadline` (None: forever). Returns the bytes of `packed` whose items were put: all
    /// of it, or less if the deadline passed. One reservation per run of items that fit.
    pub fn put_batch(&self, packed: &[u8], deadline: Option<Instant>) -> Result<usize, QueueError> {
        let mut off = 0;
        while off < packed.len() {
            match self.block(Which::Space, deadline, || self.put_batch_step(&packed[off..], true)) {
                Ok(n) => off += n,
                Err(QueueError::Timeout) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(off)
    }

    /// As `put_batch`, without waiting: the bytes of `packed` whose items fitted now.
    pub fn try_put_batch(&self, packed: &[u8]) -> Result<usize, QueueError> {
        let mut off = 0;
        while off < packed.len() {
            match self.put_batch_step(&packed[off..], false)? {
                Step::Done(n) => off += n,
                Step::Blocked { .. } => break,
            }
        }
        Ok(off)
    }

    /// The largest item `put_batch` takes (a batch's items are written under the producers'
    /// lock, so they must be small).
    pub fn max_batch_item_len(&self) -> usize {
        MAX_BATCH_ITEM.min(self.max_item_len())
    }

    /// Take the oldest item, waiting until `deadline` (None: forever).
    pub fn get(&self, deadline: Option<Instant>) -> Result<Vec<u8>, QueueError> {
        self.get_with(deadline, concat)
    }

    /// Like `get`, but hands the item to `f` in place, as two slices (split where the ring
    /// wraps), so that the caller can copy it straight into its own buffer.
    pub fn get_with<R>(&self, deadline: Option<Instant>, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R, QueueError> {
        let c = self.block(Which::Avail, deadline, || self.claim(true))?;
        self.read_claim(c, f)
    }

    /// Take the oldest item if there is one now.
    pub fn try_get(&self) -> Result<Vec<u8>, QueueError> {
        self.try_get_with(concat)
    }

    pub fn try_get_with<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R, QueueError> {
        let c = self.attempt(Which::Avail, || self.claim(false))?;
        self.read_claim(c, f)
    }

    /// As `try_get_with` for a caller that will not wait: None when there is no item now
    /// (no waiter is registered, so that the next put makes no wake-up call for it).
    pub fn get_now_with<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<Option<R>, QueueError> {
        match self.claim(false)? {
            Step::Done(c) => self.read_claim(c, f).map(Some),
            Step::Blocked { .. } => Ok(None),
        }
    }

    /// Items put and not yet taken (including ones being put right now).
    pub fn qsize(&self) -> usize {
        let h = self.h();
        let out = split(h.deq.pos.load(Acquire)).0;
        let inn = split(h.enq.pos.load(Acquire)).0;
        inn.wrapping_sub(out) as usize
    }

    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// At `maxsize`, or the ring has no free cell at all.
    pub fn full(&self) -> bool {
        let h = self.h();
        if self.maxsize != 0 && self.qsize() >= self.maxsize as usize {
            return true;
        }
        let q = split(h.enq.pos.load(Acquire)).1;
        q.wrapping_sub(h.tail.pos.load(Acquire) as u32) >= self.ncells
    }

    /// JoinableQueue: items put and not yet marked done.
    pub fn unfinished_tasks(&self) -> u32 {
        let h = self.h();
        split(h.enq.pos.load(Acquire)).0.wrapping_sub(h.done.seq.load(Acquire))
    }

    /// JoinableQueue: mark one task done; `Value` error if none is unfinished.
    pub fn task_done(&self) -> Result<(), QueueError> {
        let h = self.h();
        loop {
            let d = h.done.seq.load(Acquire);
            let unfinished = split(h.enq.pos.load(Acquire)).0.wrapping_sub(d);
            if unfinished == 0 || unfinished > i32::MAX as u32 {
                return Err(QueueError::Value("task_done() called too many times"));
            }
            if h.done.seq.compare_exchange(d, d.wrapping_add(1), AcqRel, Relaxed).is_ok() {
                fence(SeqCst);
                if h.done.waiters.load(Relaxed) != 0 {
                    futex::wake(&h.done.seq, i32::MAX as u32);
                }
                return Ok(());
            }
        }
    }

    fn join_step(&self) -> Result<Step<()>, QueueError> {
        Ok(if self.unfinished_tasks() == 0 { Step::Done(()) } else { Step::Blocked { poll: false } })
    }

    /// JoinableQueue: wait until every item put has been marked done.
    pub fn join(&self, deadline: Option<Instant>) -> Result<(), QueueError> {
        self.block(Which::Done, deadline, || self.join_step())
    }

    pub fn try_join(&self) -> Result<(), QueueError> {
        self.attempt(Which::Done, || self.join_step())
    }
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::dup_cloexec;
    use std::sync::atomic::AtomicBool;

    fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            unsafe { libc::_exit(code) };
        }
        pid
    }

    /// Exit status of a child, or 1000 + signal number.
    fn reap(pid: libc::pid_t) -> i32 {
        let mut st = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            1000 + libc::WTERMSIG(st)
        }
    }

    fn secs(s: f64) -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs_f64(s))
    }

    struct Rng(u64);
    impl Rng {
        fn new() -> Self {
            Rng(Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15 ^ (std::process::id() as u64) << 20)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A message that can be checked on arrival: producer id, sequence number, pattern bytes.
    fn message(id: u32, seq: u32, len: usize) -> Vec<u8> {
        let mut v = pattern(id, len.max(8));
        v[0..4].copy_from_slice(&id.to_le_bytes());
        v[4..8].copy_from_slice(&seq.to_le_bytes());
        v
    }

    fn pattern(id: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(id * 7 + len as u32) as u8).collect()
    }

    fn check(v: &[u8]) -> (u32, u32) {
        thread_local!(static PATTERNS: std::cell::RefCell<std::collections::HashMap<(u32, usize), Vec<u8>>> = Default::default());
        assert!(v.len() >= 8, "short message");
        let id = u32::from_le_bytes(v[0..4].try_into().unwrap());
        let seq = u32::from_le_bytes(v[4..8].try_into().unwrap());
        PATTERNS.with(|p| {
            let mut p = p.borrow_mut();
            let want = p.entry((id, v.len())).or_insert_with(|| pattern(id, v.len()));
            assert!(v[8..] == want[8..], "corrupt message");
        });
        (id, seq)
    }

    /// A shared counter that survives the child (a separate segment mapped before fork).
    fn counter() -> Segment {
        Segment::create(4096, "test-counter").unwrap()
    }
    fn word(s: &Segment) -> &AtomicU64 {
        unsafe { &*(s.as_ptr() as *const AtomicU64) }
    }

    #[test]
    fn fifo_per_producer_across_four_processes() {
        // Small ring: wraps many times and producers block on space.
        let ring = Ring::create(64 << 10, 0).unwrap();
        const N: u32 = 20_000;
        let kids: Vec<_> = (0..4u32)
            .map(|id| {
                let ring = &ring;
                fork(move || {
                    let mut rng = Rng(id as u64 + 1);
                    for seq in 0..N {
                        let len = 8 + rng.below(if seq % 100 == 0 { 5000 } else { 200 }) as usize;
                        ring.put(&message(id, seq, len), secs(40.0)).unwrap();
                    }
                    0
                })
            })
            .collect();
        let mut next = [0u32; 4];
        for _ in 0..4 * N {
            let v = ring.get(secs(20.0)).unwrap_or_else(|e| panic!("consumer stalled: {e}: {}", ring.dump()));
            let (id, seq) = check(&v);
            assert_eq!(seq, next[id as usize], "out of order from producer {id}");
            next[id as usize] += 1;
        }
        for k in kids {
            assert_eq!(reap(k), 0);
        }
        assert!(ring.empty());
        assert!(matches!(ring.try_get(), Err(QueueError::WouldBlock(_))));
    }

    #[test]
    fn full_and_empty_with_timeouts() {
        let ring = Ring::create(4096, 2).unwrap();
        assert!(ring.empty() && !ring.full());
        let t = Instant::now();
        assert!(matches!(ring.get(secs(0.05)), Err(QueueError::Timeout)));
        assert!(t.elapsed() >= Duration::from_millis(50));
        ring.put(b"a", None).unwrap();
        ring.try_put(b"b").unwrap();
        assert_eq!(ring.qsize(), 2);
        assert!(ring.full());
        match ring.try_put(b"c") {
            Err(QueueError::WouldBlock(w)) => {
                assert_eq!(unsafe { &*(w.addr as *const AtomicU32) }.load(SeqCst), w.expected);
                ring.disarm(&w);
            }
            r => panic!("{r:?}"),
        }
        let t = Instant::now();
        assert!(matches!(ring.put(b"c", secs(0.05)), Err(QueueError::Timeout)));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(ring.get(None).unwrap(), b"a");
        assert_eq!(ring.try_get().unwrap(), b"b");
        assert!(ring.empty());
        match ring.try_get() {
            Err(QueueError::WouldBlock(w)) => ring.disarm(&w),
            r => panic!("{r:?}"),
        }
        // Byte capacity also bounds an unbounded queue; empty items work.
        let ring = Ring::create(4096, 0).unwrap();
        let big = vec![7u8; ring.max_item_len()];
        ring.put(&big, None).unwrap();
        assert!(ring.full());
        assert!(matches!(ring.put(b"", secs(0.02)), Err(QueueError::Timeout)));
        assert_eq!(ring.get(None).unwrap(), big);
        ring.put(b"", None).unwrap();
        assert_eq!(ring.get(None).unwrap(), b"");
    }

    #[test]
    fn items_larger_than_the_ring_go_beyond_it_and_give_their_memory_back() {
        let ring = Ring::create(4096, 0).unwrap();
        let base = ring.resident_bytes().unwrap();
        let just_over = message(1, 0, ring.max_item_len() + 1);
        let big = message(1, 1, 3 << 20);
        ring.put(&just_over, None).unwrap();
        ring.put_parts(&[&[9u8], &big], None).unwrap();
        ring.put(b"small", None).unwrap();
        assert_eq!(ring.qsize(), 3);
        assert!(ring.resident_bytes().unwrap() >= base + (3 << 20), "the big item waits in shared memory");
        // Another mapping (another process) reads them: it maps only the header and the ring.
        let other = Ring::from_fd(dup_cloexec(ring.raw_fd()).unwrap()).unwrap();
        assert_eq!(other.get(None).unwrap(), just_over);
        let got = other.get(None).unwrap();
        assert_eq!(got[0], 9);
        assert_eq!(&got[1..], &big[..]);
        assert_eq!(other.get(None).unwrap(), b"small");
        assert!(other.empty());
        assert!(ring.resident_bytes().unwrap() <= (HEADER_BYTES + ring.capacity()) as u64, "pages given back");
        // A released descriptor: out-of-ring items are refused, in-ring ones still flow.
        ring.put(&big, None).unwrap();
        other.release_fd();
        assert!(matches!(other.put(&big, None), Err(QueueError::Os(_))));
        assert!(matches!(other.try_get(), Err(QueueError::Os(_))));
        assert_eq!(ring.get(None).unwrap(), big);
        other.put(b"in ring", None).unwrap();
        assert_eq!(ring.get(None).unwrap(), b"in ring");
    }

    #[test]
    fn big_items_across_processes_with_a_small_ring() {
        let ring = Ring::create(64 << 10, 2).unwrap();
        let kid = fork(|| {
            for seq in 0..6 {
                ring.put(&message(2, seq, (seq as usize + 1) * (700 << 10)), None).unwrap();
            }
            0
        });
        for seq in 0..6 {
            let v = ring.get(secs(30.0)).unwrap();
            assert_eq!(v.len(), (seq as usize + 1) * (700 << 10));
            assert_eq!(check(&v), (2, seq));
        }
        assert_eq!(reap(kid), 0);
        assert!(ring.resident_bytes().unwrap() <= (HEADER_BYTES + ring.capacity()) as u64);
    }

    #[test]
    fn blocked_put_is_released_by_a_consumer() {
        let ring = Ring::create(4096, 1).unwrap();
        ring.put(b"first", None).unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                ring.put(b"second", None).unwrap();
                done.store(true, SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!done.load(SeqCst));
            assert_eq!(ring.get(None).unwrap(), b"first");
        });
        assert!(done.load(SeqCst));
        assert_eq!(ring.get(None).unwrap(), b"second");
    }

    #[test]
    fn waitv_wakes_an_async_style_waiter() {
        let ring = Ring::create(4096, 0).unwrap();
        let w = match ring.try_get() {
            Err(QueueError::WouldBlock(w)) => w,
            r => panic!("{r:?}"),
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                ring.put(b"x", None).unwrap();
            });
            let r = futex::waitv(&[w.waitv_entry()], secs(5.0)).unwrap();
            assert!(r.is_some());
        });
        ring.disarm(&w);
        assert_eq!(ring.try_get().unwrap(), b"x");

        // The same through the wait engine's WaitOn.
        let ring = Arc::new(ring);
        let w = match ring.try_get() {
            Err(QueueError::WouldBlock(w)) => w,
            r => panic!("{r:?}"),
        };
        let on = w.wait_on(&ring);
        assert!(on.unchanged());
        std::thread::scope(|s| {
            s.spawn(|| ring.put(b"y", None).unwrap());
            while on.unchanged() {
                on.wait(secs(5.0)).unwrap();
            }
        });
        ring.disarm(&w);
        assert_eq!(ring.try_get().unwrap(), b"y");
    }

    #[test]
    fn a_wait_costs_one_wake() {
        let ring = Ring::create(1 << 16, 0).unwrap();
        let seq = || ring.h().avail.seq.load(SeqCst);
        // Nobody waits: puts leave the word alone (no wake-up call).
        let s0 = seq();
        ring.put(b"a", None).unwrap();
        assert_eq!(seq(), s0);
        assert_eq!(ring.get(None).unwrap(), b"a");
        // A poll that will not wait arms nothing.
        assert!(ring.get_now_with(concat).unwrap().is_none());
        ring.put(b"b", None).unwrap();
        assert_eq!(seq(), s0);
        assert_eq!(ring.get_now_with(concat).unwrap().unwrap(), b"b");
        // An armed waiter: the first put wakes it (bumps the word); the puts after it, made
        // before it runs, do not wake again.
        let w = match ring.try_get() {
            Err(QueueError::WouldBlock(w)) => w,
            r => panic!("{r:?}"),
        };
        assert_eq!(seq(), w.expected);
        ring.put(b"c", None).unwrap();
        let s1 = seq();
        assert_ne!(s1, w.expected);
        ring.put(b"d", None).unwrap();
        ring.put_batch(&packed(&[b"e".to_vec(), b"f".to_vec()]), None).unwrap();
        assert_eq!(seq(), s1);
        ring.disarm(&w);
        for x in [b"c", b"d", b"e", b"f"] {
            assert_eq!(ring.get(None).unwrap(), x);
        }
        // A sleeping consumer is woken by the next put, and only it bumps the word.
        std::thread::scope(|s| {
            let t = s.spawn(|| ring.get(secs(5.0)).unwrap());
            while seq() & 1 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let armed = seq();
            ring.put(b"g", None).unwrap();
            let s2 = seq();
            assert_ne!(s2, armed);
            assert_eq!(t.join().unwrap(), b"g");
            ring.put(b"h", None).unwrap();
            assert_eq!(seq(), s2);
        });
        assert_eq!(ring.get(None).unwrap(), b"h");
    }

    #[test]
    fn second_mapping_from_fd() {
        let a = Ring::create(8192, 5).unwrap();
        let b = Ring::from_fd(dup_cloexec(a.raw_fd()).unwrap()).unwrap();
        assert_eq!(b.maxsize(), 5);
        a.put(b"hello", None).unwrap();
        assert_eq!(b.qsize(), 1);
        assert_eq!(b.get(None).unwrap(), b"hello");
        assert!(Ring::from_fd(dup_cloexec(counter().raw_fd()).unwrap()).is_err());
    }

    #[test]
    fn joinable_counts_tasks() {
        let ring = Ring::create(4096, 0).unwrap();
        assert!(ring.try_join().is_ok());
        assert!(matches!(ring.task_done(), Err(QueueError::Value(_))));
        for _ in 0..3 {
            ring.put(b"t", None).unwrap();
        }
        assert_eq!(ring.unfinished_tasks(), 3);
        match ring.try_join() {
            Err(QueueError::WouldBlock(w)) => ring.disarm(&w),
            r => panic!("{r:?}"),
        }
        assert!(matches!(ring.join(secs(0.02)), Err(QueueError::Timeout)));
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    ring.get(None).unwrap();
                    std::thread::sleep(Duration::from_millis(10));
                    ring.task_done().unwrap();
                }
            });
            ring.join(secs(5.0)).unwrap();
        });
        assert!(matches!(ring.task_done(), Err(QueueError::Value(_))));
    }

    impl Ring {
        fn dump(&self) -> String {
            let h = self.h();
            let (d, e, t) = (h.deq.pos.load(SeqCst), h.enq.pos.load(SeqCst), h.tail.pos.load(SeqCst));
            let at = |p: u32| (unpack(self.state(p).load(SeqCst)), self.len_word(p).load(SeqCst));
            format!(
                "deq {:?} {:?} enq {:?} tail {t} {:?} locks {} {} avail {} {} space {} {}",
                split(d), at(split(d).1), split(e), at(t as u32),
                h.enq.lock.load(SeqCst), h.deq.lock.load(SeqCst),
                h.avail.seq.load(SeqCst), h.avail.waiters.load(SeqCst),
                h.space.seq.load(SeqCst), h.space.waiters.load(SeqCst),
            )
        }

        /// Reserved, unpublished messages in the queue.
        fn reserved_heads(&self) -> usize {
            let h = self.h();
            let (mut p, end) = (split(h.deq.pos.load(SeqCst)).1, split(h.enq.pos.load(SeqCst)).1);
            let mut n = 0;
            while p != end {
                n += (unpack(self.state(p).load(SeqCst)).1 == RESERVED) as usize;
                p = p.wrapping_add(Self::cells_of(self.len_word(p).load(SeqCst)) as u32);
            }
            n
        }
    }

    impl Ring {
        /// What a producer killed during a put of `item` leaves behind, step by step of
        /// `put_step`: 0 holding the `enq` lock; 1 its length written; 2 its head marked
        /// RESERVED; 3 `enq` committed, lock still held; 4 lock released, nothing copied;
        /// 5 `copied` bytes copied; 6 published but nobody woken. Call it with the lock free.
        fn put_dying(&self, item: &[u8], pid: u32, step: u8, copied: usize) {
            let h = self.h();
            assert_eq!(h.enq.lock.swap(pid, SeqCst), 0);
            if step == 0 {
                return;
            }
            let (items, q) = split(h.enq.pos.load(SeqCst));
            self.len_word(q).store(item.len() as u64, SeqCst);
            if step == 1 {
                return;
            }
            self.state(q).store(pack(q, RESERVED, pid), SeqCst);
            if step == 2 {
                return;
            }
            let k = Self::cells_of(item.len() as u64) as u32;
            h.enq.pos.store(join(items.wrapping_add(1), q.wrapping_add(k)), SeqCst);
            if step == 3 {
                return;
            }
            Self::unlock(&h.enq.lock);
            if step == 4 {
                return;
            }
            self.write_payload(q, &[&item[..copied.min(item.len())]]);
            if step == 5 {
                return;
            }
            self.write_payload(q, &[item]);
            self.state(q).store(pack(q, PUBLISHED, pid), SeqCst);
        }
    }

    /// A pid that no process has (a child that exited and was reaped).
    fn dead_pid() -> u32 {
        static DEAD: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        *DEAD.get_or_init(|| {
            let pid = fork(|| 0);
            reap(pid);
            pid as u32
        })
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

            /// A producer killed at any step of a put never loses, repeats or corrupts the
            /// items of the others, nor blocks them: its own item arrives whole if it was
            /// published, else not at all.
            #[test]
            fn recovery_after_a_producer_dies_at_any_step(
                before in prop::collection::vec(0usize..400, 0..4),
                dying in 0usize..3000,
                after in prop::collection::vec(0usize..400, 0..4),
                step in 0u8..=6,
                copied in 0usize..3000,
                skew in 0u32..200,
            ) {
                // A ring of 16 KiB, already turned `skew` cells so that items wrap.
                let ring = Ring::create(16 << 10, 0).unwrap();
                for _ in 0..skew {
                    ring.put(b"", None).unwrap();
                    ring.get(None).unwrap();
                }
                let pid = dead_pid();
                let mut want = Vec::new();
                for (i, &n) in before.iter().enumerate() {
                    let m = message(1, i as u32, n);
                    ring.put(&m, secs(5.0)).unwrap();
                    want.push(m);
                }
                let d = message(2, 0, dying);
                ring.put_dying(&d, pid, step, copied);
                if step == 6 {
                    want.push(d);
                }
                let t = Instant::now();
                for (i, &n) in after.iter().enumerate() {
                    let m = message(3, i as u32, n);
                    ring.put(&m, secs(5.0)).unwrap();
                    want.push(m);
                }
                for w in &want {
                    let got = ring.get(secs(5.0)).unwrap();
                    check(&got);
                    prop_assert_eq!(&got, w);
                }
                // Recovery is prompt: a few liveness checks (POLL, 20 ms), not a timeout
                // (5 s); the bound leaves room for a loaded machine.
                let took = t.elapsed();
                prop_assert!(took < Duration::from_secs(3), "took {:?}", took);
                prop_assert!(matches!(ring.get(secs(0.2)), Err(QueueError::Timeout)), "nothing more: {}", ring.dump());
                prop_assert!(ring.empty());
                prop_assert_eq!(ring.qsize(), 0);
                ring.put(b"still works", secs(1.0)).unwrap();
                prop_assert_eq!(ring.get(secs(1.0)).unwrap(), b"still works".to_vec());
            }
        }
    }

    #[test]
    fn skips_a_reservation_of_a_dead_producer() {
        let ring = Ring::create(4096, 0).unwrap();
        let dead = fork(|| 0) as u32;
        reap(dead as i32);
        ring.put(b"before", None).unwrap();
        let h = ring.h();
        let (items, q) = split(h.enq.pos.load(SeqCst));
        ring.len_word(q).store(100, SeqCst);
        ring.state(q).store(pack(q, RESERVED, dead), SeqCst);
        h.enq.pos.store(join(items + 1, q + Ring::cells_of(100) as u32), SeqCst);
        ring.put(b"after", None).unwrap();
        assert_eq!(ring.qsize(), 3);
        let t = Instant::now();
        assert_eq!(ring.get(secs(1.0)).unwrap(), b"before");
        assert_eq!(ring.get(secs(1.0)).unwrap(), b"after");
        assert!(t.elapsed() >= POLL);
        assert!(ring.empty());
    }

    #[test]
    fn producer_killed_mid_stream() {
        producer_kills(8 << 20);
    }

    /// With a ring smaller than most items: they go beyond it, and a kill mid-copy must free them.
    #[test]
    fn producer_killed_mid_stream_of_out_of_ring_items() {
        producer_kills(64 << 10);
    }

    fn producer_kills(capacity: usize) {
        let ring = Ring::create(capacity, 0).unwrap();
        let mut rng = Rng::new();
        let (mut skipped, mut whole, mut reserved) = (0, 0, 0);
        // At least 25 rounds, and on until a kill has landed mid-copy (how many do depends
        // on scheduling: a loaded machine needs more rounds), up to 400.
        for round in 0..400u32 {
            if round >= 25 && reserved > 0 {
                break;
            }
            let completed = counter();
            let kid = fork(|| {
                let mut rng = Rng(round as u64 * 77 + 5);
                let mut items: Vec<Vec<u8>> =
                    [8, 1000, 300_000, 2_000_000].iter().map(|&n| message(round, 0, n)).collect();
                for seq in 0.. {
                    let item = &mut items[rng.below(4) as usize];
                    item[4..8].copy_from_slice(&(seq as u32).to_le_bytes());
                    ring.put(item, None).unwrap();
                    word(&completed).store(seq as u64 + 1, SeqCst);
                }
                0
            });
            let kill_after = rng.below(30) as u32;
            let mut got = 0u32;
            let mut killed = false;
            loop {
                let draining = killed;
                // Draining: the completed puts are surely there (a long wait, for a loaded
                // machine), then at most the one in flight.
                let sure = draining && got < word(&completed).load(SeqCst) as u32;
                let r = ring.get(if sure { secs(5.0) } else if draining { secs(0.5) } else { secs(0.001) });
                // Kill soon after freeing space, when the producer is likely copying.
                if !killed && got >= kill_after {
                    let t = Instant::now() + Duration::from_micros(rng.below(300));
                    while Instant::now() < t {}
                    unsafe { libc::kill(kid, libc::SIGKILL) };
                    assert_eq!(reap(kid), 1000 + libc::SIGKILL);
                    killed = true;
                    reserved += ring.reserved_heads();
                }
                match r {
                    Ok(v) => {
                        let (id, seq) = check(&v);
                        assert_eq!((id, seq), (round, got), "lost, repeated or foreign message");
                        got += 1;
                    }
                    Err(QueueError::Timeout) if draining => break,
                    Err(QueueError::Timeout) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            let c = word(&completed).load(SeqCst) as u32;
            // Every completed put arrived; at most the one in flight also did.
            assert!(got == c || got == c + 1, "round {round}: got {got}, completed {c}");
            if ring.qsize() != 0 {
                let h = ring.h();
                let (d, e, t) = (h.deq.pos.load(SeqCst), h.enq.pos.load(SeqCst), h.tail.pos.load(SeqCst));
                let st = unpack(ring.state(split(d).1).load(SeqCst));
                panic!("stuck: deq {:?} enq {:?} tail {t} head {st:?} len {} locks {} {} kid {kid} got {got} c {c}",
                    split(d), split(e), ring.len_word(split(d).1).load(SeqCst),
                    h.enq.lock.load(SeqCst), h.deq.lock.load(SeqCst));
            }
            if got == c {
                skipped += 1
            } else {
                whole += 1
            }
        }
        eprintln!("producer kills: {skipped} with the last put unfinished ({reserved} mid-copy), {whole} after it finished");
        assert!(reserved > 0, "no kill landed between reserve and publish in {} rounds", skipped + whole);
        ring.put(b"still works", None).unwrap();
        assert_eq!(ring.get(secs(1.0)).unwrap(), b"still works");
        // Nothing leaked: what a dead producer left beyond the ring was given back.
        assert!(ring.resident_bytes().unwrap() <= (HEADER_BYTES + ring.capacity()) as u64);
    }

    /// Items packed as `put_batch` takes them.
    fn packed(items: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        for it in items {
            v.extend_from_slice(&(it.len() as u32).to_le_bytes());
            v.extend_from_slice(it);
        }
        v
    }

    #[test]
    fn batches_keep_order_across_the_wrap_and_stop_at_whole_items() {
        // 64 cells: batches wrap, and fill the ring part way.
        let ring = Ring::create(4096, 0).unwrap();
        let items: Vec<Vec<u8>> = (0..40u32).map(|i| message(9, i, [8, 40, 48, 100, 700][i as usize % 5])).collect();
        let all = packed(&items);
        // Without waiting: the leading items that fit, whole.
        let done = ring.try_put_batch(&all).unwrap();
        assert!(done > 0 && done < all.len());
        let mut at = 0;
        let mut n = 0;
        while at < done {
            at += 4 + items[n].len();
            n += 1;
        }
        assert_eq!(at, done, "a batch stops between items");
        assert_eq!(ring.qsize(), n);
        for it in &items[..n] {
            assert_eq!(&ring.get(secs(1.0)).unwrap(), it);
        }
        // Waiting: a consumer makes room as it goes.
        std::thread::scope(|s| {
            s.spawn(|| {
                for it in &items[n..] {
                    assert_eq!(&ring.get(secs(5.0)).unwrap(), it);
                }
            });
            assert_eq!(ring.put_batch(&all[done..], secs(5.0)).unwrap(), all.len() - done);
        });
        assert!(ring.empty());
        // maxsize counts a batch's items.
        let ring = Ring::create(4096, 3).unwrap();
        assert_eq!(ring.try_put_batch(&packed(&items[..5])).unwrap(), packed(&items[..3]).len());
        assert!(ring.full());
        assert_eq!(ring.put_batch(&packed(&items[3..5]), secs(0.02)).unwrap(), 0);
        // Items too big for a batch, or a malformed batch, are refused whole.
        let ring = Ring::create(64 << 10, 0).unwrap();
        assert!(matches!(ring.try_put_batch(&packed(&[vec![0; MAX_BATCH_ITEM + 1]])), Err(QueueError::Value(_))));
        assert!(matches!(ring.try_put_batch(&[5, 0, 0, 0, 1]), Err(QueueError::Value(_))));
    }

    /// A producer that died holding the `enq` lock in the middle of writing a batch: the
    /// cells it wrote are beyond `enq`, so the others never see them.
    #[test]
    fn a_batch_of_a_dead_producer_is_never_seen() {
        let ring = Ring::create(4096, 0).unwrap();
        ring.put(b"before", None).unwrap();
        let h = ring.h();
        let pid = dead_pid();
        assert_eq!(h.enq.lock.swap(pid, SeqCst), 0);
        let (_, q) = split(h.enq.pos.load(SeqCst));
        for i in 0..3u32 {
            let t = q + i;
            ring.len_word(t).store(8, SeqCst);
            ring.write_payload(t, &[b"deadbeef"]);
            ring.state(t).store(pack(t, PUBLISHED, pid), SeqCst);
        }
        let items: Vec<Vec<u8>> = (0..5u32).map(|i| message(4, i, 30)).collect();
        assert_eq!(ring.put_batch(&packed(&items), secs(5.0)).unwrap(), packed(&items).len());
        assert_eq!(ring.get(secs(1.0)).unwrap(), b"before");
        for it in &items {
            assert_eq!(&ring.get(secs(1.0)).unwrap(), it);
        }
        assert!(ring.empty(), "{}", ring.dump());
    }

    /// Producers killed while putting batches for ever: every item arrives once, whole, in
    /// order, up to where the producer was killed; then the queue goes on.
    #[test]
    fn batch_producer_killed_mid_stream() {
        let ring = Ring::create(64 << 10, 0).unwrap();
        let mut rng = Rng::new();
        for round in 0..20u32 {
            let kid = fork(|| {
                let mut seq = 0u32;
                loop {
                    let items: Vec<Vec<u8>> = (0..1 + seq % 37).map(|i| message(round, seq + i, 8 + (i as usize * 13) % 300)).collect();
                    ring.put_batch(&packed(&items), None).unwrap();
                    seq += items.len() as u32;
                }
            });
            let kill_after = 50 + rng.below(3000) as u32;
            let mut got = 0u32;
            let mut killed = false;
            loop {
                match ring.get(if killed { secs(0.5) } else { secs(5.0) }) {
                    Ok(v) => {
                        assert_eq!(check(&v), (round, got), "lost, repeated or foreign message");
                        got += 1;
                    }
                    Err(QueueError::Timeout) if killed => break,
                    Err(e) => panic!("{e}"),
                }
                if !killed && got >= kill_after {
                    unsafe { libc::kill(kid, libc::SIGKILL) };
                    assert_eq!(reap(kid), 1000 + libc::SIGKILL);
                    killed = true;
                }
            }
            assert!(ring.empty(), "{}", ring.dump());
        }
        ring.put_batch(&packed(&[b"still works".to_vec()]), None).unwrap();
        assert_eq!(ring.get(secs(1.0)).unwrap(), b"still works");
    }

    #[test]
    fn consumer_killed_mid_get() {
        consumer_kills(4 << 20);
    }

    #[test]
    fn consumer_killed_mid_get_of_out_of_ring_items() {
        consumer_kills(64 << 10);
    }

    fn consumer_kills(capacity: usize) {
        let ring = Ring::create(capacity, 0).unwrap();
        let mut rng = Rng::new();
        const M: u32 = 30;
        let mut lost = 0;
        for round in 0..10u32 {
            for seq in 0..M {
                ring.put(&message(round, seq, 100_000), None).unwrap();
            }
            let completed = counter();
            let kid = fork(|| {
                for expect in 0.. {
                    let v = ring.get(None).unwrap();
                    let (id, seq) = check(&v);
                    assert_eq!((id, seq), (round, expect));
                    word(&completed).store(expect as u64 + 1, SeqCst);
                }
                0
            });
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
            unsafe { libc::kill(kid, libc::SIGKILL) };
            assert_eq!(reap(kid), 1000 + libc::SIGKILL);
            let c = word(&completed).load(SeqCst) as u32;
            let mut first = None;
            let mut next = 0;
            // Items surely left wait long (a loaded machine); the one being taken may be lost.
            let must = M.saturating_sub(c + 1);
            loop {
                let sure = match first {
                    Some(_) => next < M,
                    None => must > 0,
                };
                let Ok(v) = ring.get(if sure { secs(5.0) } else { secs(0.2) }) else { break };
                let (id, seq) = check(&v);
                assert_eq!(id, round);
                if first.is_none() {
                    first = Some(seq);
                    next = seq;
                }
                assert_eq!(seq, next);
                next += 1;
            }
            if let Some(f) = first {
                assert!(f == c || f == c + 1, "round {round}: first {f}, child completed {c}");
                lost += (f == c + 1) as u32;
                assert_eq!(next, M);
            } else {
                assert!(c >= M - 1);
            }
            // The ring must not be wedged behind the dead consumer's message: cycle more
            // than its capacity through it.
            let item = message(round, 99, 100_000);
            for _ in 0..100 {
                ring.put(&item, secs(5.0)).expect("ring wedged");
                assert_eq!(check(&ring.get(secs(1.0)).unwrap()), (round, 99));
            }
        }
        eprintln!("consumer kills: {lost} of 10 lost the item being taken");
        assert!(ring.resident_bytes().unwrap() <= (HEADER_BYTES + ring.capacity()) as u64, "a dead consumer's item was given back");
    }

    #[test]
    fn twenty_megabyte_items() {
        let ring = Ring::create(DEFAULT_CAPACITY, 0).unwrap();
        let kid = fork(|| {
            for seq in 0..3 {
                ring.put(&message(1, seq, 20 << 20), None).unwrap();
            }
            0
        });
        for seq in 0..3 {
            let v = ring.get(secs(30.0)).unwrap();
            assert_eq!(v.len(), 20 << 20);
            assert_eq!(check(&v), (1, seq));
        }
        assert_eq!(reap(kid), 0);
    }

    #[test]
    fn throughput_smoke() {
        let ring = Ring::create(DEFAULT_CAPACITY, 0).unwrap();
        let n: u32 = if cfg!(debug_assertions) { 200_000 } else { 2_000_000 };
        let t = Instant::now();
        let kid = fork(|| {
            for i in 0..n {
                ring.put(&(i as u64).to_le_bytes(), None).unwrap();
            }
            0
        });
        for i in 0..n {
            let v = ring.get(secs(10.0)).unwrap();
            assert_eq!(v, (i as u64).to_le_bytes());
        }
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(reap(kid), 0);
        eprintln!("8-byte messages: {:.0} msgs/s", n as f64 / dt);

        let big: usize = 1 << 20;
        let m: u32 = if cfg!(debug_assertions) { 200 } else { 3000 };
        let t = Instant::now();
        let kid = fork(|| {
            let item = vec![5u8; big];
            for _ in 0..m {
                ring.put(&item, None).unwrap();
            }
            0
        });
        let mut buf = vec![0u8; big];
        for _ in 0..m {
            ring.get_with(secs(10.0), |a, b| {
                buf[..a.len()].copy_from_slice(a);
                buf[a.len()..].copy_from_slice(b);
            })
            .unwrap();
        }
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(reap(kid), 0);
        eprintln!("1 MiB messages: {:.2} GB/s", m as f64 * big as f64 / dt / 1e9);
    }

    #[test]
    fn an_item_in_parts_arrives_whole_across_the_wrap() {
        let r = Ring::create(4096, 0).unwrap();
        // Push the write position near the end so that the next item wraps.
        for _ in 0..5 {
            r.put(&[1u8; 600], None).unwrap();
            r.get(None).unwrap();
        }
        let body: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        r.put_parts(&[&[9u8], &body, &[7u8, 7]], None).unwrap();
        let got = r.get(None).unwrap();
        assert_eq!(got.len(), 1503);
        assert_eq!(got[0], 9);
        assert_eq!(&got[1..1501], &body[..]);
        assert_eq!(&got[1501..], &[7, 7]);
    }
}