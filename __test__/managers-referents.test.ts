// The objects a SyncManager's server keeps for Lock, RLock, Semaphore, BoundedSemaphore,
// Condition, Event, Barrier, Queue/JoinableQueue and Pool, exercised in this process:
// clients are simulated by running calls under callerStorage with distinct keys, as
// the server does for each client process and thread.
import test from 'ava';
import { performance } from 'node:perf_hooks';
import { BrokenBarrierError, Empty, Full, RuntimeError, ValueError } from '../src/errors.js';
import { callerStorage } from '../src/managers_caller.js';
import {
  Barrier, BoundedSemaphore, callerGone, Condition, Event, Lock, makePool, Queue, RLock, Semaphore,
} from '../src/managers_referents.js';
import { add, square } from './fixtures/pool_targets.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Run `fn` as the client `key`. */
const as = <T>(key: string, fn: () => T): T => callerStorage.run(key, fn);
/** Whether `p` has settled within a few turns of the event loop (a parked wait has not). */
async function settled(p: unknown): Promise<boolean> {
  let done = false;
  Promise.resolve(p).then(() => (done = true), () => (done = true));
  await sleep(10);
  return done;
}
/** How long `p` takes to settle, in ms, and its outcome. */
async function timed<T>(p: T | Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await p;
  return [performance.now() - t0, v];
}

test.serial('Lock: booleans, non-blocking, timeouts, RuntimeError on release of an unlocked lock, any client releases', async (t) => {
  const l = new Lock();
  t.is(String(l), '<unlocked Lock object>');
  t.true(await as('A', () => l.acquire()));
  t.true(l.locked());
  t.is(String(l), '<locked Lock object>');
  t.false(await as('B', () => l.acquire(false)));
  t.false(await as('B', () => l.acquire(true, -1)), 'a negative timeout means zero');
  t.false(await as('B', () => l.acquire({ block: false })));
  const [ms, got] = await timed(as('B', () => l.acquire({ timeout: 0.1 })));
  t.false(got);
  t.true(ms >= 95 && ms < 2000, `timed out after ${ms} ms`);
  // Not owned: another client releases it.
  as('B', () => l.release());
  t.false(l.locked());
  const e = t.throws(() => as('A', () => l.release()), { instanceOf: RuntimeError });
  t.is(e!.message, 'release unlocked lock');
  t.throws(() => l.acquire('x' as never, 'y' as never), { instanceOf: TypeError });
});

test.serial('Lock: waiters get it first come first served, each release hands it to the next', async (t) => {
  const l = new Lock();
  t.true(await as('A', () => l.acquire()));
  const order: string[] = [];
  const b = Promise.resolve(as('B', () => l.acquire())).then((r) => order.push(`B:${r}`));
  const c = Promise.resolve(as('C', () => l.acquire(true, 10))).then((r) => order.push(`C:${r}`));
  t.false(await settled(b));
  as('A', () => l.release());
  await b;
  t.deepEqual(order, ['B:true']);
  // A non-blocking acquire does not jump the queue nor take what was handed over.
  t.false(await as('D', () => l.acquire(false)));
  t.false(await settled(c));
  as('B', () => l.release());
  await c;
  t.deepEqual(order, ['B:true', 'C:true']);
  as('C', () => l.release());
  t.false(l.locked());
});

test.serial('RLock: re-entrant for its owner, others wait, RuntimeError when a non-owner releases', async (t) => {
  const r = new RLock();
  t.true(await as('A', () => r.acquire()));
  t.true(await as('A', () => r.acquire()));
  t.regex(String(r), /^<locked RLock object owner='A' count=2>$/);
  t.false(await as('B', () => r.acquire(false)));
  const e = t.throws(() => as('B', () => r.release()), { instanceOf: RuntimeError });
  t.is(e!.message, 'cannot release un-acquired lock');
  const b = as('B', () => r.acquire());
  as('A', () => r.release());
  t.false(await settled(b), 'still held once by A');
  as('A', () => r.release());
  t.true(await b);
  t.regex(String(r), /owner='B' count=1/);
  t.throws(() => as('A', () => r.release()), { instanceOf: RuntimeError });
  as('B', () => r.release());
  t.is(String(r), '<unlocked RLock object owner=None count=0>');
  t.throws(() => r.release(), { instanceOf: RuntimeError });
});

test.serial('Semaphore and BoundedSemaphore: counts, release(n), waiters served first, ValueErrors', async (t) => {
  const s = new Semaphore(2);
  t.true(await s.acquire());
  t.true(await s.acquire());
  t.false(await s.acquire(false));
  t.is(s.getValue(), 0);
  const w1 = s.acquire();
  const w2 = s.acquire(true, 10);
  t.false(await settled(w1));
  s.release();
  t.true(await w1);
  t.is(s.getValue(), 0, 'the released one went to the waiter');
  s.release(3);
  t.true(await w2);
  t.is(s.getValue(), 2);
  t.throws(() => s.release(0), { instanceOf: ValueError, message: 'n must be one or more' });
  t.throws(() => new Semaphore(-1), { instanceOf: ValueError, message: 'semaphore initial value must be >= 0' });
  t.throws(() => new Semaphore(1.5), { instanceOf: TypeError });
  t.is(new Semaphore({ value: 3 }).getValue(), 3);
  t.is(new Semaphore().getValue(), 1);
  const [ms, got] = await timed(new Semaphore(0).acquire(true, 0.1));
  t.false(got);
  t.true(ms >= 95 && ms < 2000, `timed out after ${ms} ms`);

  const b = new BoundedSemaphore(1);
  t.is(String(b), '<BoundedSemaphore object value=1/1>');
  t.throws(() => b.release(), { instanceOf: ValueError, message: 'Semaphore released too many times' });
  t.true(await b.acquire());
  b.release();
  t.is(b.getValue(), 1);
});

test.serial('Condition: wait releases the lock and takes it back, notify wakes in order, RuntimeError without the lock', async (t) => {
  const c = new Condition();
  t.throws(() => as('A', () => c.notify()), { instanceOf: RuntimeError, message: 'cannot notify on un-acquired lock' });
  await t.throwsAsync(as('A', () => c.wait()), { instanceOf: RuntimeError, message: 'cannot wait on un-acquired lock' });
  // A holds the RLock twice and waits: the lock is free for B meanwhile.
  t.true(await as('A', () => c.acquire()));
  t.true(await as('A', () => c.acquire()));
  const aw = as('A', () => c.wait());
  t.true(await as('B', () => c.acquire(false)), 'wait released the lock');
  t.regex(String(c), /^<Condition\(<locked RLock object owner='B' count=1>, 1\)>$/);
  as('B', () => c.notify());
  t.false(await settled(aw), 'notified, but B still holds the lock');
  as('B', () => c.release());
  t.true(await aw);
  t.regex(String(c._lock), /owner='A' count=2/, 'the recursion count is restored');
  as('A', () => c.release());
  as('A', () => c.release());

  // Timeout: false, and the lock is held again.
  await as('A', () => c.acquire());
  const [ms, got] = await timed(as('A', () => c.wait({ timeout: 0.1 })));
  t.false(got);
  t.true(ms >= 95 && ms < 2000, `timed out after ${ms} ms`);
  t.regex(String(c._lock), /owner='A' count=1/);
  as('A', () => c.release());

  // notify(n) and notifyAll wake the first n waiters, then the rest.
  const woken: string[] = [];
  const waits = ['P', 'Q', 'R'].map(async (k) => {
    await as(k, () => c.acquire());
    const r = await as(k, () => c.wait(10));
    woken.push(k);
    as(k, () => c.release());
    return r;
  });
  await sleep(10);
  await as('N', () => c.acquire());
  as('N', () => c.notify(2));
  as('N', () => c.release());
  await sleep(20);
  t.deepEqual(woken, ['P', 'Q']);
  await as('N', () => c.acquire());
  as('N', () => c.notifyAll());
  as('N', () => c.release());
  t.deepEqual(await Promise.all(waits), [true, true, true]);
  t.deepEqual(woken, ['P', 'Q', 'R']);
});

test.serial('Condition over a manager Lock (not owned: held is enough)', async (t) => {
  const l = new Lock();
  const c = new Condition({ lock: l });
  t.is(c._lock, l);
  t.true(new Condition({})._lock instanceof RLock, 'no lock given: a new RLock');
  t.throws(() => new Condition(42 as never), { instanceOf: TypeError });
  await as('A', () => c.acquire());
  const w = as('A', () => c.wait(10));
  t.false(l.locked());
  await as('B', () => c.acquire());
  as('B', () => c.notify());
  as('B', () => c.release());
  t.true(await w);
  t.true(l.locked());
  c.release();
});

test.serial('Event: wait resolves once set, clear, timeouts return the flag', async (t) => {
  const e = new Event();
  t.false(e.isSet());
  t.is(String(e), '<Event object set=False>');
  t.false(await e.wait(0));
  const [ms, got] = await timed(e.wait({ timeout: 0.1 }));
  t.false(got);
  t.true(ms >= 95 && ms < 2000, `timed out after ${ms} ms`);
  const ws = [e.wait(), e.wait(10), e.wait()];
  t.false(await settled(ws[0]));
  e.set();
  t.deepEqual(await Promise.all(ws), [true, true, true]);
  t.true(await e.wait());
  e.clear();
  t.false(e.isSet());
  t.false(await e.wait(-1));
});

test.serial('Barrier: distinct indices, the action once per pass, reusable, parties/nWaiting/broken', async (t) => {
  let runs = 0;
  const b = new Barrier(3, () => {
    runs++;
  });
  t.is(b.parties, 3);
  t.is(String(b), '<Barrier object waiters=0/3>');
  for (let pass = 1; pass <= 2; pass++) {
    const w1 = as('A', () => b.wait());
    const w2 = as('B', () => b.wait());
    await sleep(5);
    t.is(b.nWaiting, 2);
    t.is(b.__getattribute__('n_waiting'), 2);
    t.false(await settled(w1));
    const w3 = as('C', () => b.wait());
    const idx = await Promise.all([w1, w2, w3]);
    t.deepEqual([...idx].sort(), [0, 1, 2]);
    t.is(runs, pass);
    t.is(b.nWaiting, 0);
  }
  t.false(b.broken);
  t.is(b.__getattribute__('parties'), 3);
  t.false(b.__getattribute__('broken'));
  t.throws(() => b.__getattribute__('_state'), { instanceOf: TypeError });
  t.throws(() => new Barrier(0), { instanceOf: ValueError });
  t.throws(() => new Barrier(2, 'x' as never), { instanceOf: TypeError });
});

test.serial('Barrier: a timeout breaks it for everyone, abort and reset, an action that throws breaks it', async (t) => {
  const b = new Barrier(3, { timeout: 0.1 });
  const w1 = b.wait(10).catch((e) => e);
  const [ms, e] = await timed(t.throwsAsync(b.wait(), { instanceOf: BrokenBarrierError }));
  t.truthy(e);
  t.true(ms >= 95 && ms < 2000, `the barrier's default timeout broke it after ${ms} ms`);
  t.true((await w1) instanceof BrokenBarrierError, 'the other party is released broken too');
  t.true(b.broken);
  await t.throwsAsync(b.wait(), { instanceOf: BrokenBarrierError });
  b.reset();
  t.false(b.broken);
  const r1 = b.wait(10);
  r1.catch(() => {});
  await sleep(5);
  b.reset();
  await t.throwsAsync(r1, { instanceOf: BrokenBarrierError }, 'reset breaks current waits');
  const a1 = b.wait(10);
  a1.catch(() => {});
  await sleep(5);
  b.abort();
  await t.throwsAsync(a1, { instanceOf: BrokenBarrierError });
  t.true(b.broken);
  t.is(String(b), '<Barrier object: broken>');

  const bad = new Barrier(2, async () => {
    throw new ValueError('action failed');
  });
  const p = bad.wait(10);
  p.catch(() => {});
  await t.throwsAsync(bad.wait(10), { instanceOf: ValueError, message: 'action failed' });
  await t.throwsAsync(p, { instanceOf: BrokenBarrierError });
  t.true(bad.broken);
});

test.serial('Queue: FIFO, Empty and Full, blocking put and get with timeouts, option forms', async (t) => {
  const q = new Queue(2);
  t.is(q.maxsize, 2);
  t.true(q.empty());
  t.throws(() => q.getNowait(), { instanceOf: Empty });
  t.throws(() => q.get(false), { instanceOf: Empty });
  t.throws(() => q.get({ block: true, timeout: -1 }), { instanceOf: Empty });
  q.put('a');
  q.putNowait({ b: [1] });
  t.true(q.full());
  t.is(q.qsize(), 2);
  t.throws(() => q.putNowait('c'), { instanceOf: Full });
  t.throws(() => q.put('c', { block: false }), { instanceOf: Full });
  let [ms] = await timed(t.throwsAsync(Promise.resolve().then(() => q.put('c', true, 0.1)), { instanceOf: Full }));
  t.true(ms >= 95 && ms < 2000, `put timed out after ${ms} ms`);
  // A parked put goes in when a slot frees, after what was there.
  const p = q.put('c');
  t.false(await settled(p));
  t.is(q.get(), 'a');
  await p;
  t.deepEqual(q.get(), { b: [1] });
  t.is(q.get(), 'c');
  // A parked get takes the next item put.
  const g1 = q.get();
  const g2 = q.get({ timeout: 10 });
  q.put(1);
  q.put(2);
  t.deepEqual(await Promise.all([g1, g2]), [1, 2]);
  t.true(q.empty());
  [ms] = await timed(t.throwsAsync(Promise.resolve().then(() => q.get(true, 0.1)), { instanceOf: Empty }));
  t.true(ms >= 95 && ms < 2000, `get timed out after ${ms} ms`);
  t.is(String(q), '<Queue object maxsize=2 qsize=0>');
});

test.serial('Queue: unbounded, many items in order (the head is compacted), taskDone and join', async (t) => {
  const q = new Queue();
  t.false(q.full());
  for (let i = 0; i < 5000; i++) q.put(i);
  const got: unknown[] = [];
  for (let i = 0; i < 3000; i++) got.push(q.get());
  for (let i = 5000; i < 6000; i++) q.put(i);
  while (!q.empty()) got.push(q.getNowait());
  t.deepEqual(got, [...Array(6000).keys()]);
  // 6000 items put, none done yet.
  const j = q.join();
  t.false(await settled(j));
  for (let i = 0; i < 5999; i++) q.taskDone();
  t.false(await settled(j));
  q.taskDone();
  await j;
  await q.join();
  t.throws(() => q.taskDone(), { instanceOf: ValueError, message: 'task_done() called too many times' });
});

test.serial('callerGone: a client that went away leaves no waits parked and no locks held', async (t) => {
  const l = new Lock();
  const r = new RLock();
  await as('A', () => l.acquire());
  await as('A', () => r.acquire());
  await as('A', () => r.acquire());
  const bl = as('B', () => l.acquire());
  const br = as('B', () => r.acquire());
  // A's parked get would otherwise swallow the next item.
  const q = new Queue();
  const ag = Promise.resolve(as('A', () => q.get())).catch((e) => e);
  // A's barrier party will never arrive: the others are released with BrokenBarrierError.
  const bar = new Barrier(3);
  const aw = as('A', () => bar.wait()).catch((e) => e);
  const bw = as('B', () => bar.wait());
  bw.catch(() => {});
  // A waiting on a condition does not take the lock back.
  const c = new Condition();
  await as('A', () => c.acquire());
  const ac = as('A', () => c.wait()).catch((e) => e);
  await sleep(5);
  callerGone('A');
  t.true(await bl);
  t.true(await br);
  t.regex(String(r), /owner='B' count=1/);
  await ag;
  q.put('x');
  t.is(q.qsize(), 1, 'the item stays for a live client');
  await t.throwsAsync(bw, { instanceOf: BrokenBarrierError });
  await aw;
  await ac;
  t.true(await as('B', () => c.acquire(false)), 'the condition lock is free');
  // Nothing left for A.
  callerGone('A');
  t.true(l.locked());
});

test.serial('Pool: the library Pool in this process', async (t) => {
  const pool = await makePool(2);
  try {
    t.deepEqual(await pool.map(square, [1, 2, 3]), [1, 4, 9]);
    t.is(await pool.applyAsync(add, [2, 3]).get(10), 5);
    const out: number[] = [];
    for await (const x of pool.imap(square, [4, 5])) out.push(x as number);
    t.deepEqual(out, [16, 25]);
  } finally {
    pool.terminate();
    await pool.join();
  }
});
