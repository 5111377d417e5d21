// A manager's process: ignores SIGINT, dies with its parent even on SIGKILL; one connection
// carrying pipelined async calls and blocking calls at once without mixing their replies.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Manager } from '../index.js';
import { root } from './helpers.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('the manager process ignores SIGINT', async (t) => {
  await using m = await Manager();
  const d = await m.dict();
  process.kill(m._process!.pid!, 'SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  t.true(m._process!.isAlive());
  await d.setItem('still', 'serving');
  t.is(await d.getItem('still'), 'serving');
});

test('the manager process dies with its parent, also when the parent is SIGKILLed', async (t) => {
  const parent = spawn(process.execPath, ['--import', 'tsx', join(root, '__test__/fixtures/manager_orphan_main.ts')], { cwd: root });
  let stderr = '';
  parent.stderr.on('data', (d) => (stderr += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: parent.stdout }).once('line', resolve);
    parent.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
  const pid = Number(line);
  t.true(alive(pid));
  parent.kill('SIGKILL');
  let gone = false;
  for (let i = 0; i < 100 && !gone; i++) {
    await new Promise((r) => setTimeout(r, 100));
    gone = !alive(pid);
  }
  t.true(gone, `manager ${pid} outlived its parent`);
});

test('pipelined async calls and blocking calls share one connection without mixing replies', async (t) => {
  await using m = await Manager();
  const d = await m.dict<number, number>();
  const l = await m.list<number>();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i++) {
    pending.push(d.setItem(i, i * 2));
    if (i % 10 === 0) {
      // A blocking call in the middle reads the connection and sets the others' replies aside.
      l.appendSync(i);
      t.is(l.lenSync(), i / 10 + 1);
    }
    pending.push(l.len());
  }
  const results = await Promise.all(pending);
  t.is(results.length, 400);
  t.deepEqual(await Promise.all([...Array(200).keys()].map((i) => d.getItem(i))), [...Array(200).keys()].map((i) => i * 2));
  // Each len() reply is its own: between the counts of appends made before and after it.
  for (let i = 0; i < 200; i++) {
    const n = results[2 * i + 1] as number;
    t.true(n >= Math.floor(i / 10) + 1 && n <= 20, `len ${n} at ${i}`);
  }
});
