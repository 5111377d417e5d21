import test from 'ava';
import {
  BufferTooShort, EOFError, OSError, Pipe, Process, RawArray, ValueError,
} from '../index.js';
import { answerThroughReceived, callAndReport, echo, echoBytes, writeIntoReceived } from './fixtures/targets.js';

test('send/recv carry structured values, bigint, Map, Set, Date, errors with their class', async (t) => {
  const [a, b] = Pipe();
  const value = { n: 1, big: 2n ** 70n, m: new Map([[1, 'x']]), s: new Set([1, 2]), d: new Date(5), u: undefined, buf: Buffer.from('hi') };
  a.send(value);
  const got = await b.recv();
  t.deepEqual(got, value);
  t.true(Buffer.isBuffer(got.buf));
  a.send(new ValueError('bad value'));
  const err = b.recvSync();
  t.true(err instanceof ValueError);
  t.is(err.message, 'bad value');
  t.regex(err.stack, /connection\.test\.ts/);
  const cyc: Record<string, unknown> = { name: 'c' };
  cyc.self = cyc;
  a.send(cyc);
  const c2 = await b.recv();
  t.is(c2.self, c2);
});

test('recvBytesInto with a short buffer raises BufferTooShort carrying the whole message', async (t) => {
  const [a, b] = Pipe();
  a.sendBytes(Buffer.from('0123456789'));
  const small = Buffer.alloc(4);
  const e = await t.throwsAsync(b.recvBytesInto(small), { instanceOf: BufferTooShort });
  t.is(Buffer.from(e!.args[0] as Buffer).toString(), '0123456789');
  a.sendBytes(Buffer.from('abcdef'), 2, 3);
  const big = Buffer.alloc(10);
  t.is(b.recvBytesIntoSync(big, 4), 3);
  t.is(big.subarray(4, 7).toString(), 'cde');
  t.throws(() => a.sendBytes(Buffer.alloc(3), 2, 5), { instanceOf: ValueError });
});

test('poll: no argument returns at once, a number waits, null waits for ever', async (t) => {
  const [a, b] = Pipe();
  t.false(await b.poll());
  t.false(b.pollSync());
  const start = Date.now();
  t.false(await b.poll(0.2));
  t.true(Date.now() - start >= 190);
  setTimeout(() => a.send('late'), 50);
  t.true(await b.poll(null));
  t.is(await b.recv(), 'late');
});

test('EOFError once the peer closed and nothing is left; closed handles raise OSError', async (t) => {
  const [a, b] = Pipe();
  a.send('last');
  a.close();
  t.true(a.closed);
  t.is(await b.recv(), 'last');
  await t.throwsAsync(b.recv(), { instanceOf: EOFError });
  t.throws(() => b.recvSync(), { instanceOf: EOFError });
  t.throws(() => a.send(1), { instanceOf: OSError, message: 'handle is closed' });
});

test('a one-way pipe refuses the wrong direction', (t) => {
  const [r, w] = Pipe(false);
  t.true(r.readable);
  t.false(r.writable);
  t.false(w.readable);
  t.throws(() => r.send(1), { instanceOf: OSError });
  t.throws(() => w.recvSync(), { instanceOf: OSError });
  w.send('one way');
  t.is(r.recvSync(), 'one way');
});

test('maxlength: a longer message raises and the connection becomes unreadable', async (t) => {
  const [a, b] = Pipe();
  a.sendBytes(Buffer.alloc(100));
  a.sendBytes(Buffer.from('next'));
  await t.throwsAsync(b.recvBytes(10), { instanceOf: OSError });
  await t.throwsAsync(b.recvBytes(), { instanceOf: OSError });
  t.throws(() => b.recvBytesSync(-1), { instanceOf: ValueError });
});

test('short arrays of numbers, booleans, null and Float64Arrays cross processes exactly (compact form)', async (t) => {
  const [a, b] = Pipe();
  const big = new Float64Array(100_000).map((_, i) => i * 1.5 - 7);
  big[3] = -0;
  big[4] = NaN;
  big[5] = -Infinity;
  const messages: unknown[] = [
    [],
    [1, -0, NaN, Infinity, 2 ** 60, null, undefined, true, false],
    [3, null, new Float64Array([1.25, -2])],
    [new Float64Array(0), 5],
    [7, new Float64Array([1]), new Float64Array([2, 3]), big],
    // Not the compact form (a hole, a string, an extra property): V8's.
    [1, , 2],
    [1, 'two', big.subarray(1, 4)],
    Object.assign([1, 2], { extra: 'kept' }),
  ];
  const p = new Process({ target: echo, args: [b, messages.length] });
  p.start();
  for (const m of messages) {
    a.send(m);
    const back = await a.recv();
    t.deepEqual(back, m);
    if (Array.isArray(m)) for (let i = 0; i < m.length; i++) t.is(i in back, i in m);
  }
  const last = messages[4] as unknown[];
  t.true(Object.is((last[3] as Float64Array)[3], -0));
  await p.join();
  t.is(p.exitcode, 0);
});

test('a RawArray inside a short array of numbers still travels as the same shared memory', async (t) => {
  const [a, b] = Pipe();
  const shared = RawArray('d', 4) as Float64Array;
  const p = new Process({ target: writeIntoReceived, args: [b] });
  p.start();
  a.send([shared, 42.5]);
  t.is(await a.recv(), 'done');
  t.is(shared[0], 42.5);
  await p.join();
  t.is(p.exitcode, 0);
});

test('a Connection sent inside a message reaches a running process', async (t) => {
  const [control, childControl] = Pipe();
  const [mine, theirs] = Pipe();
  const p = new Process({ target: answerThroughReceived, args: [childControl] });
  p.start();
  control.send({ conn: theirs, text: 'hello' });
  theirs.close();
  t.is(await mine.recv(), 'hello via a passed connection');
  await p.join();
  t.is(p.exitcode, 0);
});

test('messages of tens of MB work in both directions', async (t) => {
  const [a, b] = Pipe();
  const p = new Process({ target: echoBytes, args: [b, 2] });
  p.start();
  for (const size of [30 << 20, 12 << 20]) {
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) payload[i] = i & 0xff;
    // send blocks until written; the child reads concurrently.
    a.sendBytes(payload);
    const back = await a.recvBytes();
    t.is(back.length, size);
    t.true(back.equals(payload));
  }
  await p.join();
});

test('a self-contained inline function travels by source; a closure fails with "export it"', async (t) => {
  const [a, b] = Pipe();
  const p = new Process({ target: callAndReport, args: [b, (x: number) => x * 2, 21] });
  p.start();
  t.deepEqual(await a.recv(), { ok: 42 });
  await p.join();
  const outer = 5;
  const p2 = new Process({ target: callAndReport, args: [b, (x: number) => x * outer, 2] });
  p2.start();
  const r = await a.recv();
  await p2.join();
  t.true(r.error instanceof ReferenceError);
  t.regex(r.error.message, /Export the function from a module/);
});
