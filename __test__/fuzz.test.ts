// The serializer's decoder under hostile input (issue 14): arbitrary bytes, and valid
// messages with bytes changed or cut, give a clear error (TypeError, or AuthenticationError
// for code from a stranger), never a crash, a hang or an allocation sized by a claim.
import test from 'ava';
import fc from 'fast-check';
import * as v8 from 'node:v8';
import { AuthenticationError } from '../index.js';
import { dumps, dumpsParts, loads } from '../src/reduction.js';

/** Decode, and say how it ended: 'ok' or the error class's name (anything else fails the run). */
function decode(bytes: Uint8Array, trusted: boolean): string {
  try {
    loads(bytes, undefined, false, trusted);
    return 'ok';
  } catch (e) {
    if (e instanceof TypeError || e instanceof AuthenticationError) {
      if (!(e as Error).message) throw new Error('an error without a message');
      return e.constructor.name;
    }
    throw new Error(`unexpected ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  }
}

/** Messages as the library writes them: plain values, and values that need the reference table. */
const values = fc.oneof(
  fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, maxDepth: 3 }),
  fc.tuple(fc.string(), fc.integer()).map(([m, n]) => [new RangeError(m), { n, e: new Error(m) }]),
  fc.constant([(x: number) => x + 1, function named() {}]),
);

const V8_HEADER = v8.serialize(null).subarray(0, 2);

/** Heap in use after a collection when the runtime allows one, else as is. */
function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

test('arbitrary bytes: a result or a clear error (trusted or not)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), fc.boolean(), fc.boolean(), (bytes, v8Header, trusted) => {
      const b = v8Header ? Buffer.concat([V8_HEADER, bytes]) : bytes;
      // A stranger's message is never trusted with code; random bytes are not code either.
      decode(b, trusted);
    }),
    { numRuns: 20_000 },
  );
  t.pass();
});

test('valid messages with bytes changed, inserted or cut: a result or a clear error', (t) => {
  const before = heapUsed();
  fc.assert(
    fc.property(
      values,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'cut')), { minLength: 1, maxLength: 6 }),
      (value, edits) => {
        let bytes = Buffer.from(dumps(value).data);
        for (const [at, byte, kind] of edits) {
          const i = bytes.length ? at % bytes.length : 0;
          if (kind === 'set' && bytes.length) bytes[i] = byte;
          else if (kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, i), Buffer.of(byte), bytes.subarray(i)]);
          else bytes = bytes.subarray(0, i);
        }
        // Untrusted: an edited message must not get to run the source text it carries.
        decode(bytes, false);
      },
    ),
    { numRuns: 5_000 },
  );
  // Bounded: nothing like the lengths that edits can claim (up to 4 GiB) was kept.
  t.true(heapUsed() - before < 256 << 20, `heap grew by ${(heapUsed() - before) >> 20} MiB`);
});

test('claims of huge lengths are refused without allocating them', (t) => {
  const before = process.memoryUsage().rss;
  // V8's one-byte and two-byte strings, ArrayBuffer, dense and sparse arrays: each with a
  // varint length claiming 4 GiB, followed by two bytes.
  const claim = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
  for (const tag of ['"', 'c', 'B', 'A', 'a']) {
    const msg = Buffer.concat([V8_HEADER, Buffer.from(tag, 'latin1'), claim, Buffer.from('xx')]);
    t.is(decode(msg, false), 'TypeError', `tag ${tag}`);
    const inBody = Buffer.concat([V8_HEADER, Buffer.from('0', 'latin1'), Buffer.from(tag, 'latin1'), claim, Buffer.from('xx')]);
    t.is(decode(inBody, false), 'TypeError', `tag ${tag} in the body`);
  }
  t.true(process.memoryUsage().rss - before < 512 << 20);
});

test('found by fuzzing: a cut fast-path number is a TypeError, not a RangeError from reading past the end', (t) => {
  const whole = dumps(1.5).data;
  for (let n = 1; n < whole.length; n++) t.is(decode(whole.subarray(0, n), false), 'TypeError');
  t.is(decode(Buffer.concat([dumps(null).data, Buffer.of(0)]), false), 'TypeError');
  t.is(loads(whole, undefined, false, false), 1.5);
});

test('round trip: what the library writes, it reads back', (t) => {
  fc.assert(
    fc.property(fc.anything({ withBigInt: true, withMap: true, withSet: true, maxDepth: 3 }), (value) => {
      const back = loads(dumps(value).data, undefined, false, true);
      t.deepEqual(back, value);
    }),
    { numRuns: 2_000 },
  );
});

test('compact tuples: read in place when owned and aligned, copied otherwise; two parts join to the one-part form', (t) => {
  const value = [4, null, new Float64Array([1, 2, 3]), true, new Float64Array([0.5, -0.25])];
  const one = dumps(value).data;
  const { data: head, tail } = dumpsParts(value);
  t.truthy(tail);
  t.true(Buffer.concat([head, tail!]).equals(one));
  t.deepEqual(loads(one, undefined, false, false), value);
  // At every offset of a larger buffer: views only when aligned and owned.
  for (let off = 0; off < 8; off++) {
    const host = Buffer.alloc(one.length + 8);
    one.copy(host, off);
    const msg = host.subarray(off, off + one.length);
    const back = loads(msg, undefined, true, false) as unknown[];
    t.deepEqual(back, value);
    const f = back[4] as Float64Array;
    t.is(f.buffer === host.buffer, (host.byteOffset + off) % 8 === 0);
  }
  // Every cut is a TypeError; so is a trailing byte.
  for (let n = 0; n < one.length; n++) t.is(decode(one.subarray(0, n), false), 'TypeError');
  t.is(decode(Buffer.concat([one, Buffer.of(0)]), false), 'TypeError');
  // A Proxy of such an array cannot be sent, as in V8's form.
  t.throws(() => dumps(new Proxy([1, 2], {})), { instanceOf: TypeError });
});
