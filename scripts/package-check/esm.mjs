// An ES module user of the installed package, run with plain node: a Process, a Queue, a Lock, a Pool.
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { Lock, Pool, Process, Queue } from 'node-multiprocessing';
import { Listener } from 'node-multiprocessing/connection';

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
  assert.equal(typeof Listener, 'function');
  console.log('esm ok');
}
