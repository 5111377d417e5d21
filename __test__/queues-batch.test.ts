// Batches of puts (src/queues.ts): small async puts of one thread are written several at a
// time (putSync never is); these tests hold the order, the flushes (exit, blocking calls, close/joinThread, other
// calls on the queue) and a producer killed with a batch.
import test from 'ava';
import { Empty, Event, Pipe, Process } from '../index.js';
import { RawArray } from '../src/sharedctypes.js';
import { Queue, SimpleQueue } from '../src/queues.js';
import { everyForm, produceSmallForever, putCloseJoin, putEveryFormAndExit, putThenBlock, putThenSpin } from './fixtures/queue_targets.js';

function start(target: (...a: any[]) => unknown, args: unknown[]): Process {
  const p = new Process({ target, args });
  p.start();
  return p;
}

test('puts of every form in one run keep their order; a child that exits at once delivers its batch', async (t) => {
  const n = 600;
  const q = new Queue();
  const p = start(putEveryFormAndExit, [q, n]);
  const got: unknown[] = [];
  for (let i = 0; i < n; i++) got.push(q.getSync(true, 20));
  t.deepEqual(got, everyForm(n));
  await p.join();
  t.is(p.exitcode, 0);
  t.throws(() => q.getSync(true, 0.2), { instanceOf: Empty });
});

test('the same process sees its own batched puts: qsize, empty, get, and put() resolves once they are in', async (t) => {
  const q = new Queue();
  t.true(q.empty());
  for (let i = 0; i < 5; i++) q.putSync(i);
  t.is(q.qsize(), 5);
  t.false(q.empty());
  t.is(q.getNowait(), 0);
  const puts = [q.put('a'), q.put('b')];
  t.is(q.getSync(), 1, 'a get writes the batch first');
  await Promise.all(puts);
  t.is(q.qsize(), 5);
  t.deepEqual([2, 3, 4, 'a', 'b'].map(() => q.getNowait()), [2, 3, 4, 'a', 'b']);
  // More items than one batch holds, in order.
  const s = new SimpleQueue();
  for (let i = 0; i < 1000; i++) s.putSync(i);
  for (let i = 0; i < 1000; i++) t.is(s.getSync(), i);
  t.true(s.empty());
});

for (const how of ['queue', 'event', 'pipe'] as const) {
  test(`a child that blocks (${how}) right after its puts has sent them`, async (t) => {
    const q = new Queue();
    let answer: any;
    let reply: () => void;
    if (how === 'queue') {
      const a = new Queue();
      [answer, reply] = [a, () => a.putSync('go')];
    } else if (how === 'event') {
      const e = new Event();
      [answer, reply] = [e, () => e.set()];
    } else {
      const [r, w] = Pipe(false);
      [answer, reply] = [r, () => w.send('go')];
    }
    const p = start(putThenBlock, [q, 'ping', how, answer]);
    t.is(await q.get(true, 20), 'ping');
    t.is(await q.get(true, 20), 'ping');
    reply();
    await p.join(20);
    t.is(p.exitcode, 0);
  });
}

test('a lone put is in the queue when putSync returns, even if the thread then spins outside the library', async (t) => {
  const q = new Queue();
  const flag = RawArray('i', 1) as Int32Array;
  const p = start(putThenSpin, [q, flag]);
  t.is(await q.get(true, 20), 'lone');
  Atomics.store(flag, 0, 1);
  await p.join(20);
  t.is(p.exitcode, 0);
});

test('close and joinThread: a child\'s batched puts are all in the queue when joinThread resolves', async (t) => {
  const q = new Queue();
  const p = start(putCloseJoin, [q, 300]);
  await p.join(20);
  t.is(p.exitcode, 0);
  t.is(q.qsize(), 300);
  for (let i = 0; i < 300; i++) t.is(q.getNowait(), i);
  // In this process: put after close is a ValueError; the batch before it still goes in.
  const r = new Queue();
  r.putSync('last');
  r.close();
  t.throws(() => r.putSync('x'), { message: /closed/ });
  await r.joinThread();
});

test('a producer killed with put() calls in its batch: the queue holds a prefix of its puts, in order, and goes on', async (t) => {
  for (let round = 0; round < 3; round++) {
    const q = new Queue();
    const done = RawArray('i', 1) as Int32Array;
    const p = start(produceSmallForever, [q, done]);
    let got = 0;
    while (got < 1000 + round * 5000) t.is(q.getSync(true, 20), got++);
    p.kill();
    await p.join();
    const completed = Atomics.load(done, 0);
    for (;;) {
      let v: unknown;
      try {
        v = q.getSync(true, 0.5);
      } catch (e) {
        t.true(e instanceof Empty);
        break;
      }
      t.is(v, got++, 'no gap, no duplicate');
    }
    // A batch holds at most 128 items; the put in flight may have gone in.
    t.true(got >= completed - 128 && got <= completed + 1, `got ${got}, completed puts ${completed}`);
    q.putSync('after');
    t.is(q.getSync(true, 1), 'after');
  }
});
