// Managers and proxies (17.2.2.7, 17.2.2.8): the SyncManager data typeids, register, errors,
// a dead manager. Crossing processes, refcounting and remote managers: managers-*.test.ts.
import test from 'ava';
import { inspect } from 'node:util';
import {
  EOFError, IndexError, KeyError, Manager, ManagerGoneError, Process, RemoteError, ValueError, getContext,
} from '../index.js';
import { BaseManager, BaseProxy, DictProxy, ListProxy, SyncManager } from '../src/managers.js';
import { runTs } from './helpers.js';
import { countTo, useAll } from './fixtures/manager_targets.js';

test('17.2.1.4 server process example', async (t) => {
  const r = await runTs('examples/manager_server_process.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "{1: '1', '2': 2, 0.25: None}\n[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]\n");
});

test('dict: Python semantics on a Map', async (t) => {
  await using m = await Manager();
  const d = await m.dict<unknown, unknown>({ a: 1 });
  await d.setItem(1, 'int');
  await d.setItem('1', 'str');
  t.is(await d.getItem(1), 'int');
  t.is(await d.getItem('1'), 'str');
  t.is(await d.len(), 3);
  t.true(await d.contains('a'));
  t.false(await d.contains(2));
  t.is(await d.get(2), null);
  t.is(await d.get(2, 'dflt'), 'dflt');
  t.deepEqual(await d.keys(), ['a', 1, '1']);
  t.deepEqual(await d.copy(), new Map<unknown, unknown>([['a', 1], [1, 'int'], ['1', 'str']]));
  t.deepEqual(await d._getvalue(), await d.copy());
  await d.update(new Map([[true, 'bool'], [null, 'none']]));
  await d.update([[2n, 'big']]);
  t.is(await d.getItem(2n), 'big');
  t.is(await d.pop('zz', 'missing'), 'missing');
  t.deepEqual(await d.popitem(), [2n, 'big']);
  t.is(await d.setdefault('s', 5), 5);
  t.is(await d.setdefault('s', 6), 5);
  const keys: unknown[] = [];
  for await (const k of d) keys.push(k);
  t.deepEqual(keys, await d.keys());
  t.is(d.getItemSync('s'), 5);
  t.is(d.lenSync(), keys.length);
  // A missing key: Python's KeyError, with the server's error (and stack) as cause.
  const e = await t.throwsAsync(d.getItem('nope'), { instanceOf: KeyError, message: "'nope'" });
  t.truthy((e!.cause as Error).stack);
  t.throws(() => d.getItemSync('nope'), { instanceOf: KeyError });
  // An unhashable key fails at the call.
  await t.throwsAsync(d.setItem([1] as never, 1), { instanceOf: TypeError, message: /unhashable type: 'list'/ });
  await t.throwsAsync(d.delItem('nope'), { instanceOf: KeyError });
  t.regex(inspect(d), /^<DictProxy object, typeid 'dict' at 0x[0-9a-f]+>$/);
  await d.clear();
  await d.setItem('x', [1, 'y']);
  t.is(String(d), "{'x': [1, 'y']}");
});

test('list: Python semantics on an Array', async (t) => {
  await using m = await Manager();
  const l = await m.list<number>([3, 1, 2]);
  await l.append(4);
  await l.extend([5, 6]);
  await l.insert(0, 0);
  t.deepEqual(await l._getvalue(), [0, 3, 1, 2, 4, 5, 6]);
  t.is(await l.getItem(-1), 6);
  await l.setItem(-1, 60);
  await l.delItem(0);
  t.is(await l.pop(), 60);
  t.is(await l.pop(0), 3);
  await l.remove(2);
  t.deepEqual(await l._getvalue(), [1, 4, 5]);
  t.is(await l.index(5), 2);
  t.is(await l.count(4), 1);
  t.true(await l.contains(4));
  await l.sort({ reverse: true });
  t.deepEqual(await l._getvalue(), [5, 4, 1]);
  await l.reverse();
  t.deepEqual(await l.add([9]), [1, 4, 5, 9]);
  t.deepEqual(await l.mul(2), [1, 4, 5, 1, 4, 5]);
  t.deepEqual(await l.reversed(), [5, 4, 1]);
  t.is(await l.iadd([7]), l);
  t.is(l.imulSync(2), l);
  t.is(await l.len(), 8);
  const seen: number[] = [];
  for await (const x of l) seen.push(x);
  t.deepEqual(seen, [1, 4, 5, 7, 1, 4, 5, 7]);
  await t.throwsAsync(l.getItem(99), { instanceOf: IndexError, message: 'list index out of range' });
  await t.throwsAsync(l.index(42), { instanceOf: ValueError, message: '42 is not in list' });
  t.regex(inspect(l), /^<ListProxy object, typeid 'list' at 0x[0-9a-f]+>$/);
});

test('Namespace, Value and Array', async (t) => {
  await using m = await Manager();
  const ns = await m.Namespace();
  ns.x = 1;
  ns.y = 'two';
  ns._local = 'here';
  t.is(ns.x, 1);
  t.is(ns.y, 'two');
  t.is(ns._local, 'here');
  t.is(String(ns), "Namespace(x=1, y='two')");
  delete ns.y;
  const e = t.throws(() => ns.y);
  t.is(e!.name, 'AttributeError');
  const v = await m.Value('i', 5);
  t.is(v.value, 5);
  v.value = 6;
  t.is(await v.get(), 6);
  await v.set(7);
  t.is(v.getSync(), 7);
  const a = await m.Array('i', [1, 2, 3]);
  t.is(await a.len(), 3);
  await a.setItem(0, 10);
  t.is(await a.getItem(0), 10);
  t.deepEqual(await a._getvalue(), [10, 2, 3]);
  await t.throwsAsync(a.setItem(0, 'x' as never), { instanceOf: TypeError });
  await t.throwsAsync(m.Array('z', [1]), { instanceOf: ValueError });
});

test('every data typeid used from a child, and blocking calls from several children at once', async (t) => {
  await using m = await Manager();
  const d = await m.dict();
  const l = await m.list();
  const ns = await m.Namespace();
  ns.seen = 0;
  const v = await m.Value('i', 10);
  const a = await m.Array('i', [1, 2, 3]);
  const p = new Process({ target: useAll, args: [d, l, ns, v, a] });
  p.start();
  await p.join();
  t.is(p.exitcode, 0);
  t.is(await d.getItem('child'), p.pid);
  t.is(await d.getItem(7), 'seven');
  t.deepEqual(await l._getvalue(), ['from child', 1, 2]);
  t.is(ns.seen, 1);
  t.is(v.value, 21);
  t.deepEqual(await a._getvalue(), [101, 3, 3]);
  const ps = ['a', 'b', 'c'].map((k) => new Process({ target: countTo, args: [d, k, 50] }));
  for (const q of ps) q.start();
  for (const q of ps) await q.join();
  t.is(await d.len(), 2 + 150);
});

test('ctx.Manager() and the serializer argument', async (t) => {
  const m = await getContext('spawn').Manager();
  t.true(m instanceof SyncManager);
  const d = await m.dict();
  await d.setItem('k', 1);
  t.is(await d.getItem('k'), 1);
  await m.shutdown();
  await m.shutdown();
  t.throws(() => new SyncManager({ serializer: 'xmlrpclib' as never }), { instanceOf: ValueError });
});

test('register is per subclass; a class or a function; exposed; createMethod false', async (t) => {
  class MathsManager extends BaseManager {}
  class Other extends BaseManager {}
  MathsManager.register('Maths', (await import('./fixtures/manager_types.js')).MathsClass);
  MathsManager.register('limited', (await import('./fixtures/manager_types.js')).MathsClass, null, ['add']);
  MathsManager.register('counter', (await import('./fixtures/manager_types.js')).makeCounter);
  MathsManager.register('noMethod', (await import('./fixtures/manager_types.js')).makeCounter, { createMethod: false });
  t.false('Maths' in Other.prototype);
  t.false('Maths' in BaseManager.prototype);
  t.false('dict' in BaseManager.prototype);
  t.false('noMethod' in MathsManager.prototype);
  const m = new MathsManager();
  await m.start();
  try {
    const maths = await (m as any).Maths() as BaseProxy & Record<string, (...a: any[]) => any>;
    t.is(await maths.add(4, 3), 7);
    t.is(maths.mulSync(7, 8), 56);
    t.regex(inspect(maths), /^<AutoProxy\[Maths\] object, typeid 'Maths' at 0x/);
    const limited = await (m as any).limited() as Record<string, (...a: any[]) => any>;
    t.is(typeof limited.mul, 'undefined');
    await t.throwsAsync((limited as unknown as BaseProxy)._callmethod('mul', [1, 2]), { instanceOf: RemoteError, message: /not in exposed/ });
    const c = await (m as any).counter() as Record<string, (...a: any[]) => any>;
    t.is(await c.next(), 1);
    t.is(await c.next(), 2);
    const viaCreate = await m._create('noMethod');
    t.is(await (viaCreate as any).next(), 1);
  } finally {
    await m.shutdown();
  }
});

test('a dead manager: pending and later calls reject at once with ManagerGoneError', async (t) => {
  const m = await Manager();
  const d = await m.dict();
  const l = await m.list([1]);
  await d.setItem('a', 1);
  m._process!.kill();
  await m._process!.join();
  const started = Date.now();
  const err = await t.throwsAsync(d.getItem('a'), { instanceOf: ManagerGoneError });
  t.true(err instanceof EOFError);
  await t.throwsAsync(l.append(2), { instanceOf: ManagerGoneError });
  t.throws(() => l.lenSync(), { instanceOf: ManagerGoneError });
  t.true(Date.now() - started < 5000);
  await m.shutdown();
});

test('proxy types from the managers module', (t) => {
  t.true(DictProxy.prototype instanceof BaseProxy);
  t.true(ListProxy.prototype instanceof BaseProxy);
});
