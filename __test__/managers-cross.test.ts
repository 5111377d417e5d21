// Proxies crossing processes (Queue, Pipe, Pool, nested in managed objects), reference
// counting, and CPython's open manager bugs, each a test: gh-78740, gh-99595, gh-119937,
// gh-103136, gh-78279; a killed client's references are released.
import test from 'ava';
import { Manager, Pipe, Pool, Process, Queue } from '../index.js';
import type { BaseProxy, DictProxy, ListProxy } from '../src/managers.js';
import { runTs } from './helpers.js';
import {
  connectAndHold, CustomError, FactoryManager, makeThroughFactory, poolTask, sendAndExit, throughPipe, throughQueue,
} from './fixtures/manager_cross.js';

test('a proxy through a Queue, a Pipe and a Pool task, and back', async (t) => {
  await using m = await Manager();
  const l = await m.list<string>();
  const inq = new Queue();
  const outq = new Queue();
  const p = new Process({ target: throughQueue, args: [inq, outq] });
  p.start();
  await inq.put(l);
  const back = (await outq.get()) as ListProxy<string>;
  await p.join();
  t.is(back._token.id, l._token.id);
  t.is(back.constructor.name, 'ListProxy');
  const [a, b] = Pipe();
  const q = new Process({ target: throughPipe, args: [b] });
  q.start();
  a.send(l);
  const back2 = (await a.recv()) as ListProxy<string>;
  await q.join();
  await back2.append('parent');
  const pool = new Pool(2);
  try {
    const results = (await pool.starmap(poolTask, [[l, 'task 1'], [l, 'task 2']])) as ListProxy<string>[];
    t.is(results.length, 2);
    for (const r of results) t.is(r._token.id, l._token.id);
  } finally {
    pool.terminate();
  }
  const items = await l._getvalue();
  t.is(items[0], `queue child ${p.pid}`);
  t.deepEqual(items.slice(1, 3), ['pipe child', 'parent']);
  t.deepEqual(items.slice(3).sort(), ['task 1', 'task 2']);
});

test('nested proxies: seen through the outer object, released when it drops them (gh-103136)', async (t) => {
  const r = await runTs('__test__/fixtures/manager_nested_main.ts', [], undefined, ['--expose-gc']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '[1,2]\n[1,2,3]\ntrue\n2\n[1,2,3]\n1\n');
});

test('a proxy passed to a child keeps its manager\'s authkey (gh-78740) and can call methods returning proxies (gh-99595)', async (t) => {
  // A key that is not the processes' authkey: CPython's child would use its own and fail.
  const m = new FactoryManager({ authkey: Buffer.from('not the process key') });
  await m.start();
  try {
    const factory = (await (m as any).Factory()) as BaseProxy;
    const out = new Queue();
    const p = new Process({ target: makeThroughFactory, args: [factory, out] });
    p.start();
    t.deepEqual(await out.get(), ['DictProxy', 'in child', 'dict']);
    const d = (await out.get()) as DictProxy;
    await p.join();
    t.is(p.exitcode, 0);
    t.is(await d.getItem('pid'), p.pid);
  } finally {
    await m.shutdown();
  }
});

test('a proxy in transit keeps its object although the sender exits at once (gh-119937)', async (t) => {
  await using m = await Manager();
  const d = await m.dict();
  await d.setItem('inner', await m.list(['kept']));
  const q = new Queue();
  const p = new Process({ target: sendAndExit, args: [d, q] });
  p.start();
  await p.join();
  t.is(p.exitcode, 0);
  // Only the message on the queue refers to the list now.
  await d.delItem('inner');
  await m.numberOfObjects();
  const inner = (await q.get()) as ListProxy<string>;
  await inner.append('still there');
  t.deepEqual(await inner._getvalue(), ['kept', 'still there']);
});

test('remote errors keep their class, message and the remote stack (gh-78279)', async (t) => {
  const m = new FactoryManager();
  await m.start();
  try {
    const factory = (await (m as any).Factory()) as BaseProxy;
    const e = await t.throwsAsync(factory._callmethod('explode', ['boom']));
    t.is(e!.name, 'CustomError');
    t.is(e!.message, 'boom');
    const remote = e!.cause as Error;
    t.is(remote.name, 'CustomError');
    t.regex(remote.stack!, /explode/);
    t.not(CustomError, undefined);
  } finally {
    await m.shutdown();
  }
});

test('a killed client\'s references are released by the server', async (t) => {
  await using m = await Manager();
  const keep = await m.dict();
  const before = await m.numberOfObjects();
  const q = new Queue();
  const p = new Process({ target: connectAndHold, args: [m.address, m._authkey, q] });
  p.start();
  t.is(await q.get(), 5);
  t.is(await m.numberOfObjects(), before + 5);
  p.kill();
  await p.join();
  let n = await m.numberOfObjects();
  for (let i = 0; i < 50 && n !== before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    n = await m.numberOfObjects();
  }
  t.is(n, before);
  t.is(await keep.len(), 0);
});
