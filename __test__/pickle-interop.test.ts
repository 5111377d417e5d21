// Objects to and from CPython (serializer: 'pickle'), against every python3.x on this
// machine: a Python Client of a Node Listener and a Node Client of a Python Listener, both
// authenticated (3.6 to 3.11 answer the legacy HMAC-MD5 challenge, 3.12+ the {sha256} one).
// Python drives (__test__/fixtures/py_pickle_peer.py): its corpus pickled with every
// protocol it has goes Python -> Node -> Python and must come back unchanged (with the
// documented int/float rule); Node checks the JavaScript shapes of a probe; Node's corpus
// goes Node -> Python and must equal the Python values written beside it.
import { deepStrictEqual } from 'node:assert';
import { join } from 'node:path';
import test from 'ava';
import { Client, Listener, type Connection } from '../src/connection.js';
import { EOFError, OSError, ValueError } from '../src/errors.js';
import { PyFloat, Tuple } from '../src/pickle.js';
import { answerPython } from './fixtures/pickle_targets.js';
import { findPythons, Py, root, startChild } from './helpers.js';

const PEER = join(root, '__test__/fixtures/py_pickle_peer.py');
const key = 'sesame';
const { found, absent, defaultVersion } = findPythons();

/** Node's values and the Python expression each must arrive as. */
function nodeCorpus(): Array<[unknown, string]> {
  const big: Record<string, number> = {};
  for (let i = 0; i < 1500; i++) big[`k${i}`] = i + 0.25;
  const shared = [1];
  return [
    [{ prompt: 'hi', n: 3 }, "{'prompt': 'hi', 'n': 3}"],
    [null, 'None'], [undefined, 'None'], [true, 'True'], [false, 'False'],
    [2, '2'], [-7, '-7'], [70000, '70000'], [-(2 ** 31), '-2**31'], [2 ** 40, '2**40'],
    [Number.MAX_SAFE_INTEGER, '2**53-1'], [-Number.MAX_SAFE_INTEGER, '-(2**53-1)'],
    [2 ** 53, '9007199254740992.0'], [new PyFloat(2), '2.0'], [0.5, '0.5'], [-0, '-0.0'],
    [NaN, "float('nan')"], [Infinity, "float('inf')"], [1e300, '1e300'],
    [2n, '2'], [-(2n ** 70n), '-2**70'], [2n ** 64n, '2**64'], [(1n << 2100n) + 1n, '2**2100+1'],
    ['', "''"], ['h\u00e9llo \u{1f600}', "'h\\xe9llo \\U0001f600'"], ['\ud800', "'\\ud800'"], ['x'.repeat(70000), "'x'*70000"],
    [Buffer.from([0, 255]), "b'\\x00\\xff'"], [new Uint8Array([1, 2]), "b'\\x01\\x02'"], [Buffer.alloc(70000, 0x41), "b'A'*70000"],
    [new Uint8Array([9]).buffer, "b'\\x09'"],
    [[1, 'a', [true]], "[1, 'a', [True]]"], [new Tuple(1, 2), '(1, 2)'], [new Tuple(), '()'],
    [new Tuple<unknown>(new Tuple(1), 2, 3, 4, 5), '((1,), 2, 3, 4, 5)'],
    [new Map<unknown, unknown>([[1, 'a'], ['b', 2]]), "{1: 'a', 'b': 2}"],
    [new Map<unknown, unknown>([[new Tuple(1, 2), 'k'], [null, 0], [2.5, 'f'], [Buffer.from('b'), 'bytes']]), "{(1, 2): 'k', None: 0, 2.5: 'f', b'b': 'bytes'}"],
    [new Set<unknown>([1, 'x', new Tuple(1)]), "{1, 'x', (1,)}"], [new Set(), 'set()'],
    [Object.assign(Object.create(null), { a: 1 }), "{'a': 1}"], [{ a: undefined }, "{'a': None}"],
    [Object.defineProperty({}, '__proto__', { value: 1, enumerable: true }), "{'__proto__': 1}"],
    [new ValueError('bad', 2), "ValueError('bad', 2)"], [new OSError('os'), "OSError('os')"], [new Error('plain'), "Exception('plain')"],
    [new TypeError('t'), "TypeError('t')"], [new RangeError('r'), "Exception('RangeError: r')"],
    [big, "{'k%d' % i: i + 0.25 for i in range(1500)}"], [Array.from({ length: 2500 }, (_, i) => i), 'list(range(2500))'],
    [[shared, shared], '[[1], [1]]'],
  ];
}

/** What Node checks about the shapes Python's values take here; '' when all is well. */
function checkProbe(p: Record<string, any>): string {
  try {
    deepStrictEqual(Object.getPrototypeOf(p), Object.prototype);
    deepStrictEqual([p.kerr instanceof Error, p.kerr.name, p.kerr.args], [true, 'KeyError', ['k']]);
    deepStrictEqual([p.oserr instanceof OSError, p.oserr.name, p.oserr.errno, p.oserr.args], [true, 'FileNotFoundError', 2, [2, 'nf']]);
    deepStrictEqual([p.tuple instanceof Tuple, [...p.tuple]], [true, [1, 2]]);
    deepStrictEqual([p.big, p.safe, p.f, p.fi, p.none], [2n ** 64n, Number.MAX_SAFE_INTEGER, 2.5, 2, null]);
    deepStrictEqual([p.set, p.fs], [new Set([1]), new Set([2])]);
    deepStrictEqual([Buffer.isBuffer(p.ba), p.ba.toString(), Buffer.isBuffer(p.b), p.b.toString()], [true, 'x', true, 'y']);
    deepStrictEqual([p.nonstr instanceof Map, p.nonstr.get(1)], [true, 'a']);
    deepStrictEqual([Array.isArray(p.list), p.list instanceof Tuple, p.list], [true, false, [1, 'a']]);
    deepStrictEqual(Object.is(p.neg0, -0), true);
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

/** Node's side of the conversation Python drives; resolves to Python's list of failures. */
async function answer(c: Connection): Promise<string[]> {
  for (;;) {
    const m = await c.recv();
    if (m === 'node-corpus') {
      for (const [value, expr] of nodeCorpus()) c.send(new Tuple(value, expr));
      c.send(null);
    } else if (m instanceof Tuple && m[0] === 'probe') {
      c.send(checkProbe(m[1]) || 'probe ok');
    } else if (m instanceof Tuple && m[0] === 'done') {
      return m[1] as string[];
    } else {
      c.send(m);
    }
  }
}

test(`python interpreters: default python3 is ${defaultVersion ?? 'absent'}; found ${found.map((p) => p.version).join(', ') || 'none'}; absent ${absent.join(', ') || 'none'}`, (t) => {
  if (absent.length) t.log(`python versions not on this machine (not tested): ${absent.join(', ')}`);
  t.truthy(defaultVersion, 'python3 is not on PATH');
  t.true(found.some((p) => p.version === defaultVersion), `the default python3 (${defaultVersion}) was not found as python${defaultVersion}`);
  t.true(found.some((p) => p.minor >= 12), 'no python 3.12 or newer on this machine');
});

for (const py of found) {
  test(`python${py.version}: a Python Client and a Node Listener (serializer 'pickle') exchange objects both ways`, async (t) => {
    using l = new Listener(['127.0.0.1', 0], { authkey: Buffer.from(key), serializer: 'pickle' });
    const peer = new Py([PEER, 'connect', String((l.address as [string, number])[1]), key], py.exe);
    t.teardown(() => peer.kill());
    using c = await l.accept();
    const failures = await answer(c);
    const { code, out } = await peer.finish();
    t.deepEqual(failures, []);
    t.is(code, 0, peer.stderr);
    t.is(out, `version ${py.version}`);
    await t.throwsAsync(c.recv(), { instanceOf: EOFError });
  });

  test(`python${py.version}: a Node Client (serializer 'pickle') and a Python Listener exchange objects both ways`, async (t) => {
    const peer = new Py([PEER, 'listen', key], py.exe);
    t.teardown(() => peer.kill());
    const port = Number(await peer.line());
    using c = await Client(['127.0.0.1', port], { authkey: Buffer.from(key), serializer: 'pickle' });
    const failures = await answer(c);
    const { code, out } = await peer.finish();
    t.deepEqual(failures, []);
    t.is(code, 0, peer.stderr);
    t.is(out, `version ${py.version}`);
  });
}

test("a pickle connection handed to a child process still speaks pickle with the CPython peer", async (t) => {
  using l = new Listener(['127.0.0.1', 0], { authkey: Buffer.from(key), serializer: 'pickle' });
  const code = `
import sys
from multiprocessing.connection import Client
with Client(('127.0.0.1', int(sys.argv[1])), authkey=b'${key}') as c:
    c.send({'q': 'from python', 'n': (1, 2)})
    r = c.recv()
    print(r['echo'], r['answeredBy'], r['tupleArrived'], r['pid'] != ${process.pid})
`;
  const peer = new Py(['-c', code, String((l.address as [string, number])[1])]);
  t.teardown(() => peer.kill());
  const c = await l.accept();
  const child = startChild(t, answerPython, [c]);
  c.close();
  await child.join(60);
  t.is(child.exitcode, 0);
  const { code: status, out } = await peer.finish();
  t.is(status, 0, peer.stderr);
  t.is(out, "{'q': 'from python', 'n': (1, 2)} child True True");
});

test("serializer: 'xmlrpclib' and unknown names are ValueErrors at the call; 'v8' is the default", async (t) => {
  t.throws(() => new Listener(['127.0.0.1', 0], { serializer: 'xmlrpclib' as 'v8' }), { instanceOf: ValueError, message: /xmlrpclib/ });
  t.throws(() => new Listener(['127.0.0.1', 0], { serializer: 'json' as 'v8' }), { instanceOf: ValueError, message: /json/ });
  await t.throwsAsync(Client(['127.0.0.1', 1], { serializer: 'xmlrpclib' as 'v8' }), { instanceOf: ValueError, message: /xmlrpclib/ });
  // A v8 listener and client still exchange JavaScript values that pickle has no form for.
  using l = new Listener(['127.0.0.1', 0], { serializer: 'v8' });
  const [accepted, client] = await Promise.all([l.accept(), Client(l.address)]);
  using a = accepted;
  using b = client;
  const when = new Date(0);
  b.send(when);
  t.deepEqual(await a.recv(), when);
});
