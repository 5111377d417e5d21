// Benchmarks of the pickle codec and of object round trips with a CPython peer; names and
// data as ../shared/anchors/py_mp_bench.py's bench_pickle (pickle_dumps_small ...), and
// pickle_roundtrip_vs_python: a Node client and a CPython client (py_bench.py) each exchange
// small dicts with the same Python echo server (py_pickle_echo.py).
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from 'node-multiprocessing/connection';
import { dumps, loads } from 'node-multiprocessing/pickle';
import { main, scale, wanted, type Row } from './main.js';

const here = dirname(fileURLToPath(import.meta.url));
const benchDir = here.includes('/dist/') ? join(here, '..', '..', 'bench') : here;

const small = { id: 12345, name: 'node-multiprocessing', ok: true, score: 0.75, tags: ['a', 'b'] };
function big(): Record<string, number> {
  const d: Record<string, number> = {};
  for (let i = 0; i < 1000; i++) d[`key${i}`] = i * 0.5;
  return d;
}

/** The bytes CPython's pickler writes for the same objects (what a Python peer would send). */
function cpythonBytes(): { small: Buffer; big: Buffer } | null {
  const code = 'import pickle, sys, struct\n' +
    'small = {"id": 12345, "name": "node-multiprocessing", "ok": True, "score": 0.75, "tags": ["a", "b"]}\n' +
    'big = {f"key{i}": i * 0.5 for i in range(1000)}\n' +
    'a, b = pickle.dumps(small, protocol=4), pickle.dumps(big, protocol=4)\n' +
    'sys.stdout.buffer.write(struct.pack("<I", len(a)) + a + b)\n';
  const r = spawnSync('python3', ['-c', code]);
  if (r.status !== 0) return null;
  const n = r.stdout.readUInt32LE(0);
  return { small: r.stdout.subarray(4, 4 + n), big: r.stdout.subarray(4 + n) };
}

function perCallUs(k: number, f: () => unknown): number {
  const t = performance.now();
  for (let i = 0; i < k; i++) f();
  return ((performance.now() - t) / k) * 1000;
}

/** dumps/loads of a small dict and of a 1,000-entry dict, as bench_pickle(n) does. */
function benchPickleCodec(): Row[] {
  const n = 20000 * scale;
  const theirs = cpythonBytes();
  const rows: Row[] = [];
  for (const [label, obj, k, pyData] of [['small', small, n, theirs?.small], ['1k', big(), Math.max(1, n / 100), theirs?.big]] as const) {
    // Loading reads what CPython wrote for the same object, as from a Python peer.
    const data = pyData ?? dumps(obj, 4);
    rows.push({ case: `pickle_dumps_${label}`, value: perCallUs(k, () => dumps(obj, 4)), unit: 'us' });
    rows.push({ case: `pickle_loads_${label}`, value: perCallUs(k, () => loads(data)), unit: 'us' });
  }
  return rows;
}

/** A Node client (serializer 'pickle', blocking calls) sending small dicts to the Python echo server. */
async function benchPickleRoundtrip(): Promise<Row[]> {
  const n = 2000 * scale;
  const server = spawn('python3', [join(benchDir, 'py_pickle_echo.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: server.stdout }).once('line', (l) => resolve(Number(l)));
      server.once('exit', (code) => reject(new Error(`python echo server exited (${code})`)));
    });
    using c = await Client(['127.0.0.1', port], { authkey: Buffer.from('bench'), serializer: 'pickle' });
    const msg = { id: 1, name: 'req', ok: true, score: 0.5, tags: ['a'] };
    c.send(msg);
    c.recvSync();
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      msg.id = i;
      c.send(msg);
      if (c.recvSync().id !== i) throw new Error('pickle_roundtrip_vs_python: wrong reply');
    }
    const dt = performance.now() - t;
    return [{ case: 'pickle_roundtrip_vs_python', value: (dt / n) * 1000, unit: 'us' }];
  } finally {
    await new Promise((resolve) => {
      if (server.exitCode !== null) resolve(null);
      else {
        server.once('exit', resolve);
        setTimeout(() => server.kill('SIGKILL'), 10_000).unref();
      }
    });
  }
}

main(import.meta.url, async () => [
  ...(wanted.length === 0 || wanted.includes('pickle') ? benchPickleCodec() : []),
  ...(wanted.length === 0 || wanted.includes('pickle_roundtrip_vs_python') ? await benchPickleRoundtrip() : []),
]);
