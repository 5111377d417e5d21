// Who is calling a managed object's method, for the referents that care (Python's
// RLock and Condition, whose owner is the calling thread of the calling process).
import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The manager's server runs every referent method call inside
 * `callerStorage.run(callerKey, fn)`. `callerKey` identifies the calling client: its
 * process and its JS thread (`"<pid>:<threadId>"`), so an owner-aware referent (an RLock,
 * a Condition) can tell callers apart as Python's manager tells client threads apart.
 * @internal
 */
export const callerStorage = new AsyncLocalStorage<string>();

/** The key of the client calling the referent method running now (see callerStorage); `undefined` outside a call. @internal */
export function currentCaller(): string | undefined {
  return callerStorage.getStore();
}

const goneHooks = new Set<(key: string) => void>();

/**
 * Call `fn(callerKey)` when a client goes away (its connection to the server dropped: it exited,
 * was killed, or shut its connection), so that an owner-aware referent can release what that
 * client held and forget its waits. @internal
 */
export function onCallerGone(fn: (key: string) => void): void {
  goneHooks.add(fn);
}

/** Run the onCallerGone hooks (the server, when a client's connection drops). @internal */
export function _callerGone(key: string): void {
  for (const fn of goneHooks) {
    try {
      fn(key);
    } catch {
      /* a hook's failure must not stop the others */
    }
  }
}
