// Managers that talk to CPython (serializer 'pickle', Python's own manager protocol), against
// every python3.x on this machine (an absent version is reported by the first test):
// a Node client of a CPython SyncManager server, and CPython clients of a Node manager started
// with serializer 'pickle' (__test__/fixtures/py_manager_peer.py drives Python's side).
import { join } from 'node:path';
import test from 'ava';
import { AuthenticationError, KeyError, ManagerGoneError, PicklingError } from '../src/errors.js';
import { BaseManager, DictProxy, IteratorProxy, ListProxy, PoolProxy, SyncManager } from '../src/managers.js';
import { dumps, loads, Tuple } from '../src/pickle.js';
import { double, sharedDict } from './fixtures/manager_pickle_targets.js';
import { findPythons, Py, root, runTs } from './helpers.js';

const PEER = join(root, '__test__/fixtures/py_manager_peer.py');
const key = 'pickle-manager';
const { found, absent, defaultVersion } = findPythons();

/** A SyncManager with the peer's extra typeid: one dict shared by every client. */
class PeerManager extends SyncManager {
  declare get_shared: () => Promise<DictProxy>;
}
PeerManager.register('get_shared', { proxytype: DictProxy });

/** A Node SyncManager with the same typeid, served by Node (the callable is exported: it runs in the manager's process). */
class NodePeerManager extends SyncManager {
  declare get_shared: () => Promise<DictProxy>;
}
NodePeerManager.register('get_shared', { callable: sharedDict, proxytype: DictProxy });

/** A Node manager speaking Python's protocol, started in a child process; shut down after the test. */
async function nodeServer(t: { teardown(fn: () => Promise<void>): void }): Promise<NodePeerManager> {
  const m = new NodePeerManager({ address: ['127.0.0.1', 0], authkey: Buffer.from(key), serializer: 'pickle' });
  await m.start();
  t.teardown(() => m.shutdown());
  return m;
}

/** A CPython SyncManager server; its port. */
async function pythonServer(t: { teardown(fn: () => void): void }, exe: string): Promise<number> {
  return (await pythonServerProcess(t, exe)).port;
}

async function pythonServerProcess(t: { teardown(fn: () => void): void }, exe: string): Promise<{ port: number; server: Py }> {
  const server = new Py([PEER, 'serve', key], exe);
  t.teardown(() => server.kill());
  return { port: Number(await server.line()), server };
}

test(`python interpreters: default python3 is ${defaultVersion ?? 'absent'}; found ${found.map((p) => p.version).join(', ') || 'none'}; absent ${absent.join(', ') || 'none'}`, (t) => {
  if (absent.length) t.log(`python versions not on this machine (not tested): ${absent.join(', ')}`);
  t.truthy(defaultVersion, 'python3 is not on PATH');
  t.true(found.some((p) => p.minor >= 12), 'no python 3.12 or newer on this machine');
});

test('a Token or a proxy is read only from a manager connection: a plain loads refuses the global', (t) => {
  const token = Buffer.from('80049549000000000000008c186d756c746970726f63657373696e672e6d616e6167657273948c05546f6b656e9493942981948c0464696374948c093132372e302e302e31944d881386948c023766948794622e', 'hex');
  t.throws(() => loads(token), { name: 'UnpicklingError', message: /multiprocessing\.managers\.Token/ });
  t.deepEqual([...(loads(dumps(new Tuple('#RETURN', null))) as unknown[])], ['#RETURN', null]);
});

test("a Node manager started with serializer 'pickle' serves Node clients by Python's protocol too", async (t) => {
  const m = await nodeServer(t);
  const d = await m.dict<unknown, unknown>({ a: 1 });
  await d.setItem('b', [1, 2]);
  t.deepEqual((await d.items()).map((p) => [...p]), [['a', 1], ['b', [1, 2]]]);
  await t.throwsAsync(d.getItem('nope'), { instanceOf: KeyError });
  const keys: unknown[] = [];
  for await (const k of d) keys.push(k);
  t.deepEqual(keys, ['a', 'b']);
  const q = await m.Queue();
  const got = q.get();
  await q.put('x');
  t.is(await got, 'x');
  await t.throwsAsync(q.get({ timeout: 0.05 }), { name: 'Empty' });
  const l = await m.list<unknown>([1]);
  const shared = await m.get_shared();
  await shared.setItem('l', l);
  const back = await shared.getItem('l');
  t.true(back instanceof ListProxy);
  await back.append(2);
  t.deepEqual(await l._getvalue(), [1, 2]);
  const ns = await m.Namespace({ x: 1 });
  ns.y = 2;
  t.deepEqual([ns.x, ns.y], [1, 2]);
  t.true((await m.numberOfObjects()) >= 5);
});

test('example manager_python_interop.ts: a CPython client puts a dict in a queue a Node manager serves (17.2.2.7 with Python)', async (t) => {
  const r = await runTs('examples/manager_python_interop.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "{ greeting: 'hello from Python', n: 3 }\n");
});

for (const py of found) {
  test(`python${py.version}: a Node SyncManager uses a CPython manager (dict, list, Namespace, Value, Queue, errors, iteration)`, async (t) => {
    const port = await pythonServer(t, py.exe);
    const m = new SyncManager({ address: ['127.0.0.1', port], authkey: Buffer.from(key), serializer: 'pickle' });
    await m.connect();

    const d = await m.dict<unknown, unknown>({ a: 1 });
    await d.setItem('b', [1, 2]);
    await d.update(new Map<unknown, unknown>([[3, 'three']]));
    t.is(await d.len(), 3);
    t.is(await d.getItem('a'), 1);
    t.is(await d.get('zz', 5), 5);
    t.true(await d.contains(3));
    t.deepEqual(await d.keys(), ['a', 'b', 3]);
    t.deepEqual((await d.items()).map((p) => [...p]), [['a', 1], ['b', [1, 2]], [3, 'three']]);
    // Python's KeyError, by name and message.
    const err = await t.throwsAsync(d.getItem('nope'));
    t.true(err instanceof KeyError);
    t.is(err!.name, 'KeyError');
    t.is(err!.message, 'nope');
    // for await: Python's dict iterator, through an Iterator proxy.
    const keys: unknown[] = [];
    for await (const k of d) keys.push(k);
    t.deepEqual(keys, ['a', 'b', 3]);
    const it = await d._callmethod('__iter__');
    t.true(it instanceof IteratorProxy);
    t.deepEqual(await it.next(), { done: false, value: 'a' });
    // Blocking forms too.
    d.setItemSync('c', 'sync');
    t.is(d.getItemSync('c'), 'sync');
    await d.delItem('c');
    t.false(await d.contains('c'));

    const l = await m.list<unknown>([3, 1, 2]);
    await l.append(9);
    await l.sort({ reverse: true });
    t.deepEqual(await l._getvalue(), [9, 3, 2, 1]);
    t.is(await l.getItem(-1), 1);
    await l.iadd([0]);
    t.is(l.lenSync(), 5);
    await t.throwsAsync(l.getItem(10), { name: 'IndexError' });

    const ns = await m.Namespace({ x: 1 });
    ns.y = 'two';
    t.is(ns.x, 1);
    t.is(ns.y, 'two');
    t.is(String(ns), "Namespace(x=1, y='two')");
    t.throws(() => ns.missing, { name: 'AttributeError' });

    const v = await m.Value('i', 5);
    v.value = 7;
    t.is(v.value, 7);
    await v.set(8);
    t.is(await v.get(), 8);

    // A pending get does not hold up the put that satisfies it.
    const q = await m.Queue();
    const got = q.get();
    await q.put({ hello: 'world' });
    t.deepEqual(await got, { hello: 'world' });
    await q.putNowait(3);
    t.is(await q.qsize(), 1);
    t.is(await q.getNowait(), 3);
    await t.throwsAsync(q.getNowait(), { name: 'Empty' });
    await t.throwsAsync(q.get(true, 0.05), { name: 'Empty' });
    q.putSync('s');
    t.is(q.getSync(), 's');
  });

  test(`python${py.version}: nested proxies: a list proxy Node stores in a CPython dict is read back by a Python client and by Node`, async (t) => {
    const port = await pythonServer(t, py.exe);
    const m = new PeerManager({ address: ['127.0.0.1', port], authkey: Buffer.from(key), serializer: 'pickle' });
    await m.connect();
    const shared = await m.get_shared();
    const l = await m.list(['node']);
    await shared.setItem('l', l);
    const client = new Py([PEER, 'nested', String(port), key], py.exe);
    t.teardown(() => client.kill());
    const { code, out } = await client.finish();
    t.is(code, 0, client.stderr);
    t.is(out, "ListProxy ['node', 'py']");
    const back = await shared.getItem('l');
    t.true(back instanceof ListProxy);
    t.deepEqual(await back._getvalue(), ['node', 'py']);
    t.deepEqual(await l._getvalue(), ['node', 'py']);
  });

  test(`python${py.version}: a Node client that exits gives its references back to the CPython manager`, async (t) => {
    const port = await pythonServer(t, py.exe);
    const r = await runTs('__test__/fixtures/manager_pickle_client_main.ts', [String(port), key]);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, '3\n');
    const m = new SyncManager({ address: ['127.0.0.1', port], authkey: Buffer.from(key), serializer: 'pickle' });
    await m.connect();
    t.is(await m.numberOfObjects(), 0);
  });

  test(`python${py.version}: BaseManager with typeids registered without a callable; a wrong key and a dead server are clear errors`, async (t) => {
    class Remote extends BaseManager {
      declare dict: () => Promise<DictProxy>;
    }
    Remote.register('dict', { proxytype: DictProxy });
    const { port, server } = await pythonServerProcess(t, py.exe);
    const bad = new Remote(['127.0.0.1', port], Buffer.from('wrong'), 'pickle');
    await t.throwsAsync(bad.connect(), { instanceOf: AuthenticationError });
    const m = new Remote(['127.0.0.1', port], Buffer.from(key), 'pickle');
    await m.connect();
    const d = await m.dict();
    await d.setItem('k', 1);
    t.deepEqual(await d.copy(), { k: 1 });
    const before = await m.numberOfObjects();
    t.true(before >= 1);
    // The server process ends: calls reject, nothing hangs.
    server.kill();
    await server.exit;
    await t.throwsAsync(d.getItem('k'), { instanceOf: ManagerGoneError });
    await t.throwsAsync(new Remote(['127.0.0.1', port], Buffer.from(key), 'pickle').connect(), { instanceOf: ManagerGoneError });
  });

  test(`python${py.version}: a manager's Pool over serializer 'pickle' is made, closed and joined, but tasks do not cross (functions are not pickled)`, async (t) => {
    // A Node client of a CPython manager: the task is refused before anything is sent.
    const port = await pythonServer(t, py.exe);
    const m = new SyncManager({ address: ['127.0.0.1', port], authkey: Buffer.from(key), serializer: 'pickle' });
    await m.connect();
    const pool = await m.Pool(2);
    t.true(pool instanceof PoolProxy);
    await t.throwsAsync(pool.map(double, [1, 2]), { instanceOf: PicklingError, message: "cannot pickle 'function' object" });
    await t.throwsAsync(pool.applyAsync(double, [1]), { instanceOf: PicklingError });
    await pool.close();
    await pool.join();
    // A CPython client of a Node manager: its task (a builtin function, by name) is a global the
    // Node manager does not load; Python raises the RemoteError that carries that error.
    const node = await nodeServer(t);
    const nodePool = await node.Pool(1);
    await t.throwsAsync(nodePool.apply(double, [1]), { instanceOf: PicklingError });
    const client = new Py([PEER, 'pool', String((node.address as [string, number])[1]), key], py.exe);
    t.teardown(() => client.kill());
    const { code, out } = await client.finish();
    t.is(code, 0, client.stderr);
    const refused = "UnpicklingError: global 'builtins.abs' is not allowed: node-multiprocessing's pickle loads only the builtin types and exceptions it maps (it never imports or runs anything)";
    t.is(out, `map RemoteError ${refused}\napply_async RemoteError ${refused}\nclosed`);
    await nodePool.terminate();
  });

  test(`python${py.version}: a manager served on every interface (['', port]), Node's or CPython's: the Tokens a client (Node, CPython) gets name the address it reached the manager at`, async (t) => {
    const m = new NodePeerManager({ address: ['', 0], authkey: Buffer.from(key), serializer: 'pickle' });
    await m.start();
    t.teardown(() => m.shutdown());
    const [host, port] = m.address as [string, number];
    t.is(host, '0.0.0.0');
    // A Node client at 127.0.0.1 stores a list; other clients reach the manager at 127.0.0.2
    // (another address of this machine, as another machine would use its network address).
    const a = new NodePeerManager({ address: ['127.0.0.1', port], authkey: Buffer.from(key), serializer: 'pickle' });
    await a.connect();
    const l = await a.list<unknown>(['node']);
    const shared = await a.get_shared();
    await shared.setItem('l', l);
    const b = new NodePeerManager({ address: ['127.0.0.2', port], authkey: Buffer.from(key), serializer: 'pickle' });
    await b.connect();
    const lb = await (await b.get_shared()).getItem('l');
    t.true(lb instanceof ListProxy);
    t.deepEqual(lb._token.address, ['127.0.0.2', port]);
    await lb.append('b');
    const it = await (await b.dict({ x: 1 }))._callmethod('__iter__');
    t.deepEqual(it._token.address, ['127.0.0.2', port]);
    t.deepEqual(await it.next(), { done: false, value: 'x' });
    const client = new Py([PEER, 'wildcard', String(port), key, '127.0.0.2'], py.exe);
    t.teardown(() => client.kill());
    const { code, out } = await client.finish();
    t.is(code, 0, client.stderr);
    t.is(out, "iter 127.0.0.2 ['a'] nested 127.0.0.2 ['node', 'b', 'py']");
    t.deepEqual(await l._getvalue(), ['node', 'b', 'py']);
    // What the Python client stored (its Token says 127.0.0.2) reaches the first client as 127.0.0.1.
    const fromPy = await shared.getItem('py');
    t.deepEqual(fromPy._token.address, ['127.0.0.1', port]);
    t.deepEqual(await fromPy._getvalue(), ['from py']);

    // A CPython manager on every interface writes ('0.0.0.0', port) in its Tokens: a Node client
    // reaching it at 127.0.0.2 uses that address for them.
    const server = new Py([PEER, 'serve', key, ''], py.exe);
    t.teardown(() => server.kill());
    const pyPort = Number(await server.line());
    const c = new SyncManager({ address: ['127.0.0.2', pyPort], authkey: Buffer.from(key), serializer: 'pickle' });
    await c.connect();
    const pyIt = await (await c.dict({ k: 1 }))._callmethod('__iter__');
    t.deepEqual(pyIt._token.address, ['127.0.0.2', pyPort]);
    t.deepEqual(await pyIt.next(), { done: false, value: 'k' });
  });

  test(`python${py.version}: a CPython client uses a Node manager started with serializer 'pickle' (objects, errors, nested proxies)`, async (t) => {
    const m = await nodeServer(t);
    const port = (m.address as [string, number])[1];
    const client = new Py([PEER, 'client', String(port), key], py.exe);
    t.teardown(() => client.kill());
    const { code, out } = await client.finish();
    t.is(code, 0, client.stderr);
    t.is(out, 'done');
    // What Python stored is there for Node: the list proxy it put in the shared dict, with its change.
    const shared = await m.get_shared();
    const l = await shared.getItem('l');
    t.true(l instanceof ListProxy);
    t.deepEqual(await l._getvalue(), ['x', 2, 3, 9, 0, 'py']);
  });
}
