// A manager's process: ignores SIGINT, dies with its parent even on SIGKILL; one connection
// carrying pipelined async calls and blocking calls at once without mixing their replies.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Manager, Queue } from '../index.js';
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

test('a local client\'s channel: values of every simple type come back exactly as sent', async (t) => {
  await using m = await Manager();
  const l = await m.list<unknown>();
  const holey = [1, , 3]; // eslint-disable-line no-sparse-arrays
  const named = Object.assign([1, 2], { tag: 'x' });
  const values: unknown[] = [
    0, -0, 1, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, 0.5, -1e-300, NaN, Infinity, -Infinity,
    '', 'a', 'héllo wörld ✓ 𝄞', 'x'.repeat(100), 'y'.repeat(5000), true, false, null, undefined,
    [], [1, 'two', [3, [4, null]], undefined], holey, named,
  ];
  // Async (one batch) and blocking forms, each value then its read back.
  await Promise.all(values.map((v) => l.append(v)));
  for (const v of values) l.appendSync(v);
  const back = await Promise.all(values.map((_, i) => l.getItem(i)));
  const backSync = values.map((_, i) => l.getItemSync(values.length + i));
  for (const got of [back, backSync]) {
    for (let i = 0; i < values.length; i++) {
      if (typeof values[i] === 'number') t.true(Object.is(got[i], values[i]), `value ${i}: ${String(got[i])}`);
      else t.deepEqual(got[i], values[i], `value ${i}`);
    }
  }
  // The array with a hole and the one with a named property kept them.
  t.false(1 in (back[values.indexOf(holey)] as unknown[]));
  t.is((back[values.indexOf(named)] as { tag?: string }).tag, 'x');
});

test('a local client\'s channel: batches too big for its ring and values carrying descriptors keep their order', async (t) => {
  await using m = await Manager();
  const d = await m.dict<string, unknown>();
  const q = new Queue();
  const big = Buffer.alloc(300_000, 7);
  const calls: Promise<unknown>[] = [];
  // Thousands of requests in one tick (more than the ring holds), a big value and a Queue
  // (its descriptors go beside the message) among them; then the same from blocking calls.
  for (let i = 0; i < 5000; i++) {
    calls.push(d.setItem(`k${i}`, 'v'.repeat(i % 97)));
    if (i === 1000) calls.push(d.setItem('big', big));
    if (i === 2000) calls.push(d.setItem('q', q));
    if (i === 3000) calls.push(d.setItem('k0', 'changed'));
  }
  await Promise.all(calls);
  const got = await Promise.all([...Array(5000).keys()].map((i) => d.getItem(`k${i}`)));
  t.deepEqual(got, [...Array(5000).keys()].map((i) => (i === 0 ? 'changed' : 'v'.repeat(i % 97))));
  t.true(Buffer.from((await d.getItem('big')) as Uint8Array).equals(big));
  const q2 = (await d.getItem('q')) as Queue;
  q.put(42);
  t.is(await q2.get(), 42);
  d.setItemSync('big2', big);
  t.is(d.getItemSync('k4999'), 'v'.repeat(4999 % 97));
  t.true(Buffer.from(d.getItemSync('big2') as Uint8Array).equals(big));
  const q3 = d.getItemSync('q') as Queue;
  q3.put(43);
  t.is(await q.get(), 43);
  q.close();
});
