// The one wait mechanism: Promises that settle when a descriptor becomes readable,
// fed by the native reactor thread (epoll). The event loop is never blocked and
// libuv's thread pool is never used.
import { native } from './native.js';

type Waiter = () => void;
const waiters = new Map<number, Set<Waiter>>();
let pending = 0;
let started = false;
let referenced = false;

function setPending(delta: number): void {
  pending += delta;
  const want = pending > 0;
  if (want !== referenced) {
    referenced = want;
    native.reactorRef(want);
  }
}

function onReady(fds: number[]): void {
  for (const fd of fds) {
    const set = waiters.get(fd);
    if (!set) continue;
    waiters.delete(fd);
    for (const w of set) w();
  }
}

function ensureStarted(): void {
  if (started) return;
  native.reactorStart(onReady);
  started = true;
  referenced = true; // a new threadsafe function starts referenced
  setPending(0);
}

/**
 * Resolve true when `fd` is readable (or at EOF), false when `timeout` seconds
 * pass first (null/undefined: no limit) or when `signal` aborts.
 */
export function readable(fd: number, timeout?: number | null, signal?: AbortSignal): Promise<boolean> {
  ensureStarted();
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => giveUp();
    const waiter: Waiter = () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      setPending(-1);
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
        native.reactorForget(fd);
      }
      setPending(-1);
      resolve(false);
    };
    let set = waiters.get(fd);
    const first = !set;
    if (!set) waiters.set(fd, (set = new Set()));
    set.add(waiter);
    setPending(1);
    if (first) {
      try {
        native.reactorWatch(fd);
      } catch (e) {
        set.delete(waiter);
        if (set.size === 0) waiters.delete(fd);
        setPending(-1);
        reject(e);
        return;
      }
    }
    if (timeout != null) timer = setTimeout(giveUp, Math.max(0, timeout) * 1000);
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
  const set = waiters.get(fd);
  if (!set) return;
  waiters.delete(fd);
  for (const w of set) w();
}
