// listener_client_roundtrip: an 8-byte sendBytes/recvBytes round trip over loopback TCP
// between a Listener (this process) and a Client in a child process that echoes, both
// sides using the blocking calls, as py_mp_bench.py's bench_listener_rtt does with CPython.
// `--first`: the first round trip after the connection is made (listener_client_roundtrip_first).
import { performance } from 'node:perf_hooks';
import { Process } from 'node-multiprocessing';
import { Client, Listener, type Address } from 'node-multiprocessing/connection';
import { first, main, scale } from './main.js';

const authkey = Buffer.from('bench');

/** The child: connect, then echo `n` messages. */
export async function clientEcho(address: Address, n: number): Promise<void> {
  using c = await Client(address, { authkey });
  for (let i = 0; i < n; i++) c.sendBytes(c.recvBytesSync());
}

main(import.meta.url, async () => {
  const n = first ? 1 : 5000 * scale;
  using l = new Listener(['127.0.0.1', 0], { authkey });
  const p = new Process({ target: clientEcho, args: [l.address, first ? 1 : n + 1] });
  p.start();
  let dt: number;
  {
    using c = await l.accept();
    if (!first) {
      c.sendBytes(Buffer.from('x'));
      c.recvBytesSync();
    }
    const msg = Buffer.from('12345678');
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      c.sendBytes(msg);
      c.recvBytesSync();
    }
    dt = performance.now() - t;
  }
  await p.join();
  return [{ case: first ? 'listener_client_roundtrip_first' : 'listener_client_roundtrip', value: (dt / n) * 1000, unit: 'us' }];
});
