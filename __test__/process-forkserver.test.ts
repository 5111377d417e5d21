// The process tests with the forkserver start method (see process_suite.ts), and what is
// particular to it: children started in advance, preload modules, replacement, clean-up.
import test from 'ava';
import { join } from 'node:path';
import { getContext, Pipe, Process, setExecutable, setForkserverPreload, setStartMethod } from '../index.js';
import { _forkserverSpares } from '../src/forkserver.js';
import { reportEnv, reportPreloaded, sendBack } from './fixtures/targets.js';
import { square } from './fixtures/pool_targets.js';
import { reportEvaluated } from './fixtures/forkserver_targets.js';
import { neverRuns } from './fixtures/forkserver_exiting.js';
import { availableParallelism } from 'node:os';
import { readdirSync } from 'node:fs';
import { eventually, gone, root, runTs } from './helpers.js';

/**
 * Every thread of the process has ended. A killed node's main thread shows as a zombie while
 * its other threads are still exiting; only once they are gone does its pidfd (what the fork
 * server checks before using a waiting child) report the exit.
 */
function exited(pid: number): boolean {
  if (!gone(pid)) return false;
  try {
    return readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}
import { processSuite } from './process_suite.js';

setStartMethod('forkserver');
processSuite('forkserver');

async function roundTrip<T>(target: Function, ...args: unknown[]): Promise<{ got: T; pid: number; code: number | null }> {
  const [a, b] = Pipe();
  const p = new Process({ target, args: [b, ...args] });
  p.start();
  // A process that died instead of running its target: its exit code, not a hang.
  const ended = p.join().then(() => false);
  const ready = (await Promise.race([a.poll(120), ended])) || (await a.poll(5));
  const got = (ready ? await a.recv() : `exited with ${p.exitcode}`) as T;
  await p.join();
  a.close();
  b.close();
  return { got, pid: p.pid!, code: p.exitcode };
}

test.serial('a start takes a child started in advance and starts a replacement', async (t) => {
  await roundTrip(sendBack, 1);
  const spares = _forkserverSpares();
  t.true(spares.length >= 2);
  const { pid } = await roundTrip(sendBack, 2);
  t.true(spares.includes(pid), 'a waiting child ran it');
  t.true(_forkserverSpares().length >= 2);
  t.false(_forkserverSpares().includes(pid));
});

test.serial('a Pool of n workers leaves n children waiting (bounded); idle, they go back to 2', async (t) => {
  const bound = Math.max(4, Math.min(16, 2 * availableParallelism()));
  const n = Math.min(bound, 5);
  const pool = getContext('forkserver').Pool(n);
  try {
    t.deepEqual(await pool.map(square, [1, 2, 3]), [1, 4, 9]);
  } finally {
    pool.terminate();
    await pool.join();
  }
  t.true(await eventually(() => _forkserverSpares().length === n, 60_000), `${_forkserverSpares().length} waiting, not ${n}`);
  // One fewer after each idle 5 s.
  t.true(await eventually(() => _forkserverSpares().length === 2, 90_000), `${_forkserverSpares().length} waiting, not 2`);
  const { got } = await roundTrip(sendBack, 'still works');
  t.deepEqual(got, ['still works']);
});

test.serial('the module of an earlier target is loaded by children started in advance, before start()', async (t) => {
  // The first start teaches it the module; the children started after that load it while
  // they wait, so that a later start finds it loaded before start() was called.
  let before = false;
  for (let i = 0; i < 20 && !before; i++) {
    await new Promise((r) => setTimeout(r, 300 * Math.min(i, 5)));
    const at = process.hrtime.bigint();
    const { got } = await roundTrip<bigint>(reportEvaluated);
    t.is(typeof got, 'bigint');
    if (i === 0) t.true(got > at, 'not loaded in advance before it was a target');
    before = got < at;
  }
  t.true(before, 'never loaded in advance');
});

test.serial('preload modules are loaded before the target; a change replaces the waiting children', async (t) => {
  t.throws(() => setForkserverPreload([1 as unknown as string]), { instanceOf: TypeError });
  const before = _forkserverSpares();
  setForkserverPreload([join(root, '__test__/fixtures/preload_mark.ts')]);
  try {
    const { got, pid } = await roundTrip<{ preloaded: string | null; method: string }>(reportPreloaded);
    t.deepEqual(got, { preloaded: `preloaded in ${pid}`, method: 'forkserver' });
    t.false(before.includes(pid), 'not a child started before the change');
  } finally {
    setForkserverPreload([]);
  }
  const { got } = await roundTrip<{ preloaded: string | null }>(reportPreloaded);
  t.is(got.preloaded, null);
});

test.serial('the environment of the start is the child\'s, even if changed after the spares started', async (t) => {
  await roundTrip(sendBack, 0);
  process.env.MP_FORKSERVER_TEST = 'changed';
  try {
    t.is((await roundTrip(reportEnv, 'MP_FORKSERVER_TEST')).got, 'changed');
  } finally {
    delete process.env.MP_FORKSERVER_TEST;
  }
});

test.serial('waiting children that were killed are replaced: the next start works', async (t) => {
  await roundTrip(sendBack, 0);
  const spares = _forkserverSpares();
  for (const pid of spares) process.kill(pid, 'SIGKILL');
  t.true(await eventually(() => spares.every(exited)));
  const { got, pid } = await roundTrip(sendBack, 'after');
  t.deepEqual(got, ['after']);
  t.false(spares.includes(pid));
  t.true(_forkserverSpares().length >= 2);
});

test.serial('waiting children killed just before start(): the start uses another one, the process runs and exits 0', async (t) => {
  // The kill is not waited for: the killed child's threads are still exiting when start()
  // looks at it (its pidfd not yet readable). Rounds alternate: the oldest waiting child
  // killed (the next one is used), and every waiting child killed (a fresh one is started).
  await roundTrip(sendBack, 0);
  const killed: number[] = [];
  for (let round = 0; round < 12; round++) {
    const spares = _forkserverSpares();
    t.true(spares.length > 0);
    const victims = round % 2 ? spares : spares.slice(0, 1);
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    killed.push(...victims);
    const { got, pid, code } = await roundTrip(sendBack, round);
    t.deepEqual(got, [round]);
    t.is(code, 0, `round ${round}`);
    t.false(victims.includes(pid), `round ${round}: a killed child ran the process`);
  }
  t.true(await eventually(() => killed.every(gone), 20_000), 'the killed children were reaped');
});

test.serial('an executable that cannot start, set right after a start: no crash; starts fail clearly until it is set back', async (t) => {
  const [a, b] = Pipe();
  const p = new Process({ target: sendBack, args: [b, 'first'] });
  p.start();
  // The replacements start after this turn of the event loop, with this executable.
  setExecutable(join(root, 'no-such-node'));
  try {
    t.deepEqual(await a.recv(), ['first']);
    await p.join();
    t.is(p.exitcode, 0);
    await new Promise((r) => setTimeout(r, 500));
    t.throws(() => new Process({ target: sendBack, args: [b] }).start(), { message: /cannot start/ });
  } finally {
    setExecutable(process.execPath);
    a.close();
    b.close();
  }
  const { got, code } = await roundTrip(sendBack, 'after');
  t.deepEqual(got, ['after']);
  t.is(code, 0);
});

test.serial('a target module that ends the child at its top level: that process exits with its code; no loop of restarts', async (t) => {
  const p = new Process({ target: neverRuns, args: [null] });
  p.start();
  await p.join(60);
  t.is(p.exitcode, 3);
  // The children started after it load its module and end: they are not replaced in a loop
  // (the set of waiting children settles: no new pid for 5 s).
  let last = _forkserverSpares().join();
  let since = Date.now();
  const settled = await eventually(() => {
    const now = _forkserverSpares().join();
    if (now !== last) [last, since] = [now, Date.now()];
    return Date.now() - since > 5000;
  }, 90_000);
  t.true(settled, 'waiting children keep being restarted');
  const { got, code } = await roundTrip(sendBack, 'after');
  t.deepEqual(got, ['after']);
  t.is(code, 0);
});

test.serial('a Pool of a forkserver context works', async (t) => {
  const pool = getContext('forkserver').Pool(2);
  try {
    t.deepEqual(await pool.map(square, [1, 2, 3, 4]), [1, 4, 9, 16]);
  } finally {
    pool.terminate();
    await pool.join();
  }
});

test.serial('a Manager of a forkserver context works, its server a forkserver child', async (t) => {
  const ctx = getContext('forkserver');
  await using m = await ctx.Manager();
  const d = await m.dict<string, number>();
  await d.setItem('a', 1);
  t.is(await d.getItem('a'), 1);
  const l = await m.list<number>([1, 2]);
  await l.append(3);
  t.deepEqual(await l._getvalue(), [1, 2, 3]);
});

test('stress: many starts, some killed at once; no hang, no zombie, nothing left behind', async (t) => {
  const r = await runTs('__test__/fixtures/forkserver_stress.ts', [], 110_000);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { codes: number[]; zombies: number[]; spares: number[]; pids: number[] };
  t.deepEqual(report.zombies, []);
  t.true(report.codes.every((c) => c === 0 || c === -9 || c === -15), report.codes.join(','));
  t.true(report.codes.filter((c) => c !== 0).length >= 1);
  t.true(report.spares.length >= 2 && report.spares.length <= 16, `${report.spares.length} waiting`);
  // The parent has exited: the children that were waiting for work died with it.
  t.true(await eventually(() => [...report.spares, ...report.pids].every(gone), 10_000), 'no process left behind');
});
