// pipe_roundtrip: send a number through a Pipe to a child that echoes it, wait for the echo.
// `--first`: the first round trip of both ends, once the child is ready (pipe_roundtrip_first).
import { performance } from 'node:perf_hooks';
import { Event, getContext, Pipe, type Connection } from 'node-multiprocessing';
import { first, main, scale } from './main.js';

/** The child: signal `ready`, then echo `n` messages. */
export function pipeEcho(conn: Connection, n: number, ready: Event | null): void {
  ready?.set();
  for (let i = 0; i < n; i++) conn.send(conn.recvSync());
  conn.close();
}

main(import.meta.url, async () => {
  const ctx = getContext('spawn');
  const [a, b] = Pipe();
  if (first) {
    const ready = new Event();
    const p = new ctx.Process({ target: pipeEcho, args: [b, 1, ready] });
    p.start();
    await ready.wait();
    const t = performance.now();
    a.send(1);
    a.recvSync();
    const dt = performance.now() - t;
    await p.join();
    return [{ case: 'pipe_roundtrip_first', value: dt * 1e3, unit: 'us' }];
  }
  const n = 5000 * scale;
  const p = new ctx.Process({ target: pipeEcho, args: [b, n + 1, null] });
  p.start();
  a.send(0);
  a.recvSync();
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    a.send(i);
    a.recvSync();
  }
  const dt = performance.now() - t;
  await p.join();
  return [{ case: 'pipe_roundtrip', value: (dt / n) * 1e3, unit: 'us' }];
});
