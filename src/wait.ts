// The one wait mechanism: Promises that settle when a descriptor becomes readable,
// fed by the native reactor thread (epoll). The event loop is never blocked and
// libuv's thread pool is never used.
import { native } from './native.js';

/**
 * Holds the event loop open while waits are pending, through a native threadsafe
 * function's ref/unref (a new one starts referenced).
 */
class KeepAlive {
  #pending = 0;
  #referenced = true;
  constructor(private readonly setRef: (ref: boolean) => void) {}
  add(delta: number): void {
    this.#pending += delta;
    const want = this.#pending > 0;
    if (want !== this.#referenced) {
      this.#referenced = want;
      this.setRef(want);
    }
  }
}

type Waiter = () => void;
const waiters = new Map<number, Set<Waiter>>();
/** Descriptors whose waiters wait for writability (the others wait to read). */
const writers = new Set<number>();
let started = false;
const fdKeepAlive = new KeepAlive((ref) => native.reactorRef(ref));
const setPending = (delta: number): void => fdKeepAlive.add(delta);

/**
 * Whether `fd` is readable now (a closed one counts: its waiters retry and see it closed).
 * A report names a descriptor by number only, and it can arrive after that number was
 * closed and given to a new descriptor: the pidfd of an ended process, or the sentinel of
 * an ended thread, released while its report was on its way, and the number now the
 * sentinel of a new pool thread. Its waiters must not take that report for their own.
 */
function stillReady(fd: number): boolean {
  try {
    return native.waitReadable(fd, 0);
  } catch {
    return true;
  }
}

function onReady(fds: number[]): void {
  for (const fd of fds) {
    const set = waiters.get(fd);
    if (!set) continue;
    if (!writers.has(fd) && !stillReady(fd)) {
      // A stale report: keep waiting for this descriptor's own.
      try {
        native.reactorWatch(fd);
        continue;
      } catch {
        /* wake them: they retry */
      }
    }
    waiters.delete(fd);
    writers.delete(fd);
    for (const w of set) w();
  }
}

function ensureStarted(): void {
  if (started) return;
  native.reactorStart(onReady);
  started = true;
  setPending(0);
}

/**
 * Resolve true when `fd` is readable (or at EOF), false when `timeout` seconds
 * pass first (null/undefined: no limit) or when `signal` aborts. With `ref` false the
 * wait does not keep the process alive (a watch on something that may never happen,
 * such as an idle pool worker's death).
 */
export function readable(fd: number, timeout?: number | null, signal?: AbortSignal, ref = true): Promise<boolean> {
  return ready(fd, false, timeout, signal, ref);
}

/** As `readable`, for writability (a non-blocking connect completing). */
export function writable(fd: number, timeout?: number | null, signal?: AbortSignal): Promise<boolean> {
  return ready(fd, true, timeout, signal);
}

function ready(fd: number, write: boolean, timeout?: number | null, signal?: AbortSignal, ref = true): Promise<boolean> {
  ensureStarted();
  const held = ref ? 1 : 0;
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => giveUp();
    const waiter: Waiter = () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      setPending(-held);
      resolve(true);
    };
    // Timeout or abort: leave the set of waiters; the last one stops the watch.
    const giveUp = (): void => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const s = waiters.get(fd);
      if (!s?.delete(waiter)) return;
      if (s.size === 0) {
        waiters.delete(fd);
        writers.delete(fd);
        native.reactorForget(fd);
      }
      setPending(-held);
      resolve(false);
    };
    let set = waiters.get(fd);
    const first = !set;
    if (!set) waiters.set(fd, (set = new Set()));
    set.add(waiter);
    setPending(held);
    if (first) {
      if (write) writers.add(fd);
      try {
        if (write) native.reactorWatchWritable(fd);
        else native.reactorWatch(fd);
      } catch (e) {
        set.delete(waiter);
        if (set.size === 0) {
          waiters.delete(fd);
          writers.delete(fd);
        }
        setPending(-held);
        reject(e);
        return;
      }
    }
    if (timeout != null) {
      timer = setTimeout(giveUp, Math.max(0, timeout) * 1000);
      if (!ref) timer.unref();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Stop watching `fd` before it is closed; pending waiters are woken so that they
 * retry and see the closed handle.
 */
export function forget(fd: number): void {
  if (!started) return;
  native.reactorForget(fd);
  writers.delete(fd);
  const set = waiters.get(fd);
  if (!set) return;
  waiters.delete(fd);
  for (const w of set) w();
}

// --- Futex words (shared-memory locks, conditions, events, barriers) ---
//
// A native operation that would block registers a token with the one futex waiter of
// the process (`...OrWatch(token, timeout)`); the waiter thread reports tokens through
// one threadsafe function when their word changes, is woken, or their deadline (or a
// lock's holder check) is due. The caller then retries. Same keep-alive rule as above:
// the event loop is held open only while some token is pending.

const changeWaiters = new Map<number, () => void>();
let changeStarted = false;
let nextToken = 0;
const changeKeepAlive = new KeepAlive((ref) => native.waiterRef(ref));
const setChangePending = (delta: number): void => changeKeepAlive.add(delta);

function onChanged(tokens: number[]): void {
  for (const t of tokens) {
    const w = changeWaiters.get(t);
    if (!w) continue;
    changeWaiters.delete(t);
    w();
  }
}

/**
 * A fresh token for a native `...OrWatch` call. Call `changed(token)` in the same
 * synchronous turn when that call says it watches.
 */
export function futexToken(): number {
  if (!changeStarted) {
    native.waiterStart(onChanged);
    changeStarted = true;
    setChangePending(0);
  }
  nextToken = (nextToken + 1) >>> 0 || 1; // never 0: 0 means "don't watch"
  return nextToken;
}

/**
 * Resolve when the native waiter reports `token` (its word changed, was woken, or its
 * deadline passed); the caller retries its operation.
 */
export function changed(token: number): Promise<void> {
  return new Promise<void>((resolve) => {
    changeWaiters.set(token, () => {
      setChangePending(-1);
      resolve();
    });
    setChangePending(1);
  });
}

/** Give up a pending `changed(token)` without settling it. */
export function cancelChanged(token: number): void {
  if (changeWaiters.delete(token)) {
    native.waiterCancel(token);
    setChangePending(-1);
  }
}

// --- Words of a SharedArrayBuffer (between the threads of this process) ---
//
// Atomics.waitAsync: the waiting thread is never blocked. A pending waitAsync does not
// hold the event loop open by itself: a referenced timer does while any is pending.

let wordWaits = 0;
let wordKeepAlive: NodeJS.Timeout | null = null;

function holdWordWait(delta: number): void {
  wordWaits += delta;
  if (wordWaits > 0 && wordKeepAlive === null) wordKeepAlive = setInterval(() => {}, 1 << 30);
  else if (wordWaits === 0 && wordKeepAlive !== null) {
    clearInterval(wordKeepAlive);
    wordKeepAlive = null;
  }
}

type WaitAsync = (i32: Int32Array, index: number, value: number, timeoutMs?: number) =>
  { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

/**
 * Resolve true when `i32[index]` no longer holds `value` or is notified, false when
 * `timeout` seconds pass first (null/undefined: no limit).
 */
export function wordChanged(i32: Int32Array, index: number, value: number, timeout?: number | null): Promise<boolean> {
  const r = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(i32, index, value, timeout == null ? undefined : Math.max(0, timeout) * 1000);
  if (!r.async) return Promise.resolve(r.value !== 'timed-out');
  holdWordWait(1);
  return r.value.then((v) => {
    holdWordWait(-1);
    return v === 'ok';
  });
}
