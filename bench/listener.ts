// Benchmark listener_client_roundtrip: an 8-byte sendBytes/recvBytes round trip over
// loopback TCP between a Listener (this process) and a Client in a child process
// that echoes, both sides using the blocking calls, as py_mp_bench.py's
// bench_listener_rtt does with CPython. Run directly, it also runs CPython's.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Process } from '../index.js';
import { Client, Listener, type Address } from '../src/connection.js';

const authkey = Buffer.from('bench');

export interface BenchResult {
  case: string;
  value: number;
  unit: string;
}

/** The child: connect, then echo `n` messages. */
export async function clientEcho(address: Address, n: number): Promise<void> {
  using c = await Client(address, { authkey });
  for (let i = 0; i < n; i++) c.sendBytes(c.recvBytesSync());
}

export async function benchListener(quick: boolean): Promise<BenchResult> {
  const n = 5000 * (quick ? 1 : 5);
  using l = new Listener(['127.0.0.1', 0], { authkey });
  const p = new Process({ target: clientEcho, args: [l.address, n + 1] });
  p.start();
  let dt: number;
  {
    using c = await l.accept();
    c.sendBytes(Buffer.from('x'));
    c.recvBytesSync();
    const msg = Buffer.from('12345678');
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      c.sendBytes(msg);
      c.recvBytesSync();
    }
    dt = performance.now() - t;
  }
  await p.join();
  return { case: 'listener_client_roundtrip', value: (dt / n) * 1000, unit: 'us' };
}

/** CPython's figure, measured the same way (py_mp_bench.py's bench_listener_rtt). */
export function benchListenerPython(quick: boolean): BenchResult {
  const script = `
import json, sys, time, multiprocessing as mp
from multiprocessing.connection import Client, Listener

def client_echo(address, n):
    with Client(address, authkey=b"bench") as c:
        for _ in range(n):
            c.send_bytes(c.recv_bytes())

if __name__ == "__main__":
    n = int(sys.argv[1])
    ctx = mp.get_context("spawn")
    with Listener(("127.0.0.1", 0), authkey=b"bench") as l:
        p = ctx.Process(target=client_echo, args=(l.address, n + 1))
        p.start()
        with l.accept() as c:
            c.send_bytes(b"x"); c.recv_bytes()
            t = time.perf_counter()
            for _ in range(n):
                c.send_bytes(b"12345678")
                c.recv_bytes()
            dt = time.perf_counter() - t
        p.join()
    print(json.dumps({"case": "listener_client_roundtrip", "value": dt / n * 1e6, "unit": "us"}))
`;
  const dir = mkdtempSync(join(tmpdir(), 'nodemp-bench-'));
  try {
    const file = join(dir, 'py_listener_rtt.py');
    writeFileSync(file, script);
    const out = execFileSync('python3', [file, String(5000 * (quick ? 1 : 5))], { encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop()!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  const ours = await benchListener(quick);
  const py = benchListenerPython(quick);
  console.log(JSON.stringify(ours));
  console.log(JSON.stringify({ ...py, case: 'cpython_listener_client_roundtrip' }));
  console.log(`ratio (ours / CPython): ${(ours.value / py.value).toFixed(2)}`);
}
