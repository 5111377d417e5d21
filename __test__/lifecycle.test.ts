import test from 'ava';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, gone, runTs } from './helpers.js';

test('starting a process while the child imports its target module is the bootstrapping error', async (t) => {
  const r = await runTs('__test__/fixtures/unguarded_main.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'exitcode 1\n', 'the child fails instead of forking without end');
  t.regex(r.stderr, /bootstrapping phase/);
});

test('a ThreadPool made while a pool thread imports the module of its task is the bootstrapping error', async (t) => {
  const r = await runTs('__test__/fixtures/unguarded_threadpool_main.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'map failed: WorkerLostError\njoined\n', 'the map fails instead of starting pools in threads without end');
  t.regex(r.stderr, /bootstrapping phase/);
  const imports = r.stderr.split('\n').filter((l) => l === 'imported in a thread').length;
  t.true(imports >= 1 && imports <= 4, `the module was imported in ${imports} threads`);
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

test('CommonJS can require() the package', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { root } = await import('./helpers.js');
  const r = spawnSync(process.execPath, [join(root, '__test__/fixtures/require_cjs.cjs')], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { got: { from: 'cjs' }, cpu: true, methods: ['spawn', 'forkserver'] });
});
