import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Pipe, ValueError } from '../index.js';
import { _arenaBufferCount } from '../src/heap.js';
import {
  ARRAY, Array as SharedArray, CharArray, RawArray, RawValue, SharedArray as SharedArray2, Structure, Synchronized,
  SynchronizedArray, SynchronizedString, Value, WCharArray, c_bool, c_char, c_double, c_int, c_long, c_short, c_ubyte,
  c_ulonglong, c_wchar, copy, synchronized,
} from '../src/sharedctypes.js';
import { layoutOf } from '../src/ctypes.js';
import { Event, Lock, RLock } from '../src/synchronize.js';
import { Queue } from '../src/queues.js';
import { spawnSync } from 'node:child_process';
import { Arrays, Point, fillShared, keepShared, modify, negate, writeArrays } from './fixtures/sync_targets.js';
import { startChild } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

test('Value: typecodes and ctypes types, synchronized by a new RLock by default', (t) => {
  const d = Value('d', 0.5);
  t.true(d instanceof Synchronized);
  t.is(d.value, 0.5);
  t.true(d.getLock() instanceof RLock);
  t.is(String(d), '<Synchronized wrapper for c_double(0.5)>');
  const i = Value(c_int, 7);
  i.value += 1;
  t.is(i.value, 8);
  t.throws(() => (i.value = 1.5), { instanceOf: TypeError });
  const cases: [string, unknown, unknown][] = [
    ['b', -5, -5], ['B', 250, 250], ['h', -300, -300], ['H', 65000, 65000], ['i', -7, -7],
    ['I', 4e9, 4e9], ['l', -(2n ** 62n), -(2n ** 62n)], ['L', 2n ** 63n, 2n ** 63n],
    ['q', 5n, 5n], ['Q', 2n ** 64n - 1n, 2n ** 64n - 1n], ['f', 0.5, 0.5], ['d', 1 / 3, 1 / 3],
  ];
  for (const [code, v, want] of cases) t.deepEqual(Value(code, v).value, want, code);
  t.is(Value('q').value, 0n, '64-bit codes hold bigint');
  t.is(Value('q', 3).value, 3n);
  t.deepEqual(Value('c', Buffer.from('a')).value, Buffer.from('a'));
  t.is(Value(c_bool, true).value, true);
  t.is(String(RawValue('i', 3)), 'c_int(3)');
  t.is(String(RawValue(c_double)), 'c_double(0.0)');
  t.throws(() => Value('x'), { instanceOf: TypeError });
  // lock: false gives the raw object; a given lock is used.
  const raw = Value('i', 1, { lock: false });
  t.false(raw instanceof Synchronized);
  t.is(raw.value, 1);
  const l = new Lock();
  const withLock = Value('i', 1, { lock: l });
  t.is(withLock.getLock(), l);
  t.is(withLock.getObj().value, 1);
});

test('Array: synchronized wrappers with length, get, set, index access, iteration, toArray', (t) => {
  t.is(SharedArray, SharedArray2);
  const a = SharedArray('i', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.true(a instanceof SynchronizedArray);
  t.is(a.length, 10);
  for (let i = 0; i < a.length; i++) a[i] = -a[i];
  t.deepEqual(a.toArray(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
  a.set(1, 42);
  t.is(a.get(1), 42);
  t.is(a[1], 42);
  t.is(a.get(-1), -9);
  t.deepEqual([...a].slice(0, 3), [0, 42, -2]);
  t.throws(() => a.get(10), { instanceOf: RangeError });
  t.throws(() => a.set(0, 'x' as any), { instanceOf: TypeError });
  t.is(String(a), '<SynchronizedArray wrapper for <c_int_Array_10>>');
  const raw = a.getObj();
  t.true(raw instanceof Int32Array);
  t.is(raw[1], 42);
  const z = SharedArray(c_short, 4);
  t.deepEqual(z.toArray(), [0, 0, 0, 0]);
  t.deepEqual(SharedArray('q', [1, 2n]).toArray(), [1n, 2n]);
  t.true(SharedArray('d', 3, { lock: false }) instanceof Float64Array);
});

test('RawArray of a numeric code is a typed array over shared memory', (t) => {
  const kinds: [string, Function][] = [
    ['b', Int8Array], ['B', Uint8Array], ['h', Int16Array], ['H', Uint16Array], ['i', Int32Array], ['I', Uint32Array],
    ['l', BigInt64Array], ['L', BigUint64Array], ['q', BigInt64Array], ['Q', BigUint64Array], ['f', Float32Array], ['d', Float64Array],
  ];
  for (const [code, cls] of kinds) {
    const a = RawArray(code, 5);
    t.true(a instanceof cls, code);
    t.is(a.length, 5);
  }
  const d = RawArray('d', [1.5, 2.5]);
  t.deepEqual([...d], [1.5, 2.5]);
  t.deepEqual([...RawArray(c_ubyte, [1, 2, 3])], [1, 2, 3]);
  t.deepEqual([...RawArray(c_ulonglong, [1, 2n])], [1n, 2n]);
  // Views of one arena share its one ArrayBuffer.
  const x = RawArray('d', 2);
  const y = RawArray('i', 2);
  t.is(x.buffer, y.buffer);
});

test("'c' arrays: value (up to NUL) and raw, synchronized as SynchronizedString", (t) => {
  const s = SharedArray('c', Buffer.from('hello world'));
  t.true(s instanceof SynchronizedString);
  t.deepEqual(s.value, Buffer.from('hello world'));
  s.value = 'HELLO';
  t.deepEqual(s.value, Buffer.from('HELLO'));
  t.deepEqual(s.raw, Buffer.from('HELLO\0world'));
  t.throws(() => (s.value = 'x'.repeat(12)), { instanceOf: ValueError });
  t.deepEqual(s[0], Buffer.from('H'));
  const r = RawArray(c_char, 4);
  t.true(r instanceof CharArray);
  r.raw = Buffer.from([1, 2]);
  t.deepEqual(r.raw, Buffer.from([1, 2, 0, 0]));
  t.is(r.length, 4);
});

test('Structure, arrays of structures and synchronized structures read and write shared memory', (t) => {
  const local = new Point(1, 2);
  t.is(local.x, 1);
  t.is(String(local), '<Point x=1.0, y=2.0>');
  const p = RawValue(Point, 3, 4);
  t.true(p instanceof Point);
  t.is(p.y, 4);
  const A = SharedArray(Point, [[1.875, -6.25], { x: -5.75, y: 2.0 }, new Point(2.375, 9.5)]);
  t.is(A.length, 3);
  for (const a of A) {
    a.x **= 2;
    a.y **= 2;
  }
  t.deepEqual([...A].map((a: Point) => [a.x, a.y]), [[3.515625, 39.0625], [33.0625, 4.0], [5.640625, 90.25]]);
  A[0] = [0, 0];
  t.is(A[0].x, 0);
  class Pair extends Structure {
    static override _fields_ = [['a', c_short], ['p', Point], ['n', c_long]] as const;
  }
  const pair = RawValue(Pair, 1, [2, 3], 5n) as any;
  t.is(pair.a, 1);
  t.is(pair.p.y, 3);
  t.is(pair.n, 5n);
  const sp = Value(Point, 5, 6);
  t.is(sp.x, 5);
  sp.y = 7;
  t.is(sp.getObj().y, 7);
  t.regex(String(sp), /^<Synchronized wrapper for <Point x=5\.0, y=7\.0>>$/);
});

test("Structure fields that are arrays (ARRAY(c_int, 3), Python's c_int * 3): CPython's layout and bytes, views that write through", (t) => {
  const s = new Arrays([1, 2, 3], 'ab', 'x\u{1f600}', [[1.5, 2], [3, 4]], 7, [[1, 2], [3, 4]]);
  // The same structure built by CPython's ctypes.
  const py = spawnSync('python3', ['-c', `
from ctypes import *
class Point(Structure): _fields_ = [('x', c_double), ('y', c_double)]
class S(Structure): _fields_ = [('a', c_int * 3), ('name', c_char * 5), ('w', c_wchar * 4), ('m', (c_double * 2) * 2), ('b', c_byte), ('pts', Point * 2)]
s = S((1, 2, 3), b'ab', 'x\\U0001F600', ((1.5, 2), (3, 4)), 7, ((1, 2), (3, 4)))
print(sizeof(S), alignment(S), [getattr(S, f[0]).offset for f in S._fields_], bytes(s).hex())
`], { encoding: 'utf8' });
  t.is(py.status, 0, py.stderr);
  const l = layoutOf(Arrays);
  const bytes = Buffer.from(s._dv.buffer, s._dv.byteOffset + s._off, l.size).toString('hex');
  t.is(`${l.size} ${l.align} [${l.fields.map((f) => f.offset).join(', ')}] ${bytes}`, py.stdout.trim());
  // Reading: typed arrays for numbers, bytes and text up to the first NUL, views for the rest.
  t.true(s.a instanceof Int32Array);
  t.deepEqual([...s.a], [1, 2, 3]);
  t.deepEqual(s.name, Buffer.from('ab'));
  t.is(s.w, 'x\u{1f600}');
  t.deepEqual([...s.m[1]], [3, 4]);
  t.is(s.pts[1].y, 4);
  t.is(String(s), "<Arrays a=[1, 2, 3], name=b'ab', w='x\u{1f600}', m=[[1.5, 2.0], [3.0, 4.0]], b=7, pts=[<Point x=1.0, y=2.0>, <Point x=3.0, y=4.0>]>");
  // Views write through; assignment takes a sequence and zeroes what it does not give, as Python's tuple.
  s.a[1] = 20;
  s.m[0][1] = -2;
  s.pts[0].x = 0.5;
  t.deepEqual([[...s.a], [...s.m[0]], s.pts[0].x], [[1, 20, 3], [1.5, -2], 0.5]);
  (s as { a: ArrayLike<number> }).a = [4];
  t.deepEqual([...s.a], [4, 0, 0]);
  s.a = s.a;
  t.deepEqual([...s.a], [4, 0, 0], 'assigning a field its own view');
  (s as { name: Buffer | string }).name = Buffer.from('hello');
  t.deepEqual(s.name, Buffer.from('hello'), 'a full c_char array has no NUL');
  (s.pts as unknown as { [i: number]: object })[1] = { x: 8, y: 9 };
  t.is(s.pts[1].x, 8);
  // Errors as ctypes': too long (ValueError), too many items, not a sequence, a bit field's third item.
  t.throws(() => ((s as unknown as { name: string }).name = 'hello!'), { instanceOf: ValueError, message: 'bytes too long (6, maximum length 5)' });
  t.throws(() => (s.w = 'abcde'), { instanceOf: ValueError, message: 'string too long (5, maximum length 4)' });
  t.throws(() => ((s as unknown as { a: number[] }).a = [1, 2, 3, 4]), { instanceOf: RangeError });
  t.throws(() => ((s as { a: unknown }).a = 5), { instanceOf: TypeError, message: /expected c_int_Array_3 instance/ });
  class Bits extends Structure {
    static override _fields_ = [['flags', c_int, 3]] as never;
  }
  t.throws(() => new Bits(), { instanceOf: TypeError, message: /bit fields are not supported .*ARRAY\(c_int, n\)/ });
  // The type objects.
  t.is(ARRAY(c_int, 3), ARRAY(c_int, 3));
  t.is(String(ARRAY(ARRAY(c_double, 2), 2)), "<class 'c_double_Array_2_Array_2'>");
  t.is(ARRAY(Point, 2).size, 32);
  t.throws(() => ARRAY(c_int, -1), { instanceOf: ValueError, message: 'Array length must be >= 0, not -1' });
  t.throws(() => RawValue(ARRAY(c_int, 3) as never), { instanceOf: TypeError, message: /array type/ });
  // In shared memory, an array of such structures.
  const A = RawArray(Arrays, 2);
  A[1].a[0] = 5;
  t.is(A[1].a[0], 5);
  t.is(copy(A)[1].a[0], 5);
});

test("c_wchar and the 'u' typecode: one character per element, as Python's str", (t) => {
  const v = Value('u', 'z');
  t.is(v.value, 'z');
  t.is(String(v), "<Synchronized wrapper for c_wchar('z')>");
  v.value = '\u{1f600}';
  t.is(v.value, '\u{1f600}');
  t.is(Value(c_wchar).value, '\0');
  t.throws(() => Value('u', 'zz'), { instanceOf: TypeError, message: 'one character unicode string expected' });
  t.throws(() => Value('u', 5), { instanceOf: TypeError, message: 'unicode string expected instead of number instance' });
  const a = SharedArray('u', 5);
  t.true(a instanceof SynchronizedArray);
  t.true(a.getObj() instanceof WCharArray);
  t.deepEqual(a.toArray(), ['\0', '\0', '\0', '\0', '\0']);
  a[0] = 'q';
  t.is(a[0], 'q');
  t.is(a.getObj().value, 'q');
  const r = RawArray('u', 'hi\u{1f600}');
  t.is(r.length, 3, 'a character outside the BMP is one element');
  t.is(r[2], '\u{1f600}');
  t.is(r.value, 'hi\u{1f600}');
  t.is(String(r), "<c_wchar_Array_3 'hi\u{1f600}'>");
  r.value = 'a';
  t.deepEqual(r.toArray(), ['a', '\0', '\u{1f600}']);
  t.throws(() => (r.value = 'abcd'), { instanceOf: ValueError, message: 'string too long (4, maximum length 3)' });
  t.is(copy(r).value, 'a');
  t.is(RawArray(c_wchar, ['x', 'y']).value, 'xy');
});

test('a child writes through the array fields of shared structures and through c_wchar objects', async (t) => {
  const one = Value(Arrays, [1, 2, 3], 'ab');
  const many = RawArray(Arrays, 2);
  const ch = RawValue('u', 'a');
  const text = RawArray('u', 'abc\0\0');
  const p = startChild(t, writeArrays, [one, many, ch, text]);
  await p.join();
  t.is(p.exitcode, 0);
  const s = one.getObj();
  t.deepEqual([...s.a], [1, 2, 30]);
  t.deepEqual(s.name, Buffer.from('child'));
  t.is(s.w, '\u00fc\u{1f600}');
  t.deepEqual([...s.m[1]], [-1.5, 0]);
  t.is(s.pts[1].y, 9.25);
  t.deepEqual([...many[1].a], [7, 8, 0]);
  t.deepEqual([...many[1].m[0]], [0.5, 0.25]);
  t.deepEqual([...many[0].a], [0, 0, 0]);
  t.is(ch.value, '\u03bb');
  t.is(text.value, '\u{1f600}bc!');
});

test('copy and synchronized', (t) => {
  const a = RawArray('i', [1, 2, 3]);
  const b = copy(a);
  b[0] = 9;
  t.is(a[0], 1);
  t.deepEqual([...b], [9, 2, 3]);
  const v = copy(Value('d', 2.5));
  t.is(v.value, 2.5);
  t.is(copy(RawValue(Point, 1, 2)).y, 2);
  const l = new Lock();
  const s = synchronized(a, l);
  t.is(s.getLock(), l);
  t.is(s.getObj(), a);
  t.is(s[2], 3);
  const r = synchronized(RawValue('i', 4));
  t.true(r.getLock() instanceof RLock);
  t.throws(() => synchronized({}), { instanceOf: TypeError });
});

test('17.2.1.5: a child changes a Value and an Array', async (t) => {
  const num = Value('d', 0.0);
  const arr = SharedArray('i', Array.from({ length: 10 }, (_, i) => i));
  const p = startChild(t, negate, [num, arr]);
  await p.join();
  t.is(p.exitcode, 0);
  t.is(num.value, 3.1415927);
  t.deepEqual(arr.toArray(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
});

test('17.2.2.6.1: structures, strings and unlocked values modified by a child', async (t) => {
  const lock = new Lock();
  const n = Value('i', 7);
  const x = Value(c_double, 1.0 / 3.0, { lock: false });
  const s = SharedArray('c', Buffer.from('hello world'), { lock });
  const A = SharedArray(Point, [[1.875, -6.25], [-5.75, 2.0], [2.375, 9.5]], { lock });
  const p = startChild(t, modify, [n, x, s, A]);
  await p.join();
  t.is(p.exitcode, 0);
  t.is(n.value, 49);
  t.is(x.value, 0.1111111111111111);
  t.is(s.value.toString(), 'HELLO WORLD');
  t.deepEqual([...A].map((a: Point) => [a.x, a.y]), [[3.515625, 39.0625], [33.0625, 4.0], [5.640625, 90.25]]);
});

test('every kind of shared object crosses as the same memory, also inside messages', async (t) => {
  const raw = RawArray('d', 4);
  const big = RawArray('q', 1);
  const chars = RawArray('c', 3);
  const pt = RawValue(Point);
  const arr = SharedArray('i', 3);
  const p = startChild(t, fillShared, [raw, big, chars, pt, arr]);
  await p.join();
  t.is(p.exitcode, 0);
  t.deepEqual([...raw], [0, 1.5, 3, 4.5]);
  t.is(big[0], -(2n ** 62n));
  t.deepEqual(chars.raw, Buffer.from('abc'));
  t.deepEqual([pt.x, pt.y], [4, 6]);
  t.deepEqual(arr.toArray(), [100, 101, 102]);
  // Inside a message, and back.
  const [a, b] = Pipe();
  a.send({ raw, arr });
  const got = (await b.recv()) as { raw: Float64Array; arr: SynchronizedArray<number> };
  got.raw[0] = 77;
  got.arr[0] = 88;
  t.is(raw[0], 77);
  t.is(arr[0], 88);
  t.is(got.raw.buffer, raw.buffer, 'the same arena has one ArrayBuffer in a process');
});

test('ten thousand small Values cost a few arenas, not ten thousand descriptors or mappings', (t) => {
  const fdsBefore = readdirSync('/proc/self/fd').length;
  const buffersBefore = _arenaBufferCount();
  const vals = Array.from({ length: 10_000 }, (_, i) => Value('d', i));
  t.is(vals[9999].value, 9999);
  t.true(_arenaBufferCount() - buffersBefore <= 3, `${_arenaBufferCount() - buffersBefore} new arena buffers`);
  t.true(readdirSync('/proc/self/fd').length - fdsBefore <= 3);
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('mp-heap')).length;
  t.true(maps < 20, `${maps} heap mappings`);
});

test('memory of collected objects is returned: big arrays do not pile up mappings', async (t) => {
  const count = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('mp-heap')).length;
  const before = count();
  for (let i = 0; i < 30; i++) {
    const a = RawArray('d', 1 << 20); // 8 MiB: an arena of its own
    a[a.length - 1] = i;
    if (i % 5 === 4) await collect();
  }
  await collect();
  t.true(count() - before <= 6, `${count() - before} mappings left`);
});

test('nothing is left in /dev/shm after children holding shared objects are killed', async (t) => {
  // CPython's named semaphores (sem.mp-*) and SharedMemory blocks (psm_*) come and go in
  // /dev/shm while other tests (or anything else on the machine) run Python peers: not ours.
  const list = () => {
    try {
      return readdirSync('/dev/shm')
        .filter((n) => !n.startsWith('sem.mp-') && !n.startsWith('psm_'))
        .sort();
    } catch {
      return [];
    }
  };
  const before = list();
  const ready = new Event();
  const objs = [Value('i', 1), RawArray('d', 1 << 18), new Lock()];
  const p = startChild(t, keepShared, [objs, ready]);
  t.true(await ready.wait(60));
  p.kill();
  await p.join();
  t.is(p.exitcode, -9);
  t.deepEqual(list(), before);
});

test('a message that is not sent gives back the count it took on shared memory', async (t) => {
  // Sending a shared object adds a count on its block for the receiver to take over;
  // when the message is refused, fails to serialize or finds no peer, that count is
  // given back, or the block could never be freed and reused.
  const v = RawValue('i', 7);
  const count = () => v._block.refcount;
  const before = count();
  const q = new Queue();
  t.throws(() => q.putNowait(v), { instanceOf: TypeError });
  t.is(count(), before);
  const [a, b] = Pipe();
  t.throws(() => a.send([v, Symbol('not serializable')]), { instanceOf: TypeError });
  t.is(count(), before);
  b.close();
  t.throws(() => a.send(v));
  t.is(count(), before);
  a.close();
  q.close();
});
