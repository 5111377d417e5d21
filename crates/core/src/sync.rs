//! Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier whose whole
//! state lives in a shared heap [`Block`], usable by several processes at once.
//! One file: every primitive is built on the one semaphore word and its robust owner
//! protocol below (the second part of the file is its tests).
//!
//! Semaphore word (all SemLock kinds): bits 0..31 hold the count, bit 31 says "someone may
//! be sleeping". A would-be waiter sets the bit before sleeping on the word; a release
//! that sees the bit clears it and wakes everyone, who retry (losers set the bit again).
//! So an uncontended acquire or release is one CAS and never a system call, and
//! asynchronous waiters (the [`Waiter`](crate::waiter::Waiter) thread) are woken exactly
//! like sleeping threads, with no count of them to keep right.
//!
//! Robustness: Lock and RLock record the holder (pid, tid) and the holder process's
//! start time. A blocked acquirer sleeps in slices of [`OWNER_CHECK`]; after each it
//! checks the holder: if that process is gone, a zombie, or its pid now belongs to a
//! process with another start time, the acquirer takes the lock over (one CAS on the
//! owner word decides among several) and reports [`Acquired::Recovered`].
//!
//! Taking the count and writing the owner are two stores, and so are clearing the owner and
//! giving the count back: a process killed between them leaves the lock held with no owner
//! (or, killed mid-recovery, owned by [`RECOVERING`]). No holder can be checked then, so a
//! waiter that sees the same held, nameless state for [`NAMELESS_GRACE`] takes the lock
//! over (reported as `Recovered { dead_pid: 0 }`). A live thread is inside that window for a
//! few instructions, never for seconds.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::futex;
use crate::heap::{Block, Heap};
use crate::waiter::WaitOn;

const WAITERS: u32 = 1 << 31;
const COUNT: u32 = !WAITERS;
/// Largest semaphore value.
pub const SEM_VALUE_MAX: u32 = COUNT;
/// How long a blocked Lock/RLock acquirer sleeps before checking that the holder lives.
pub const OWNER_CHECK: Duration = Duration::from_millis(100);
/// How long a held Lock/RLock may show no owner before a waiter takes it over.
pub const NAMELESS_GRACE: Duration = Duration::from_secs(2);
/// Owner word while a recovery is writing the new owner's fields (two values, so that a
/// recovery of a recovery killed half-way can still be claimed by one CAS).
const RECOVERING: u64 = u64::MAX;
const RECOVERING_AGAIN: u64 = u64::MAX - 1;
const UNKNOWN_START: u64 = u64::MAX;

#[derive(Debug)]
pub enum SyncError {
    /// Lock released while unlocked (Python: ValueError).
    NotLocked,
    /// BoundedSemaphore released above its initial value (Python: ValueError).
    TooManyReleases,
    /// RLock released, or Condition used, by a thread that does not hold the lock
    /// (Python: AssertionError).
    NotOwner,
    /// Barrier broken (Python: BrokenBarrierError).
    Broken,
    /// A bad argument or a block that does not hold this kind of object.
    Value(String),
    Os(io::Error),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::NotLocked => f.write_str("semaphore or lock released too many times"),
            SyncError::TooManyReleases => f.write_str("semaphore or lock released too many times"),
            SyncError::NotOwner => f.write_str("attempt to release recursive lock not owned by thread"),
            SyncError::Broken => f.write_str("barrier is broken"),
            SyncError::Value(m) => f.write_str(m),
            SyncError::Os(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<io::Error> for SyncError {
    fn from(e: io::Error) -> Self {
        SyncError::Os(e)
    }
}

pub type Result<T> = std::result::Result<T, SyncError>;

/// Result of a non-blocking attempt: done, or the word to watch before retrying.
pub enum Try<T> {
    Ready(T),
    WouldBlock(WaitOn),
}

impl<T> Try<T> {
    pub fn is_ready(&self) -> bool {
        matches!(self, Try::Ready(_))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Lock = 1,
    RLock = 2,
    Semaphore = 3,
    BoundedSemaphore = 4,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            1 => Kind::Lock,
            2 => Kind::RLock,
            3 => Kind::Semaphore,
            4 => Kind::BoundedSemaphore,
            _ => return None,
        })
    }

    fn owned(self) -> bool {
        matches!(self, Kind::Lock | Kind::RLock)
    }
}

/// A successful acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    Clean,
    /// The previous holder, this pid, died holding the lock; it is now ours. The data it
    /// protected may be half-updated (log "lock holder <pid> died; lock recovered").
    /// `dead_pid` 0: a process died while taking, releasing or recovering the lock, before
    /// its name was written (the lock was held with no owner for [`NAMELESS_GRACE`]).
    Recovered { dead_pid: i32 },
}

// ---- identity of the calling thread -------------------------------------------------

static PID: AtomicI32 = AtomicI32::new(0);
static START: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

thread_local! {
    static TID: std::cell::Cell<(i32, i32)> = const { std::cell::Cell::new((0, 0)) };
}

extern "C" fn forget_identity() {
    PID.store(0, Relaxed);
    START.store(0, Relaxed);
}

fn my_pid() -> i32 {
    let p = PID.load(Relaxed);
    if p != 0 {
        return p;
    }
    // A forked child must not keep its parent's cached identity.
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(forget_identity));
    });
    let p = unsafe { libc::getpid() };
    PID.store(p, Relaxed);
    p
}

/// (pid << 32 | tid) of the calling thread: Python's (pid, thread ident) owner.
pub fn current_owner() -> u64 {
    let pid = my_pid();
    let tid = TID.with(|c| {
        let (p, t) = c.get();
        if p == pid {
            t
        } else {
            let t = unsafe { libc::gettid() };
            c.set((pid, t));
            t
        }
    });
    ((pid as u32 as u64) << 32) | tid as u32 as u64
}

fn my_start() -> u64 {
    let s = START.load(Relaxed);
    if s != 0 {
        return s;
    }
    let s = proc_stat(my_pid()).map_or(UNKNOWN_START, |(_, st)| st);
    START.store(s, Relaxed);
    s
}

/// (state letter, start time in clock ticks since boot) from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<(u8, u64)> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 is the state; field 22 the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether process `pid`, recorded with start time `start`, still runs.
pub fn process_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return true; // nothing recorded: assume alive rather than steal
    }
    if unsafe { libc::kill(pid, 0) } != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match proc_stat(pid) {
        // A zombie cannot release anything; a different start time means the pid was reused.
        Some((state, st)) => !(state == b'Z' || state == b'X' || (start != UNKNOWN_START && st != start)),
        None => (unsafe { libc::kill(pid, 0) }) == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH),
    }
}

// ---- the semaphore core, usable in any shared memory --------------------------------

const SEM_MAGIC: u32 = 0x5345_4d00;

/// State of a SemLock in shared memory (32 bytes).
#[repr(C)]
pub(crate) struct SemState {
    word: AtomicU32,
    kind: AtomicU32,
    max: AtomicU32,
    depth: AtomicU32,
    owner: AtomicU64,
    owner_start: AtomicU64,
}

impl SemState {
    fn init(&self, kind: Kind, value: u32, max: u32) {
        self.word.store(value, Relaxed);
        self.max.store(max, Relaxed);
        self.depth.store(0, Relaxed);
        self.owner.store(0, Relaxed);
        self.kind.store(SEM_MAGIC | kind as u32, Release);
    }

    /// An unlocked robust Lock (the heap's arena lock, Barrier's internal lock).
    pub(crate) fn init_lock(&self) {
        self.init(Kind::Lock, 1, 1);
    }

    fn kind(&self) -> Kind {
        Kind::from_u32(self.kind.load(Relaxed) & 0xff).unwrap_or(Kind::Semaphore)
    }

    /// Take one count, or mark "waiters" and return the value to sleep on.
    #[inline]
    fn take(&self) -> std::result::Result<(), u32> {
        let mut w = self.word.load(Relaxed);
        loop {
            let r = if w & COUNT > 0 {
                self.word.compare_exchange_weak(w, w - 1, Acquire, Relaxed)
            } else if w & WAITERS != 0 {
                return Err(w);
            } else {
                match self.word.compare_exchange_weak(w, w | WAITERS, Relaxed, Relaxed) {
                    Ok(_) => return Err(w | WAITERS),
                    Err(x) => Err(x),
                }
            };
            match r {
                Ok(_) => return Ok(()),
                Err(x) => w = x,
            }
        }
    }

    /// Add one count, up to `max`; wake sleepers if any were marked.
    #[inline]
    fn give(&self, max: u32) -> std::result::Result<(), ()> {
        let mut w = self.word.load(Relaxed);
        loop {
            let c = w & COUNT;
            if c >= max {
                return Err(());
            }
            match self.word.compare_exchange_weak(w, c + 1, Release, Relaxed) {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        if w & WAITERS != 0 {
            futex::wake(&self.word, u32::MAX);
        }
        Ok(())
    }

    #[inline]
    fn set_owner(&self, me: u64) {
        self.owner_start.store(my_start(), Relaxed);
        self.owner.store(me, Release);
        self.depth.store(1, Relaxed);
    }

    fn is_mine(&self, me: u64) -> bool {
        self.owner.load(Relaxed) == me && self.word.load(Relaxed) & COUNT == 0
    }

    /// If the holder process is dead, or the lock has been held with no owner for
    /// [`NAMELESS_GRACE`] (as `seen` remembers), make `me` the holder. Exactly one caller wins.
    fn recover(&self, me: u64, seen: &mut Option<Nameless>) -> Option<i32> {
        let o = self.owner.load(Acquire);
        let pid = (o >> 32) as i32;
        if o >= RECOVERING_AGAIN || pid == 0 {
            // Nobody to check: a holder between its two stores, or one killed there.
            let word = self.word.load(Relaxed);
            if word & COUNT != 0 {
                *seen = None;
                return None;
            }
            match seen {
                Some(n) if n.word == word && n.owner == o => {
                    if n.since.elapsed() < NAMELESS_GRACE {
                        return None;
                    }
                }
                _ => {
                    *seen = Some(Nameless { since: Instant::now(), word, owner: o });
                    return None;
                }
            }
        } else {
            *seen = None;
            if pid == my_pid() || process_alive(pid, self.owner_start.load(Relaxed)) {
                return None;
            }
        }
        // Claim first, then write our fields: a checker never pairs our pid with the
        // dead holder's start time.
        let claim = if o == RECOVERING { RECOVERING_AGAIN } else { RECOVERING };
        self.owner.compare_exchange(o, claim, Acquire, Relaxed).ok()?;
        *seen = None;
        if self.word.load(Relaxed) & COUNT != 0 {
            // Released meanwhile (a Lock may be released by anyone): nothing to recover.
            self.owner.store(0, Release);
            return None;
        }
        self.set_owner(me);
        Some(if o >= RECOVERING_AGAIN { 0 } else { pid })
    }

    /// One non-blocking attempt. `Err(expected)`: sleep while the word equals it.
    fn try_acquire(&self, check_owner: Option<&mut Option<Nameless>>) -> std::result::Result<Acquired, u32> {
        let kind = self.kind();
        if !kind.owned() {
            return self.take().map(|_| Acquired::Clean);
        }
        let me = current_owner();
        if kind == Kind::RLock && self.owner.load(Relaxed) == me {
            self.depth.fetch_add(1, Relaxed);
            return Ok(Acquired::Clean);
        }
        match self.take() {
            Ok(()) => {
                self.set_owner(me);
                Ok(Acquired::Clean)
            }
            Err(expected) => match check_owner.and_then(|seen| self.recover(me, seen)) {
                Some(dead_pid) => Ok(Acquired::Recovered { dead_pid }),
                None => Err(expected),
            },
        }
    }

    fn acquire(&self, block: bool, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        let mut expected = match self.try_acquire(None) {
            Ok(a) => return Ok(Some(a)),
            Err(_) if !block => return Ok(None),
            Err(e) => e,
        };
        let owned = self.kind().owned();
        let mut seen = None;
        loop {
            let until = if owned {
                let slice = Instant::now() + OWNER_CHECK;
                Some(deadline.map_or(slice, |d| d.min(slice)))
            } else {
                deadline
            };
            let r = futex::wait(&self.word, expected, until)?;
            match self.try_acquire((owned && r == futex::Wait::TimedOut).then_some(&mut seen)) {
                Ok(a) => return Ok(Some(a)),
                Err(e) => expected = e,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    fn release(&self) -> Result<()> {
        match self.kind() {
            Kind::Lock => {
                // Any thread may release a Lock; clear the owner before the count so a
                // checker never sees a free lock with an owner.
                self.owner.store(0, Release);
                self.give(1).map_err(|_| SyncError::NotLocked)
            }
            Kind::RLock => {
                if !self.is_mine(current_owner()) {
                    return Err(SyncError::NotOwner);
                }
                if self.depth.fetch_sub(1, Relaxed) > 1 {
                    return Ok(());
                }
                self.owner.store(0, Release);
                self.give(1).map_err(|_| SyncError::NotLocked)
            }
            Kind::Semaphore => self.give(SEM_VALUE_MAX).map_err(|_| SyncError::Value("semaphore value too large".into())),
            Kind::BoundedSemaphore => self.give(self.max.load(Relaxed)).map_err(|_| SyncError::TooManyReleases),
        }
    }

    /// Blocking acquire of an internal lock (arena, barrier); recovery is silent.
    pub(crate) fn lock_raw(&self) {
        while !matches!(self.acquire(true, None), Ok(Some(_))) {}
    }

    pub(crate) fn unlock_raw(&self) {
        let _ = self.release();
    }
}

fn state_in<T>(block: &Block) -> Result<&T> {
    if block.len() < std::mem::size_of::<T>() {
        return Err(SyncError::Value("block too small".into()));
    }
    Ok(unsafe { &*(block.as_ptr() as *const T) })
}

fn wait_on(block: &Block, word: &AtomicU32, expected: u32) -> WaitOn {
    // The word is inside `block`, whose arena the WaitOn keeps mapped.
    unsafe { WaitOn::new(word, expected, Some(block.arena().clone())) }
}

/// Python's SemLock: the state of a Lock, RLock, Semaphore or BoundedSemaphore.
pub struct SemLock {
    block: Block,
    /// What this process's asynchronous waiters last saw of a nameless holder.
    nameless: Mutex<Option<Nameless>>,
}

/// A held Lock/RLock seen without an owner: since when, and in which state.
pub(crate) struct Nameless {
    since: Instant,
    word: u32,
    owner: u64,
}

impl SemLock {
    /// A new SemLock with `value` counts (Lock/RLock: pass 1, 1).
    pub fn new(heap: &Heap, kind: Kind, value: u32, max: u32) -> Result<SemLock> {
        if value > SEM_VALUE_MAX || max > SEM_VALUE_MAX || (kind == Kind::BoundedSemaphore && value > max) {
            return Err(SyncError::Value("semaphore initial value out of range".into()));
        }
        let block = heap.alloc(std::mem::size_of::<SemState>())?;
        state_in::<SemState>(&block)?.init(kind, value, max);
        Ok(SemLock { block, nameless: Mutex::new(None) })
    }

    pub fn lock(heap: &Heap) -> Result<SemLock> {
        Self::new(heap, Kind::Lock, 1, 1)
    }

    pub fn rlock(heap: &Heap) -> Result<SemLock> {
        Self::new(heap, Kind::RLock, 1, 1)
    }

    pub fn semaphore(heap: &Heap, value: u32) -> Result<SemLock> {
        Self::new(heap, Kind::Semaphore, value, SEM_VALUE_MAX)
    }

    pub fn bounded_semaphore(heap: &Heap, value: u32) -> Result<SemLock> {
        Self::new(heap, Kind::BoundedSemaphore, value, value)
    }

    /// A SemLock whose block was received from another process.
    pub fn from_block(block: Block) -> Result<SemLock> {
        let s = state_in::<SemState>(&block)?;
        if s.kind.load(Acquire) & !0xff != SEM_MAGIC {
            return Err(SyncError::Value("block does not hold a lock".into()));
        }
        Ok(SemLock { block, nameless: Mutex::new(None) })
    }

    fn s(&self) -> &SemState {
        unsafe { &*(self.block.as_ptr() as *const SemState) }
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    pub fn kind(&self) -> Kind {
        self.s().kind()
    }

    /// Acquire without blocking. `check_owner`: if held by a dead process, take over
    /// (costs a kill(2) and a /proc read; pass it when retrying after a wait).
    /// `WouldBlock` carries a recheck interval for Lock/RLock.
    #[inline]
    pub fn try_acquire(&self, check_owner: bool) -> Try<Acquired> {
        let s = self.s();
        let r = if check_owner {
            let mut seen = self.nameless.lock().unwrap_or_else(|e| e.into_inner());
            s.try_acquire(Some(&mut seen))
        } else {
            s.try_acquire(None)
        };
        match r {
            Ok(a) => Try::Ready(a),
            Err(expected) => {
                let w = wait_on(&self.block, &s.word, expected);
                Try::WouldBlock(if s.kind().owned() { w.with_recheck(OWNER_CHECK) } else { w })
            }
        }
    }

    /// Python's `acquire(block, timeout)`: `None` when not acquired (timeout/non-blocking).
    #[inline]
    pub fn acquire(&self, block: bool, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        self.s().acquire(block, deadline)
    }

    #[inline]
    pub fn release(&self) -> Result<()> {
        self.s().release()
    }

    /// Current count (Python's `_get_value`; 0 for a held lock).
    pub fn value(&self) -> u32 {
        self.s().word.load(Relaxed) & COUNT
    }

    pub fn max_value(&self) -> u32 {
        self.s().max.load(Relaxed)
    }

    /// Whether the calling thread holds this Lock/RLock.
    pub fn is_mine(&self) -> bool {
        self.kind().owned() && self.s().is_mine(current_owner())
    }

    /// Recursion depth held by the calling thread (Python's `_count`).
    pub fn count(&self) -> u32 {
        if self.is_mine() {
            self.s().depth.load(Relaxed)
        } else {
            0
        }
    }

    /// Holder's pid, if held by a Lock/RLock holder.
    pub fn owner_pid(&self) -> Option<i32> {
        let o = self.s().owner.load(Acquire);
        (o >> 32 != 0 && o < RECOVERING_AGAIN).then_some((o >> 32) as i32)
    }

    /// Release completely, returning the recursion depth to restore (Condition.wait).
    pub fn release_save(&self) -> Result<u32> {
        let s = self.s();
        if !self.is_mine() {
            return Err(SyncError::NotOwner);
        }
        let depth = s.depth.swap(0, Relaxed);
        s.owner.store(0, Release);
        s.give(1).map_err(|_| SyncError::NotLocked)?;
        Ok(depth.max(1))
    }

    /// After re-acquiring, set the recursion depth saved by [`release_save`](Self::release_save).
    pub fn restore(&self, depth: u32) {
        self.s().depth.store(depth.max(1), Relaxed);
    }
}

// ---- Condition ----------------------------------------------------------------------

const COND_MAGIC: u32 = 0x434f_4e44;

#[repr(C)]
struct CondState {
    magic: AtomicU32,
    /// Bumped by every notify that wakes someone: the futex word.
    seq: AtomicU32,
    /// Waiting and not yet chosen by a notify.
    waiters: AtomicU32,
    /// Chosen by a notify, not yet gone.
    to_wake: AtomicU32,
}

/// A wait in progress: from [`Condition::wait_begin`] to [`Condition::wait_finish`].
#[derive(Clone, Copy, Debug)]
pub struct CondWait {
    entry_seq: u32,
    depth: u32,
}

/// Condition variable over a Lock or RLock.
///
/// `notify(n)` moves n waiters from "waiting" to "to wake" and bumps the sequence word;
/// a waiter leaves when the sequence moved past its entry and it can take one "to wake".
/// Waiters that arrived after a notify cannot take its wake-ups. The order among
/// earlier waiters is not FIFO (Python does not promise it either).
pub struct Condition {
    block: Block,
    lock: Arc<SemLock>,
}

impl Condition {
    pub fn new(heap: &Heap, lock: Arc<SemLock>) -> Result<Condition> {
        if !lock.kind().owned() {
            return Err(SyncError::Value("Condition needs a Lock or RLock".into()));
        }
        let block = heap.alloc(std::mem::size_of::<CondState>())?;
        state_in::<CondState>(&block)?.magic.store(COND_MAGIC, Release);
        Ok(Condition { block, lock })
    }

    pub fn from_block(block: Block, lock: Arc<SemLock>) -> Result<Condition> {
        if state_in::<CondState>(&block)?.magic.load(Acquire) != COND_MAGIC {
            return Err(SyncError::Value("block does not hold a condition".into()));
        }
        Ok(Condition { block, lock })
    }

    fn s(&self) -> &CondState {
        unsafe { &*(self.block.as_ptr() as *const CondState) }
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    pub fn lock(&self) -> &Arc<SemLock> {
        &self.lock
    }

    /// Register as a waiter and release the lock (which the caller must hold).
    pub fn wait_begin(&self) -> Result<CondWait> {
        if !self.lock.is_mine() {
            return Err(SyncError::NotOwner);
        }
        let s = self.s();
        s.waiters.fetch_add(1, Relaxed);
        let entry_seq = s.seq.load(Acquire);
        let depth = self.lock.release_save()?;
        Ok(CondWait { entry_seq, depth })
    }

    /// Whether this waiter has been notified (taking the wake-up), without blocking.
    pub fn wait_poll(&self, w: &CondWait) -> Try<()> {
        let s = self.s();
        let cur = s.seq.load(Acquire);
        if cur != w.entry_seq && take_one(&s.to_wake) {
            return Try::Ready(());
        }
        Try::WouldBlock(wait_on(&self.block, &s.seq, cur))
    }

    /// With the lock re-acquired: restore its depth and settle the waiter's account.
    /// Returns whether it was notified (a waiter that timed out may still find a
    /// wake-up meant for it).
    pub fn wait_finish(&self, w: CondWait, notified: bool) -> bool {
        self.lock.restore(w.depth);
        if notified {
            return true;
        }
        let s = self.s();
        if s.seq.load(Acquire) != w.entry_seq && take_one(&s.to_wake) {
            return true;
        }
        let _ = s.waiters.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
        false
    }

    /// Python's `wait(timeout)`: release, wait for a notify, re-acquire. False on timeout.
    pub fn wait(&self, deadline: Option<Instant>) -> Result<bool> {
        let w = self.wait_begin()?;
        let mut notified = false;
        loop {
            match self.wait_poll(&w) {
                Try::Ready(()) => {
                    notified = true;
                    break;
                }
                Try::WouldBlock(on) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    if let Err(e) = on.wait(deadline) {
                        self.lock.acquire(true, None)?;
                        self.wait_finish(w, false);
                        return Err(e.into());
                    }
                }
            }
        }
        self.lock.acquire(true, None)?;
        Ok(self.wait_finish(w, notified))
    }

    /// Wake up to `n` waiters; the lock must be held. Returns how many were chosen.
    pub fn notify(&self, n: u32) -> Result<u32> {
        if !self.lock.is_mine() {
            return Err(SyncError::NotOwner);
        }
        let s = self.s();
        let k = s.waiters.load(Relaxed).min(n);
        if k > 0 {
            s.waiters.fetch_sub(k, Relaxed);
            s.to_wake.fetch_add(k, Relaxed);
            s.seq.fetch_add(1, Release);
            futex::wake(&s.seq, u32::MAX);
        }
        Ok(k)
    }

    pub fn notify_all(&self) -> Result<u32> {
        self.notify(u32::MAX)
    }

    /// Waiters not yet notified (for repr/debugging).
    pub fn n_waiting(&self) -> u32 {
        self.s().waiters.load(Relaxed)
    }
}

fn take_one(c: &AtomicU32) -> bool {
    c.fetch_update(AcqRel, Relaxed, |v| v.checked_sub(1)).is_ok()
}

// ---- Event --------------------------------------------------------------------------

const EVENT_MAGIC: u32 = 0x4556_4e54;
const SET: u32 = 1;

#[repr(C)]
struct EventState {
    magic: AtomicU32,
    /// SET | WAITERS.
    word: AtomicU32,
}

pub struct Event {
    block: Block,
}

impl Event {
    pub fn new(heap: &Heap) -> Result<Event> {
        let block = heap.alloc(std::mem::size_of::<EventState>())?;
        state_in::<EventState>(&block)?.magic.store(EVENT_MAGIC, Release);
        Ok(Event { block })
    }

    pub fn from_block(block: Block) -> Result<Event> {
        if state_in::<EventState>(&block)?.magic.load(Acquire) != EVENT_MAGIC {
            return Err(SyncError::Value("block does not hold an event".into()));
        }
        Ok(Event { block })
    }

    fn s(&self) -> &EventState {
        unsafe { &*(self.block.as_ptr() as *const EventState) }
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    pub fn is_set(&self) -> bool {
        self.s().word.load(Acquire) & SET != 0
    }

    pub fn set(&self) {
        let w = &self.s().word;
        if w.swap(SET, Release) & WAITERS != 0 {
            futex::wake(w, u32::MAX);
        }
    }

    pub fn clear(&self) {
        // Keep the waiters mark: sleepers are still sleeping on it.
        self.s().word.fetch_and(!SET, Relaxed);
    }

    /// Ready if set, otherwise the word to watch.
    pub fn try_wait(&self) -> Try<()> {
        let word = &self.s().word;
        let mut v = word.load(Acquire);
        loop {
            if v & SET != 0 {
                return Try::Ready(());
            }
            if v & WAITERS != 0 {
                return Try::WouldBlock(wait_on(&self.block, word, v));
            }
            match word.compare_exchange_weak(v, v | WAITERS, AcqRel, Acquire) {
                Ok(_) => return Try::WouldBlock(wait_on(&self.block, word, v | WAITERS)),
                Err(x) => v = x,
            }
        }
    }

    /// Python's `wait(timeout)`: the flag on return.
    pub fn wait(&self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            match self.try_wait() {
                Try::Ready(()) => return Ok(true),
                Try::WouldBlock(on) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(false);
                    }
                    on.wait(deadline)?;
                }
            }
        }
    }
}

// ---- Barrier ------------------------------------------------------------------------

const BARRIER_MAGIC: u32 = 0x4241_5252;

#[repr(C)]
struct BarrierState {
    magic: AtomicU32,
    /// Bumped on every change of generation or broken state: the futex word.
    seq: AtomicU32,
    parties: AtomicU32,
    /// Arrived in the current generation (Python's n_waiting).
    count: AtomicU32,
    generation: AtomicU32,
    broken: AtomicU32,
    /// Bit `g % 64` set: generation g ended broken rather than passing.
    outcomes: AtomicU64,
    lock: SemState,
}

/// One party's arrival at a Barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub generation: u32,
    /// Python's return value of `wait()`: distinct, 0..parties-1 in order of arrival.
    pub index: u32,
    /// The last to arrive: it runs the action, then calls [`Barrier::pass`] (or
    /// [`Barrier::abort`] if the action failed). Nobody is released before.
    pub last: bool,
}

/// Python's Barrier, with generations instead of a draining phase: a party that
/// arrives while the previous pass's parties are still leaving joins the next pass.
pub struct Barrier {
    block: Block,
}

impl Barrier {
    pub fn new(heap: &Heap, parties: u32) -> Result<Barrier> {
        if parties == 0 || parties > i32::MAX as u32 {
            return Err(SyncError::Value("parties must be > 0".into()));
        }
        let block = heap.alloc(std::mem::size_of::<BarrierState>())?;
        let s = state_in::<BarrierState>(&block)?;
        s.parties.store(parties, Relaxed);
        s.lock.init_lock();
        s.magic.store(BARRIER_MAGIC, Release);
        Ok(Barrier { block })
    }

    pub fn from_block(block: Block) -> Result<Barrier> {
        if state_in::<BarrierState>(&block)?.magic.load(Acquire) != BARRIER_MAGIC {
            return Err(SyncError::Value("block does not hold a barrier".into()));
        }
        Ok(Barrier { block })
    }

    fn s(&self) -> &BarrierState {
        unsafe { &*(self.block.as_ptr() as *const BarrierState) }
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    pub fn parties(&self) -> u32 {
        self.s().parties.load(Relaxed)
    }

    pub fn n_waiting(&self) -> u32 {
        let s = self.s();
        if s.broken.load(Acquire) != 0 {
            0
        } else {
            s.count.load(Acquire).min(s.parties.load(Relaxed))
        }
    }

    pub fn broken(&self) -> bool {
        self.s().broken.load(Acquire) != 0
    }

    fn with_lock<R>(&self, f: impl FnOnce(&BarrierState) -> R) -> R {
        let s = self.s();
        s.lock.lock_raw();
        let r = f(s);
        s.lock.unlock_raw();
        r
    }

    /// Publish a state change (lock held).
    fn changed(s: &BarrierState) {
        s.seq.fetch_add(1, Release);
        futex::wake(&s.seq, u32::MAX);
    }

    /// End the current generation as broken (lock held).
    fn break_generation(s: &BarrierState) {
        let g = s.generation.load(Relaxed);
        s.outcomes.fetch_or(1 << (g % 64), Relaxed);
        s.count.store(0, Relaxed);
        s.generation.store(g.wrapping_add(1), Release);
        Self::changed(s);
    }

    /// Arrive. `WouldBlock` while the previous pass's action is still running.
    pub fn try_arrive(&self) -> Result<Try<Arrival>> {
        self.with_lock(|s| {
            if s.broken.load(Relaxed) != 0 {
                return Err(SyncError::Broken);
            }
            let parties = s.parties.load(Relaxed);
            let count = s.count.load(Relaxed);
            if count >= parties {
                return Ok(Try::WouldBlock(wait_on(&self.block, &s.seq, s.seq.load(Relaxed))));
            }
            s.count.store(count + 1, Release);
            Ok(Try::Ready(Arrival { generation: s.generation.load(Relaxed), index: count, last: count + 1 == parties }))
        })
    }

    /// Whether the arrival's pass is over: `Ok(Ready(index))` passed, `Err(Broken)` broken.
    pub fn poll(&self, a: &Arrival) -> Result<Try<u32>> {
        let s = self.s();
        let seq = s.seq.load(Acquire);
        let g = s.generation.load(Acquire);
        if g != a.generation {
            return if s.outcomes.load(Relaxed) & (1 << (a.generation % 64)) != 0 {
                Err(SyncError::Broken)
            } else {
                Ok(Try::Ready(a.index))
            };
        }
        Ok(Try::WouldBlock(wait_on(&self.block, &s.seq, seq)))
    }

    /// The last arrival, after running the action: release everyone.
    pub fn pass(&self, a: &Arrival) -> Result<u32> {
        self.with_lock(|s| {
            if s.generation.load(Relaxed) != a.generation || s.broken.load(Relaxed) != 0 {
                return Err(SyncError::Broken);
            }
            let g = a.generation;
            s.outcomes.fetch_and(!(1 << (g % 64)), Relaxed);
            s.count.store(0, Relaxed);
            s.generation.store(g.wrapping_add(1), Release);
            Self::changed(s);
            Ok(a.index)
        })
    }

    /// Break the barrier when `a`'s wait timed out (Python breaks it for everyone).
    pub fn timed_out(&self, a: &Arrival) {
        self.with_lock(|s| {
            if s.generation.load(Relaxed) == a.generation && s.broken.load(Relaxed) == 0 {
                s.broken.store(1, Release);
                Self::break_generation(s);
            }
        })
    }

    /// Put the barrier in the broken state; current and future waiters get Broken.
    pub fn abort(&self) {
        self.with_lock(|s| {
            if s.broken.load(Relaxed) == 0 {
                s.broken.store(1, Release);
                Self::break_generation(s);
            }
        })
    }

    /// Back to the empty state; current waiters get Broken.
    pub fn reset(&self) {
        self.with_lock(|s| {
            if s.broken.swap(0, Release) != 0 {
                Self::changed(s);
            } else if s.count.load(Relaxed) > 0 {
                Self::break_generation(s);
            }
        })
    }

    /// Python's `wait(timeout)`. `action` runs in the last arrival before anyone is
    /// released; returning false breaks the barrier (Python: the action raised).
    pub fn wait(&self, deadline: Option<Instant>, action: impl FnOnce() -> bool) -> Result<u32> {
        let a = loop {
            match self.try_arrive()? {
                Try::Ready(a) => break a,
                Try::WouldBlock(on) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        // Python would break here too: a timed-out party breaks the barrier.
                        self.abort();
                        return Err(SyncError::Broken);
                    }
                    on.wait(deadline)?;
                }
            }
        };
        if a.last {
            if action() {
                return self.pass(&a);
            }
            self.abort();
            return Err(SyncError::Broken);
        }
        loop {
            match self.poll(&a)? {
                Try::Ready(i) => return Ok(i),
                Try::WouldBlock(on) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        self.timed_out(&a);
                        // The pass may have completed just before the break.
                        return match self.poll(&a)? {
                            Try::Ready(i) => Ok(i),
                            Try::WouldBlock(_) => Err(SyncError::Broken),
                        };
                    }
                    on.wait(deadline)?;
                }
            }
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiter::Waiter;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn soon(n: u64) -> Option<Instant> {
        Some(Instant::now() + ms(n))
    }

    /// Run `f` in a forked child (atomics and futexes only), exiting with its code.
    fn fork_child(f: impl FnOnce() -> i32) -> i32 {
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            unsafe { libc::_exit(code) };
        }
        pid
    }

    fn reap(pid: i32) -> i32 {
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        }
    }

    #[test]
    fn lock_basics_and_timeouts() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::lock(&heap).unwrap());
        assert_eq!(lock.acquire(true, None).unwrap(), Some(Acquired::Clean));
        assert!(lock.is_mine());
        assert_eq!(lock.acquire(false, None).unwrap(), None);
        assert!(!lock.try_acquire(false).is_ready());
        let t = Instant::now();
        assert_eq!(lock.acquire(true, soon(60)).unwrap(), None);
        let e = t.elapsed();
        assert!(e >= ms(60) && e < ms(1000), "{e:?}");
        // Any thread may release a Lock.
        let l2 = lock.clone();
        std::thread::spawn(move || l2.release().unwrap()).join().unwrap();
        assert!(matches!(lock.release(), Err(SyncError::NotLocked)));
        assert_eq!(lock.value(), 1);
        // A release from another thread wakes a blocked acquirer promptly.
        lock.acquire(true, None).unwrap();
        let l2 = lock.clone();
        let h = std::thread::spawn(move || {
            let r = l2.acquire(true, soon(5000)).unwrap();
            (r, Instant::now())
        });
        std::thread::sleep(ms(30));
        // Measured from the release, not from the thread's start, which a loaded machine delays.
        let released = Instant::now();
        lock.release().unwrap();
        let (r, acquired) = h.join().unwrap();
        assert_eq!(r, Some(Acquired::Clean));
        assert!(acquired >= released, "acquired before the release");
        assert!(acquired - released < ms(1000), "{:?}", acquired - released);
    }

    #[test]
    fn rlock_recursion_and_ownership() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::rlock(&heap).unwrap());
        for _ in 0..3 {
            lock.acquire(true, None).unwrap();
        }
        assert_eq!(lock.count(), 3);
        let l2 = lock.clone();
        std::thread::spawn(move || {
            assert!(matches!(l2.release(), Err(SyncError::NotOwner)));
            assert_eq!(l2.acquire(false, None).unwrap(), None);
            assert_eq!(l2.count(), 0);
        })
        .join()
        .unwrap();
        for _ in 0..3 {
            lock.release().unwrap();
        }
        assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
        let l2 = lock.clone();
        std::thread::spawn(move || {
            assert!(l2.acquire(false, None).unwrap().is_some());
            l2.release().unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn semaphores_count() {
        let heap = Heap::new();
        let s = SemLock::semaphore(&heap, 2).unwrap();
        assert!(s.acquire(false, None).unwrap().is_some());
        assert!(s.acquire(false, None).unwrap().is_some());
        assert_eq!(s.value(), 0);
        assert!(s.acquire(false, None).unwrap().is_none());
        let t = Instant::now();
        assert!(s.acquire(true, soon(40)).unwrap().is_none());
        assert!(t.elapsed() >= ms(40));
        for _ in 0..5 {
            s.release().unwrap();
        }
        assert_eq!(s.value(), 5);
        let b = SemLock::bounded_semaphore(&heap, 2).unwrap();
        assert!(matches!(b.release(), Err(SyncError::TooManyReleases)));
        b.acquire(true, None).unwrap();
        b.release().unwrap();
        assert_eq!(b.value(), 2);
        assert!(SemLock::new(&heap, Kind::BoundedSemaphore, 3, 2).is_err());
        // Received from another process: the same object.
        let again = SemLock::from_block(heap.adopt(&s.block().id()).unwrap()).unwrap();
        assert_eq!(again.value(), 5);
        assert!(Event::from_block(heap.adopt(&s.block().id()).unwrap()).is_err());
    }

    #[test]
    fn lock_contention_across_threads() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::lock(&heap).unwrap());
        let data = Arc::new(heap.alloc(8).unwrap());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (lock, data) = (lock.clone(), data.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        lock.acquire(true, None).unwrap();
                        unsafe {
                            let p = data.as_ptr() as *mut u64;
                            p.write_volatile(p.read_volatile() + 1);
                        }
                        lock.release().unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(unsafe { *(data.as_ptr() as *const u64) }, 80_000);
        assert_eq!(lock.value(), 1);
    }

    #[test]
    fn lock_contention_across_processes() {
        for kind in [Kind::Lock, Kind::RLock, Kind::Semaphore] {
            let heap = Heap::new();
            let lock = SemLock::new(&heap, kind, 1, 1).unwrap();
            let data = heap.alloc(8).unwrap();
            let p = data.as_ptr() as *mut u64;
            let work = || {
                for _ in 0..20_000 {
                    lock.acquire(true, None).unwrap();
                    unsafe { p.write_volatile(p.read_volatile() + 1) };
                    lock.release().unwrap();
                }
                0
            };
            let kids: Vec<i32> = (0..2).map(|_| fork_child(work)).collect();
            work();
            for k in kids {
                assert_eq!(reap(k), 0);
            }
            assert_eq!(unsafe { *p }, 60_000, "{kind:?}");
        }
    }

    fn killed_holder_is_recovered(kind: Kind, reap_first: bool) {
        let heap = Heap::new();
        let lock = SemLock::new(&heap, kind, 1, 1).unwrap();
        let flag = heap.alloc(4).unwrap();
        let flag = unsafe { &*(flag.as_ptr() as *const AtomicU32) };
        let pid = fork_child(|| {
            lock.acquire(true, None).unwrap();
            if kind == Kind::RLock {
                lock.acquire(true, None).unwrap();
            }
            flag.store(1, SeqCst);
            loop {
                unsafe { libc::pause() };
            }
        });
        let t = Instant::now();
        while flag.load(SeqCst) == 0 {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(ms(1));
        }
        assert_eq!(lock.owner_pid(), Some(pid));
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if reap_first {
            reap(pid);
        }
        let t = Instant::now();
        let got = lock.acquire(true, soon(10_000)).unwrap();
        assert_eq!(got, Some(Acquired::Recovered { dead_pid: pid }));
        // The holder is checked every OWNER_CHECK (100 ms): taken over within a few checks,
        // with room for a loaded machine (a missed check would wait for the deadline).
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(lock.is_mine());
        assert_eq!(lock.count(), 1);
        lock.release().unwrap();
        assert_eq!(lock.value(), 1);
        assert_eq!(lock.acquire(false, None).unwrap(), Some(Acquired::Clean));
        lock.release().unwrap();
        if !reap_first {
            reap(pid);
        }
    }

    /// A child takes `lock`'s count, leaves `owner_left` as its owner and exits.
    fn leave_nameless(lock: &SemLock, owner_left: u64) {
        let pid = fork_child(|| {
            let s = lock.s();
            if s.take().is_err() {
                return 1;
            }
            s.owner.store(owner_left, Release);
            0
        });
        assert_eq!(reap(pid), 0);
    }

    /// A process killed between taking the count and writing its name (or between
    /// clearing its name and giving the count back) leaves the lock held by nobody: a child
    /// makes exactly that state and exits. Blocking and asynchronous waiters take it over
    /// after NAMELESS_GRACE, not before.
    fn nameless_holder_is_recovered(kind: Kind, owner_left: u64) {
        let heap = Heap::new();
        let lock = SemLock::new(&heap, kind, 1, 1).unwrap();
        leave_nameless(&lock, owner_left);
        assert_eq!(lock.value(), 0, "held");
        assert_eq!(lock.owner_pid(), None, "by nobody known");
        // Blocking: not before the grace, well within the deadline.
        let t = Instant::now();
        let got = lock.acquire(true, soon(20_000)).unwrap();
        assert_eq!(got, Some(Acquired::Recovered { dead_pid: 0 }), "{kind:?}");
        assert!(t.elapsed() >= NAMELESS_GRACE, "{:?}", t.elapsed());
        assert!(lock.is_mine());
        lock.release().unwrap();
        assert_eq!(lock.value(), 1);
        // Asynchronous waiters (repeated non-blocking checks) likewise.
        leave_nameless(&lock, owner_left);
        let t = Instant::now();
        let got = loop {
            match lock.try_acquire(true) {
                Try::Ready(a) => break a,
                Try::WouldBlock(_) => {
                    assert!(t.elapsed() < Duration::from_secs(20), "never taken over");
                    std::thread::sleep(OWNER_CHECK);
                }
            }
        };
        assert_eq!(got, Acquired::Recovered { dead_pid: 0 });
        assert!(t.elapsed() >= NAMELESS_GRACE);
        lock.release().unwrap();
    }

    #[test]
    fn lock_taken_without_a_name_is_recovered() {
        nameless_holder_is_recovered(Kind::Lock, 0);
    }

    #[test]
    fn rlock_with_half_written_owner_is_recovered() {
        // The JS fast path writes the owner's tid half before its pid half.
        nameless_holder_is_recovered(Kind::RLock, 12345);
    }

    #[test]
    fn lock_left_by_a_killed_recovery_is_recovered() {
        nameless_holder_is_recovered(Kind::Lock, RECOVERING);
        nameless_holder_is_recovered(Kind::Lock, RECOVERING_AGAIN);
    }

    /// A live holder slow to write its name is not robbed: the lock is held nameless for
    /// less than the grace, then named and released; the waiter gets it cleanly.
    #[test]
    fn slow_but_live_holder_is_not_robbed() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::new(&heap, Kind::Lock, 1, 1).unwrap());
        lock.s().take().unwrap();
        let l2 = lock.clone();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(NAMELESS_GRACE / 2);
            l2.s().set_owner(current_owner());
            std::thread::sleep(NAMELESS_GRACE);
            l2.release().unwrap();
        });
        let got = lock.acquire(true, soon(30_000)).unwrap();
        assert_eq!(got, Some(Acquired::Clean));
        holder.join().unwrap();
        lock.release().unwrap();
    }

    #[test]
    fn killed_lock_holder_zombie() {
        killed_holder_is_recovered(Kind::Lock, false);
    }

    #[test]
    fn killed_rlock_holder_reaped() {
        killed_holder_is_recovered(Kind::RLock, true);
    }

    #[test]
    fn live_holder_in_another_process_is_not_robbed() {
        let heap = Heap::new();
        let lock = SemLock::lock(&heap).unwrap();
        let flag = heap.alloc(4).unwrap();
        let flag = unsafe { &*(flag.as_ptr() as *const AtomicU32) };
        let pid = fork_child(|| {
            lock.acquire(true, None).unwrap();
            flag.store(1, SeqCst);
            // Long enough that a loaded machine cannot let the timed acquire below outlast it.
            std::thread::sleep(ms(2000));
            lock.release().unwrap();
            0
        });
        while flag.load(SeqCst) == 0 {
            std::thread::sleep(ms(1));
        }
        assert_eq!(lock.acquire(true, soon(250)).unwrap(), None);
        assert_eq!(lock.acquire(true, soon(10000)).unwrap(), Some(Acquired::Clean));
        lock.release().unwrap();
        assert_eq!(reap(pid), 0);
    }

    #[test]
    fn condition_wait_notify() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::rlock(&heap).unwrap());
        let cond = Arc::new(Condition::new(&heap, lock.clone()).unwrap());
        assert!(matches!(cond.notify(1), Err(SyncError::NotOwner)));
        assert!(matches!(cond.wait(None), Err(SyncError::NotOwner)));
        // Timeout: false, lock held again at the same depth.
        lock.acquire(true, None).unwrap();
        lock.acquire(true, None).unwrap();
        let t = Instant::now();
        assert!(!cond.wait(soon(50)).unwrap());
        // Never early; the upper bound only catches a wait that ignores its deadline.
        assert!(t.elapsed() >= ms(50) && t.elapsed() < ms(5000), "{:?}", t.elapsed());
        assert_eq!(lock.count(), 2);
        lock.release().unwrap();
        lock.release().unwrap();
        // notify(1) wakes exactly one of three; notify_all the rest.
        let woken = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (cond, woken) = (cond.clone(), woken.clone());
                std::thread::spawn(move || {
                    let lock = cond.lock().clone();
                    lock.acquire(true, None).unwrap();
                    lock.acquire(true, None).unwrap();
                    let r = cond.wait(soon(5000)).unwrap();
                    assert_eq!(lock.count(), 2);
                    woken.fetch_add(1, SeqCst);
                    lock.release().unwrap();
                    lock.release().unwrap();
                    r
                })
            })
            .collect();
        while cond.n_waiting() < 3 {
            std::thread::sleep(ms(1));
        }
        lock.acquire(true, None).unwrap();
        assert_eq!(cond.notify(1).unwrap(), 1);
        lock.release().unwrap();
        std::thread::sleep(ms(50));
        assert_eq!(woken.load(SeqCst), 1);
        lock.acquire(true, None).unwrap();
        assert_eq!(cond.notify_all().unwrap(), 2);
        lock.release().unwrap();
        for h in hs {
            assert!(h.join().unwrap());
        }
        assert_eq!(woken.load(SeqCst), 3);
        assert_eq!(cond.n_waiting(), 0);
    }

    #[test]
    fn condition_across_processes() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::lock(&heap).unwrap());
        let cond = Condition::new(&heap, lock.clone()).unwrap();
        let data = heap.alloc(4).unwrap();
        let v = unsafe { &*(data.as_ptr() as *const AtomicU32) };
        let pid = fork_child(|| {
            lock.acquire(true, None).unwrap();
            while v.load(SeqCst) == 0 {
                if !cond.wait(soon(5000)).unwrap() {
                    return 2;
                }
            }
            lock.release().unwrap();
            0
        });
        std::thread::sleep(ms(50));
        lock.acquire(true, None).unwrap();
        v.store(1, SeqCst);
        cond.notify(1).unwrap();
        lock.release().unwrap();
        assert_eq!(reap(pid), 0);
    }

    #[test]
    fn event_set_clear_wait() {
        let heap = Heap::new();
        let ev = Arc::new(Event::new(&heap).unwrap());
        assert!(!ev.is_set());
        let t = Instant::now();
        assert!(!ev.wait(soon(40)).unwrap());
        assert!(t.elapsed() >= ms(40));
        let e2 = ev.clone();
        let h = std::thread::spawn(move || e2.wait(soon(5000)).unwrap());
        std::thread::sleep(ms(20));
        ev.set();
        assert!(h.join().unwrap());
        assert!(ev.wait(None).unwrap());
        ev.clear();
        assert!(!ev.is_set());
        assert!(!ev.try_wait().is_ready());
        // A set() in another process wakes us.
        let pid = fork_child(|| {
            std::thread::sleep(ms(30));
            ev.set();
            0
        });
        assert!(ev.wait(soon(5000)).unwrap());
        assert_eq!(reap(pid), 0);
    }

    #[test]
    fn barrier_with_five_parties() {
        let heap = Heap::new();
        let b = Arc::new(Barrier::new(&heap, 5).unwrap());
        let actions = Arc::new(AtomicU32::new(0));
        let rounds = 20;
        let hs: Vec<_> = (0..5)
            .map(|_| {
                let (b, actions) = (b.clone(), actions.clone());
                std::thread::spawn(move || {
                    (0..rounds)
                        .map(|_| {
                            b.wait(soon(5000), || {
                                actions.fetch_add(1, SeqCst);
                                true
                            })
                            .unwrap()
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let results: Vec<Vec<u32>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        for r in 0..rounds {
            let mut idx: Vec<u32> = results.iter().map(|v| v[r]).collect();
            idx.sort_unstable();
            assert_eq!(idx, vec![0, 1, 2, 3, 4]);
        }
        assert_eq!(actions.load(SeqCst), rounds as u32);
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.broken());
    }

    #[test]
    fn barrier_across_processes() {
        let heap = Heap::new();
        let b = Barrier::new(&heap, 3).unwrap();
        let kids: Vec<i32> =
            (0..2).map(|_| fork_child(|| (0..10).map(|_| b.wait(soon(5000), || true).map_or(100, |_| 0)).sum())).collect();
        for _ in 0..10 {
            b.wait(soon(5000), || true).unwrap();
        }
        for k in kids {
            assert_eq!(reap(k), 0);
        }
    }

    #[test]
    fn barrier_breaks_on_timeout_abort_and_reset() {
        let heap = Heap::new();
        let b = Arc::new(Barrier::new(&heap, 3).unwrap());
        // One waits forever, the other times out: both get Broken.
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.wait(None, || true));
        while b.n_waiting() < 1 {
            std::thread::sleep(ms(1));
        }
        let t = Instant::now();
        assert!(matches!(b.wait(soon(50), || true), Err(SyncError::Broken)));
        // Never early; the upper bound only catches a wait that ignores its deadline.
        assert!(t.elapsed() >= ms(50) && t.elapsed() < ms(5000), "{:?}", t.elapsed());
        assert!(matches!(h.join().unwrap(), Err(SyncError::Broken)));
        assert!(b.broken());
        assert!(matches!(b.wait(None, || true), Err(SyncError::Broken)));
        b.reset();
        assert!(!b.broken());
        // Reset with a waiter: the waiter gets Broken, the barrier stays usable.
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.wait(None, || true));
        while b.n_waiting() < 1 {
            std::thread::sleep(ms(1));
        }
        b.reset();
        assert!(matches!(h.join().unwrap(), Err(SyncError::Broken)));
        assert!(!b.broken());
        assert_eq!(b.n_waiting(), 0);
        // An action that fails breaks it for everyone.
        let b2 = b.clone();
        let b3 = b.clone();
        let h1 = std::thread::spawn(move || b2.wait(None, || false));
        let h2 = std::thread::spawn(move || b3.wait(None, || false));
        let r3 = b.wait(None, || false);
        let rs = [h1.join().unwrap(), h2.join().unwrap(), r3];
        assert!(rs.iter().all(|r| matches!(r, Err(SyncError::Broken))));
        b.reset();
        // abort() breaks waiters.
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.wait(None, || true));
        while b.n_waiting() < 1 {
            std::thread::sleep(ms(1));
        }
        b.abort();
        assert!(matches!(h.join().unwrap(), Err(SyncError::Broken)));
    }

    #[test]
    fn async_acquire_through_the_waiter() {
        let heap = Heap::new();
        let lock = Arc::new(SemLock::lock(&heap).unwrap());
        let (tx, rx) = mpsc::channel();
        let waiter = Waiter::start(move |t| tx.send(t).unwrap()).unwrap();
        lock.acquire(true, None).unwrap();
        let Try::WouldBlock(on) = lock.try_acquire(false) else { panic!("lock is held") };
        assert_eq!(on.recheck, Some(OWNER_CHECK));
        waiter.watch(42, on, None).unwrap();
        let l2 = lock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(ms(20));
            l2.release().unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), vec![42]);
        assert!(matches!(lock.try_acquire(true), Try::Ready(Acquired::Clean)));
        lock.release().unwrap();

        // Event and Barrier expose their words the same way.
        let ev = Event::new(&heap).unwrap();
        let Try::WouldBlock(on) = ev.try_wait() else { panic!("not set") };
        waiter.watch(43, on, None).unwrap();
        ev.set();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), vec![43]);
        let b = Barrier::new(&heap, 2).unwrap();
        let Try::Ready(first) = b.try_arrive().unwrap() else { panic!() };
        assert!(!first.last);
        let Try::WouldBlock(on) = b.poll(&first).unwrap() else { panic!() };
        waiter.watch(44, on, None).unwrap();
        let Try::Ready(second) = b.try_arrive().unwrap() else { panic!() };
        assert!(second.last && second.index == 1);
        b.pass(&second).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), vec![44]);
        assert!(matches!(b.poll(&first).unwrap(), Try::Ready(0)));
    }

    /// xorshift64: deterministic choices for the stress tests.
    fn next_rand(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Many asynchronous acquirers driven through one [`Waiter`] (several tokens on one
    /// word, tokens cancelled and re-watched in the same turn, holds across turns, idle
    /// watches that give the waiter several threads whose shares shift), against
    /// processes taking the same semaphores with blocking calls. Semaphores have no
    /// holder recheck, so a lost wake-up shows as a stall; the "inside" flags check
    /// mutual exclusion.
    fn async_waiters_lose_no_wakeups(sems_n: usize, idle_n: usize) {
        use std::collections::HashMap;
        const TASKS: usize = 48;
        const ROUNDS: usize = 150;
        const KID_ROUNDS: usize = 3000;
        let heap = Heap::new();
        let sems: Vec<SemLock> = (0..sems_n).map(|_| SemLock::semaphore(&heap, 1).unwrap()).collect();
        let inside = heap.alloc(4 * sems_n).unwrap();
        let inside = unsafe { std::slice::from_raw_parts(inside.as_ptr() as *const AtomicU32, sems_n) };
        let go = heap.alloc(4).unwrap();
        let go = unsafe { &*(go.as_ptr() as *const AtomicU32) };
        let enter = |i: usize| assert_eq!(inside[i].swap(1, AcqRel), 0, "two holders of semaphore {i}");
        let leave = |i: usize| inside[i].store(0, Release);
        // The blocking side: forked before the waiter thread exists.
        let kids: Vec<i32> = (0..2u64)
            .map(|k| {
                fork_child(|| {
                    while go.load(Acquire) == 0 {
                        let _ = futex::wait(go, 0, None);
                    }
                    let mut r = 0x9e37_79b9_7f4a_7c15 ^ (k + 1);
                    for n in 0..KID_ROUNDS {
                        let i = next_rand(&mut r) as usize % sems_n;
                        sems[i].acquire(true, None).unwrap();
                        enter(i);
                        if n % 4 == 0 {
                            std::thread::sleep(Duration::from_micros(next_rand(&mut r) % 200));
                        }
                        leave(i);
                        sems[i].release().unwrap();
                    }
                    0
                })
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        let waiter = Waiter::start(move |t| tx.send(t).unwrap()).unwrap();
        // Idle watches on words that never change.
        let idle: Vec<SemLock> = (0..idle_n).map(|_| SemLock::semaphore(&heap, 0).unwrap()).collect();
        let mut next_token = 1u64;
        for s in &idle {
            let Try::WouldBlock(on) = s.try_acquire(false) else { panic!() };
            waiter.watch(next_token, on, None).unwrap();
            next_token += 1;
        }
        go.store(1, Release);
        futex::wake(go, u32::MAX);

        struct Task {
            sem: usize,
            left: usize,
            holding: bool,
        }
        let mut r = 0x2545_f491_4f6c_dd1du64;
        let mut tasks: Vec<Task> =
            (0..TASKS).map(|_| Task { sem: next_rand(&mut r) as usize % sems_n, left: ROUNDS, holding: false }).collect();
        let mut runnable: Vec<usize> = (0..TASKS).collect();
        let mut parked: HashMap<u64, usize> = HashMap::new();
        let mut done = 0;
        let mut cancelled = 0;
        let mut parks = 0;
        while done < TASKS {
            // One "turn": run every runnable task until it blocks or finishes a round.
            let mut again = Vec::new();
            for ti in runnable.drain(..) {
                let t = &mut tasks[ti];
                if t.holding {
                    leave(t.sem);
                    sems[t.sem].release().unwrap();
                    t.holding = false;
                    t.left -= 1;
                    if t.left == 0 {
                        done += 1;
                        continue;
                    }
                    t.sem = next_rand(&mut r) as usize % sems_n;
                }
                match sems[t.sem].try_acquire(false) {
                    Try::Ready(_) => {
                        enter(t.sem);
                        t.holding = true;
                        // Hold until the next turn (the blocking side waits on us).
                        again.push(ti);
                    }
                    Try::WouldBlock(on) => {
                        let token = next_token;
                        next_token += 1;
                        parks += 1;
                        if token.is_multiple_of(7) {
                            // Give up and watch again at once, as a timed-out retry does.
                            let (word, expected) = (on.addr(), on.expected);
                            waiter.watch(token, on, None).unwrap();
                            if waiter.cancel(token) {
                                cancelled += 1;
                                let on = unsafe { WaitOn::new(word as *const AtomicU32, expected, None) };
                                let token = next_token;
                                next_token += 1;
                                waiter.watch(token, on, None).unwrap();
                                parked.insert(token, ti);
                            } else {
                                again.push(ti);
                            }
                        } else {
                            waiter.watch(token, on, None).unwrap();
                            parked.insert(token, ti);
                        }
                    }
                }
            }
            runnable = again;
            if done == TASKS {
                break;
            }
            // Wait for reports (only if nothing can run), as the event loop would.
            let mut batch = if runnable.is_empty() {
                match rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(b) => b,
                    Err(_) => {
                        let words: Vec<String> =
                            parked.values().map(|&ti| format!("{}:{:#x}", tasks[ti].sem, sems[tasks[ti].sem].s().word.load(SeqCst))).collect();
                        panic!("stalled: {} tasks parked (sem:word {words:?}), {} done, {} tokens pending", parked.len(), done, waiter.pending());
                    }
                }
            } else {
                Vec::new()
            };
            while let Ok(b) = rx.try_recv() {
                batch.extend(b);
            }
            for t in batch {
                if let Some(ti) = parked.remove(&t) {
                    runnable.push(ti);
                } else {
                    assert!(t > idle_n as u64, "an idle watch was reported: {t}");
                }
            }
        }
        for k in kids {
            assert_eq!(reap(k), 0);
        }
        assert!(parked.is_empty());
        assert_eq!(waiter.pending(), idle_n);
        assert!(cancelled > 0 && parks > 100, "{parks} waits, {cancelled} re-watched");
        for s in &sems {
            assert_eq!(s.value(), 1);
        }
    }

    #[test]
    fn async_waiters_lose_no_wakeups_on_few_words() {
        async_waiters_lose_no_wakeups(4, 0);
    }

    #[test]
    fn async_waiters_lose_no_wakeups_across_waiter_threads() {
        async_waiters_lose_no_wakeups(16, 300);
    }

    #[test]
    fn uncontended_lock_release_is_fast() {
        let heap = Heap::new();
        let done = AtomicBool::new(false);
        // This thread's CPU time, not the wall clock: on a loaded machine the thread waits
        // for a CPU, which is no cost of the lock.
        fn cpu_nanos() -> u128 {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
            ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
        }
        for lock in [SemLock::lock(&heap).unwrap(), SemLock::rlock(&heap).unwrap()] {
            let n = 1_000_000;
            let t = cpu_nanos();
            for _ in 0..n {
                lock.acquire(true, None).unwrap();
                lock.release().unwrap();
            }
            let per = (cpu_nanos() - t) / n;
            eprintln!("{:?} acquire+release: {per} ns of CPU", lock.kind());
            // Generous: debug builds are slow; release builds measure ~20 ns.
            assert!(per < 2000, "{per} ns");
        }
        done.store(true, Relaxed);
    }
}
