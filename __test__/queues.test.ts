import test from 'ava';
import { AssertionError } from 'node:assert';
import { performance } from 'node:perf_hooks';
import { Empty, Full, OSError, Pipe, Process, ValueError } from '../index.js';
import { RawArray } from '../src/sharedctypes.js';
import { Lock } from '../src/synchronize.js';
import { JoinableQueue, Queue, SimpleQueue } from '../src/queues.js';
import {
  consumeForever, echoOne, produce, produceForever, putAndReturn, putBig, simplePut, squareWorker, takeOne,
} from './fixtures/queue_targets.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(target: (...a: any[]) => unknown, args: unknown[]): Process {
  const p = new Process({ target, args });
  p.start();
  return p;
}

async function elapsed(fn: () => unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

test('put/get, nowait forms, qsize/empty/full, options objects', async (t) => {
  const q = new Queue(2);
  t.is(q.maxsize, 2);
  t.true(q.empty());
  t.false(q.full());
  await q.put({ a: [1, 2n, new Map([[1, 'x']])] });
  q.putNowait('two');
  t.is(q.qsize(), 2);
  t.true(q.full());
  t.throws(() => q.putNowait(3), { instanceOf: Full });
  await t.throwsAsync(q.put(3, false), { instanceOf: Full });
  await t.throwsAsync(q.put(3, { block: false }), { instanceOf: Full });
  t.deepEqual(await q.get(), { a: [1, 2n, new Map([[1, 'x']])] });
  t.is(q.getSync({ timeout: 1 }), 'two');
  t.throws(() => q.getNowait(), { instanceOf: Empty });
  await t.throwsAsync(q.get(false), { instanceOf: Empty });
  t.throws(() => q.getSync(true, -1), { instanceOf: Empty }, 'a negative timeout means zero');
  // Every kind of small message through the fast paths, and an empty Buffer.
  for (const v of [undefined, null, true, false, 1.5, 'é', Buffer.from('xy'), Buffer.alloc(0), 'x'.repeat(5000), Buffer.alloc(70_000, 3)]) {
    q.putSync(v);
    t.deepEqual(q.getSync(), v);
  }
  t.is(new Queue({ maxsize: 3 }).maxsize, 3);
  t.is(new Queue(0).maxsize, 0);
  t.is(new Queue(-5).maxsize, 0, 'maxsize <= 0 means unbounded');
  t.is(String(new JoinableQueue(4)), '<multiprocessing.queues.JoinableQueue object maxsize=4>');
});

test('unbounded: many items, byte capacity; an item larger than the ring is put all the same', async (t) => {
  const q = new Queue(0, { capacity: 1 << 20 });
  t.is(q.capacity, 1 << 20);
  for (let i = 0; i < 5000; i++) q.putNowait(i);
  t.is(q.qsize(), 5000);
  for (let i = 0; i < 5000; i++) t.is(q.getNowait(), i);
  q.putSync(Buffer.alloc(2 << 20, 1));
  q.putSync('still usable');
  t.true((q.getSync() as Buffer).equals(Buffer.alloc(2 << 20, 1)));
  t.is(q.getSync(), 'still usable');
});

test('Full and Empty with timeouts, sync and async', async (t) => {
  const q = new Queue(1);
  let dt = await elapsed(() => t.throwsAsync(q.get(true, 0.2), { instanceOf: Empty }));
  t.true(dt >= 0.19, `async get timeout after ${dt} s`);
  dt = await elapsed(() => t.throws(() => q.getSync({ timeout: 0.2 }), { instanceOf: Empty }));
  t.true(dt >= 0.19, `sync get timeout after ${dt} s`);
  q.putSync(1);
  dt = await elapsed(() => t.throwsAsync(q.put(2, { timeout: 0.2 }), { instanceOf: Full }));
  t.true(dt >= 0.19, `async put timeout after ${dt} s`);
  dt = await elapsed(() => t.throws(() => q.putSync(2, true, 0.2), { instanceOf: Full }));
  t.true(dt >= 0.19, `sync put timeout after ${dt} s`);
  t.is(q.qsize(), 1);
  t.is(q.getSync(), 1);
  t.true(q.empty());
});

test('unserializable items fail at put and leave the queue usable', async (t) => {
  const q = new Queue();
  t.throws(() => q.putSync(Symbol('s')), { instanceOf: TypeError });
  await t.throwsAsync(q.put({ s: Symbol('s') }), { instanceOf: TypeError });
  const e = t.throws(() => q.putSync({ lock: new Lock() }), { instanceOf: TypeError });
  t.regex(e!.message, /Process arguments or send them through a Pipe/);
  t.true(q.empty());
  await q.put('ok');
  t.is(await q.get(), 'ok');
});

test('close: put and get are ValueError in this process; joinThread needs close', async (t) => {
  const q = new Queue();
  await t.throwsAsync(q.joinThread(), { instanceOf: AssertionError });
  q.putSync(1);
  q.close();
  t.throws(() => q.putSync(2), { instanceOf: ValueError });
  t.throws(() => q.putNowait(2), { instanceOf: ValueError });
  await t.throwsAsync(q.put(2), { instanceOf: ValueError });
  t.throws(() => q.getNowait(), { instanceOf: ValueError });
  await q.joinThread();
  const s = new SimpleQueue();
  await s.put('a');
  t.false(s.empty());
  t.is(await s.get(), 'a');
  s.putSync('b');
  t.is(s.getSync(), 'b');
  s.close();
  t.throws(() => s.putSync('c'), { instanceOf: OSError });
});

test('async puts of one process stay in order behind a full queue', async (t) => {
  const q = new Queue(2);
  const puts = [0, 1, 2, 3, 4, 5].map((i) => q.put(i));
  t.is(q.qsize(), 2);
  t.throws(() => q.putNowait('x'), { instanceOf: Full }, 'puts are waiting');
  const got: unknown[] = [];
  for (let i = 0; i < 6; i++) got.push(await q.get());
  await Promise.all(puts);
  t.deepEqual(got, [0, 1, 2, 3, 4, 5]);
  // A putSync behind waiting puts goes after them (two other processes make room; the
  // timeout leaves them time to start on a loaded machine).
  const more = [q.put('a'), q.put('b'), q.put('c')];
  const takers = [start(takeOne, [q]), start(takeOne, [q])];
  q.putSync('d', true, 120);
  await Promise.all(more);
  for (const p of takers) await p.join();
  t.deepEqual([q.getSync(), q.getSync()], ['c', 'd']);
});

test('FIFO per producer with four producer processes, nothing lost or repeated', async (t) => {
  const q = new Queue();
  const N = 5000;
  const ps = [0, 1, 2, 3].map((id) => start(produce, [q, id, N]));
  const next = [0, 0, 0, 0];
  for (let i = 0; i < 4 * N; i++) {
    const [id, seq] = (i % 2 ? q.getSync(true, 20) : await q.get(true, 20)) as [number, number];
    t.is(seq, next[id], `out of order from producer ${id}`);
    next[id]++;
  }
  for (const p of ps) {
    await p.join();
    t.is(p.exitcode, 0);
  }
  t.deepEqual(next, [N, N, N, N]);
  t.true(q.empty());
});

test('a blocked put is released by a consumer in another process', async (t) => {
  const q = new Queue(1);
  q.putSync('first');
  let done = false;
  const pending = q.put('second').then(() => (done = true));
  await sleep(100);
  t.false(done);
  const p = start(takeOne, [q]);
  await pending;
  t.true(done);
  await p.join();
  t.is(q.getSync(true, 1), 'second');
  // And the other way round: a child blocked in putSync until we get.
  q.putSync('x');
  const out = new Queue();
  const c = start(echoOne, [out, q]); // waits for an item on `out`, then puts it on the full `q`
  out.putSync('y');
  await sleep(100);
  t.is(c.exitcode, null, 'the child waits for room');
  t.is(await q.get(), 'x');
  t.is(await q.get(true, 10), 'y');
  await c.join();
  t.is(c.exitcode, 0);
});

test('a producer killed mid-stream does not corrupt the queue', async (t) => {
  for (let round = 0; round < 4; round++) {
    const q = new Queue(0, { capacity: 4 << 20 });
    const done = RawArray('i', 1) as Int32Array;
    const p = start(produceForever, [q, done]);
    let got = 0;
    const stopAt = 5 + round * 7;
    while (got < stopAt) {
      const item = (await q.get(true, 20)) as { seq: number; payload: Buffer };
      t.is(item.seq, got);
      got++;
    }
    await sleep(round * 3);
    p.kill();
    await p.join();
    const completed = Atomics.load(done, 0);
    for (;;) {
      let item: { seq: number; payload: Buffer };
      try {
        item = q.getSync(true, 0.5) as typeof item;
      } catch (e) {
        t.true(e instanceof Empty);
        break;
      }
      t.is(item.seq, got, 'no gap, no duplicate');
      const sizes = [8, 1000, 100_000, 700_000];
      t.is(item.payload.length, sizes[item.seq % 4], 'no partial message');
      t.true(item.payload.every((b) => b === (item.seq & 0xff)));
      got++;
    }
    // Every completed putSync arrived (it is never held in a batch), and at most the one in flight also did.
    t.true(got === completed || got === completed + 1, `got ${got}, completed puts ${completed}`);
    q.putSync('after');
    t.is(q.getSync(true, 1), 'after');
  }
});

test('a consumer killed while taking does not stop the others', async (t) => {
  const q = new Queue();
  const got = RawArray('i', 1) as Int32Array;
  for (let seq = 0; seq < 200; seq++) q.putSync({ seq, payload: Buffer.alloc(50_000, 1) });
  const c = start(consumeForever, [q, got]);
  while (Atomics.load(got, 0) < 20) await sleep(1);
  c.kill();
  await c.join();
  const taken = Atomics.load(got, 0);
  const rest: number[] = [];
  while (!q.empty()) rest.push((q.getSync(true, 1) as { seq: number }).seq);
  if (rest.length) {
    t.true(rest[0] === taken || rest[0] === taken + 1, `first left ${rest[0]}, child took ${taken}`);
    t.deepEqual(rest, Array.from({ length: rest.length }, (_, i) => rest[0] + i));
    t.is(rest[rest.length - 1], 199);
  }
  q.putSync('after');
  t.is(q.getSync(true, 1), 'after');
});

test('a 1 MB item; the child is joined after the parent reads it and exits cleanly', async (t) => {
  const q = new Queue();
  const p = start(putBig, [q, 1 << 20, 7]);
  const b = (await q.get(true, 20)) as Buffer;
  t.is(b.length, 1 << 20);
  t.true(b.every((x) => x === 7));
  await p.join();
  t.is(p.exitcode, 0);
  // Tens of MB with a larger capacity; the child exits before it is read.
  const big = new Queue(0, { capacity: 64 << 20 });
  const p2 = start(putBig, [big, 30 << 20, 9]);
  await p2.join();
  t.is(p2.exitcode, 0);
  const b2 = big.getSync(true, 20) as Buffer;
  t.is(b2.length, 30 << 20);
  t.true(b2[0] === 9 && b2[b2.length - 1] === 9);
});

test('feeder flush: a child that puts without awaiting still delivers before it exits', async (t) => {
  const q = new Queue(2);
  const p = start(putAndReturn, [q, [1, 2, 3, 4, 5], false]);
  await sleep(300);
  t.is(p.exitcode, null, 'the child waits at exit for room for its puts');
  const got = [];
  for (let i = 0; i < 5; i++) got.push(await q.get(true, 10));
  t.deepEqual(got, [1, 2, 3, 4, 5]);
  await p.join();
  t.is(p.exitcode, 0);
});

test('cancelJoinThread: the child exits without waiting for room', async (t) => {
  const q = new Queue(1);
  const p = start(putAndReturn, [q, ['a', 'b', 'c'], true]);
  await p.join(20);
  t.is(p.exitcode, 0);
  t.is(q.getSync(true, 1), 'a');
  t.true(q.empty());
});

test('JoinableQueue: taskDone ValueError, join and joinSync across processes', async (t) => {
  const jq = new JoinableQueue();
  t.throws(() => jq.taskDone(), { instanceOf: ValueError, message: 'task_done() called too many times' });
  await jq.join();
  jq.joinSync();
  const out = new Queue();
  const workers = [0, 1].map(() => start(squareWorker, [jq, out]));
  for (let i = 1; i <= 20; i++) await jq.put(i);
  await jq.join();
  t.is(out.qsize(), 20);
  const squares: number[] = [];
  for (let i = 0; i < 20; i++) squares.push(out.getSync() as number);
  t.deepEqual(squares.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => (i + 1) ** 2));
  for (const w of workers) jq.putSync(null);
  jq.joinSync();
  for (const w of workers) {
    await w.join();
    t.is(w.exitcode, 0);
  }
  t.throws(() => jq.taskDone(), { instanceOf: ValueError });
});

test('a queue travels inside a Pipe message; SimpleQueue as a Process argument', async (t) => {
  const [a, b] = Pipe();
  const q = new Queue();
  a.send({ q });
  const { q: q2 } = (await b.recv()) as { q: Queue };
  t.true(q2 instanceof Queue);
  q2.putSync('through the pipe');
  t.is(q.getSync(), 'through the pipe');
  a.close();
  b.close();
  const s = new SimpleQueue();
  const p = start(simplePut, [s, { hello: 'world' }]);
  t.deepEqual(await s.get(), { hello: 'world' });
  await p.join();
  t.is(p.exitcode, 0);
});

test('two copies of the queues module in one process share the receive buffer', async (t) => {
  // A distinct URL is a distinct ES module: the second copy registers the thread's buffer
  // again, which must not leave the first copy reading a stale one.
  const second = (await import(`../src/queues.js?copy=${Date.now()}`)) as typeof import('../src/queues.js');
  t.not(second.Queue, Queue);
  const q1 = new Queue();
  const q2 = new second.Queue();
  for (let i = 0; i < 50; i++) {
    const x = `first ${i} ${'a'.repeat(i)}`;
    const y = i % 2 ? { n: 1000 + i } : Buffer.from(`second ${i}`);
    q1.putSync(x);
    q2.putSync(y);
    t.is(q1.getSync(), x);
    t.deepEqual(q2.getSync(), y);
  }
  q1.close();
  q2.close();
});
