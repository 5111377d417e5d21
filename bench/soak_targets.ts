// Functions run in child processes by the soak (bench/soak.ts). Each writes what it has
// completed into shared memory before and after the steps a SIGKILL may cut, so that the
// parent can tell a fault's casualties from a real loss.
import * as net from 'node:net';
import type { Connection, Lock, Queue } from '../index.js';
import { Client, type Address } from '../src/connection.js';
import { SyncManager, type DictProxy } from '../src/managers.js';

/** A deterministic payload for (producer, seq), so that corruption is seen on arrival. */
export function payload(producer: number, seq: number): string {
  const len = (seq * 7919 + producer * 104729) % 700;
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(97 + ((producer + seq + i) % 26));
  return s;
}

/**
 * Put [producer, seq, payload] until `stop[0]` is set; after each put returns, `done[slot]`
 * is the number of items whose put returned.
 */
export function queueProducer(q: Queue, producer: number, slot: number, done: Float64Array, stop: Int32Array): void {
  for (let seq = 0; !Atomics.load(stop, 0); seq++) {
    q.putSync([producer, seq, payload(producer, seq)]);
    done[slot] = seq + 1;
  }
}

/**
 * Take items and forward [producer, seq, intact] to `results`. `taken[3*slot..]` holds
 * (producer, seq, state): 1 taken, 2 forwarded. A get that returns later than its
 * timeout plus a second counts in `late[slot]`. Exits once `stop[0]` is 2 and the queue
 * stays empty.
 */
export function queueConsumer(q: Queue, results: Queue, slot: number, taken: Float64Array, late: Float64Array, stop: Int32Array): void {
  for (;;) {
    const t = Date.now();
    let item: [number, number, string];
    try {
      item = q.getSync(true, 0.5) as [number, number, string];
    } catch {
      if (Date.now() - t > 1500) late[slot]++;
      if (Atomics.load(stop, 0) === 2) return;
      continue;
    }
    if (Date.now() - t > 1500) late[slot]++;
    const [p, seq, body] = item;
    taken[3 * slot] = p;
    taken[3 * slot + 1] = seq;
    taken[3 * slot + 2] = 1;
    results.putSync([p, seq, body === payload(p, seq)]);
    taken[3 * slot + 2] = 2;
  }
}

/**
 * Increment `value[0]` under `lock` (holding it a little, so that kills land inside),
 * then count it in `counts[slot]` once released.
 */
export function lockIncrementer(lock: Lock, value: Int32Array, counts: Float64Array, slot: number, stop: Int32Array): void {
  while (!Atomics.load(stop, 0)) {
    lock.acquireSync();
    const v = value[0];
    const until = performance.now() + 0.05;
    while (performance.now() < until) { /* hold the lock */ }
    value[0] = v + 1;
    lock.release();
    counts[slot]++;
  }
}

/** A pool task: correct results are checked by the parent. */
export function square(x: number): number {
  const until = performance.now() + 0.2;
  while (performance.now() < until) { /* a little work, so that kills land mid-task */ }
  return x * x;
}

/** A good client: round trips until `stop[0]`; latencies (ms) go back through `conn`. */
export async function goodClient(address: string, authkey: Buffer, conn: Connection, stop: Int32Array): Promise<void> {
  const c = await Client(address, { authkey });
  const lat: number[] = [];
  const msg = Buffer.alloc(64, 1);
  while (!Atomics.load(stop, 0)) {
    const t = performance.now();
    c.sendBytes(msg);
    await c.recvBytes();
    lat.push(performance.now() - t);
    if (lat.length % 64 === 0) await new Promise((r) => setImmediate(r));
  }
  c.close();
  conn.send(lat);
  conn.close();
}

const BAD_KINDS = ['garbage', 'truncated', 'huge', 'wrongkey', 'silent', 'postauth'] as const;

/**
 * Bad clients, `parallel` at a time, until `stop[0]`: garbage, a truncated frame, a header
 * claiming 2 GiB, a wrong key, nothing at all (slow loris), or garbage after a correct
 * handshake. Each kind's count goes to `counts[kind]`.
 */
export async function badClients(address: string, authkey: Buffer, counts: Float64Array, stop: Int32Array, parallel: number): Promise<void> {
  const one = async (k: number): Promise<void> => {
    const kind = BAD_KINDS[k % BAD_KINDS.length];
    counts[k % BAD_KINDS.length]++;
    if (kind === 'wrongkey' || kind === 'postauth') {
      try {
        const c = await Client(address, { authkey: kind === 'wrongkey' ? Buffer.from('wrong') : authkey, handshakeTimeout: 5 });
        const fd = c._detach();
        const s = new net.Socket({ fd, readable: true, writable: true });
        s.on('error', () => {});
        s.end(Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
        await new Promise((r) => setTimeout(r, 20));
        s.destroy();
      } catch {
        /* refused, as it should be */
      }
      return;
    }
    await new Promise<void>((resolve) => {
      const s = net.connect(address);
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('data', () => {});
      s.on('connect', () => {
        if (kind === 'garbage') s.end(Buffer.from('GET / HTTP/1.1\r\n\r\n'.repeat(8)));
        else if (kind === 'truncated') s.end(Buffer.from([0, 0, 0, 100, 1, 2, 3]));
        else if (kind === 'huge') s.end(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0]));
        // silent: say nothing; the listener's handshake timeout closes it.
      });
      setTimeout(() => s.destroy(), kind === 'silent' ? 3000 : 1000).unref();
    });
  };
  let k = 0;
  const lanes = Array.from({ length: parallel }, async () => {
    while (!Atomics.load(stop, 0)) await one(k++);
  });
  await Promise.all(lanes);
}

/**
 * A manager's client: connects to the server at `address`, then until `stop[0]` is set
 * makes objects of its own (a dict and a list, dropped at once: released when collected,
 * or all together when the client dies), calls methods on them, and sets
 * `shared[slot] = n + 1` for its n-th round; `done[slot]` is the number of rounds whose
 * set returned.
 */
export async function managerClient(address: Address, authkey: Uint8Array, shared: DictProxy<number, number>, slot: number, done: Float64Array, stop: Int32Array): Promise<void> {
  const m = new SyncManager(address, authkey);
  await m.connect();
  for (let n = 0; !Atomics.load(stop, 0); n++) {
    const d = await m.dict({ n });
    const l = await m.list([n]);
    await l.append((await d.get('n')) as number);
    if ((await l.len()) !== 2) throw new Error('a managed list lost an item');
    await shared.setItem(slot, n + 1);
    done[slot] = n + 1;
  }
}
