import test from 'ava';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pipe, Process } from '../index.js';
import { parentOfDaemon, startFromDaemon } from './fixtures/targets.js';
import { runTs } from './helpers.js';

function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

async function eventually(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

test('starting a process while the child imports its target module is the bootstrapping error', async (t) => {
  const r = await runTs('__test__/fixtures/unguarded_main.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'exitcode 1\n', 'the child fails instead of forking without end');
  t.regex(r.stderr, /bootstrapping phase/);
});

test('at normal exit daemonic children are terminated and the others joined', async (t) => {
  const marker = join(tmpdir(), `mp-exit-${process.pid}-${Date.now()}`);
  const r = await runTs('__test__/fixtures/exit_main.ts', [marker]);
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(marker), 'the non-daemonic child finished before the parent exited');
  rmSync(marker, { force: true });
  const daemonPid = Number(r.stdout.trim());
  t.true(await eventually(() => gone(daemonPid)), 'the daemonic child is gone');
});

test('a daemonic child dies when its parent is killed with SIGKILL', async (t) => {
  const [a, b] = Pipe();
  const p = new Process({ target: parentOfDaemon, args: [b] });
  p.start();
  const daemonPid: number = await a.recv();
  t.false(gone(daemonPid));
  p.kill();
  await p.join();
  t.true(await eventually(() => gone(daemonPid)));
});

test('a daemonic process may not create children', async (t) => {
  const [a, b] = Pipe();
  const p = new Process({ target: startFromDaemon, args: [b], daemon: true });
  p.start();
  t.is(await a.recv(), 'AssertionError: daemonic processes are not allowed to have children');
  await p.join();
});

test('CommonJS can require() the package', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { root } = await import('./helpers.js');
  const r = spawnSync(process.execPath, [join(root, '__test__/fixtures/require_cjs.cjs')], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { got: { from: 'cjs' }, cpu: true, methods: ['spawn'] });
});
