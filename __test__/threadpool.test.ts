// ThreadPool (multiprocessing.pool.ThreadPool = multiprocessing.dummy.Pool): the whole
// Pool API over worker threads, with the process Pool's guarantees.
import { markAsUntransferable } from 'node:worker_threads';
import test from 'ava';
import { ProcessError, TimeoutError, ValueError } from '../index.js';
import { DummyProcess, Pool as DummyPool } from '../src/dummy.js';
import { AsyncResult, move, Pool, RemoteTraceback, ThreadPool, WorkerLostError } from '../src/pool.js';
import { Queue } from '../src/queues.js';
import { Event, Lock } from '../src/synchronize.js';
import { add, failAt, naturals, sleep, sleepThen, square, unserializable } from './fixtures/pool_targets.js';
import { callWith, describeArg, describeArgs, exitThread, exitThreadAt, failOrHold, holdInit, ids, incMoved, incMovedOrThrow, init, initSecondLate, initThrows, moveBack, lockedIncrementsSync, readInit, slowFirst, slowly, tagCall, throwLater, waitOn, whoAmI } from './fixtures/dummy_targets.js';
import { MaybeEncodingError } from '../src/errors.js';
import { native } from '../src/native.js';
import { RawArray } from '../src/sharedctypes.js';

const range = (n: number) => [...Array(n).keys()];

test('map, apply, starmap, imap, inline functions; workers are daemonic threads of this process', async (t) => {
  await using pool = new ThreadPool(2);
  t.is(DummyPool, ThreadPool);
  t.is(String(pool), '<ThreadPool state=RUN pool_size=2>');
  t.deepEqual(await pool.map(square, range(10)), range(10).map((x) => x * x));
  t.deepEqual(await pool.map(square, range(10), 3), range(10).map((x) => x * x));
  t.is(await pool.apply(add, [2, 3]), 5);
  t.deepEqual(await pool.starmap(add, [[1, 2], [3, 4]]), [3, 7]);
  t.deepEqual(await pool.map((x: number) => x * 2, [1, 2, 3]), [2, 4, 6]);
  t.regex(await pool.apply(whoAmI), /^Thread-\d+$/);
  const workers = pool._pool;
  t.is(workers.length, 2);
  t.true(workers.every((w) => w instanceof DummyProcess && w.daemon && w.isAlive()));
  const seen = await Promise.all(range(40).map(() => pool.apply(ids)));
  t.true(seen.every(([, pid]) => pid === process.pid));
  t.true(seen.every(([tid]) => workers.some((w) => w.ident === tid)));
  const got: number[] = [];
  for await (const x of pool.imap(square, naturals())) {
    got.push(x);
    if (got.length === 50) break;
  }
  t.deepEqual(got, range(50).map((x) => x * x));
  const un: number[] = [];
  for await (const x of pool.imapUnordered(square, range(30), 1)) un.push(x);
  t.deepEqual(un.sort((a, b) => a - b), range(30).map((x) => x * x));
});

test('map of many items: numbers, and items or results that are not all numbers, come back as they are, in order', async (t) => {
  await using pool = new ThreadPool(2);
  const n = 3000;
  // Large and fractional numbers, in chunks of many (numbers travel packed).
  const nums = range(n).map((i) => (i % 7 === 0 ? -i / 3 : i * 1e9));
  t.deepEqual(await pool.map((x: number) => x * 2, nums), nums.map((x) => x * 2));
  t.deepEqual(await pool.map((x: number) => x * 2, nums, 1000), nums.map((x) => x * 2));
  // The same array changed and mapped again: the change is seen.
  nums[5] = 42;
  t.is((await pool.map((x: number) => x * 2, nums))[5], 84);
  // An object among numbers goes as itself: its valueOf is never called.
  let called = 0;
  const mixed: Array<number | { v: number; valueOf(): number }> = range(n);
  mixed[2500] = { v: -1, valueOf: () => ++called };
  const out = await pool.map((x: number | { v: number }) => (typeof x === 'number' ? x + 1 : x.v), mixed);
  t.deepEqual(out, range(n).map((i) => (i === 2500 ? -1 : i + 1)));
  t.is(called, 0);
  // NaN, infinities and holes.
  const special: unknown[] = range(n);
  special[10] = NaN;
  special[20] = -Infinity;
  delete special[30];
  const kinds = await pool.map((x: unknown) => (x === undefined ? 'hole' : x), special);
  t.true(Number.isNaN(kinds[10]));
  t.is(kinds[20], -Infinity);
  t.is(kinds[30], 'hole');
  t.is(kinds[31], 31);
  // NaN and infinities without holes (the shared way): they and their results come back as they are.
  const odd = range(n);
  odd[10] = NaN;
  odd[20] = -Infinity;
  const same = await pool.map((x: number) => x, odd);
  t.true(Number.isNaN(same[10]));
  t.is(same[20], -Infinity);
  t.is(same[21], 21);
  // Arrays that start with a fraction, or with an integer and go on with fractions (checked by
  // two loops, see allNumbers), and one that starts with a fraction and holds an object.
  const frac = range(n).map((i) => (i % 2 ? i : i + 0.5));
  t.deepEqual(await pool.map((x: number) => x * 2, frac), frac.map((x) => x * 2));
  frac[0] = 0;
  t.deepEqual(await pool.map((x: number) => x * 2, frac), frac.map((x) => x * 2));
  const fracMixed: Array<number | { v: number; valueOf(): number }> = range(n).map((i) => i + 0.25);
  fracMixed[2999] = { v: -1, valueOf: () => ++called };
  t.deepEqual(await pool.map((x: number | { v: number }) => (typeof x === 'number' ? x * 2 : x.v), fracMixed), range(n).map((i) => (i === 2999 ? -1 : (i + 0.25) * 2)));
  t.is(called, 0);
  // An item whose getter throws when read a second time (checked, then packed): the map
  // fails with that error and the pool goes on.
  const changing = range(n);
  let reads = 0;
  Object.defineProperty(changing, 7, {
    get: () => {
      if (++reads > 1) throw new Error('read twice');
      return 7;
    },
  });
  await t.throwsAsync(pool.map((x: number) => x, changing), { message: 'read twice' });
  t.deepEqual(await pool.map((x: number) => x + 1, range(n)), range(n).map((x) => x + 1));
  // Results that are numbers in the first chunks and then are not.
  t.deepEqual(await pool.map((x: number) => (x < 2000 ? x / 2 : String(x)), range(n)), range(n).map((x) => (x < 2000 ? x / 2 : String(x))));
  t.deepEqual(await pool.map((x: number) => (x < 2000 ? String(x) : x), range(n)), range(n).map((x) => (x < 2000 ? String(x) : x)));
});

test('a map of numbers (shared by the threads): exact results in order, chunks run whole in one thread, errors, async results', async (t) => {
  await using pool = new ThreadPool(2);
  const n = 20000;
  // Numbers a double array keeps exactly, negative zero included, in and out.
  const xs = range(n).map((i) => (i % 5 === 0 ? -(i / 7) : i % 5 === 1 ? 2 ** 53 - i : i % 5 === 2 ? -0 : i * 1e300));
  const out = await pool.map((x: number) => (Object.is(x, -0) ? -0 : x * 3), xs);
  t.is(out.length, n);
  t.true(out.every((v, i) => Object.is(v, Object.is(xs[i], -0) ? -0 : xs[i] * 3)), 'every result is exact, in its place');
  // Results that are NaN or infinite stay so (1e300 * 1e300 overflows).
  const big = await pool.map((x: number) => (x === 7 ? NaN : x * 1e300 * 1e300), range(n));
  t.true(Number.isNaN(big[7]));
  t.is(big[8], Infinity);
  t.is(big[0], 0);
  // The first chunk done last (the others' results are copied meanwhile), results that are
  // not numbers in the last chunks: all in place.
  t.deepEqual(await pool.map(slowFirst, range(10000)), range(10000).map((x) => (x >= 9000 ? `s${x}` : x / 2)));
  // With a chunksize, each chunk runs whole, in order, in one thread (tagCall: threadId * 1e6 + the
  // thread's call number).
  const tags = await pool.map(tagCall, range(4000), 100);
  const threads = new Set<number>();
  for (let c = 0; c < 40; c++) {
    const chunk = tags.slice(c * 100, c * 100 + 100);
    const tid = Math.floor(chunk[0] / 1e6);
    threads.add(tid);
    t.true(chunk.every((v, i) => Math.floor(v / 1e6) === tid && v === chunk[0] + i), `chunk ${c} ran whole in thread ${tid}`);
  }
  t.true([...threads].every((tid) => pool._pool.some((w) => w.ident === tid)));
  // A failed item fails the map with its error (class, message, the thread's stack as cause);
  // the pool goes on.
  const e = await t.throwsAsync(pool.map(failAt, range(n)), { instanceOf: RangeError, message: 'bad item 5' });
  t.true(e!.cause instanceof RemoteTraceback);
  await t.throwsAsync(pool.map(failAt, range(n), 7), { instanceOf: RangeError, message: 'bad item 5' });
  let failed: unknown;
  const r = pool.mapAsync(failAt, range(n), null, null, (err) => (failed = err));
  await t.throwsAsync(r.get(), { instanceOf: RangeError });
  t.true(failed instanceof RangeError);
  let got: unknown;
  t.deepEqual(await pool.mapAsync(square, range(1000), { callback: (v) => (got = v) }).get(), range(1000).map((x) => x * x));
  t.deepEqual(got, range(1000).map((x) => x * x));
  // Promises are awaited; results of other types come back as they are, among numbers.
  t.deepEqual(await pool.map(async (x: number) => x + 1, range(500)), range(500).map((x) => x + 1));
  const kinds = await pool.map((x: number) => (x % 3 === 0 ? `s${x}` : x % 3 === 1 ? x : Promise.resolve({ x })), range(3000), 64);
  t.deepEqual(kinds, range(3000).map((x) => (x % 3 === 0 ? `s${x}` : x % 3 === 1 ? x : { x })));
  // Items that are not all numbers (strings, a bigint) go as they are.
  t.deepEqual(await pool.map((x: unknown) => typeof x, [...range(100), 'a', 1n]), [...range(100).map(() => 'number'), 'string', 'bigint']);
});

test('a map of numbers: a thread that exits or is terminated fails it and is replaced; terminate() during it', async (t) => {
  await using pool = new ThreadPool(2);
  const e = await t.throwsAsync(pool.map(exitThreadAt, range(3000)), { instanceOf: WorkerLostError });
  t.regex(e!.message, /exit code 7/);
  t.deepEqual(await pool.map(exitThreadAt, range(1000)), range(1000).map((x) => x + 1));
  t.is(pool._pool.length, 2);
  t.true(pool._pool.every((w) => w.isAlive()));
  // A thread terminated from outside while it runs its share.
  const slow = pool.map(slowly, range(4000));
  await sleep(0.1);
  const [victim] = pool._pool;
  victim.terminate();
  await t.throwsAsync(slow, { instanceOf: WorkerLostError, message: /exit code -15/ });
  t.deepEqual(await pool.map(square, range(2000)), range(2000).map((x) => x * x));
  // terminate() of the pool while a map runs: the map fails at once, join() is prompt.
  const doomed = new ThreadPool(2);
  const pending = doomed.map(slowly, range(20000));
  await sleep(0.1);
  const started = Date.now();
  doomed.terminate();
  await t.throwsAsync(pending, { instanceOf: ProcessError });
  await doomed.join();
  t.true(Date.now() - started < 10_000, 'terminate and join are prompt');
});

test('maps of numbers after the threads\' first end once all results are in memory; one with an error or a result that is not a number waits for the answers; close and join after them', async (t) => {
  const pool = new ThreadPool(2);
  const xs = range(5000);
  for (let k = 0; k < 6; k++) t.deepEqual(await pool.map((x: number) => x * 3 + 0.5, xs), xs.map((x) => x * 3 + 0.5));
  const failLast = (x: number): number => {
    if (x === 4999) throw new RangeError('bad item 4999');
    return x;
  };
  await t.throwsAsync(pool.map(failLast, xs), { instanceOf: RangeError, message: 'bad item 4999' });
  t.deepEqual(await pool.map((x: number) => (x === 4999 ? 'last' : x), xs), xs.map((x) => (x === 4999 ? 'last' : x)));
  // Maps one after the other without waiting, then close and join.
  const ps = [pool.map((x: number) => x - 1, xs), pool.map((x: number) => x - 2, xs), pool.map((x: number) => x - 3, xs)];
  t.deepEqual(await Promise.all(ps), [1, 2, 3].map((k) => xs.map((x) => x - k)));
  pool.close();
  await pool.join();
});

test('maps of numbers one after another (a pool reuses the memory of a map whose parts have all answered): exact results whatever the sizes and chunksizes, and after a map that failed while a part still ran', async (t) => {
  await using pool = new ThreadPool(2);
  for (const [n, cs] of [[5000, null], [100, null], [3000, 7], [5000, null], [20000, 1000], [64, 1], [4999, 3]] as const) {
    const xs = range(n).map((i) => i * 0.5 - 7);
    t.deepEqual(await pool.map((x: number) => x * 2 + 1, xs, cs), xs.map((x) => x * 2 + 1), `${n} items, chunksize ${cs}`);
  }
  // A map that fails (item 5) while the other thread's part still runs (held at one of its items): the next
  // map, made at once, must not get that memory while the held part may still claim chunks in it.
  const state = RawArray('i', 2) as Int32Array;
  await using holding = new ThreadPool({ processes: 2, initializer: holdInit, initargs: [state] });
  t.deepEqual(await holding.map(square, range(100)), range(100).map((x) => x * x));
  await t.throwsAsync(holding.map(failOrHold, range(8000), 1), { instanceOf: RangeError, message: 'bad item 5' });
  const slowPlus = (x: number): number => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 0.05);
    return x + 0.25;
  };
  const next = holding.map(slowPlus, range(3000));
  Atomics.store(state, 0, 1);
  Atomics.notify(state, 0);
  t.deepEqual(await next, range(3000).map((x) => x + 0.25));
  t.is(Atomics.load(state, 1), 1, 'a part was held while the map failed');
  t.deepEqual(await holding.map((x: number) => x * 4, range(3000)), range(3000).map((x) => x * 4));
  t.deepEqual(await pool.map((x: number) => x + 0.25, range(3000)), range(3000).map((x) => x + 0.25));
  t.deepEqual(await pool.map((x: number) => x - 0.25, range(3000)), range(3000).map((x) => x - 0.25));
  t.deepEqual(await pool.map((x: number) => x * 4, range(30000)), range(30000).map((x) => x * 4));
});

test("a new pool's first map of numbers ends once every thread has started and answered, not with the first thread up", async (t) => {
  // (A thread still starting would otherwise start beside the program's next work.)
  const state = RawArray('i', 3) as Int32Array;
  await using pool = new ThreadPool({ processes: 2, initializer: initSecondLate, initargs: [state, 500] });
  t.deepEqual(await pool.map(square, range(1000)), range(1000).map((x) => x * x));
  t.is(Atomics.load(state, 2), 2);
  t.deepEqual(await pool.map(square, range(3000)), range(3000).map((x) => x * x));
});

test("a new pool's first map of numbers does not wait for a thread busy with an earlier task", async (t) => {
  await using pool = new ThreadPool(2);
  const busy = pool.applyAsync(sleepThen, [30, 1]);
  t.deepEqual(await pool.map(square, range(1000)), range(1000).map((x) => x * x));
  t.false(busy.ready());
});

test('options and positional forms; processes must be at least 1; use after close', async (t) => {
  t.throws(() => new ThreadPool(0), { instanceOf: ValueError });
  t.throws(() => new ThreadPool({ processes: -1 }), { instanceOf: ValueError });
  await using a = new ThreadPool({ processes: 1, initializer: init, initargs: ['x'] });
  const [v, tid] = (await a.apply(readInit)) as [string, number];
  t.is(v, 'x');
  t.is(tid, a._pool[0].ident!);
  await using b = new ThreadPool(1, init, ['y']);
  t.deepEqual(((await b.apply(readInit)) as unknown[])[0], 'y');
  const c = new ThreadPool(1);
  await t.throwsAsync(c.join(), { instanceOf: ValueError });
  c.close();
  t.throws(() => c.applyAsync(square, [1]), { instanceOf: ValueError });
  await c.join();
  t.is(c._pool.length, 0);
});

test('AsyncResult and errors: timeouts, callbacks, the class and the remote stack of a task error', async (t) => {
  await using pool = new ThreadPool(2);
  const slow = pool.applyAsync(sleep, [0.3]);
  await t.throwsAsync(slow.get(0.02), { instanceOf: TimeoutError });
  t.is(await slow.get(), 0.3);
  let got: unknown;
  const r = pool.applyAsync(square, [7], null, (x) => (got = x));
  t.true(r instanceof AsyncResult);
  await r.get();
  t.is(got, 49);
  const e = await t.throwsAsync(pool.apply(failAt, [5]), { instanceOf: RangeError, message: 'bad item 5' });
  t.true(e!.cause instanceof RemoteTraceback);
  await t.throwsAsync(pool.map(failAt, range(10)), { instanceOf: RangeError });
  await t.throwsAsync(pool.apply(unserializable), { instanceOf: MaybeEncodingError });
});

test('imap: a failed item of chunks of one is raised and next() goes on; a failed chunk of several ends the iteration (Python)', async (t) => {
  await using pool = new ThreadPool(2);
  const take = async (it: AsyncIterator<unknown>): Promise<unknown[]> => {
    const out: unknown[] = [];
    for (;;) {
      try {
        const r = await it.next();
        if (r.done) return [...out, 'END'];
        out.push(r.value);
      } catch (e) {
        out.push((e as Error).name);
      }
    }
  };
  t.deepEqual(await take(pool.imap(failAt, range(8))), [0, 1, 2, 3, 4, 'RangeError', 6, 7, 'END']);
  t.deepEqual(await take(pool.imap(failAt, range(8), 2)), [0, 1, 2, 3, 'RangeError', 'END']);
  const un = await take(pool.imapUnordered(failAt, range(8), 2));
  t.deepEqual(un.slice(-2), ['RangeError', 'END'], String(un));
});

test('a thread that calls process.exit, throws outside its task, or is terminated fails its task and is replaced', async (t) => {
  await using pool = new ThreadPool(2);
  const e1 = await t.throwsAsync(pool.apply(exitThread, [3]), { instanceOf: WorkerLostError });
  t.regex(e1!.message, /worker Thread-\d+ \(thread \d+\) died with exit code 3/);
  t.true(e1 instanceof ProcessError);
  const e2 = await t.throwsAsync(pool.apply(throwLater, ['late']), { instanceOf: WorkerLostError });
  t.regex(e2!.message, /exit code 1/);
  t.deepEqual(await pool.map(square, range(20)), range(20).map((x) => x * x));
  t.is(pool._pool.length, 2);
  // terminate() a worker while it runs a task.
  await using one = new ThreadPool(1);
  const started = new Event();
  const never = new Event();
  const pending = one.apply(waitOn, [started, never]);
  t.true(await started.wait(30));
  const [busy] = one._pool;
  busy.terminate();
  const e3 = await t.throwsAsync(pending, { instanceOf: WorkerLostError });
  t.regex(e3!.message, /exit code -15/);
  t.deepEqual(await one.map(square, range(20)), range(20).map((x) => x * x));
  t.is(one._pool.length, 1);
  t.not(one._pool[0], busy);
});

test('the end of a thread of one pool is never taken for the end of a thread of another (its descriptor number is reused)', async (t) => {
  // The end of a pool's thread is reported by descriptor number, and the report can come
  // after that descriptor was released and its number taken by a new one: here the
  // sentinel of a thread of the next pool. That report must not end the new thread.
  const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  for (let round = 0; round < 6; round++) {
    const a = new ThreadPool(1);
    const started = new Event();
    const pending = a.apply(waitOn, [started, new Event()]);
    t.true(await started.wait(60));
    const [busy] = a._pool;
    const fd = busy._waitFd;
    busy.terminate();
    // Without returning to the event loop: the thread ends, the pool's watch on its end
    // is reported (the report waits for this turn to end), its exit is read (releasing
    // the descriptor) and a new pool's threads take the lowest free numbers.
    t.true(native.waitReadable(fd, 60), 'the terminated thread ended');
    sleepSync(50);
    t.is(busy.exitcode, -15);
    const b = new ThreadPool(2);
    const results = b.map(square, range(40), 1);
    await t.throwsAsync(pending, { instanceOf: WorkerLostError, message: /exit code -15/ });
    t.deepEqual(await results, range(40).map((x) => x * x), `round ${round}`);
    t.true(b._pool.every((w) => w.isAlive()));
    a.terminate();
    b.terminate();
    await Promise.all([a.join(), b.join()]);
  }
});

test('an initializer that throws fails the tasks instead of hanging', async (t) => {
  await using pool = new ThreadPool({ processes: 2, initializer: initThrows });
  const e = await t.throwsAsync(pool.apply(square, [2]), { instanceOf: ProcessError });
  t.regex(String((e!.cause as Error)?.message), /init failed/);
});

test('terminate with thousands of pending tasks returns at once and fails them; join is prompt', async (t) => {
  const pool = new ThreadPool(2);
  t.is(await pool.apply(square, [2]), 4);
  const rs = range(5000).map((i) => pool.applyAsync(sleepThen, [0.01, i]));
  const started = Date.now();
  pool.terminate();
  const returned = Date.now() - started;
  await pool.join();
  // Generous limits (a loaded machine): they catch a hang, not slowness.
  t.true(returned < 2000, `terminate took ${returned} ms`);
  t.true(Date.now() - started < 10_000);
  const e = await t.throwsAsync(rs[4999].get(1));
  t.true(e instanceof ProcessError);
  t.throws(() => pool.applyAsync(square, [1]), { instanceOf: ValueError });
});

test('close then join finishes the work; the library objects in task arguments are shared', async (t) => {
  const pool = new ThreadPool(2);
  const lock = new Lock();
  const { RawArray } = await import('../src/sharedctypes.js');
  const counter = RawArray('i', 2) as Int32Array;
  const rs = range(4).map(() => pool.applyAsync(lockedIncrementsSync, [lock, counter, 100]));
  const q = new Queue();
  const put = pool.applyAsync(async (queue: Queue) => {
    await queue.put('from a pool thread');
  }, [q]);
  pool.close();
  await pool.join();
  for (const r of rs) t.true(r.successful());
  t.true(put.successful());
  t.is(counter[0], 400);
  t.is(await q.get(true, 5), 'from a pool thread');
});

test('the main thread keeps running while the pool works (nothing blocks it)', async (t) => {
  await using pool = new ThreadPool(2);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    await pool.starmap(sleepThen, range(20).map((i) => [0.02, i]), 1);
  } finally {
    clearInterval(timer);
  }
  t.true(ticks >= 10, `${ticks} ticks`);
});

test('move(): a whole Buffer or typed array goes to the thread without a copy and comes back moved; anything else is copied', async (t) => {
  await using pool = new ThreadPool(1);
  const b = Buffer.alloc(1 << 16, 7);
  const back = await pool.apply(incMoved, [move(b)]);
  t.is(b.length, 0, 'the sender no longer has it');
  t.is(back.length, 1 << 16);
  t.true(Buffer.isBuffer(back));
  t.true(back.every((x: number) => x === 8));
  const f = new Float64Array(4);
  t.deepEqual(await pool.apply(describeArg, [move(f)]), ['Float64Array', 32]);
  t.is(f.length, 0);
  // A Buffer sharing memory (Node's pool of small Buffers) and a slice are copied.
  const small = Buffer.from('hello');
  t.deepEqual(await pool.apply(describeArg, [move(small)]), ['Buffer', 5]);
  t.is(small.toString(), 'hello');
  const whole = Buffer.alloc(100);
  t.deepEqual(await pool.apply(describeArg, [move(whole.subarray(10, 20))]), ['Buffer', 10]);
  t.is(whole.length, 100);
  // Results are moved back in a map too.
  const outs = await pool.map(incMoved, [1, 2, 3].map((i) => move(Buffer.alloc(1000, i))), 1);
  t.deepEqual(outs.map((o) => o[999]), [2, 3, 4]);
  t.throws(() => move(42 as never), { instanceOf: TypeError });
});

test('move(): batches and results of moved buffers keep each kind and value, move only what was moved, and fall back to copies', async (t) => {
  await using pool = new ThreadPool(2);
  const make = () => [
    Buffer.alloc(8, 1),
    new Uint8Array(8).fill(2),
    new Float32Array([3, 0]),
    new DataView(new ArrayBuffer(4)),
    new ArrayBuffer(2),
  ];
  const kinds = ['Buffer', 'Uint8Array', 'Float32Array', 'DataView', 'ArrayBuffer'];
  for (const chunksize of [1, 5]) {
    const xs = make();
    const out = await pool.map(moveBack, xs.map((x) => move(x)), chunksize);
    t.deepEqual(out.map((o) => (Buffer.isBuffer(o) ? 'Buffer' : o.constructor.name)), kinds);
    t.true(xs.every((x) => (x instanceof ArrayBuffer ? x : x.buffer).byteLength === 0), 'the sender no longer has them');
    t.deepEqual(out.map((o) => (o instanceof ArrayBuffer ? new Uint8Array(o) : new Uint8Array(o.buffer, o.byteOffset, o.byteLength))[0]), [2, 3, 1, 1, 1]);
  }
  // Beside moved buffers: numbers, strings, null, undefined, a Float64Array (copied: the sender keeps it) and
  // a small Buffer (copied).
  const f = new Float64Array([1.5, -0]);
  const b = Buffer.alloc(3, 9);
  const small = Buffer.from('hi');
  const got = await pool.starmap(describeArgs, [[move(b), 7, 'x', null, undefined, f, small]]);
  t.deepEqual(got, [['Buffer:9,9,9', 'number:7', 'string:x', 'object:null', 'undefined:undefined', `Float64Array:${Array.from(new Uint8Array(f.buffer)).join(',')}`, 'Buffer:104,105']]);
  t.is(b.length, 0);
  t.deepEqual(Array.from(f), [1.5, -0]);
  t.is(small.toString(), 'hi');
  // A view of part of a Float64Array is copied alone (not its whole buffer).
  const whole = new Float64Array(1000).fill(4);
  t.deepEqual(await pool.apply(describeArgs, [move(Buffer.alloc(1)), whole.subarray(2, 3)]), ['Buffer:0', `Float64Array:${Array.from(new Uint8Array(new Float64Array([4]).buffer)).join(',')}`]);
  // A NaN keeps its bits (the serializer's way).
  const nan = new Float64Array(new Uint32Array([1, 0x7ff80000]).buffer);
  t.deepEqual(await pool.apply(describeArgs, [move(Buffer.alloc(1)), nan]), ['Buffer:0', `Float64Array:${Array.from(new Uint8Array(nan.buffer)).join(',')}`]);
  // A task that throws beside moved ones fails alone; its error comes back as itself.
  const rs = await pool.map(incMovedOrThrow, [move(Buffer.alloc(2, 1)), move(Buffer.alloc(2, 0)), move(Buffer.alloc(2, 5))], 1).catch((e: unknown) => e);
  t.true(rs instanceof RangeError);
  t.deepEqual(await pool.map(incMovedOrThrow, [move(Buffer.alloc(2, 1)), move(Buffer.alloc(2, 5))], 2).then((o) => o.map((x) => x[1])), [2, 6]);
  // A buffer postMessage refuses to move (marked untransferable) in a batch of moved ones: that batch goes the
  // serializer's way, the marked one copied (its sender keeps it), the others moved.
  for (const chunksize of [1, 3]) {
    const bs = Array.from({ length: 12 }, (_, i) => Buffer.alloc(1 << 16, i));
    markAsUntransferable(bs[4].buffer);
    const got = await pool.map(incMoved, bs.map((x) => move(x)), chunksize);
    t.deepEqual(got.map((x) => [x.length, x[0], x[(1 << 16) - 1]]), bs.map((_, i) => [1 << 16, i + 1, i + 1]));
    t.deepEqual(bs.map((x) => x.length), bs.map((_, i) => (i === 4 ? 1 << 16 : 0)));
  }
});

test('move(): functions beside moved buffers (a definition new to the thread, arguments) arrive as the serializer sends them', async (t) => {
  await using pool = new ThreadPool(1);
  // The pool's first batch: a function not exported (sent by its source text), with moved buffers.
  function firstByte(b: Buffer): number {
    return b[0];
  }
  const bs = [5, 6, 7].map((i) => Buffer.alloc(4, i));
  t.deepEqual(await pool.map(firstByte, bs.map((b) => move(b)), 2), [5, 6, 7]);
  t.true(bs.every((b) => b.length === 0), 'moved');
  // Exported functions as arguments, the same one twice, a module's import in the thread first.
  const back = await pool.starmap(callWith, [[incMoved, move(Buffer.alloc(2, 3))], [describeArgs, move(Buffer.alloc(1, 1)), firstByte, firstByte]]);
  t.deepEqual(Array.from(back[0] as Buffer), [4, 4]);
  const [buf, f1, f2] = back[1] as string[];
  t.is(buf, 'Buffer:1');
  t.true(f1.startsWith('function:') && f1 === f2, f1);
  t.deepEqual(await pool.apply(callWith, [(a: unknown, b: unknown) => a === b, firstByte, firstByte, move(Buffer.alloc(1))]), true);
  // A function without source text: the serializer's error, the task fails alone.
  const err = await pool.apply(callWith, [Math.max.bind(null), move(Buffer.alloc(1))]).catch((e: unknown) => e);
  t.true(err instanceof TypeError && /no source text/.test((err as Error).message), String(err));
  t.deepEqual(await pool.map(firstByte, [move(Buffer.alloc(1, 9))]), [9]);
});

test('move() to a process copies: the sender keeps its Buffer', async (t) => {
  await using pool = new Pool(1);
  const b = Buffer.alloc(1 << 16, 7);
  const back = await pool.apply(incMoved, [move(b)]);
  t.is(b.length, 1 << 16);
  t.is(b[0], 7);
  t.is(back[0], 8);
});
