// Items larger than a queue's ring (issue 11.7): any item that fits in memory can be put;
// the capacity bounds what waits in the ring. Across real processes, and with a producer
// killed in the middle of a big put.
import test from 'ava';
import { Pipe, Queue, SimpleQueue } from '../index.js';
import { checkBig, patterned, putBig, putBigForever } from './fixtures/forms_targets.js';
import { startChild } from './helpers.js';

const MB = 1 << 20;

test('a child puts items of 40 MB into a queue whose ring holds 1 MB; the parent gets them whole', async (t) => {
  const q = new Queue({ capacity: MB });
  t.is(q.capacity, MB);
  const n = 40 * MB;
  const p = startChild(t, putBig, [q, n]);
  const buf = (await q.get({ timeout: 120 })) as Buffer;
  t.is(buf.length, n);
  t.true(buf.equals(patterned(n, 7)));
  const obj = (await q.get({ timeout: 120 })) as { label: string; values: number[] };
  t.is(obj.label, 'object');
  t.is(obj.values.length, n >> 4);
  t.is(obj.values[12345], 12345);
  await p.join();
  t.is(p.exitcode, 0);
});

test('the parent puts a 30 MB item (sync and async) for children; SimpleQueue too', async (t) => {
  const n = 30 * MB;
  for (const q of [new Queue({ capacity: 64 * 1024 }), new SimpleQueue({ capacity: 64 * 1024 })] as Queue[]) {
    const [a, b] = Pipe();
    const p = startChild(t, checkBig, [q, b, n]);
    if (q instanceof SimpleQueue) await q.put(patterned(n, 3));
    else q.putSync(patterned(n, 3));
    t.deepEqual(await a.recv(), { length: n, same: true });
    await p.join();
  }
});

test('a producer killed in the middle of big puts: the queue gives whole items only and goes on', async (t) => {
  const q = new Queue({ capacity: 256 * 1024, maxsize: 2 });
  const n = 8 * MB;
  const expected = patterned(n, 5);
  const p = startChild(t, putBigForever, [q, n]);
  // Take a few, then kill it while it is (likely) writing the next one.
  for (let i = 0; i < 3; i++) t.true(((await q.get({ timeout: 120 })) as Buffer).equals(expected));
  p.kill();
  await p.join();
  for (;;) {
    let item: Buffer;
    try {
      item = (await q.get({ timeout: 1 })) as Buffer;
    } catch {
      break;
    }
    t.true(item.equals(expected), 'only whole items');
  }
  await q.put(Buffer.from('after'));
  t.deepEqual(await q.get({ timeout: 10 }), Buffer.from('after'));
});
