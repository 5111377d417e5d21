// The blocking calls of Connection (recvSync, recvBytesSync, recvBytesIntoSync, pollSync)
// across real processes: messages small and large (larger than the per-thread receive
// buffer), with and without timeouts, peers that answer late or die mid-wait, and two
// copies of the connection module in one process (they share the thread's receive buffer).
import test from 'ava';
import { BufferTooShort, EOFError, Pipe } from '../index.js';
import { dieLate, partialThenDie, pollEcho, sendLate, syncEcho, syncEchoBytes } from './fixtures/blocking_targets.js';
import { startChild } from './helpers.js';

/** Messages of every kind of size: empty, tiny, around the 64 KiB receive buffer, and megabytes. */
function payloads(): Buffer[] {
  const sizes = [0, 1, 8, 100, 4095, 4096, 4097, 65_531, 65_532, 65_535, 65_536, 65_537, 200_000, 3 << 20];
  return sizes.map((n, k) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + k) & 0xff;
    return b;
  });
}

test('recvSync/recvBytesSync: small and large messages both ways with a child that blocks too', async (t) => {
  const [a, b] = Pipe();
  const bufs = payloads();
  const objects: unknown[] = [0, -1.5, 'x', 'é'.repeat(40), 's'.repeat(70_000), null, true, undefined, [1, 'two', 3], { k: Buffer.from('v') }, 2n ** 80n, ...bufs];
  const p = startChild(t, syncEcho, [b, objects.length + 11]);
  b.close();
  // One at a time, then the small ones all at once (several in one read); all the large
  // ones at once would fill both sockets and block both sides, in CPython as here.
  for (const o of objects) {
    a.send(o);
    t.deepEqual(a.recvSync(), o);
  }
  const small = objects.slice(0, 11);
  for (const o of small) a.send(o);
  for (const o of small) t.deepEqual(a.recvSync(), o);
  await p.join();
  t.is(p.exitcode, 0);
});

test('numbers keep every bit both ways: -0, NaN, infinities, 2^53, the smallest subnormal', async (t) => {
  const [a, b] = Pipe();
  const numbers = [0, -0, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53) - 2, Number.MIN_VALUE, Number.MAX_VALUE, 0.1, -1.5];
  const p = startChild(t, syncEcho, [b, numbers.length * 2]);
  b.close();
  for (const x of numbers) {
    a.send(x);
    t.true(Object.is(a.recvSync(), x), String(x));
  }
  // Through the asynchronous receive too (the child's echo uses the blocking one).
  for (const x of numbers) {
    a.send(x);
    t.true(Object.is(await a.recv(), x), String(x));
  }
  await p.join();
  t.is(p.exitcode, 0);
});

test('received values do not change when later messages arrive (nothing keeps the receive buffer)', async (t) => {
  const [a, b] = Pipe();
  const p = startChild(t, syncEcho, [b, 4]);
  b.close();
  const first = { buf: Buffer.from('first message'), arr: new Float64Array([1, 2, 3]) };
  a.send(first);
  const got1 = a.recvSync();
  a.send(Buffer.from('bytes one'));
  const got1Bytes = a.recvSync();
  a.send('short');
  t.is(a.recvSync(), 'short');
  a.send({ buf: Buffer.from('SECOND MESSAGE'), arr: new Float64Array([9, 9, 9]) });
  a.recvSync();
  t.deepEqual(got1, first);
  t.deepEqual(got1Bytes, Buffer.from('bytes one'));
  await p.join();
});

test('recvBytesSync and recvBytesIntoSync: every size, BufferTooShort with the whole message', async (t) => {
  const [a, b] = Pipe();
  const bufs = payloads();
  const p = startChild(t, syncEchoBytes, [b, bufs.length * 2 + 1]);
  b.close();
  for (const m of bufs) {
    a.sendBytes(m);
    const got = a.recvBytesSync();
    t.true(got.equals(m), `${m.length} bytes`);
  }
  for (const m of bufs) {
    a.sendBytes(m);
    const into = Buffer.alloc(m.length + 3, 0xee);
    t.is(a.recvBytesIntoSync(into, 3), m.length);
    t.true(into.subarray(3).equals(m));
    t.true(into.subarray(0, 3).equals(Buffer.from([0xee, 0xee, 0xee])));
  }
  a.sendBytes(Buffer.from('0123456789'));
  const e = t.throws(() => a.recvBytesIntoSync(Buffer.alloc(4)), { instanceOf: BufferTooShort });
  t.is(Buffer.from(e!.args[0] as Buffer).toString(), '0123456789');
  await p.join();
  t.is(p.exitcode, 0);
});

test('pollSync: false after its timeout, true when a late message comes, with and without a timeout', async (t) => {
  const [a, b] = Pipe();
  const p = startChild(t, sendLate, [b, 300, 'late']);
  b.close();
  t.is(a.recvSync(), 'ready');
  t.false(a.pollSync(0));
  const start = Date.now();
  t.false(a.pollSync(0.05));
  t.true(Date.now() - start >= 45);
  t.true(a.pollSync(30));
  t.is(a.recvSync(), 'late');
  await p.join();
  // At the end, pollSync answers true (a read would not wait: it raises EOFError).
  t.true(a.pollSync(null));
  t.throws(() => a.recvSync(), { instanceOf: EOFError });
});

test('a child waiting in pollSync (finite and infinite) answers every message', async (t) => {
  for (const timeout of [0.01, 5, null]) {
    const [a, b] = Pipe();
    const p = startChild(t, pollEcho, [b, 50, timeout]);
    b.close();
    for (let i = 0; i < 50; i++) {
      a.send(i);
      t.is(a.recvSync(), i);
    }
    await p.join();
    t.is(p.exitcode, 0);
  }
});

test('a blocking receive that waits for a late peer sleeps: little CPU while it waits', async (t) => {
  const [a, b] = Pipe();
  const p = startChild(t, sendLate, [b, 500, 'late']);
  b.close();
  t.is(a.recvSync(), 'ready');
  const cpu = process.cpuUsage();
  const wall = Date.now();
  t.is(a.recvSync(), 'late');
  const waited = Date.now() - wall;
  const used = process.cpuUsage(cpu);
  // Spinning is bounded (tens of microseconds per wait); a busy loop would use about the whole wait.
  t.true((used.user + used.system) / 1000 < Math.max(100, waited / 4), `${(used.user + used.system) / 1000} ms of CPU in ${waited} ms`);
  await p.join();
});

test('a peer that dies mid-wait: recvSync, recvBytesSync and pollSync end (EOFError), no hang', async (t) => {
  for (const call of ['recvSync', 'recvBytesSync', 'pollSync'] as const) {
    const [a, b] = Pipe();
    const p = startChild(t, dieLate, [b, 200]);
    b.close();
    t.is(a.recvSync(), 'ready');
    if (call === 'pollSync') {
      t.true(a.pollSync(null));
      t.throws(() => a.recvSync(), { instanceOf: EOFError });
    } else {
      t.throws(() => a[call](), { instanceOf: EOFError }, call);
    }
    await p.join();
    t.is(p.exitcode, -9);
  }
});

test('a peer that dies in the middle of a large message: EOFError, no hang', async (t) => {
  for (const call of ['recvSync', 'recvBytesSync'] as const) {
    const [a, b] = Pipe();
    const p = startChild(t, partialThenDie, [b]);
    b.close();
    t.throws(() => a[call](), { instanceOf: EOFError }, call);
    await p.join();
    t.is(p.exitcode, -9);
  }
});

test('two copies of the connection module in one process share the receive buffer', async (t) => {
  // A second instance of the module (a distinct URL is a distinct ES module): it registers
  // the thread's buffer again, which must not leave the first copy reading a stale one.
  const second = (await import(`../src/connection.js?copy=${Date.now()}`)) as typeof import('../src/connection.js');
  t.not(second.Connection, (await import('../src/connection.js')).Connection);
  const [a1, b1] = Pipe();
  const [a2, b2] = second.Pipe();
  // The children echo frames as they are (objects and bytes alike).
  const p1 = startChild(t, syncEchoBytes, [b1, 40]);
  const p2 = startChild(t, syncEchoBytes, [b2, 40]);
  b1.close();
  b2.close();
  for (let i = 0; i < 20; i++) {
    const x = `first ${i} ${'a'.repeat(i)}`;
    const y = i % 2 ? 1000 + i : `second ${i}`;
    a1.send(x);
    a2.send(y);
    // Both messages are in before either is read.
    t.true(a1.pollSync(30) && a2.pollSync(30));
    t.is(a1.recvSync(), x);
    t.is(a2.recvSync(), y);
    a2.sendBytes(Buffer.from(`bytes ${i}`));
    a1.sendBytes(Buffer.from(`other bytes ${i}`));
    t.is(a2.recvBytesSync().toString(), `bytes ${i}`);
    t.is(a1.recvBytesSync().toString(), `other bytes ${i}`);
  }
  await Promise.all([p1.join(), p2.join()]);
  t.is(p1.exitcode, 0);
  t.is(p2.exitcode, 0);
});
