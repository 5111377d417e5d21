import test from 'ava';
import { AssertionError } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Pipe, ValueError, BrokenBarrierError, getLogger } from '../index.js';
import { Value, Array as SharedArray, RawArray } from '../src/sharedctypes.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore } from '../src/synchronize.js';
import {
  barrierBroken, barrierPartyCounting, barrierPartySync, boundedOverRelease, countPass, hammerSemaphores,
  holdForever, incrementAsync, takeWithoutName, incrementSync, lockFromMessage, releaseForeign, semaphoreVisitor,
  setEventLater, waitForFlag, waitForFlagSync,
} from './fixtures/sync_targets.js';
import { startChild } from './helpers.js';

// Every test that starts processes is serial: started all at once, the children of this
// file (two dozen Node processes loading TypeScript) take well over ten seconds to come
// up on a two-core machine, which is longer than the waits below allow for. Time limits
// are generous for the same reason (a loaded machine); they catch hangs, not slowness.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` every 5 ms until it holds; false if `seconds` pass first. */
async function until(cond: () => boolean, seconds: number): Promise<boolean> {
  const end = performance.now() + seconds * 1000;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(5);
  }
  return true;
}

test.serial('Lock: booleans, non-blocking, timeouts, ValueError on release of an unlocked lock', async (t) => {
  const l = new Lock();
  t.is(String(l), '<Lock(owner=None)>');
  t.true(l.acquireSync());
  t.is(String(l), '<Lock(owner=MainProcess)>');
  t.false(l.acquireSync(false));
  t.false(l.acquireSync(true, -1), 'negative timeout means zero');
  t.false(await l.acquire(false));
  t.false(await l.acquire({ timeout: -5 }));
  let t0 = performance.now();
  t.false(l.acquireSync({ timeout: 0.1 }));
  let dt = performance.now() - t0;
  t.true(dt >= 95 && dt < 1000, `sync timeout took ${dt} ms`);
  t0 = performance.now();
  t.false(await l.acquire(true, 0.1));
  dt = performance.now() - t0;
  t.true(dt >= 95 && dt < 1000, `async timeout took ${dt} ms`);
  l.release();
  t.is(String(l), '<Lock(owner=None)>');
  t.throws(() => l.release(), { instanceOf: ValueError });
  // A Lock may be released by anyone: a pending async acquire gets it.
  l.acquireSync();
  const pending = l.acquire(true, 5);
  setTimeout(() => l.release(), 20);
  t.true(await pending);
  l.release();
});

test.serial('RLock: re-entrant, repr with the count, AssertionError when not the owner', async (t) => {
  const r = new RLock();
  t.is(String(r), '<RLock(None, 0)>');
  t.throws(() => r.release(), { instanceOf: AssertionError });
  r.acquireSync();
  t.true(await r.acquire());
  t.true(r.acquireSync(false));
  t.is(String(r), '<RLock(MainProcess, 3)>');
  r.release();
  r.release();
  t.is(String(r), '<RLock(MainProcess, 1)>');
  // Another process may not release it.
  const [a, b] = Pipe();
  const p = startChild(t, releaseForeign, [r, b]);
  t.is(await a.recv(), 'AssertionError');
  await p.join();
  t.is(String(r), '<RLock(MainProcess, 1)>');
  r.release();
  t.is(String(r), '<RLock(None, 0)>');
  // Held by another process: repr says so, and our acquire times out.
  const ready = new Event();
  const holder = startChild(t, holdForever, [r, ready]);
  t.true(await ready.wait(60));
  t.is(String(r), '<RLock(SomeOtherProcess, nonzero)>');
  t.false(await r.acquire(true, 0.05));
  holder.terminate();
  await holder.join();
});

test.serial('Semaphore and BoundedSemaphore: getValue, repr, over-release', async (t) => {
  const s = new Semaphore(2);
  t.is(s.getValue(), 2);
  t.is(String(s), '<Semaphore(value=2)>');
  t.true(await s.acquire());
  t.true(s.acquireSync());
  t.false(s.acquireSync(false));
  t.false(await s.acquire(true, 0.02));
  s.release();
  s.release();
  s.release();
  t.is(s.getValue(), 3, 'a Semaphore may be released above its initial value');
  t.throws(() => new Semaphore(-1), { instanceOf: ValueError });
  const b = new BoundedSemaphore({ value: 1 });
  t.is(String(b), '<BoundedSemaphore(value=1, maxvalue=1)>');
  t.throws(() => b.release(), { instanceOf: ValueError });
  b.acquireSync();
  t.is(String(b), '<BoundedSemaphore(value=0, maxvalue=1)>');
  b.release();
  const [x, y] = Pipe();
  const p = startChild(t, boundedOverRelease, [b, y]);
  t.is(await x.recv(), 'ValueError');
  await p.join();
});

test('1,000 pending async acquires leave file reads and timers running, then all get the lock in turn', async (t) => {
  const l = new Lock();
  l.acquireSync();
  const order: number[] = [];
  const pending = Array.from({ length: 1000 }, (_, i) => l.acquire().then((ok) => {
    order.push(i);
    return ok;
  }));
  // The event loop keeps running: timers tick and a file is read while all are pending
  // (a blocked loop would never get there: the lock is ours).
  let ticks = 0;
  const iv = setInterval(() => ticks++, 5);
  const text = await readFile(new URL(import.meta.url));
  t.true(text.length > 0);
  const ticked = await until(() => ticks >= 10, 30);
  clearInterval(iv);
  t.true(ticked, `timers ran ${ticks} times`);
  t.deepEqual(order, []);
  for (let i = 0; i < 1000; i++) {
    l.release();
    t.true(await pending[i]);
  }
  t.deepEqual(order, Array.from({ length: 1000 }, (_, i) => i));
  l.release();
  t.is(String(l), '<Lock(owner=None)>');
});

test('a scoped hold releases at the end of the block', async (t) => {
  const l = new Lock();
  {
    using _h = await l.hold();
    t.is(String(l), '<Lock(owner=MainProcess)>');
  }
  t.is(String(l), '<Lock(owner=None)>');
  const s = new Semaphore(1);
  {
    using _h = s.holdSync();
    t.is(s.getValue(), 0);
  }
  t.is(s.getValue(), 1);
  const c = new Condition();
  {
    using _h = await c.hold();
    c.notify();
  }
  t.throws(() => c.notify(), { instanceOf: AssertionError });
  l.acquireSync();
  await t.throwsAsync(() => l.hold(true, 0.01), { name: 'TimeoutError' });
  l.release();
});

test.serial('several processes increment one locked Value exactly', async (t) => {
  const v = Value('i', 0);
  const ps = [
    startChild(t, incrementSync, [v, 3000]),
    startChild(t, incrementSync, [v, 3000]),
    startChild(t, incrementAsync, [v, 2000]),
    startChild(t, incrementAsync, [v, 2000]),
  ];
  await incrementAsync(v, 1000);
  for (const p of ps) {
    await p.join();
    t.is(p.exitcode, 0);
  }
  t.is(v.value, 11000);
});

test.serial('Semaphore(2) admits at most two of six processes at a time', async (t) => {
  const sem = new Semaphore(2);
  const guard = new Lock();
  const inside = SharedArray('i', 2);
  const ps = [];
  for (let i = 0; i < 6; i++) ps.push(startChild(t, semaphoreVisitor, [sem, guard, inside, 5]));
  for (const p of ps) {
    await p.join();
    t.is(p.exitcode, 0);
  }
  t.is(inside[0], 0);
  t.is(inside[1], 2, 'two were inside at once, never more');
  t.is(sem.getValue(), 2);
});

test.serial('Condition: wait times out, notify(n) and notifyAll need the lock', async (t) => {
  const c = new Condition(new Lock());
  await t.throwsAsync(() => c.wait(), { instanceOf: AssertionError });
  t.throws(() => c.notify(), { instanceOf: AssertionError });
  t.throws(() => c.notifyAll(), { instanceOf: AssertionError });
  await c.acquire();
  const t0 = performance.now();
  t.false(await c.wait(0.1));
  const dt = performance.now() - t0;
  t.true(dt >= 95 && dt < 1000, `wait took ${dt} ms`);
  t.false(c.waitSync(0.01));
  t.regex(String(c), /^<Condition\(<Lock\(owner=MainProcess\)>, 0\)>$/);
  c.release();
  // notify(2) wakes two of three waiters in this process; notifyAll the last. (With an
  // RLock all three would be the same owner: ownership is per thread, as in Python.)
  const cond = new Condition(new Lock());
  const woken: number[] = [];
  const waiters = [0, 1, 2].map(async (i) => {
    await cond.acquire();
    const ok = await cond.wait(10);
    woken.push(i);
    cond.release();
    return ok;
  });
  t.true(await until(() => String(cond).endsWith(', 3)>'), 30), String(cond));
  await cond.acquire();
  t.is(String(cond), '<Condition(<Lock(owner=MainProcess)>, 3)>');
  cond.notify(2);
  cond.release();
  t.true(await until(() => woken.length >= 2, 30));
  await sleep(50);
  t.is(woken.length, 2);
  await cond.acquire();
  cond.notifyAll();
  cond.release();
  t.deepEqual(await Promise.all(waiters), [true, true, true]);
});

test.serial('Condition.waitFor across processes (async and sync forms)', async (t) => {
  for (const target of [waitForFlag, waitForFlagSync]) {
    const cond = new Condition();
    const flag = Value('i', 0, { lock: false });
    const [a, b] = Pipe();
    const p = startChild(t, target, [cond, flag, 3, b]);
    t.is(await a.recv(), 'waiting');
    for (let i = 1; i <= 3; i++) {
      await cond.acquire();
      flag.value = i;
      cond.notifyAll();
      cond.release();
      await sleep(10);
    }
    const r = await a.recv();
    t.true(r.ok);
    await p.join();
    t.is(p.exitcode, 0);
  }
});

test.serial('Event: isSet, set, clear, wait with timeout, set from another process', async (t) => {
  const ev = new Event();
  t.false(ev.isSet());
  t.is(String(ev), '<Event(unset)>');
  let t0 = performance.now();
  t.false(await ev.wait(0.05));
  t.true(performance.now() - t0 >= 45);
  t.false(ev.waitSync(0.01));
  ev.set();
  t.true(ev.isSet());
  t.true(await ev.wait());
  t.true(ev.waitSync());
  ev.clear();
  t.false(ev.isSet());
  const p = startChild(t, setEventLater, [ev, 50]);
  t.true(await ev.wait(60));
  await p.join();
});

test.serial('Barrier with five parties across processes: distinct indexes, the action once per pass', async (t) => {
  const counter = Value('i', 0);
  const b = new Barrier(5, countPass, 60);
  t.is(b.parties, 5);
  t.is(b.nWaiting, 0);
  t.false(b.broken);
  const conns = [];
  const ps = [];
  for (let i = 0; i < 5; i++) {
    const [a, c] = Pipe();
    conns.push(a);
    ps.push(startChild(t, i % 2 ? barrierPartySync : barrierPartyCounting, [b, counter, 3, c]));
  }
  const results: number[][] = [];
  for (const a of conns) results.push(await a.recv());
  for (const p of ps) {
    await p.join();
    t.is(p.exitcode, 0);
  }
  for (let r = 0; r < 3; r++) t.deepEqual(results.map((x) => x[r]).sort(), [0, 1, 2, 3, 4]);
  t.false(b.broken);
  t.is(b.nWaiting, 0);
  t.is(counter.value, 3, 'the action ran once per pass, in the last party to arrive');
});

test.serial('Barrier in one process: action once per pass, abort and reset', async (t) => {
  let runs = 0;
  const b = new Barrier(3, { action: () => void runs++ });
  const idx = await Promise.all([b.wait(), b.wait(), b.wait()]);
  t.deepEqual([...idx].sort(), [0, 1, 2]);
  t.is(runs, 1);
  await Promise.all([b.wait(), b.wait(), b.wait()]);
  t.is(runs, 2);
  // A timeout breaks it for everyone.
  const first = b.wait();
  const t0 = performance.now();
  await t.throwsAsync(() => b.wait(0.05), { instanceOf: BrokenBarrierError });
  t.true(performance.now() - t0 < 1000);
  await t.throwsAsync(first, { instanceOf: BrokenBarrierError });
  t.true(b.broken);
  t.throws(() => b.waitSync(), { instanceOf: BrokenBarrierError });
  b.reset();
  t.false(b.broken);
  // An action that throws breaks the barrier; the thrower gets its error.
  const bad = new Barrier(2, () => {
    throw new RangeError('action failed');
  });
  const w1 = bad.wait();
  await t.throwsAsync(bad.wait(), { instanceOf: RangeError });
  await t.throwsAsync(w1, { instanceOf: BrokenBarrierError });
  t.regex(String(b), /^<Barrier\(parties=3, nWaiting=0, broken=False\)>$/);
});

test.serial('Barrier.abort wakes parties in other processes with BrokenBarrierError', async (t) => {
  const b = new Barrier(5);
  const conns = [];
  const ps = [];
  for (let i = 0; i < 3; i++) {
    const [a, c] = Pipe();
    conns.push(a);
    ps.push(startChild(t, barrierBroken, [b, c]));
  }
  t.true(await until(() => b.nWaiting >= 3, 60), `parties did not arrive (${b.nWaiting} waiting)`);
  b.abort();
  t.true(b.broken);
  for (const a of conns) t.deepEqual(await a.recv(), { error: 'BrokenBarrierError' });
  for (const p of ps) await p.join();
  await t.throwsAsync(() => b.wait(), { instanceOf: BrokenBarrierError });
});

test.serial('a holder killed while holding a Lock or RLock: the next acquirer gets it, with a WARNING', async (t) => {
  for (const lock of [new Lock(), new RLock()]) {
    const records: string[] = [];
    const handler = (r: { levelname: string; message: string }) => records.push(`${r.levelname}: ${r.message}`);
    getLogger().addHandler(handler);
    try {
      const ready = new Event();
      const p = startChild(t, holdForever, [lock, ready]);
      t.true(await ready.wait(60));
      t.false(lock.acquireSync(false));
      const waiting = lock.acquire(true, 30);
      p.kill();
      const t0 = performance.now();
      t.true(await waiting, 'acquired after the holder died');
      t.true(performance.now() - t0 < 5000);
      t.true(records.some((m) => m.startsWith('WARNING: ') && m.includes(String(p.pid)) && m.includes('died')), records.join('\n'));
      lock.release();
      t.true(lock.acquireSync(false));
      lock.release();
      await p.join();
    } finally {
      getLogger().removeHandler(handler);
    }
  }
});

test.serial('a process killed between taking a lock and writing its name: waiters take it over after the grace, with a WARNING', async (t) => {
  const records: string[] = [];
  const handler = (r: { levelname: string; message: string }) => records.push(`${r.levelname}: ${r.message}`);
  getLogger().addHandler(handler);
  try {
    for (const lock of [new Lock(), new RLock()]) {
      for (const form of ['async', 'sync'] as const) {
        const p = startChild(t, takeWithoutName, [lock]);
        await p.join();
        t.is(p.exitcode, 0);
        t.false(lock.acquireSync(false), 'held, by nobody known');
        const t0 = performance.now();
        t.true(form === 'async' ? await lock.acquire(true, 60) : lock.acquireSync(true, 60), `${lock} ${form}`);
        // Not at once: a live holder is between those two stores for a few instructions.
        t.true(performance.now() - t0 >= 1900, `${performance.now() - t0} ms`);
        t.true(records.some((m) => m.startsWith('WARNING: ') && m.includes('died while taking or releasing')), records.join('\n'));
        records.length = 0;
        lock.release();
        t.true(lock.acquireSync(false));
        lock.release();
      }
    }
  } finally {
    getLogger().removeHandler(handler);
  }
});

test.serial('the sync form recovers a lock from a dead holder too', async (t) => {
  const lock = new Lock();
  const ready = new Event();
  const handler = () => {};
  getLogger().addHandler(handler);
  try {
    const p = startChild(t, holdForever, [lock, ready]);
    t.true(await ready.wait(60));
    p.kill();
    await p.join();
    t.true(lock.acquireSync(true, 30));
    lock.release();
  } finally {
    getLogger().removeHandler(handler);
  }
});

test.serial('locks travel inside messages and are the same lock', async (t) => {
  const lock = new Lock();
  const ev = new Event();
  const [a, b] = Pipe();
  const p = startChild(t, lockFromMessage, [b]);
  lock.acquireSync();
  a.send({ lock, ev });
  await sleep(50);
  lock.release();
  const r = await a.recv();
  t.true(r.got);
  t.regex(r.repr, /^<Lock\(owner=Process-\d+\)>$/, 'held by the child, named as the child');
  t.false(lock.acquireSync(false), 'held by the child');
  t.is(String(lock), '<Lock(owner=SomeOtherProcess)>');
  ev.set();
  t.is(await a.recv(), 'released');
  t.true(lock.acquireSync(false));
  lock.release();
  await p.join();
});

test.serial('async and blocking waits in several processes lose no wake-ups (semaphores, event, barrier)', async (t) => {
  // Semaphores have no holder recheck: a wake-up the futex waiter missed would stall here.
  const kids = 4;
  const rounds = 1500;
  const sems = [new Semaphore(1), new Semaphore(1), new Semaphore(1)];
  const inside = RawArray('i', sems.length) as Int32Array;
  const ev = new Event();
  const bar = new Barrier(kids + 1, null, 60);
  const conns = [];
  for (let i = 0; i < kids; i++) {
    const [a, b] = Pipe();
    conns.push(a);
    startChild(t, hammerSemaphores, [sems, inside, rounds, i + 1, ev, bar, b]);
  }
  const [me, sink] = Pipe();
  const mine = hammerSemaphores(sems, inside, rounds, 99, ev, bar, sink);
  t.is(await me.recv(), 'hammered');
  for (const a of conns) t.is(await a.recv(), 'hammered');
  ev.set();
  for (const a of [me, ...conns]) t.is(await a.recv(), 'event');
  await mine;
  for (const a of [me, ...conns]) t.is(await a.recv(), 'passed');
  t.deepEqual(sems.map((s) => s.getValue()), [1, 1, 1]);
});
