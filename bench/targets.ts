// Functions run in child processes by the benchmarks.
import type { Connection } from '../index.js';

export function noop(): void {}

export function pipeEcho(conn: Connection, n: number): void {
  for (let i = 0; i < n; i++) conn.send(conn.recvSync());
  conn.close();
}
