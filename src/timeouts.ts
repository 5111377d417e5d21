// Python's timeout and block/timeout argument rules, shared by every blocking call.
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { optionalArg, optionalArgs } from './options.js';

/** Seconds; null/undefined: no limit; negative: zero. */
export type Timeout = number | null | undefined;

/** Python's `(block=True, timeout=None)` pair, also accepted as one options object. */
export interface BlockOptions {
  /** Wait for the call to succeed (default true); false: succeed now or fail. */
  block?: boolean;
  /** With `block`: wait at most this many seconds (null: no limit). */
  timeout?: Timeout;
}

/** `{ timeout }`: the options form of a call whose one optional argument is a timeout. */
export interface TimeoutOptions {
  /** Seconds to wait at most; null or absent: no limit. */
  timeout?: Timeout;
}

export function blockArgs(block: boolean | BlockOptions | undefined, timeout: Timeout, call = 'call'): [boolean, Timeout] {
  if (block !== null && typeof block === 'object') {
    const o = optionalArgs<BlockOptions>(call, ['block', 'timeout'], [block, timeout]);
    return [o.block ?? true, o.timeout];
  }
  return [block ?? true, timeout];
}

/** `timeout` or `{ timeout }` (an unknown option is a TypeError naming `call`). */
export function timeoutArg(timeout: Timeout | TimeoutOptions, call = 'call'): Timeout {
  return timeout !== null && typeof timeout === 'object' ? optionalArg<Timeout>(call, 'timeout', timeout) : timeout;
}

/** Seconds to wait (never negative), or null for no limit. */
export function timeoutSeconds(timeout: Timeout): number | null {
  if (timeout == null || timeout === Infinity) return null;
  const t = Number(timeout);
  if (Number.isNaN(t)) throw new TypeError(`timeout must be a number, not ${inspect(timeout)}`);
  return Math.max(0, t);
}

/** Absolute deadline in performance.now() milliseconds, or null for none. */
export function deadlineOf(timeout: Timeout): number | null {
  const t = timeoutSeconds(timeout);
  return t === null ? null : performance.now() + t * 1000;
}

/** Seconds left until `deadline` (never negative), or null. */
export function secondsLeft(deadline: number | null): number | null {
  return deadline === null ? null : Math.max(0, (deadline - performance.now()) / 1000);
}

export function expired(deadline: number | null): boolean {
  return deadline !== null && performance.now() >= deadline;
}

/**
 * Longest single blocking native wait in a worker thread. Between two, the thread runs
 * JavaScript, where `terminate()` and the process's exit (which stops every thread) take
 * effect: a thread blocked in a `...Sync` call can still be stopped. The main thread
 * waits in one piece.
 */
export const THREAD_SLICE = 0.1;

let beforeBlock: (() => void) | null = null;

/**
 * Set by queues.ts while puts of this thread wait in a batch (null: none do): every
 * blocking call writes them first, as a process blocked waiting for an answer to them
 * would otherwise wait for ever. @internal
 */
export function _setBeforeBlock(fn: (() => void) | null): void {
  beforeBlock = fn;
}

/** Write this thread's batched queue puts (see `_setBeforeBlock`); for blocking calls that do not go through `blockFor`. */
export function beforeBlocking(): void {
  if (beforeBlock !== null) beforeBlock();
}

/**
 * Every blocking `...Sync` call's wait: up to `seconds` (null: no limit) of `attempt(s)`,
 * a native call that waits at most `s` seconds and returns a result, which `again(r)`
 * says is "not yet". The main thread (and a process's) makes one call with all of
 * `seconds`; a worker thread makes calls of at most THREAD_SLICE seconds until a result
 * comes or `seconds` pass. The last result is returned.
 */
export function blockFor<T>(seconds: number | null, attempt: (s: number | null) => T, again: (r: T) => boolean): T {
  if (beforeBlock !== null) beforeBlock();
  if (isMainThread) return attempt(seconds);
  const deadline = seconds === null ? null : performance.now() + seconds * 1000;
  for (;;) {
    const left = secondsLeft(deadline);
    const slice = left === null ? THREAD_SLICE : Math.min(left, THREAD_SLICE);
    const r = attempt(slice);
    if (!again(r) || (left !== null && left <= THREAD_SLICE)) return r;
  }
}
