// A CommonJS user of the installed package, run with plain node (require of an ES module,
// Node >= 20.19): a Process, a Queue, a Lock, a Pool.
const assert = require('node:assert/strict');
const { Lock, Pool, Process, Queue } = require('node-multiprocessing');
const { Value } = require('node-multiprocessing/sharedctypes');

function producer(q, lock, total, n) {
  for (let i = 0; i < n; i++) {
    lock.acquireSync();
    try {
      total.value += 1;
      void q.put(`item ${i}`);
    } finally {
      lock.release();
    }
  }
}

function cube(x) {
  return x * x * x;
}

module.exports = { producer, cube };

async function main() {
  const q = new Queue();
  const lock = new Lock();
  const total = Value('i', 0);
  const p = new Process({ target: producer, args: [q, lock, total, 3] });
  p.start();
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await q.get(true, 30));
  await p.join(30);
  assert.deepEqual(got, ['item 0', 'item 1', 'item 2']);
  assert.equal(p.exitcode, 0);
  assert.equal(total.value, 3);

  const pool = new Pool(2);
  try {
    assert.deepEqual(await pool.map(cube, [1, 2, 3]), [1, 8, 27]);
  } finally {
    pool.close();
    await pool.join();
  }
  console.log('cjs ok');
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
