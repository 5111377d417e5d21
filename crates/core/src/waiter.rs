//! The asynchronous wait engine: background threads that sleep in `futex_waitv` on
//! every word that has a pending asynchronous waiter, and report the waiters' tokens
//! when their word changes (or is woken), so that a Promise needs no thread of its own.
//!
//! Each thread watches up to [`PER_THREAD`] distinct (word, expected) pairs plus a
//! private control word through which it is told that the set changed. The first
//! thread starts with the [`Waiter`]; more start when there are more pairs than one
//! call can take, and then idle on their control word when the set shrinks.
//! Tokens are one-shot: reported once, then forgotten; the caller retries its
//! operation and watches again if it would still block.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::futex::{self, WaitvEntry, WAITV_MAX};

/// Distinct words per thread: one `futex_waitv` entry is the control word.
pub const PER_THREAD: usize = WAITV_MAX - 1;

/// A futex word and the value an operation saw when it would have blocked: wait while
/// `*word == expected`. Keeps the memory holding the word mapped.
pub struct WaitOn {
    word: *const AtomicU32,
    pub expected: u32,
    /// Report the waiter after this long even if the word did not change, so that it
    /// retries (used by locks to check whether their holder died).
    pub recheck: Option<Duration>,
    _keep: Option<Arc<dyn Any + Send + Sync>>,
}

// The word is an atomic in memory kept alive by `keep` (or by the creator's promise).
unsafe impl Send for WaitOn {}
unsafe impl Sync for WaitOn {}

impl WaitOn {
    /// # Safety
    /// `word` must stay valid as long as `keep` lives, or forever if `keep` is `None`.
    pub unsafe fn new(word: *const AtomicU32, expected: u32, keep: Option<Arc<dyn Any + Send + Sync>>) -> WaitOn {
        WaitOn { word, expected, recheck: None, _keep: keep }
    }

    pub fn with_recheck(mut self, every: Duration) -> WaitOn {
        self.recheck = Some(every);
        self
    }

    pub fn word(&self) -> &AtomicU32 {
        unsafe { &*self.word }
    }

    /// Address of the word (for logging/debugging).
    pub fn addr(&self) -> usize {
        self.word as usize
    }

    /// Whether the word still holds the expected value.
    pub fn unchanged(&self) -> bool {
        self.word().load(Acquire) == self.expected
    }

    /// Block the calling thread until the word changes, is woken, or `deadline` passes
    /// (capped by `recheck`). For synchronous callers.
    pub fn wait(&self, deadline: Option<Instant>) -> io::Result<futex::Wait> {
        let d = match (deadline, self.recheck) {
            (d, None) => d,
            (None, Some(r)) => Some(Instant::now() + r),
            (Some(d), Some(r)) => Some(d.min(Instant::now() + r)),
        };
        futex::wait(self.word(), self.expected, d)
    }
}

struct Watch {
    on: WaitOn,
    /// When to report it regardless of the word: the earlier of deadline and recheck.
    due: Option<Instant>,
}

struct State {
    watches: HashMap<u64, Watch>,
    threads: usize,
}

struct Inner {
    state: Mutex<State>,
    control: AtomicU32,
    on_ready: Mutex<Box<dyn FnMut(Vec<u64>) + Send>>,
}

/// Handle on the wait engine; cheap to clone. The threads live as long as the process.
#[derive(Clone)]
pub struct Waiter {
    inner: Arc<Inner>,
}

impl Waiter {
    /// Start the first thread. `on_ready` receives batches of tokens whose word changed,
    /// was woken, or whose deadline passed; it may be called from any waiter thread.
    pub fn start(on_ready: impl FnMut(Vec<u64>) + Send + 'static) -> io::Result<Waiter> {
        let w = Waiter {
            inner: Arc::new(Inner {
                state: Mutex::new(State { watches: HashMap::new(), threads: 0 }),
                control: AtomicU32::new(0),
                on_ready: Mutex::new(Box::new(on_ready)),
            }),
        };
        let mut st = w.inner.state.lock().unwrap();
        w.spawn(&mut st)?;
        drop(st);
        Ok(w)
    }

    fn spawn(&self, st: &mut State) -> io::Result<()> {
        let index = st.threads;
        let inner = self.inner.clone();
        std::thread::Builder::new().name(format!("mp-waiter-{index}")).spawn(move || run(inner, index))?;
        st.threads += 1;
        Ok(())
    }

    /// Report `token` when `on`'s word no longer holds `on.expected` (or is woken), or at
    /// `deadline`. Replaces an earlier watch with the same token.
    pub fn watch(&self, token: u64, on: WaitOn, deadline: Option<Instant>) -> io::Result<()> {
        let recheck = on.recheck.map(|r| Instant::now() + r);
        let due = match (deadline, recheck) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut st = self.inner.state.lock().unwrap();
        st.watches.insert(token, Watch { on, due });
        let needed = distinct_pairs(&st).len().div_ceil(PER_THREAD).max(1);
        while st.threads < needed {
            self.spawn(&mut st)?;
        }
        self.poke();
        Ok(())
    }

    /// Forget `token`; returns whether it was still pending.
    pub fn cancel(&self, token: u64) -> bool {
        let mut st = self.inner.state.lock().unwrap();
        let had = st.watches.remove(&token).is_some();
        if had {
            self.poke();
        }
        had
    }

    /// Tokens still pending.
    pub fn pending(&self) -> usize {
        self.inner.state.lock().unwrap().watches.len()
    }

    fn poke(&self) {
        poke(&self.inner);
    }
}

/// Make every thread rebuild its set (called with the state locked).
fn poke(inner: &Inner) {
    inner.control.fetch_add(1, Release);
    futex::wake(&inner.control, u32::MAX);
}

fn distinct_pairs(st: &State) -> Vec<(usize, u32)> {
    let mut pairs: Vec<(usize, u32)> = st.watches.values().map(|w| (w.on.addr(), w.on.expected)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

fn run(inner: Arc<Inner>, index: usize) {
    // A pair that futex_waitv said was woken: report it even if its value came back.
    let mut woken: Option<(usize, u32)> = None;
    loop {
        let (entries, mine, due) = {
            let mut st = inner.state.lock().unwrap();
            let control = inner.control.load(Acquire);
            let pairs = distinct_pairs(&st);
            let mine: Vec<(usize, u32)> = pairs.chunks(PER_THREAD).nth(index).map(<[_]>::to_vec).unwrap_or_default();
            let now = Instant::now();
            // Words are read only while their watch (and so their mapping) is held.
            let ready: Vec<u64> = st
                .watches
                .iter()
                .filter(|(_, w)| {
                    woken == Some((w.on.addr(), w.on.expected)) || !w.on.unchanged() || w.due.is_some_and(|d| d <= now)
                })
                .map(|(t, _)| *t)
                .collect();
            woken = None;
            if !ready.is_empty() {
                for t in &ready {
                    st.watches.remove(t);
                }
                if st.threads > 1 {
                    // The chunks shifted: make the other threads take their new share.
                    poke(&inner);
                }
                drop(st);
                (inner.on_ready.lock().unwrap())(ready);
                continue;
            }
            let due = st
                .watches
                .values()
                .filter(|w| mine.binary_search(&(w.on.addr(), w.on.expected)).is_ok())
                .filter_map(|w| w.due)
                .min();
            let mut entries: Vec<WaitvEntry> =
                mine.iter().map(|&(a, e)| WaitvEntry::new(unsafe { &*(a as *const AtomicU32) }, e)).collect();
            entries.push(WaitvEntry::new(&inner.control, control));
            (entries, mine, due)
        };
        match futex::waitv(&entries, due) {
            Ok(Some(i)) if i < mine.len() => woken = Some(mine[i]),
            Ok(_) => {}
            // EFAULT: a word was unmapped after its watch was cancelled; the rebuild drops it.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn word_on(w: &Arc<AtomicU32>, expected: u32) -> WaitOn {
        let keep: Arc<dyn Any + Send + Sync> = w.clone();
        unsafe { WaitOn::new(Arc::as_ptr(w), expected, Some(keep)) }
    }

    fn collect(rx: &mpsc::Receiver<Vec<u64>>, n: usize) -> Vec<u64> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(rx.recv_timeout(Duration::from_secs(5)).expect("tokens reported"));
        }
        got.sort_unstable();
        got
    }

    #[test]
    fn reports_tokens_of_a_changed_word_together() {
        let (tx, rx) = mpsc::channel();
        let waiter = Waiter::start(move |t| tx.send(t).unwrap()).unwrap();
        let a = Arc::new(AtomicU32::new(0));
        let b = Arc::new(AtomicU32::new(0));
        waiter.watch(1, word_on(&a, 0), None).unwrap();
        waiter.watch(2, word_on(&a, 0), None).unwrap();
        waiter.watch(3, word_on(&b, 0), None).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        a.store(1, SeqCst);
        futex::wake(&a, u32::MAX);
        let batch = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut batch = batch;
        batch.sort_unstable();
        assert_eq!(batch, vec![1, 2]);
        assert_eq!(waiter.pending(), 1);
        // Already different when watched: reported at once.
        waiter.watch(4, word_on(&a, 0), None).unwrap();
        assert_eq!(collect(&rx, 1), vec![4]);
        // Cancelled tokens are not reported.
        assert!(waiter.cancel(3));
        b.store(1, SeqCst);
        futex::wake(&b, u32::MAX);
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    }

    #[test]
    fn deadlines_and_rechecks_report_unchanged_words() {
        // Each report is timed where the waiter thread makes it. Every attempt asserts that
        // neither token is reported early, nor twice. That the recheck (30 ms) is reported in
        // a batch of its own, before the deadline (500 ms), needs the waiter thread to run
        // within 470 ms of being due, which a loaded machine does not always give: up to
        // three attempts, and one of them must show it.
        for _ in 0..3 {
            let (tx, rx) = mpsc::channel();
            let waiter = Waiter::start(move |t| tx.send((t, Instant::now())).unwrap()).unwrap();
            let a = Arc::new(AtomicU32::new(0));
            let t7 = Instant::now();
            waiter.watch(7, word_on(&a, 0), Some(t7 + Duration::from_millis(500))).unwrap();
            let t8 = Instant::now();
            waiter.watch(8, word_on(&a, 0).with_recheck(Duration::from_millis(30)), None).unwrap();
            let mut at: HashMap<u64, (Instant, usize)> = HashMap::new();
            let mut batch = 0;
            while at.len() < 2 {
                let (tokens, when) = rx.recv_timeout(Duration::from_secs(10)).expect("tokens reported");
                batch += 1;
                for k in tokens {
                    assert!(at.insert(k, (when, batch)).is_none(), "token {k} reported twice");
                }
            }
            let mut tokens: Vec<u64> = at.keys().copied().collect();
            tokens.sort_unstable();
            assert_eq!(tokens, vec![7, 8]);
            let (when8, batch8) = at[&8];
            let (when7, batch7) = at[&7];
            assert!(when8 - t8 >= Duration::from_millis(30), "recheck reported after {:?}", when8 - t8);
            assert!(when7 - t7 >= Duration::from_millis(500), "deadline reported after {:?}", when7 - t7);
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "a token reported again");
            assert_eq!(waiter.pending(), 0);
            if batch8 < batch7 {
                return;
            }
        }
        panic!("in three attempts, the recheck was never reported before the deadline");
    }

    #[test]
    fn more_words_than_one_waitv_call_takes() {
        let (tx, rx) = mpsc::channel();
        let waiter = Waiter::start(move |t| tx.send(t).unwrap()).unwrap();
        let words: Vec<Arc<AtomicU32>> = (0..300).map(|_| Arc::new(AtomicU32::new(0))).collect();
        for (i, w) in words.iter().enumerate() {
            waiter.watch(i as u64, word_on(w, 0), None).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(rx.try_recv().is_err());
        // Change words served by different threads, including the last ones.
        for i in [0usize, 126, 127, 200, 299] {
            words[i].store(1, SeqCst);
            futex::wake(&words[i], u32::MAX);
        }
        assert_eq!(collect(&rx, 5), vec![0, 126, 127, 200, 299]);
        for w in &words {
            w.store(1, SeqCst);
            futex::wake(w, u32::MAX);
        }
        assert_eq!(collect(&rx, 295).len(), 295);
        assert_eq!(waiter.pending(), 0);
    }
}
