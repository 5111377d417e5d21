// The process tests with the forkserver start method (see process_suite.ts), and what is
// particular to it: one server that forks every child, preload modules, restarts, clean-up.
import test from 'ava';
import { getContext, Pipe, Process, setStartMethod } from '../index.js';
import { _forkserverPid } from '../src/forkserver.js';
import { sendBack } from './fixtures/targets.js';
import { square } from './fixtures/pool_targets.js';
import { eventually, gone, runJs } from './helpers.js';
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

test.serial('under a TypeScript loader (module hooks on a thread of their own), children are spawned, not forked', async (t) => {
  // This file runs under tsx: the forkserver start method starts no server here.
  const { got, code } = await roundTrip(sendBack, 'spawned');
  t.deepEqual(got, ['spawned']);
  t.is(code, 0);
  t.is(_forkserverPid(), null);
});

/** A scenario of forkserver_checks.mjs: plain node against the built package, children forked by the server. */
async function check<T>(scenario: string, ...args: string[]): Promise<T> {
  const r = await runJs('__test__/fixtures/forkserver_checks.mjs', [scenario, ...args], 300_000);
  if (r.code !== 0) throw new Error(`${scenario}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface Self {
  pid: number;
  ppid: number;
  statPid: number;
  random: number;
  env: string | null;
  cwd: string;
  execArgv: string[];
}

test('forked: one server for the contexts; each child its own pid, the server as parent, its own Math.random, the environment and directory of its start', async (t) => {
  type Got = { got: Self; pid: number; exitcode: number };
  const r = await check<{ first: Got; second: Got; server: number; serverAfter: number; self: number }>('self');
  t.not(r.server, null);
  t.not(r.server, r.self);
  t.is(r.serverAfter, r.server);
  for (const c of [r.first, r.second]) {
    t.is(c.exitcode, 0);
    t.is(c.got.pid, c.pid);
    t.is(c.got.statPid, c.pid);
    t.is(c.got.ppid, r.server);
    // The parent's node options (none here), not the server's own.
    t.deepEqual(c.got.execArgv, []);
  }
  t.not(r.first.got.random, r.second.got.random);
  t.is(r.first.got.env, null);
  t.is(r.second.got.env, 'set after the server started');
  t.is(r.second.got.cwd, '/tmp');
});

test('forked: exit codes (throw, process.exit, SIGTERM, SIGKILL) and the sentinel', async (t) => {
  const r = await check<Record<string, unknown>>('exitcodes');
  t.deepEqual(r, { throw: 1, exit7: 7, terminate: -15, kill: -9, sentinelBefore: 0, sentinelAfter: 1, afterSentinel: 'known', sentinelCode: -15 });
});

test('forked: a daemonic child dies with its parent killed with SIGKILL; a non-daemonic one outlives it', async (t) => {
  const r = await check<Record<string, boolean>>('daemon');
  t.deepEqual(r, { daemonAlive: true, daemonGone: true, childAlive: true, childOutlives: true });
});

test('forked: preload modules are loaded by the server before it forks; a change starts another server', async (t) => {
  const r = await check<{ before: string | null; during: string | null; server: number; first: number; last: number }>('preload');
  t.is(r.before, null);
  t.is(r.during, `preloaded in ${r.server}`);
  t.not(r.server, r.first);
  t.not(r.last, r.server);
});

test('forked: a server that never answers (a preload module that never finishes loading) fails start() with TimeoutError and is ended; the next start works', async (t) => {
  const r = await check<{ error: { name: string; message: string } | null; waited: number; hungGone: boolean; next: number; started: boolean }>('hungPreload');
  t.is(r.error?.name, 'TimeoutError');
  t.regex(r.error?.message ?? '', /did not answer within 2 s/);
  t.true(r.waited >= 1.9);
  t.true(r.hungGone);
  t.false(r.started);
  t.is(r.next, 0);
});

test('forked: a server killed is restarted by the next start; a child it was waiting for reports 255 and still runs', async (t) => {
  const r = await check<Record<string, unknown>>('restart');
  t.is(r.exitcode, 255);
  t.true(r.orphanAlive);
  t.true(r.serverGone);
  t.is(r.next, 0);
  t.not(r.newServer, r.server);
});

test('forked: the server loads the module of a target once a start has named it; one whose top level throws, exits or leaves a timer there is left to the children and another server serves the next starts', async (t) => {
  type Got = { got: { pid: number; loadedIn: number } | null; pid: number; exitcode: number };
  type Kind = { failing: number; next: Got; again: Got; before: number; after: number; running: number };
  const r = await check<{ first: Got; second: Got; server: number; throw: Kind; exit: Kind; timer: Kind; last: Got; lastServer: number }>('learn');
  // The first child loads it itself; the next ones find it loaded by the server.
  t.is(r.first.got?.loadedIn, r.first.pid);
  t.is(r.second.got?.loadedIn, r.server);
  for (const [kind, failing] of [['throw', 1], ['exit', 3], ['timer', 0]] as const) {
    const k = r[kind];
    t.is(k.failing, failing, kind);
    for (const c of [k.next, k.again]) {
      t.is(c.exitcode, 0, kind);
      t.is(c.got?.loadedIn, c.pid, kind);
    }
    t.not(k.after, k.before, kind);
    t.is(k.running, -15, kind);
  }
  t.is(r.last.exitcode, 0);
  t.is(r.last.got?.loadedIn, r.lastServer);
});

test('forked: a Pool and a Manager of a forkserver context', async (t) => {
  t.deepEqual(await check('pool'), { squares: [1, 4, 9, 16, 25], got: 1 });
});

test('forked: 120 children, 12 at a time, each with timers, a TCP socket, the thread pool, a contended Lock, a GC, a Queue put', async (t) => {
  const r = await check<{ n: number; codes: number[]; bad: unknown[]; randoms: number; bytes: number }>('busy', '120');
  t.deepEqual(r, { n: 120, codes: [0], bad: [], randoms: 120, bytes: 120 });
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

test('forked stress: many starts, some killed at once; no hang, no zombie, nothing left behind', async (t) => {
  const report = await check<{ codes: number[]; zombies: number[]; server: number; pids: number[] }>('stress');
  t.deepEqual(report.zombies, []);
  t.true(report.codes.every((c) => c === 0 || c === -9 || c === -15), report.codes.join(','));
  t.is(report.codes.filter((c) => c !== 0).length, report.codes.length / 2);
  // The parent has exited: its server ended with it, and no child is left.
  t.true(await eventually(() => [report.server, ...report.pids].every(gone), 10_000), 'no process left behind');
});
