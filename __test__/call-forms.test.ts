// API rule 3 across the library: every call with optional arguments takes Python's
// positional order or one options object in place of them (or of those after the ones
// given), with the same effect; unknown options are a TypeError at the call. Issue 11.1.
import test from 'ava';
import { AssertionError } from 'node:assert';
import {
  AuthenticationError, currentProcess, getContext, getLogger, getStartMethod, OSError, Pipe, Pool, Process, RLock, RawValue,
  setStartMethod, TimeoutError,
} from '../index.js';
import { synchronized } from '../src/sharedctypes.js';
import { Client, deliverChallenge, answerChallenge, Listener, wait } from '../src/connection.js';
import { Connection } from '../src/connection.js';
import { add, failAt, sleep, square } from './fixtures/pool_targets.js';
import { sleepForever } from './fixtures/targets.js';
import { authenticatePositional, joinParent, sendSlices } from './fixtures/forms_targets.js';
import { startChild } from './helpers.js';

const since = (t0: number): number => (performance.now() - t0) / 1000;

test('Process.join(timeout) and join({ timeout }), joinSync({ timeout }): the limit holds', async (t) => {
  const p = startChild(t, sleepForever, []);
  let t0 = performance.now();
  await p.join({ timeout: 0.3 });
  t.true(since(t0) >= 0.25, 'join({ timeout }) waited');
  t.true(p.isAlive());
  t0 = performance.now();
  await p.join(0.2);
  t.true(since(t0) >= 0.15);
  t0 = performance.now();
  p.joinSync({ timeout: 0.2 });
  t.true(since(t0) >= 0.15);
  t.true(p.isAlive());
  t.throws(() => p.joinSync({ timout: 1 } as never), { instanceOf: TypeError, message: /unexpected option 'timout'/ });
  p.kill();
  await p.join({ timeout: null });
  t.is(p.exitcode, -9);
});

test('parentProcess().join({ timeout }) in a child', async (t) => {
  const [a, b] = Pipe();
  startChild(t, joinParent, [b]);
  const r = await a.recv();
  t.true(r.alive);
  t.true(r.waited >= 150, `waited ${r.waited} ms`);
});

test('Connection.poll({ timeout }) settles at the limit; poll({ timeout: null }) waits for data; pollSync({ timeout })', async (t) => {
  const [a, b] = Pipe();
  let t0 = performance.now();
  t.false(await a.poll({ timeout: 0.3 }));
  t.true(since(t0) >= 0.25);
  t.false(await a.poll());
  t.false(await a.poll({}));
  t0 = performance.now();
  t.false(a.pollSync({ timeout: 0.2 }));
  t.true(since(t0) >= 0.15);
  setTimeout(() => b.send('late'), 100);
  t.true(await a.poll({ timeout: null }));
  t.true(await a.poll(0));
  t.is(await a.recv(), 'late');
  await t.throwsAsync(a.poll({ timeot: 1 } as never), { instanceOf: TypeError });
});

test('wait(objects, { timeout }) settles with [] at the limit and with the ready ones before', async (t) => {
  const [a, b] = Pipe();
  const t0 = performance.now();
  t.deepEqual(await wait([a], { timeout: 0.3 }), []);
  t.true(since(t0) >= 0.25);
  const p = startChild(t, sleep, [0.2]);
  const got = await wait([a, p.sentinel], { timeout: 30 });
  t.deepEqual(got, [p.sentinel]);
  b.send(1);
  t.deepEqual(await wait([a], { timeout: null }), [a]);
});

test('sendBytes(buf, { offset, size }), recvBytes({ maxlength }), recvBytesInto(buf, { offset }) across processes', async (t) => {
  const [a, b] = Pipe();
  startChild(t, sendSlices, [b]);
  t.is((await a.recvBytes({ maxlength: 10 })).toString(), '234');
  const into = Buffer.alloc(8, '.');
  t.is(await a.recvBytesInto(into, { offset: 3 }), 2);
  t.is(into.toString(), '...56...');
  t.is(a.recvBytesIntoSync(into, { offset: 0 }), 2);
  t.is(into.toString(), '89.56...');
});

test('Pipe({ duplex: false }) is one-way as Pipe(false): [receive end, send end]', async (t) => {
  for (const [r, w] of [Pipe({ duplex: false }), Pipe(false)]) {
    t.true(r.readable);
    t.false(r.writable);
    t.false(w.readable);
    t.true(w.writable);
    t.throws(() => r.send(1), { instanceOf: OSError });
    w.send('one way');
    t.is(await r.recv(), 'one way');
  }
  const [x, y] = Pipe({ duplex: true });
  t.true(x.writable && y.readable);
  t.throws(() => Pipe({ duplx: false } as never), { instanceOf: TypeError });
  const fd = Pipe()[0]._detach();
  const c = new Connection(fd, { writable: false });
  t.true(c.readable);
  t.false(c.writable);
  c.close();
});

test('Listener and Client take the docs\' positional authenticate, and Python 3.11\'s key in its place', async (t) => {
  // new Listener(address, family, backlog, authenticate): the process's key, as the docs say.
  {
    using l = new Listener(null, 'AF_UNIX', 1, true);
    const p = startChild(t, authenticatePositional, [l.address]);
    const c = await l.accept();
    c.sendBytes(Buffer.from('hi'));
    t.is((await c.recvBytes()).toString(), 'hi');
    c.close();
    await p.join();
    t.is(p.exitcode, 0);
    // A client without the key is refused.
    await t.throwsAsync(Promise.all([Client(l.address, null, false, Buffer.from('other')), l.accept()]), { instanceOf: AuthenticationError });
  }
  // Python 3.11's order: the key in the fourth (Listener) and third (Client) place.
  {
    const key = Buffer.from('sesame');
    using l = new Listener(['127.0.0.1', 0], 'AF_INET', 1, key);
    const [c, s] = await Promise.all([Client(l.address, 'AF_INET', key), l.accept()]);
    c.send('keyed');
    t.is(await s.recv(), 'keyed');
    c.close();
    s.close();
    await t.throwsAsync(Promise.all([Client(l.address, 'AF_INET', Buffer.from('x')), l.accept()]), { instanceOf: AuthenticationError });
  }
  // The docs' full order, and options after positional arguments.
  {
    const key = Buffer.from('k2');
    using l = new Listener(['127.0.0.1', 0], 'AF_INET', 2, false, key);
    const [c, s] = await Promise.all([Client(l.address, 'AF_INET', { authkey: key }), l.accept()]);
    c.close();
    s.close();
    t.throws(() => new Listener(null, { bogus: 1 } as never), { instanceOf: TypeError, message: /unexpected option 'bogus'/ });
  }
});

test('deliverChallenge(conn, key, digestName) positional as Python 3.12', async (t) => {
  const [a, b] = Pipe();
  const key = Buffer.from('k');
  await Promise.all([deliverChallenge(a, key, 'sha384'), answerChallenge(b, key)]);
  await Promise.all([deliverChallenge(a, key, { digestName: 'md5', timeout: 5 }), answerChallenge(b, key, { timeout: 5 })]);
  t.pass();
});

test('AsyncResult.get({ timeout }) waits the limit, then TimeoutError; wait({ timeout })', async (t) => {
  await using pool = new Pool(1);
  const r = pool.applyAsync(sleep, [1]);
  let t0 = performance.now();
  await t.throwsAsync(r.get({ timeout: 0.3 }), { instanceOf: TimeoutError });
  t.true(since(t0) >= 0.25, 'get({ timeout }) waited before timing out');
  t0 = performance.now();
  await r.wait({ timeout: 0.1 });
  t.true(since(t0) >= 0.05);
  t.false(r.ready());
  t.is(await r.get({ timeout: null }), 1);
  await t.throwsAsync(r.get({ timeout: 1, block: true } as never), { instanceOf: TypeError });
});

test('applyAsync: options object, args then options, Python\'s positional order with kwds; apply({ args })', async (t) => {
  await using pool = new Pool(2);
  const got: unknown[] = [];
  const errors: unknown[] = [];
  await pool.applyAsync(square, [3], { callback: (v) => got.push(v) }).get();
  await pool.applyAsync(square, { args: [4], callback: (v) => got.push(v) }).get();
  await pool.applyAsync(square, [5], null, (v) => got.push(v)).get();
  await pool.applyAsync(square, [6], {}, (v) => got.push(v), (e) => errors.push(e)).get();
  await t.throwsAsync(pool.applyAsync(failAt, [5], { errorCallback: (e) => errors.push(e) }).get(), { instanceOf: RangeError });
  await t.throwsAsync(pool.applyAsync(failAt, [5], null, null, (e) => errors.push(e)).get(), { instanceOf: RangeError });
  t.deepEqual(got, [9, 16, 25, 36]);
  t.is(errors.length, 2);
  t.true(errors.every((e) => e instanceof RangeError));
  t.is(await pool.apply(add, { args: [2, 3] }), 5);
  t.is(await pool.apply(add, [2, 3], {}), 5);
  t.is(await pool.apply(square, [7], null), 49);
  // A callback where Python has kwds is a mistake that says so; kwargs are refused.
  t.throws(() => pool.applyAsync(square, [1], ((v: number) => v) as never), { instanceOf: TypeError, message: /kwds/ });
  t.throws(() => pool.applyAsync(square, [1], { x: 1 } as never), { instanceOf: TypeError, message: /kwds are not supported/ });
  t.throws(() => pool.applyAsync(square, { args: [1], x: 1 } as never), { instanceOf: TypeError, message: /unexpected option 'x'/ });
  t.throws(() => pool.applyAsync(square, [1], { callback: 3 } as never), { instanceOf: TypeError, message: /callable/ });
});

test('map/starmap/imap/imapUnordered with { chunksize }; mapAsync/starmapAsync with options; next({ timeout })', async (t) => {
  await using pool = new Pool(2);
  const xs = [...Array(10).keys()];
  const sq = xs.map((x) => x * x);
  t.deepEqual(await pool.map(square, xs, { chunksize: 3 }), sq);
  t.deepEqual(await pool.starmap(add, [[1, 2], [3, 4]], { chunksize: 1 }), [3, 7]);
  await t.throwsAsync(pool.map(square, xs, { chunksize: 0 }), { message: /Chunksize must be 1\+/ });
  let got: unknown = null;
  await pool.mapAsync(square, xs, { chunksize: 2, callback: (v) => (got = v) }).wait();
  t.deepEqual(got, sq);
  got = null;
  await pool.mapAsync(square, xs, 4, { callback: (v) => (got = v) }).get();
  t.deepEqual(got, sq);
  let err: unknown = null;
  await t.throwsAsync(pool.mapAsync(failAt, xs, null, null, (e) => (err = e)).get(), { instanceOf: RangeError });
  t.true(err instanceof RangeError);
  got = null;
  await pool.starmapAsync(add, [[1, 1]], { callback: (v) => (got = v) }).get();
  t.deepEqual(got, [2]);
  const ordered: number[] = [];
  for await (const v of pool.imap(square, xs, { chunksize: 4 })) ordered.push(v);
  t.deepEqual(ordered, sq);
  const unordered: number[] = [];
  for await (const v of pool.imapUnordered(square, xs, { chunksize: 2 })) unordered.push(v);
  t.deepEqual(unordered.sort((a, b) => a - b), sq);
  const it = pool.imap(sleep, [1]);
  await t.throwsAsync(it.next({ timeout: 0.1 }), { instanceOf: TimeoutError });
  t.deepEqual(await it.next({ timeout: null }), { done: false, value: 1 });
  t.throws(() => pool.imap(square, xs, { chunk: 2 } as never), { instanceOf: TypeError });
});

test('new Pool(processes, { initializer, initargs }) mixes both forms', async (t) => {
  const { init, readInit } = await import('./fixtures/pool_targets.js');
  await using pool = new Pool(1, { initializer: init, initargs: ['mixed'] });
  t.is((await pool.apply(readInit))[0], 'mixed');
  t.throws(() => new Pool(1, { procesess: 2 } as never), { instanceOf: TypeError });
});

test('synchronized(obj, { lock }); context calls with options: getStartMethod({ allowNone }), setStartMethod(m, { force }), getContext({ method })', (t) => {
  const lock = new RLock();
  const v = synchronized(RawValue('i', 5), { lock });
  t.is(v.getLock(), lock);
  t.is(v.value, 5);
  t.is(synchronized(RawValue('i', 1), lock).getLock(), lock);
  t.is(getContext({ method: 'spawn' }), getContext('spawn'));
  // getStartMethod() fixes the default; force sets it again, as in Python.
  getStartMethod();
  t.is(getStartMethod({ allowNone: true }), 'spawn');
  setStartMethod(null, { force: true });
  t.is(getStartMethod({ allowNone: true }), null);
  setStartMethod({ method: 'spawn' });
  t.is(getStartMethod({ allowNone: true }), 'spawn');
  t.throws(() => setStartMethod('spawn'), { message: 'context has already been set' });
  setStartMethod('spawn', { force: true });
  t.throws(() => getContext('spawn').setStartMethod('spawn'), { message: /concrete context/ });
  const ctx = getContext('spawn');
  const before = getLogger().handlers.length;
  const logger = ctx.logToStderr({ level: 'ERROR' });
  t.is(logger.level, 40);
  logger.removeHandler(logger.handlers[before]);
  logger.setLevel(0);
  t.is(currentProcess().name, 'MainProcess');
  t.true(new Process({ target: square }) instanceof Process);
  t.throws(() => currentProcess().joinSync({ timeout: 1 }), { instanceOf: AssertionError });
});
