// SyncManager's Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier, Queue,
// JoinableQueue and Pool typeids, used from child processes through their proxies.
import test from 'ava';
import { inspect } from 'node:util';
import { BrokenBarrierError, Empty, Full, Manager, RuntimeError, TimeoutError, ValueError } from '../index.js';
import {
  AcquirerProxy, AsyncResultProxy, BarrierProxy, ConditionProxy, EventProxy, IteratorProxy, PoolProxy, QueueProxy, SemaphoreProxy,
} from '../src/managers.js';
import { RawValue } from '../src/sharedctypes.js';
import {
  barrierParty, consume, getForever, holdLockForever, joinableWorker, lockedIncrements, notifyFromChild, produce, rlockTwice,
  semaphoreVisitor, setLater, usePool, waitThenReport,
} from './fixtures/manager_sync_targets.js';
import { square, failAt, add } from './fixtures/pool_targets.js';
import { startChild } from './helpers.js';

// Serial: each test starts a manager and a few children (Node processes loading
// TypeScript); time limits are generous for a loaded two-core machine.

test.serial('Lock: a manager Lock serializes the read-modify-write rounds of three children', async (t) => {
  await using m = await Manager();
  const lock = await m.Lock();
  t.true(lock instanceof AcquirerProxy);
  t.regex(inspect(lock), /^<AcquirerProxy object, typeid 'Lock' at 0x[0-9a-f]+>$/);
  const counter = RawValue('i', 0);
  const ps = [
    startChild(t, lockedIncrements, [lock, counter, 40, false]),
    startChild(t, lockedIncrements, [lock, counter, 40, true]),
    startChild(t, lockedIncrements, [lock, counter, 40, false]),
  ];
  for (const p of ps) await p.join(120);
  t.deepEqual(ps.map((p) => p.exitcode), [0, 0, 0]);
  t.is(counter.value, 120, 'no update lost');
  t.is(String(lock), '<unlocked Lock object>');
  // Python's threading semantics through the proxy.
  t.true(await lock.acquire());
  t.false(await lock.acquire(false));
  t.false(lock.acquireSync({ timeout: 0.05 }));
  await lock.release();
  await t.throwsAsync(lock.release(), { instanceOf: RuntimeError, message: 'release unlocked lock' });
  t.throws(() => lock.releaseSync(), { instanceOf: RuntimeError });
  {
    using _h = lock.holdSync();
    t.is(String(lock), '<locked Lock object>');
  }
  t.is(String(lock), '<unlocked Lock object>');
  await lock.acquire();
  await t.throwsAsync(lock.hold(true, 0.05), { instanceOf: TimeoutError });
  await lock.release();
});

test.serial('RLock: owned by the child that took it; another process can neither take nor release it', async (t) => {
  await using m = await Manager();
  const r = await m.RLock();
  const out = await m.Queue();
  const go = await m.Event();
  const p = startChild(t, rlockTwice, [r, out, go]);
  t.is(await out.get(true, 60), 'held twice');
  t.regex(String(r), /^<locked RLock object owner='\d+:0' count=2>$/);
  t.false(await r.acquire(false));
  await t.throwsAsync(r.release(), { instanceOf: RuntimeError, message: 'cannot release un-acquired lock' });
  const mine = r.acquire(true, 60);
  await go.set();
  t.is(await out.get(true, 60), 'released');
  t.true(await mine, 'taken once the child released it twice');
  t.true(await r.acquire(), 're-entrant for this process too');
  await r.release();
  await r.release();
  await p.join(60);
  t.is(p.exitcode, 0);
});

test.serial('Semaphore and BoundedSemaphore: at most `value` children inside; getValue; ValueError past the bound', async (t) => {
  await using m = await Manager();
  const s = await m.Semaphore(2);
  t.true(s instanceof SemaphoreProxy);
  const inside = await m.list<number>();
  const peak = await m.list<number>();
  const ps = [0, 1, 2].map(() => startChild(t, semaphoreVisitor, [s, inside, peak]));
  for (const p of ps) await p.join(120);
  t.deepEqual(ps.map((p) => p.exitcode), [0, 0, 0]);
  const peaks = await peak._getvalue();
  t.is(peaks.length, 15);
  t.true(Math.max(...peaks) <= 2, `at most two inside at once: ${peaks}`);
  t.is(await s.getValue(), 2);
  await s.release(3);
  t.is(s.getValueSync(), 5);
  await t.throwsAsync(s.release(0), { instanceOf: ValueError, message: 'n must be one or more' });

  const b = await m.BoundedSemaphore({ value: 1 });
  await t.throwsAsync(b.release(), { instanceOf: ValueError, message: 'Semaphore released too many times' });
  t.true(b.acquireSync());
  t.false(await b.acquire(true, 0.05));
  b.releaseSync();
  await t.throwsAsync(m.Semaphore(-1), { instanceOf: ValueError });
});

test.serial('Queue: a producer child and a consumer child, items in order; Empty, Full, timeouts', async (t) => {
  await using m = await Manager();
  const q = await m.Queue<number | null>(5);
  t.true(q instanceof QueueProxy);
  const out = await m.Queue<number[]>();
  const consumer = startChild(t, consume, [q, out]);
  const producer = startChild(t, produce, [q, 200]);
  t.deepEqual(await out.get(true, 120), [...Array(200).keys()]);
  await producer.join(60);
  await consumer.join(60);
  t.deepEqual([producer.exitcode, consumer.exitcode], [0, 0]);

  t.true(await q.empty());
  await t.throwsAsync(q.get(false), { instanceOf: Empty });
  await t.throwsAsync(q.getNowait(), { instanceOf: Empty });
  t.throws(() => q.getSync(true, 0.05), { instanceOf: Empty });
  for (let i = 0; i < 5; i++) await q.putNowait(i);
  t.true(await q.full());
  t.is(q.qsizeSync(), 5);
  await t.throwsAsync(q.put(9, { timeout: 0.05 }), { instanceOf: Full });
  t.throws(() => q.putNowaitSync(9), { instanceOf: Full });
  // A blocked put goes in once a slot frees.
  const blocked = q.put(5);
  t.is(await q.get(), 0);
  await blocked;
  t.deepEqual(await Promise.all([1, 2, 3, 4, 5].map(() => q.get())), [1, 2, 3, 4, 5]);
  t.is(String(q), '<Queue object maxsize=5 qsize=0>');
});

test.serial('JoinableQueue: join() returns when the worker child has marked every item done', async (t) => {
  await using m = await Manager();
  const q = await m.JoinableQueue<number | null>();
  const out = await m.Queue<number>();
  for (let i = 1; i <= 50; i++) await q.put(i);
  await q.put(null);
  const p = startChild(t, joinableWorker, [q, out]);
  await q.join();
  t.true(await q.empty());
  t.is(await out.get(true, 60), 1275);
  await p.join(60);
  t.is(p.exitcode, 0);
  await t.throwsAsync(q.taskDone(), { instanceOf: ValueError, message: 'task_done() called too many times' });
});

test.serial('Event: set by a child wakes this process; set here wakes a child blocked in waitSync', async (t) => {
  await using m = await Manager();
  const ev = await m.Event();
  t.true(ev instanceof EventProxy);
  t.false(await ev.isSet());
  t.false(await ev.wait(0.05));
  startChild(t, setLater, [ev, 100]);
  t.true(await ev.wait(60));
  t.true(ev.isSetSync());
  await ev.clear();
  const out = await m.Queue();
  const p = startChild(t, waitThenReport, [ev, out]);
  await new Promise((r) => setTimeout(r, 200));
  await ev.set();
  const [ok, isSet, name] = (await out.get(true, 60)) as [boolean, boolean, string];
  t.true(ok);
  t.true(isSet);
  t.regex(name, /^Process-\d+$/);
  await p.join(60);
  t.is(p.exitcode, 0);
});

test.serial('Barrier: three children pass together with distinct indices; parties, nWaiting, broken; a timeout breaks it', async (t) => {
  await using m = await Manager();
  const b = await m.Barrier(3);
  t.true(b instanceof BarrierProxy);
  t.is(b.parties, 3);
  t.is(b.nWaiting, 0);
  t.false(b.broken);
  const out = await m.Queue<number>();
  const ps = [false, true, false].map((sync) => startChild(t, barrierParty, [b, out, sync]));
  const idx = [await out.get(true, 120), await out.get(true, 60), await out.get(true, 60)];
  t.deepEqual(idx.sort(), [0, 1, 2]);
  for (const p of ps) await p.join(60);
  t.deepEqual(ps.map((p) => p.exitcode), [0, 0, 0]);

  const other = b.wait(60);
  other.catch(() => {});
  while (b.nWaiting !== 1) await new Promise((r) => setTimeout(r, 5));
  await t.throwsAsync(b.wait(0.05), { instanceOf: BrokenBarrierError });
  await t.throwsAsync(other, { instanceOf: BrokenBarrierError });
  t.true(b.broken);
  await b.reset();
  t.false(b.broken);
  b.abortSync();
  t.throws(() => b.waitSync(), { instanceOf: BrokenBarrierError });
});

test.serial('Condition: a child notifies this process waiting in waitFor; RuntimeError without the lock', async (t) => {
  await using m = await Manager();
  const c = await m.Condition();
  t.true(c instanceof ConditionProxy);
  const l = await m.list<string>();
  await t.throwsAsync(c.wait(), { instanceOf: RuntimeError, message: 'cannot wait on un-acquired lock' });
  await t.throwsAsync(c.notify(), { instanceOf: RuntimeError, message: 'cannot notify on un-acquired lock' });
  await c.acquire();
  startChild(t, notifyFromChild, [c, l]);
  const got = await c.waitFor(async () => (await l.len()) > 0, 60);
  t.true(got);
  t.deepEqual(await l._getvalue(), ['ready']);
  t.false(await c.wait(0.05), 'nobody notifies: false after the timeout, lock held again');
  t.false(c.waitForSync(() => false, 0.05));
  await c.release();

  // Over a Lock proxy of the same manager: the Condition uses that very lock.
  const lock = await m.Lock();
  const c2 = await m.Condition(lock);
  await c2.acquire();
  t.false(await lock.acquire(false), "the condition's lock is the manager Lock");
  await c2.release();
  t.true(await lock.acquire(false));
  await lock.release();
  await t.throwsAsync(m.Condition((await m.Queue()) as never), { instanceOf: TypeError });
});

test.serial('Pool: a manager Pool used from a child; AsyncResult and Iterator proxies; errors keep their class', async (t) => {
  await using m = await Manager();
  await using pool = await m.Pool(2);
  t.true(pool instanceof PoolProxy);
  t.deepEqual(await pool.map(square, [1, 2, 3]), [1, 4, 9]);
  t.deepEqual(await pool.map(square, new Set([5])), [25]);
  t.deepEqual(await pool.starmap(add, [[1, 2], [3, 4]]), [3, 7]);
  t.is(await pool.apply(add, [2, 3]), 5);
  t.is(pool.applySync(add, [4, 4]), 8);
  const r = await pool.applyAsync(square, [6]);
  t.true(r instanceof AsyncResultProxy);
  t.is(await r.get(60), 36);
  t.true(await r.successful());
  const mr = await pool.mapAsync(square, [1, 2], { chunksize: 1 });
  t.deepEqual(mr.getSync(60), [1, 4]);
  t.deepEqual(await (await pool.starmapAsync(add, [[5, 5]])).get(60), [10]);
  const it = await pool.imap(square, [7, 8]);
  t.true(it instanceof IteratorProxy);
  t.deepEqual(await it.next(60), { done: false, value: 49 });
  t.deepEqual(it.nextSync(60), { done: false, value: 64 });
  t.deepEqual(await it.next(), { done: true, value: undefined });
  const seen: number[] = [];
  for await (const x of pool.imap(square, [1, 2, 3])) seen.push(x);
  t.deepEqual(seen, [1, 4, 9]);
  await t.throwsAsync(pool.map(failAt, [4, 5, 6]), { instanceOf: RangeError, message: 'bad item 5' });

  const out = await m.Queue();
  const p = startChild(t, usePool, [pool, out]);
  const res = (await out.get(true, 120)) as Record<string, unknown>;
  t.deepEqual(res, { mapped: [1, 4, 9], got: 81, ready: true, it: [16, 25], resultType: 'AsyncResultProxy' });
  await p.join(60);
  t.is(p.exitcode, 0);
});

test.serial('a killed client: its lock is released and its blocked get() does not swallow the next item', async (t) => {
  await using m = await Manager();
  const lock = await m.Lock();
  const q = await m.Queue();
  const ready = await m.Event();
  const holder = startChild(t, holdLockForever, [lock, ready]);
  t.true(await ready.wait(120));
  t.false(await lock.acquire(false));
  holder.kill();
  await holder.join(60);
  t.true(await lock.acquire(true, 60), 'released when its holder went away');
  await lock.release();

  await ready.clear();
  const getter = startChild(t, getForever, [q, ready]);
  t.true(await ready.wait(120));
  await new Promise((r) => setTimeout(r, 100));
  getter.kill();
  await getter.join(60);
  t.is(getter.exitcode, -9);
  // Once the server has seen the connection close (it gave back the child's reference to
  // the queue), a put: the item stays for a live client.
  const refs = async () => (await m.debugInfo()).find((o) => o.id === q._id)?.refcount;
  for (let i = 0; i < 600 && (await refs()) !== 1; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(await refs(), 1);
  await q.put('kept');
  t.is(await q.get(true, 5), 'kept');
});
