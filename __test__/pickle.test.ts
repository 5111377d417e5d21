// The pickle codec (node-multiprocessing/pickle): the mapping, byte-for-byte agreement with
// CPython's pickler, the safety rules (allow-listed globals only, malformed, truncated and
// hostile data are UnpicklingError/ValueError with bounded work) and property tests with
// fast-check (random values round-trip; random and mutated bytes never do anything else
// than load or fail cleanly). CPython here is the default python3.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { OSError, PythonError, RecursionError, ValueError } from '../src/errors.js';
import {
  dumps, HIGHEST_PROTOCOL, loads, PickleError, PicklingError, PyFloat, Tuple, UnpicklingError,
} from '../src/pickle.js';

/** Run python3 with `code`; stdin and stdout are bytes. */
function python(code: string, input?: Uint8Array): Buffer {
  return execFileSync('python3', ['-c', code], { input, maxBuffer: 1 << 26 });
}

/** Length-prefixed frames, so that many pickles cross one python3 run. */
function frames(list: Uint8Array[]): Buffer {
  return Buffer.concat(list.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b]));
}
function unframe(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length;) {
    const n = buf.readUInt32LE(p);
    out.push(buf.subarray(p + 4, p + 4 + n));
    p += 4 + n;
  }
  return out;
}
const PY_FRAMES = `
import pickle, struct, sys
def frames(data):
    p = 0
    while p < len(data):
        n, = struct.unpack_from('<I', data, p)
        yield data[p + 4:p + 4 + n]
        p += 4 + n
def out(bs):
    sys.stdout.buffer.write(b''.join(struct.pack('<I', len(b)) + b for b in bs))
`;

/** Loading failed the way hostile or broken data must: a Python ValueError or UnpicklingError. */
function cleanFailure(e: unknown): boolean {
  return e instanceof UnpicklingError || e instanceof ValueError;
}

test('the mapping: None, bool, int (number or bigint), float, str, bytes, list, tuple, dict, set', (t) => {
  const v = loads(dumps({
    n: null, u: undefined, b: true, i: 42, neg: -(2 ** 40), big: 2n ** 64n, small: 5n, f: 0.25, s: 'h\u00e9', buf: Buffer.from('ab'),
    l: [1, [2]], t: new Tuple<unknown>(1, 'x'), m: new Map<unknown, unknown>([[1, 'one'], ['k', 2]]), set: new Set([1, 'a']),
  }));
  t.deepEqual(v, {
    n: null, u: null, b: true, i: 42, neg: -(2 ** 40), big: 2n ** 64n, small: 5, f: 0.25, s: 'h\u00e9', buf: Buffer.from('ab'),
    l: [1, [2]], t: new Tuple<unknown>(1, 'x'), m: new Map<unknown, unknown>([[1, 'one'], ['k', 2]]), set: new Set([1, 'a']),
  });
  t.true(v.t instanceof Tuple && Array.isArray(v.t));
  t.false(v.l instanceof Tuple);
  t.true(Buffer.isBuffer(v.buf));
  // A dict whose keys are all str is a plain object; one other key makes it a Map.
  t.is(Object.getPrototypeOf(loads(dumps(new Map([['a', 1]])))), Object.prototype);
  t.true(loads(dumps(new Map<unknown, unknown>([['a', 1], [2, 'b']]))) instanceof Map);
});

test('the int/float rule: a safe-integer number sends int, any other number and PyFloat send float', (t) => {
  const py = python(`${PY_FRAMES}
out([repr(pickle.loads(b)).encode() + b' ' + type(pickle.loads(b)).__name__.encode() for b in frames(sys.stdin.buffer.read())])`,
  frames([2, -0, 0, 2 ** 53, 2 ** 53 - 1, 0.5, new PyFloat(2), NaN, 2n].map((x) => dumps(x))));
  t.deepEqual(unframe(py).map(String), [
    '2 int', '-0.0 float', '0 int', '9007199254740992.0 float', '9007199254740991 int', '0.5 float', '2.0 float', 'nan float', '2 int',
  ]);
  // The same rule for a dict's values (written by the dict entries' own loop), each int size.
  const values: Record<string, unknown> = {
    a: 2, b: -0, c: 0, d: 2 ** 53, e: 2 ** 53 - 1, f: 0.5, g: new PyFloat(2), h: NaN, i: 2n, j: 255, k: 256, l: 65535, m: 65536,
    n: -1, o: 2 ** 31 - 1, p: 2 ** 31, q: -(2 ** 31), r: -(2 ** 31) - 1, s: Infinity, u: -Infinity, v: 1.5e300, w: -(2 ** 40),
  };
  for (const proto of [3, 4, 5]) {
    const read = python(`import pickle, sys
d = pickle.loads(sys.stdin.buffer.read())
sys.stdout.write(' '.join(k + '=' + repr(v) + ':' + type(v).__name__ for k, v in d.items()))`, dumps(values, proto)).toString();
    t.is(read, 'a=2:int b=-0.0:float c=0:int d=9007199254740992.0:float e=9007199254740991:int f=0.5:float g=2.0:float ' +
      'h=nan:float i=2:int j=255:int k=256:int l=65535:int m=65536:int n=-1:int o=2147483647:int p=2147483648:int ' +
      'q=-2147483648:int r=-2147483649:int s=inf:float u=-inf:float v=1.5e+300:float w=-1099511627776:int', `protocol ${proto}`);
  }
  // The same values as a list's items and alone (written by save()'s own cases), with strs
  // (short ASCII, empty, not ASCII, long) and bools beside them.
  const items = [...Object.values(values), 'abc', '', 'h\u00e9', 'x'.repeat(300), true, false, null];
  const expected = 'a=2:int b=-0.0:float c=0:int d=9007199254740992.0:float e=9007199254740991:int f=0.5:float g=2.0:float ' +
    'h=nan:float i=2:int j=255:int k=256:int l=65535:int m=65536:int n=-1:int o=2147483647:int p=2147483648:int ' +
    'q=-2147483648:int r=-2147483649:int s=inf:float u=-inf:float v=1.5e+300:float w=-1099511627776:int';
  const expectedItems = `${expected.replace(/\b[a-z]=/g, '')} 'abc':str '':str 'hé':str '${'x'.repeat(300)}':str True:bool False:bool None:NoneType`;
  for (const proto of [3, 4, 5]) {
    const read = python(`${PY_FRAMES}
l = pickle.loads(sys.stdin.buffer.read(struct.unpack('<I', sys.stdin.buffer.read(4))[0]))
alone = [pickle.loads(b) for b in frames(sys.stdin.buffer.read())]
sys.stdout.write(' '.join(repr(v) + ':' + type(v).__name__ for v in l) + '|' + ' '.join(repr(v) + ':' + type(v).__name__ for v in alone))`,
    frames([dumps(items, proto), ...items.map((v) => dumps(v, proto))])).toString();
    t.is(read, `${expectedItems}|${expectedItems}`, `protocol ${proto}`);
  }
  t.is(loads(dumps(new PyFloat(2))), 2);
  t.is(String(new PyFloat(2)), '2.0');
  t.is(+new PyFloat(1.5), 1.5);
});

test('dumps writes what CPython writes (framing, batching, memo), protocols 3, 4 and 5', (t) => {
  // Values without str or nested duplicates, where CPython's output is fully determined.
  const values: Array<[unknown, string]> = [
    [null, 'None'], [[1, 2], '[1, 2]'], [Array.from({ length: 3000 }, (_, i) => i), 'list(range(3000))'], [{}, '{}'],
    [new Tuple(1, 2, 3, 4), '(1, 2, 3, 4)'], [new Tuple(1), '(1,)'], [2n ** 100n, '2**100'], [-(2n ** 100n), '-2**100'], [-129, '-129'],
    [Buffer.alloc(70000, 0x78), "b'x' * 70000"], [new Set([1, 2]), '{1, 2}'], [1.5, '1.5'], [-(2 ** 31), '-2**31'], [2 ** 31, '2**31'],
    [[Buffer.alloc(100, 1), Buffer.alloc(70000, 2), [3]], "[b'\\x01' * 100, b'\\x02' * 70000, [3]]"],
    [new Map([[1, [1.5]], [2, new Tuple()]]), '{1: [1.5], 2: ()}'], [true, 'True'],
    [new Map(Array.from({ length: 2500 }, (_, i) => [i, i + 0.5])), '{i: i + 0.5 for i in range(2500)}'],
    [new Map(Array.from({ length: 1001 }, (_, i) => [-i - 1, [i]])), '{-i - 1: [i] for i in range(1001)}'],
    [Array.from({ length: 2001 }, (_, i) => i), 'list(range(2001))'], [new Map([[7, 8]]), '{7: 8}'], [[[9]], '[[9]]'],
  ];
  for (const proto of [3, 4, 5]) {
    const theirs = unframe(python(`${PY_FRAMES}\nout([pickle.dumps(v, ${proto}) for v in [${values.map(([, e]) => e).join(', ')}]])`));
    values.forEach(([v, e], i) => t.true(dumps(v, proto).equals(theirs[i]), `protocol ${proto}: ${e}`));
  }
  t.true(dumps(7, { protocol: 3 }).equals(dumps(7, 3)));
  t.is(dumps(1)[1], 4);
  t.is(dumps(1, -1)[1], HIGHEST_PROTOCOL);
  t.throws(() => dumps(1, 2), { instanceOf: ValueError });
  t.throws(() => dumps(1, 6), { instanceOf: ValueError });
});

test('a dict with non-ASCII keys and number values is written whole wherever the last pickles left off', (t) => {
  // Keys of 3-byte UTF-8 characters, each followed by an int or a float: written after pickles
  // of every length from 0 to 299, so that some entry lands at the end of the writer's buffer.
  const d: Record<string, number> = {};
  for (let i = 0; i < 3000; i++) d[`\u20ac\u20ac\u20ac\u20ac${String.fromCharCode(0x4e00 + i)}`] = i % 3 ? i % 200 : i + 0.5;
  const first = Buffer.from(dumps(d));
  for (let pad = 0; pad < 300; pad++) {
    dumps('x'.repeat(pad));
    const again = dumps(d);
    if (!again.equals(first)) {
      t.fail(`after a pickle of ${pad} characters: different bytes`);
      return;
    }
  }
  t.deepEqual(loads(first), d);
  const same = python(`import pickle, sys
d = {'\\u20ac' * 4 + chr(0x4e00 + i): i % 200 if i % 3 else i + 0.5 for i in range(3000)}
got = pickle.loads(sys.stdin.buffer.read())
sys.stdout.write(str(got == d and list(got) == list(d)))`, first).toString();
  t.is(same, 'True');
});

test('a plain object holding Arrays: the same bytes as the Map of its entries, read by CPython with shared lists shared', (t) => {
  // dumps writes a plain object's items and the plain Arrays among its values in one loop
  // (saveDict()); a Map's go through save() one by one: both must give the same bytes.
  const s: unknown[] = [1, 'x'];
  const many: Record<string, unknown> = {};
  for (let i = 0; i < 20; i++) many[`l${i}`] = [i];
  many.again = many.l0;
  const values: Array<Record<string, unknown>> = [
    { id: 12345, name: 'node-multiprocessing', ok: true, score: 0.75, tags: ['a', 'b'] },
    { a: s, b: s, c: [s, s], d: [], e: [7], f: [[]], one: [{ x: 1 }], deep: [[[1]]] },
    { g: [null, undefined, true, false, -0, NaN, Infinity, 2 ** 40, -(2 ** 31), 2 ** 31, 1.5, '\u00e9', 'x'.repeat(300), 10n ** 30n, { k: [s] }, new Tuple(1), new Map([[1, 2]])] },
    { big: Array.from({ length: 2500 }, (_, i) => (i % 3 ? i * 1.5 : `s${i}`)), '\u20ac': [1, 2], n: null, u: undefined, neg0: -0, inf: -Infinity },
    { frames: Array.from({ length: 3000 }, (_, i) => 'y'.repeat(40 + (i % 5))), after: [1, 2] },
    many,
    // Plain up to a list with a non-ASCII str or a large int in it, then more plain items.
    { a: 1, l: ['x', 'y'], m: ['z', '\u00e9', 3], n: [1, 2 ** 40], o: 'end', p: [true] },
    // Past a frame's target size (64 KiB) in plain items only.
    Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`k${i}`, i % 2 ? 'v'.repeat(230) : i < 9 ? ['w'.repeat(150), i] : i * 1.5])),
  ];
  for (const proto of [3, 4, 5]) {
    const ours = values.map((v) => Buffer.from(dumps(v, proto)));
    values.forEach((v, i) => t.true(ours[i].equals(dumps(new Map(Object.entries(v)), proto)), `protocol ${proto}, value ${i}`));
    // CPython reads each, checks the shared lists, and writes it again; both read the same.
    const back = unframe(python(`${PY_FRAMES}
vs = [pickle.loads(b) for b in frames(sys.stdin.buffer.read())]
assert vs[1]['a'] is vs[1]['b'] is vs[1]['c'][0] is vs[1]['c'][1] and vs[5]['again'] is vs[5]['l0']
out([pickle.dumps(v, ${proto}) for v in vs])`, frames(ours)));
    back.forEach((b, i) => t.deepEqual(loads(b), loads(ours[i]), `protocol ${proto}, value ${i}`));
  }
  // A getter runs once (where the plain items end and the others are written).
  let reads = 0;
  const withGetter = { a: 1, l: ['x'], get b() { reads++; return { c: [2] }; }, get d() { reads++; return 'y'; } };
  t.deepEqual(loads(dumps(withGetter)), { a: 1, l: ['x'], b: { c: [2] }, d: 'y' });
  t.is(reads, 2);
  // Written wherever the last pickle left off (some item lands at the end of the writer's buffer).
  const first = Buffer.from(dumps(values[0]));
  const mixed = Buffer.from(dumps(values[6]));
  for (let pad = 0; pad < 300; pad++) {
    dumps('x'.repeat(pad));
    if (!dumps(values[0]).equals(first) || !dumps(values[6]).equals(mixed)) {
      t.fail(`after a pickle of ${pad} characters: different bytes`);
      return;
    }
  }
});

test('strs of every length around where one call writes them (ASCII or not, lone surrogates) are written as CPython writes them', (t) => {
  // Short ASCII strs are copied by a loop, longer ones (ONE_CALL units) by one UTF-8 write that
  // says whether they were ASCII; each is checked alone, as a top-level plain object's key and
  // value, in its list, in a nested dict and in a list. CPython memoizes strs and we do not:
  // compared with Python's own pickler with str memoization off.
  const kinds = (n: number): string[] => [
    'a'.repeat(n),
    ...(n > 0 ? ['\u00e9' + 'b'.repeat(n - 1), 'c'.repeat(n - 1) + '\u20ac', 'd'.repeat(n - 1) + '\ud800', '\udc00' + 'f'.repeat(n - 1)] : []),
    ...(n > 1 ? ['\ud83d\ude00' + 'e'.repeat(n - 2)] : []),
  ];
  const strs = [0, 1, 15, 16, 17, 47, 48, 49, 85, 86, 127, 128, 255, 256, 300].flatMap(kinds);
  const values: unknown[] = strs.flatMap((s) => [s, { id: 1, s, tags: ['x', s] }, { [s || 'k']: 2, n: { s, [s || 'k']: s } }, { l: [1, s], m: [s] }, [s, 3]]);
  for (const proto of [3, 4, 5]) {
    const ours = values.map((v) => Buffer.from(dumps(v, proto)));
    const bad = python(`${PY_FRAMES}
import io, json
class NoStrMemo(pickle._Pickler):
    def memoize(self, obj):
        if type(obj) is not str:
            super().memoize(obj)
def dumps(v):
    f = io.BytesIO()
    NoStrMemo(f, ${proto}).dump(v)
    return f.getvalue()
bs = list(frames(sys.stdin.buffer.read()))
expected = json.loads(bs[0])
same = lambda b, v: pickle.loads(b) == v and b == dumps(v)
print([i for i, (b, v) in enumerate(zip(bs[1:], expected)) if not same(b, v)])`, frames([Buffer.from(JSON.stringify(values)), ...ours])).toString().trim();
    t.is(bad, '[]', `protocol ${proto}: values ${bad} differ`);
    // The same bytes wherever the last pickle left off (some str lands at the end of the writer's buffer).
    for (let pad = 0; pad < 300; pad += 7) {
      dumps('x'.repeat(pad));
      const i = values.findIndex((v, j) => !dumps(v, proto).equals(ours[j]));
      if (i >= 0) {
        t.fail(`protocol ${proto}, after a pickle of ${pad} characters: value ${i} differs`);
        return;
      }
    }
  }
});

test('a dict of many str keys and simple values reads as CPython wrote it; other runs of items read as before', (t) => {
  // Floats, ints of 1, 2 and 4 bytes (negative too), bools, None, str values (some the same
  // object, read back through the memo), non-ASCII keys; protocol 4 reads them in one run.
  const py = `[3.5, -1, 255, 65535, 2**31 - 1, -2**31, True, False, None, 'v' + str(i), 'same', '\\u20ac']`;
  const expected: Record<string, unknown> = {};
  const kinds = (i: number): unknown[] => [3.5, -1, 255, 65535, 2 ** 31 - 1, -(2 ** 31), true, false, null, `v${i}`, 'same', '\u20ac'];
  // ('same' only in the second batch of 1,000: the first has no memo read.)
  for (let i = 0; i < 1500; i++) expected[i % 7 ? `k${i}` : `\u00e9${i}`] = kinds(i)[i % 12 === 10 && i < 1000 ? 9 : i % 12];
  for (const proto of [2, 3, 4, 5]) {
    const got = loads(python(`import pickle, sys
same = 'sa' + 'me'
d = {}
for i in range(1500):
    v = ${py}[9 if i % 12 == 10 and i < 1000 else i % 12]
    d['k%d' % i if i % 7 else '\\u00e9%d' % i] = same if i % 12 == 10 and i >= 1000 else v
sys.stdout.buffer.write(pickle.dumps([d, same], ${proto}))`));
    t.deepEqual(got[0], expected, `protocol ${proto}`);
    t.deepEqual(Object.keys(got[0]), Object.keys(expected), `protocol ${proto}`);
    t.is(got[1], 'same');
  }
  // Items after a MARK on a dict that something other than SETITEMS takes: as Python reads them.
  const items = Buffer.concat(Array.from({ length: 40 }, (_, i) => {
    const b = Buffer.alloc(14);
    b[0] = 0x8c; b[1] = 3; b.write(`k${String(i).padStart(2, '0')}`, 2, 'latin1'); b[5] = 0x47; b.writeDoubleBE(i + 0.5, 6);
    return b;
  }));
  for (const [end, expr] of [[[0x31, 0x2e], 'POP_MARK'], [[0x74, 0x2e], 'TUPLE'], [[0x75, 0x2e], 'SETITEMS']] as const) {
    const pickle = Buffer.concat([Buffer.from([0x80, 0x04, 0x7d, 0x28]), items, Buffer.from(end)]);
    const theirs = python(`import pickle, sys; v = pickle.loads(sys.stdin.buffer.read()); sys.stdout.write(repr(v))`, pickle).toString();
    const ours = loads(pickle);
    const repr = ours instanceof Tuple ? `(${[...ours].map((x) => (typeof x === 'string' ? `'${x}'` : String(x))).join(', ')})`
      : `{${Object.entries(ours).map(([k, v]) => `'${k}': ${v}`).join(', ')}}`;
    t.is(repr, theirs, expr);
  }
});

test('reads every protocol CPython writes, including protocol 0 and 1 text opcodes', (t) => {
  const expr = "[None, True, 1, -2**70, 1.5, 'h\\xe9\\u20ac', b'by', (1, 2), {'a': [1]}, {1: 2}, {3}, frozenset([4]), bytearray(b'ba')]";
  for (let proto = 0; proto <= HIGHEST_PROTOCOL; proto++) {
    const v = loads(python(`import pickle, sys; sys.stdout.buffer.write(pickle.dumps(${expr}, ${proto}))`));
    t.deepEqual(v, [null, true, 1, -(2n ** 70n), 1.5, 'h\u00e9\u20ac', Buffer.from('by'), new Tuple(1, 2), { a: [1] }, new Map([[1, 2]]), new Set([3]), new Set([4]), Buffer.from('ba')], `protocol ${proto}`);
  }
});

test('Python exceptions are errors named as the Python class, with args; they go back as the same class', (t) => {
  const errs = loads(python(`import pickle, sys, queue, multiprocessing
sys.stdout.buffer.write(pickle.dumps([KeyError('k'), FileNotFoundError(2, 'No such file', 'f.txt'), ValueError('v', 1),
  UnicodeDecodeError('utf-8', b'\\xff', 0, 1, 'bad'), queue.Empty(), multiprocessing.TimeoutError('t'), TimeoutError('os'), ImportError('m', name='mod')]))`));
  const [kerr, fnf, verr, ude, empty, mpTimeout, osTimeout, imp] = errs;
  t.true(kerr instanceof PythonError);
  t.is(kerr.name, 'KeyError');
  t.deepEqual(kerr.args, ['k']);
  t.true(fnf instanceof OSError);
  t.is(fnf.name, 'FileNotFoundError');
  t.is(fnf.errno, 2);
  t.is(fnf.message, '[Errno 2] No such file: f.txt');
  t.true(verr instanceof ValueError);
  t.deepEqual(verr.args, ['v', 1]);
  t.true(ude instanceof ValueError, "Python's UnicodeDecodeError is a ValueError");
  t.is(empty.name, 'Empty');
  t.is(mpTimeout.name, 'TimeoutError');
  t.is(osTimeout.name, 'TimeoutError');
  t.is(imp.name, 'ImportError');
  t.is(imp.args[0], 'm');
  // Back to Python: the same classes (builtins.TimeoutError stays itself, queue.Empty too).
  const back = python(`import pickle, sys
v = pickle.loads(sys.stdin.buffer.read())
print([type(e).__module__ + '.' + type(e).__qualname__ for e in v], [e.args for e in v], v[1].filename)`, dumps(errs)).toString().trim();
  t.is(back, "['builtins.KeyError', 'builtins.FileNotFoundError', 'builtins.ValueError', 'builtins.UnicodeDecodeError', " +
    "'_queue.Empty', 'multiprocessing.context.TimeoutError', 'builtins.TimeoutError', 'builtins.ImportError'] " +
    "[('k',), (2, 'No such file'), ('v', 1), ('utf-8', b'\\xff', 0, 1, 'bad'), (), ('t',), ('os',), ('m',)] f.txt");
});

test('what cannot be pickled is refused at the call: functions, symbols, class instances, unhashable keys, too deep', (t) => {
  t.throws(() => dumps(() => 1), { instanceOf: PicklingError, message: /function/ });
  t.throws(() => dumps(Symbol('s')), { instanceOf: PicklingError, message: /symbol/ });
  t.throws(() => dumps(new Date()), { instanceOf: PicklingError, message: /Date/ });
  t.throws(() => dumps(new Map([[[1], 2]])), { instanceOf: TypeError, message: "unhashable type: 'list'" });
  t.throws(() => dumps(new Set([{}])), { instanceOf: TypeError, message: "unhashable type: 'dict'" });
  let deep: unknown[] = [];
  for (let i = 0; i < 5000; i++) deep = [deep];
  t.throws(() => dumps(deep), { instanceOf: RecursionError });
  // After a refusal midway (its writer is dropped, memo and all), the next pickles are whole;
  // a dumps called from inside a dumps (here by a getter) has a writer of its own.
  const msg = { id: 1, tags: ['a', 'b'], s: 'x'.repeat(300) };
  const before = Buffer.from(dumps(msg));
  const listBefore = Buffer.from(dumps([msg, msg.tags]));
  t.throws(() => dumps({ a: [1, 2], b: { c: [msg, () => 1] } }), { instanceOf: PicklingError });
  t.true(dumps(msg).equals(before) && dumps([msg, msg.tags]).equals(listBefore));
  t.throws(() => dumps([msg, msg.tags, deep]), { instanceOf: RecursionError });
  t.true(dumps([msg, msg.tags]).equals(listBefore) && dumps(msg).equals(before));
  let inner: Buffer | undefined;
  const outer = { a: msg.tags, get b() { inner = Buffer.from(dumps(msg)); return [msg.tags]; } };
  const both = loads(dumps(outer));
  t.deepEqual(both, { a: ['a', 'b'], b: [['a', 'b']] });
  t.is(both.a, both.b[0]);
  t.true(inner?.equals(before));
  t.true(dumps(msg).equals(before));
  // Cycles and shared references are kept, as Python's memo keeps them.
  const cyc: unknown[] = [1];
  cyc.push(cyc);
  const back = loads(dumps(cyc));
  t.is(back[1], back);
  const tup = new Tuple<unknown>([]);
  (tup[0] as unknown[]).push(tup);
  const tb = loads(dumps(tup));
  t.is(tb[0][0], tb);
  t.true(PicklingError.prototype instanceof PickleError);
});

// --- Safety ---------------------------------------------------------------------

test('loading never imports or runs anything: any global off the allow-list is an UnpicklingError naming it', (t) => {
  const marker = join(tmpdir(), `nodemp-pickle-ran-${process.pid}`);
  rmSync(marker, { force: true });
  const evil = [
    // Protocol 0: os.system('touch marker').
    [Buffer.from(`cos\nsystem\n(S'touch ${marker}'\ntR.`), 'os.system'],
    [Buffer.from(`cposix\nsystem\n(S'touch ${marker}'\ntR.`), 'posix.system'],
    [Buffer.from(`c__builtin__\neval\n(S'1'\ntR.`), '__builtin__.eval'],
  ] as Array<[Buffer, string]>;
  const fromPython = unframe(python(`${PY_FRAMES}
import os, subprocess, datetime, collections, functools
class R:
    def __reduce__(self): return (os.system, ('touch ${marker}',))
out([pickle.dumps(R(), 4), pickle.dumps(subprocess.Popen, 4), pickle.dumps(datetime.date(2020, 1, 1), 4),
     pickle.dumps(getattr, 4), pickle.dumps(collections.defaultdict(int), 4), pickle.dumps(functools.partial(print), 4)])`));
  evil.push(...fromPython.map((b, i) => [b, ['posix.system', 'subprocess.Popen', 'datetime.date', 'builtins.getattr', 'collections.defaultdict', 'functools.partial'][i]] as [Buffer, string]));
  for (const [data, name] of evil) {
    const e = t.throws(() => loads(data), { instanceOf: UnpicklingError });
    t.true(e.message.includes(`'${name}'`), `${e.message} names ${name}`);
  }
  t.false(existsSync(marker), 'nothing ran');
});

test('truncated data (every prefix of valid pickles) is an UnpicklingError or ValueError', (t) => {
  const values = [
    { a: [1, 2n ** 80n, 'x'.repeat(300)], b: new Tuple(1.5, null), c: new Set(['s']), d: new Map([[1, Buffer.alloc(3)]]) },
    'y'.repeat(70000), [new ValueError('v')],
  ];
  let prefixes = 0;
  for (const v of values) {
    for (const proto of [3, 4, 5]) {
      const data = dumps(v, proto);
      const step = Math.max(1, Math.floor(data.length / 400));
      for (let n = 0; n < data.length; n += step) {
        prefixes++;
        try {
          loads(data.subarray(0, n));
          t.fail(`a prefix of ${n} bytes loaded`);
        } catch (e) {
          if (!cleanFailure(e)) t.fail(`prefix ${n}: ${String(e)}`);
        }
      }
    }
  }
  t.true(prefixes > 1000);
});

test('hostile lengths, memo abuse, marks and nesting fail cleanly or load without unbounded work', (t) => {
  const hdr = (...b: number[]): Buffer => Buffer.from([0x80, 4, ...b]);
  const u64 = (hi: number, lo: number): number[] => [lo & 255, (lo >>> 8) & 255, (lo >>> 16) & 255, lo >>> 24, hi & 255, (hi >>> 8) & 255, (hi >>> 16) & 255, hi >>> 24];
  // Lengths far beyond the data are refused before anything is allocated.
  for (const op of [0x8d, 0x8e, 0x96, 0x95]) {
    const e = t.throws(() => loads(hdr(op, ...u64(0x10000000, 0), 0x2e)), { instanceOf: UnpicklingError });
    t.regex(e.message, /truncated/);
  }
  t.throws(() => loads(hdr(0x58, 0xff, 0xff, 0xff, 0xff, 0x2e)), { instanceOf: UnpicklingError, message: /truncated/ });
  t.throws(() => loads(hdr(0x8b, 0xff, 0xff, 0xff, 0x7f, 0x2e)), { instanceOf: UnpicklingError, message: /truncated/ });
  t.throws(() => loads(hdr(0x8b, 0xff, 0xff, 0xff, 0xff, 0x2e)), { instanceOf: UnpicklingError, message: /negative/ });
  // Memo: a missing index, a huge index (kept sparse), a GET of it.
  t.throws(() => loads(hdr(0x68, 5, 0x2e)), { instanceOf: UnpicklingError, message: /Memo value not found at index 5/ });
  t.is(loads(hdr(0x4b, 7, 0x72, 0xff, 0xff, 0xff, 0xff, 0x30, 0x6a, 0xff, 0xff, 0xff, 0xff, 0x2e)), 7);
  t.throws(() => loads(hdr(0x94, 0x2e)), { instanceOf: UnpicklingError, message: /underflow/ });
  // Stack and marks misuse.
  t.throws(() => loads(hdr(0x2e)), { instanceOf: UnpicklingError, message: /underflow/ });
  t.throws(() => loads(hdr(0x4e, 0x28, 0x2e)), { instanceOf: UnpicklingError });
  t.throws(() => loads(hdr(0x65, 0x2e)), { instanceOf: UnpicklingError, message: /MARK/ });
  t.throws(() => loads(hdr(0x28, 0x4e, 0x61, 0x2e)), { instanceOf: UnpicklingError });
  t.throws(() => loads(hdr(0x4e, 0x4e, 0x52, 0x2e)), { instanceOf: UnpicklingError, message: /REDUCE/ });
  t.throws(() => loads(hdr(0x5d, 0x4e, 0x4e, 0x73, 0x2e)), { instanceOf: UnpicklingError, message: /not a dict/ });
  t.throws(() => loads(Buffer.from([0x80, 6, 0x4e, 0x2e])), { instanceOf: ValueError, message: 'unsupported pickle protocol: 6' });
  t.throws(() => loads(hdr(0xff)), { instanceOf: UnpicklingError, message: /invalid load key/ });
  t.throws(() => loads(Buffer.from([0x80, 5, 0x97, 0x2e])), { instanceOf: UnpicklingError, message: /out-of-band/ });
  t.throws(() => loads(hdr(0x8c, 2, 0xc3, 0x28, 0x2e)), { instanceOf: ValueError, message: /utf-8/ });
  t.throws(() => loads('N.' as unknown as Buffer), { instanceOf: TypeError });
  // 100,000 nested lists (the reader has no recursion) and 100,000 MARKs.
  const depth = 100_000;
  const nested = loads(Buffer.concat([hdr(), Buffer.alloc(depth, 0x5d), Buffer.alloc(depth - 1, 0x61), Buffer.from([0x2e])]));
  let d = 0;
  for (let x = nested; x.length; x = x[0]) d++;
  t.is(d, depth - 1);
  t.throws(() => loads(Buffer.concat([hdr(), Buffer.alloc(depth, 0x28), Buffer.from([0x4e, 0x2e])])), { instanceOf: UnpicklingError });
  // A "billion laughs": each list holds the previous one ten times, through the memo. It loads
  // as 30 shared lists, in bounded work.
  const laughs: number[] = [0x80, 4, 0x4b, 1];
  for (let i = 0; i < 30; i++) laughs.push(0x94, 0x28, ...Array(10).fill([0x68, i]).flat(), 0x6c);
  laughs.push(0x2e);
  const lol = loads(Buffer.from(laughs));
  t.is(lol.length, 10);
  t.is(lol[0], lol[9]);
});

test('a dict that meets a non-str key after str keys becomes a Map everywhere it is referenced', (t) => {
  const [d, again, inner] = loads(python(`import pickle, sys
d = {'a': 1}
d['self'] = [d]
d[2] = 'two'
sys.stdout.buffer.write(pickle.dumps([d, d, d['self']], 4))`));
  t.true(d instanceof Map);
  t.is(again, d);
  t.is(d.get('self'), inner);
  t.is(inner[0], d);
  t.is(d.get(2), 'two');
  // A reference made by DUP (no memo) is swapped too: Python gives the same dict twice.
  const dup = loads(Buffer.from('\x80\x04}2K\x01K\x02s\x86.', 'latin1'));
  t.true(dup[0] instanceof Map);
  t.is(dup[0], dup[1]);
  t.deepEqual([...dup[1]], [[1, 2]]);
  // Keys that would be special on a plain object are plain data.
  const o = loads(python(`import pickle, sys; sys.stdout.buffer.write(pickle.dumps({'__proto__': {'polluted': 1}, 'constructor': 2}))`));
  t.deepEqual(Object.keys(o), ['__proto__', 'constructor']);
  t.is(Object.getPrototypeOf(o), Object.prototype);
  t.is(({} as Record<string, unknown>).polluted, undefined);
  // The same in a dict of many keys (its keys are added while the object has no prototype):
  // the object has Object.prototype after, its keys in Python's order (but for '7': an object
  // lists such keys first),
  // and a key that is not a str after many str ones still makes a Map of them all.
  const many = loads(python(`import pickle, sys; d = {f'k{i}': i for i in range(100)}; d['__proto__'] = {'polluted': 1}; d['7'] = 7; d['toString'] = 8; sys.stdout.buffer.write(pickle.dumps(d))`));
  t.is(Object.getPrototypeOf(many), Object.prototype);
  t.deepEqual(Object.keys(many), ['7', ...Array.from({ length: 100 }, (_, i) => `k${i}`), '__proto__', 'toString']);
  t.deepEqual(many.__proto__, { polluted: 1 });
  t.is(many.toString, 8);
  t.is(({} as Record<string, unknown>).polluted, undefined);
  const mixed = loads(python(`import pickle, sys; d = {f'k{i}': i for i in range(100)}; d[5] = 'five'; sys.stdout.buffer.write(pickle.dumps(d))`));
  t.true(mixed instanceof Map);
  t.is(mixed.size, 101);
  t.is(mixed.get('k99'), 99);
  t.is(mixed.get(5), 'five');
});

test('strings: lone surrogates cross both ways; a Python surrogate pair arrives as the character it encodes', (t) => {
  const s = loads(python(`import pickle, sys; sys.stdout.buffer.write(pickle.dumps(['\\ud800', 'a\\udfffb', '\\ud83d\\ude00', 'x' * 100 + '\\udc00']))`));
  t.deepEqual(s, ['\ud800', 'a\udfffb', '\u{1f600}', `${'x'.repeat(100)}\udc00`]);
  const back = python(`import pickle, sys; print(ascii(pickle.loads(sys.stdin.buffer.read())))`, dumps(s)).toString().trim();
  t.is(back, `['\\ud800', 'a\\udfffb', '\\U0001f600', '${'x'.repeat(100)}\\udc00']`);
});

// --- Properties (fast-check) -----------------------------------------------------------

const hashable: fc.Arbitrary<unknown> = fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }));
const leaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }),
  fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom('\ud83d', '\ude00', '\ud800', 'a', '\u00e9', '\u20ac') }), fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), fc.double().map((x) => new PyFloat(x)),
);
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 6 }),
    fc.array(tie('value'), { maxLength: 6 }).map((a) => Tuple.from(a)),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 6 }),
    fc.uniqueArray(fc.tuple(hashable, tie('value')), { maxLength: 6, selector: ([k]) => pyKey(k) }).map((e) => new Map(e)),
    fc.uniqueArray(hashable, { maxLength: 6, selector: pyKey }).map((a) => new Set(a)),
  ),
}));

/** Python's equality for the hashable leaves (1 == 1n; distinct strings and numbers differ). */
function pyKey(k: unknown): string {
  return typeof k === 'bigint' || typeof k === 'number' ? `n${String(k)}` : `${typeof k}:${String(k)}`;
}

/** What a value becomes after a round trip through pickle, by the mapping. */
function mapped(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= -(2n ** 53n - 1n) && v <= 2n ** 53n - 1n ? Number(v) : v;
  if (v instanceof PyFloat) return v.value;
  if (v instanceof Tuple) return Tuple.from(v.map(mapped));
  if (Array.isArray(v)) return v.map(mapped);
  if (v instanceof Map) {
    const entries = [...v].map(([k, x]) => [mapped(k), mapped(x)] as const);
    return entries.every(([k]) => typeof k === 'string') ? Object.fromEntries(entries) : new Map(entries);
  }
  if (v instanceof Set) return new Set([...v].map(mapped));
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) Object.defineProperty(o, k, { value: mapped(x), enumerable: true, writable: true, configurable: true });
    return o;
  }
  return v;
}

/** Sets with their members in one order (by pyKey), recursively. */
function sortSets(v: unknown): unknown {
  if (v instanceof Set) return new Set([...v].map(sortSets).sort((a, b) => (pyKey(a) < pyKey(b) ? -1 : 1)));
  if (v instanceof Tuple) return Tuple.from(v.map(sortSets));
  if (Array.isArray(v)) return v.map(sortSets);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, sortSets(x)]));
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) Object.defineProperty(o, k, { value: sortSets(x), enumerable: true, writable: true, configurable: true });
    return o;
  }
  return v;
}

test('property: any value of the mapping round-trips through dumps and loads (protocols 3, 4, 5)', (t) => {
  fc.assert(fc.property(value, fc.constantFrom(3, 4, 5), (v, proto) => {
    t.deepEqual(loads(dumps(v, proto)), mapped(v));
  }), { numRuns: 400 });
});

test('property: random values go Node -> CPython -> Node unchanged (one python3 run for 300 values)', (t) => {
  const vs = fc.sample(value, { numRuns: 300, seed: 15 });
  const back = unframe(python(`${PY_FRAMES}\nout([pickle.dumps(pickle.loads(b), 4) for b in frames(sys.stdin.buffer.read())])`, frames(vs.map((v) => dumps(v)))));
  t.is(back.length, vs.length);
  // Python's sets iterate in hash order, not insertion order.
  vs.forEach((v, i) => t.deepEqual(sortSets(loads(back[i])), sortSets(mapped(v))));
});

test('fuzz: random bytes and mutated pickles load or fail with UnpicklingError/ValueError, never anything else', (t) => {
  const check = (data: Uint8Array): boolean => {
    try {
      loads(data);
      return true;
    } catch (e) {
      return cleanFailure(e);
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(0, 2, 3, 4, 5), (bytes, proto) =>
    check(proto ? Buffer.concat([Buffer.from([0x80, proto]), bytes]) : bytes)), { numRuns: 3000 });
  const mutation = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete'));
  fc.assert(fc.property(value, fc.array(mutation, { minLength: 1, maxLength: 4 }), (v, muts) => {
    const data = [...dumps(v)];
    for (const [at, byte, how] of muts) {
      const i = at % (data.length + 1);
      if (how === 'set') data[Math.min(i, data.length - 1)] = byte;
      else if (how === 'insert') data.splice(i, 0, byte);
      else data.splice(i, 1);
    }
    return check(Buffer.from(data));
  }), { numRuns: 3000 });
  t.pass();
});
