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
