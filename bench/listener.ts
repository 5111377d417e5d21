// Benchmark listener_client_roundtrip: an 8-byte sendBytes/recvBytes round trip over
// loopback TCP between a Listener (this process) and a Client in a child process
// that echoes, both sides using the blocking calls, as py_mp_bench.py's
// bench_listener_rtt does with CPython (bench/run.ts prints CPython's figure beside it).
import { Process } from '../index.js';
import { Client, Listener, type Address } from '../src/connection.js';

const authkey = Buffer.from('bench');

import type { Row } from './cases.js';

/** The child: connect, then echo `n` messages. */
export async function clientEcho(address: Address, n: number): Promise<void> {
  using c = await Client(address, { authkey });
  for (let i = 0; i < n; i++) c.sendBytes(c.recvBytesSync());
}

export async function benchListener(quick: boolean): Promise<Row> {
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
