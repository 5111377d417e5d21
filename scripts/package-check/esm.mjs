// An ES module user of the installed package, run with plain node: a Process, a Queue, a Lock, a Pool,
// and the same over threads (node-multiprocessing/dummy).
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { Lock, Pool, Process, Queue } from 'node-multiprocessing';
import { Listener } from 'node-multiprocessing/connection';
import { Process as ThreadProcess, Pool as ThreadPool, Queue as DummyQueue } from 'node-multiprocessing/dummy';

export function producer(q, lock, n) {
  for (let i = 0; i < n; i++) {
    lock.acquireSync();
    try {
      void q.put(i * 10);
    } finally {
      lock.release();
    }
  }
}

export function square(x) {
  return x * x;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const q = new Queue();
  const lock = new Lock();
  const p = new Process({ target: producer, args: [q, lock, 5] });
  p.start();
  const got = [];
  for (let i = 0; i < 5; i++) got.push(await q.get(true, 30));
  await p.join(30);
  assert.deepEqual(got, [0, 10, 20, 30, 40]);
  assert.equal(p.exitcode, 0);

  const pool = new Pool(2);
  try {
    assert.deepEqual(await pool.map(square, [1, 2, 3, 4]), [1, 4, 9, 16]);
    assert.equal(await pool.apply(square, [7]), 49);
  } finally {
    pool.close();
    await pool.join();
  }
  // multiprocessing.dummy: the same API over worker threads, which load the engine the same way.
  const tq = new DummyQueue();
  const t = new ThreadProcess({ target: producer, args: [tq, new Lock(), 2] });
  t.start();
  assert.deepEqual([await tq.get(true, 30), await tq.get(true, 30)], [0, 10]);
  await t.join(30);
  const threads = new ThreadPool(2);
  try {
    assert.deepEqual(await threads.map(square, [5, 6]), [25, 36]);
  } finally {
    threads.close();
    await threads.join();
  }
  assert.equal(typeof Listener, 'function');
  console.log('esm ok');
}
