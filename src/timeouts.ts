// Python's timeout and block/timeout argument rules, shared by every blocking call.
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';

/** Seconds; null/undefined: no limit; negative: zero. */
export type Timeout = number | null | undefined;

/** Python's `(block=True, timeout=None)` pair, also accepted as one options object. */
export interface BlockOptions {
  block?: boolean;
  timeout?: Timeout;
}

export function blockArgs(block: boolean | BlockOptions | undefined, timeout: Timeout): [boolean, Timeout] {
  if (block !== null && typeof block === 'object') return [block.block ?? true, block.timeout];
  return [block ?? true, timeout];
}

/** `timeout` or `{ timeout }`. */
export function timeoutArg(timeout: Timeout | { timeout?: Timeout }): Timeout {
  return timeout !== null && typeof timeout === 'object' ? timeout.timeout : timeout;
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
