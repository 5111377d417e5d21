// Resources are released as in Python (issue 14, defects 2 and 3; issue 11 item 6):
// descriptors of joined processes and closed queues, an idle pool worker's death, and
// Listeners and Pools that a running program drops without closing them.
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { Process, Queue, SimpleQueue } from '../index.js';
import { Pool } from '../src/pool.js';
import { wait } from '../src/connection.js';
import { square } from './fixtures/pool_targets.js';
import { runTs } from './helpers.js';

const range = (n: number): number[] => [...Array(n).keys()];
const fds = (): number => readdirSync('/proc/self/fd').length;

/** Reaped: no longer in the process table (a zombie still is). */
function reaped(pid: number): boolean {
  return !existsSync(`/proc/${pid}`);
}

async function eventually(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

async function gcRun(scenario: string): Promise<Record<string, any>> {
  const r = await runTs('__test__/fixtures/gc_main.ts', [scenario], undefined, ['--expose-gc']);
  if (r.code !== 0) throw new Error(`gc_main ${scenario} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test.serial('start/join cycles leave no descriptor behind (the pidfd goes with the join)', async (t) => {
  // The first join starts the reactor (its descriptors stay).
  const warm = new Process({ target: square, args: [0] });
  warm.start();
  await warm.join();
  const before = fds();
  for (let i = 0; i < 8; i++) {
    const p = new Process({ target: square, args: [i] });
    p.start();
    await p.join();
    t.is(p.exitcode, 0);
  }
  t.is(fds(), before);
  // joinSync too; and a joined process still answers for its sentinel: an ended one.
  const p = new Process({ target: square, args: [1] });
  p.start();
  p.joinSync();
  t.is(fds(), before);
  t.deepEqual(await wait([p.sentinel], 5), [p.sentinel]);
});

test.serial('a sentinel that was read stays open until close(), as in Python', async (t) => {
  const before = fds();
  const p = new Process({ target: square, args: [2] });
  p.start();
  const s = p.sentinel;
  await p.join();
  t.is(fds(), before + 1, 'the sentinel handed out is still open after join');
  t.deepEqual(await wait([s], 5), [s]);
  p.close();
  t.is(fds(), before);
});

test.serial('a collected process object releases a sentinel that was read (under --expose-gc)', async (t) => {
  const r = await gcRun('sentinels');
  t.is(r.heldAfterJoin, 10, 'held while the objects lived');
  t.true(r.collected, `descriptors: ${r.fdsBefore} before, ${r.fdsAfter} after collection`);
});

test.serial('Queue.close() releases its memfd; puts already waiting still go in', async (t) => {
  const before = fds();
  for (let i = 0; i < 200; i++) {
    const q = new Queue();
    await q.put(i);
    t.is(await q.get(), i);
    q.close();
    const s = new SimpleQueue();
    s.close();
  }
  t.is(fds(), before);
  // A closed queue cannot be passed on.
  const q = new Queue();
  q.close();
  t.throws(() => new Process({ target: square, args: [q] }).start(), { message: /closed/ });
  t.is(fds(), before);
});

test.serial('a pool worker killed while idle is replaced at once; the next map works; close/join leave no zombie', async (t) => {
  const pool = new Pool(2);
  t.teardown(() => pool.terminate());
  t.deepEqual(await pool.map(square, range(10)), range(10).map((x) => x * x));
  const first = pool._pool.map((p) => p.pid!);
  process.kill(first[0], 'SIGKILL');
  // Noticed and replaced without any task being sent.
  t.true(await eventually(() => {
    const now = pool._pool.map((p) => p.pid!);
    return now.length === 2 && !now.includes(first[0]);
  }), 'the dead worker was replaced');
  t.true(await eventually(() => reaped(first[0])), 'the dead worker was reaped');
  t.deepEqual(await pool.map(square, range(100)), range(100).map((x) => x * x));
  // Both killed, then work submitted at once: nothing is lost.
  const second = pool._pool.map((p) => p.pid!);
  for (const pid of second) process.kill(pid, 'SIGKILL');
  t.true(await eventually(() => second.every(reaped)));
  t.deepEqual(await pool.map(square, range(50)), range(50).map((x) => x * x));
  const all = [...first, ...second, ...pool._pool.map((p) => p.pid!)];
  pool.close();
  const joined = await Promise.race([pool.join().then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
  t.true(joined, 'close(); join() returned');
  t.true(all.every(reaped), 'no worker left as a zombie');
});

test.serial('a Listener dropped without close() is closed and its socket file removed when collected', async (t) => {
  const r = await gcRun('listener');
  t.true(r.collected, JSON.stringify(r));
  t.true(r.socketFileGone);
  t.is(r.refused, 'OSError');
});

test.serial('a Pool dropped without close() has its workers stopped and reaped when collected', async (t) => {
  const r = await gcRun('pool');
  t.is(r.pids.length, 2);
  t.true(r.collected, JSON.stringify(r));
});
