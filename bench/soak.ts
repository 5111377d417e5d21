// `npm run soak`: the library under faults and long load (issue 14). Each scenario runs for
// a set time with random SIGKILLs, checks its invariant at the end, and prints one JSON
// line: scenario, duration_s, faults, ops, lost, duplicates, hangs, worst_wait_after_fault_ms,
// ok, and figures of its own. A violated invariant makes the run exit 1.
//
//   node --expose-gc dist/bench/soak.js [--seconds S | --total S] [scenario ...]
//
// Scenarios: queue, locks, pool, listener, managers, leaks. `--seconds` is each scenario's time
// (default 60); `--total` splits a budget between them (CI's smoke run: --total 60).
// Without either (the full-length run), `leaks` runs to the figures whatever
// the time: 1,000 start/join cycles, a million Pipe messages, 10,000 Locks and Values.
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Lock, Pipe, Process, Queue, RawArray, Value, WorkerLostError, type Connection } from '../index.js';
import { Listener } from '../src/connection.js';
import { Manager, type DictProxy } from '../src/managers.js';
import { Pool } from '../src/pool.js';
import { badClients, goodClient, lockIncrementer, managerClient, queueConsumer, queueProducer, square } from './soak_targets.js';

const args = process.argv.slice(2);
function flag(name: string): number | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : undefined;
}
const names = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const ALL = ['queue', 'locks', 'pool', 'listener', 'managers', 'leaks'];
const chosen = names.length ? names : ALL;
const total = flag('--total');
const seconds = flag('--seconds') ?? (total !== undefined ? total / chosen.length : 60);
/** The full-length run: no time given. */
const fullLength = flag('--seconds') === undefined && total === undefined;

interface Row {
  scenario: string;
  duration_s: number;
  faults: number;
  ops: number;
  lost: number;
  duplicates: number;
  hangs: number;
  worst_wait_after_fault_ms: number;
  ok: boolean;
  [k: string]: unknown;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rand = (n: number): number => Math.floor(Math.random() * n);
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/** Resolves to `p`'s value, or `onTimeout` after `ms` (a hang). */
function within<T>(p: Promise<T>, ms: number, onTimeout: T): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((r) => (timer = setTimeout(() => r(onTimeout), ms)))]).finally(() => clearTimeout(timer));
}

function start(target: (...a: any[]) => unknown, args: unknown[]): Process {
  const p = new Process({ target, args, daemon: true });
  p.start();
  return p;
}

async function kill(p: Process): Promise<void> {
  if (p.exitcode === null) p.kill();
  await p.join();
  p.close();
}

/** Reaped: no longer in the process table (a zombie still is). */
function reaped(pid: number): boolean {
  return !existsSync(`/proc/${pid}`);
}

// --- Queue: producers and consumers killed and replaced at random -------------------

async function queueScenario(ms: number): Promise<Row> {
  const P = 3;
  const C = 3;
  const SLOTS = 512;
  const q = new Queue();
  const results = new Queue();
  const done: Float64Array = RawArray('d', SLOTS);
  const taken: Float64Array = RawArray('d', 3 * SLOTS);
  const late: Float64Array = RawArray('d', SLOTS);
  const stop: Int32Array = RawArray('i', 1);
  let nextSlot = 0;
  const producers = new Map<Process, number>();
  const consumers = new Map<Process, number>();
  const killedConsumerSlots: number[] = [];
  const producerOf = new Map<number, number>(); // producer id -> slot
  const addProducer = (): void => {
    const slot = nextSlot++;
    producerOf.set(slot, slot);
    producers.set(start(queueProducer, [q, slot, slot, done, stop]), slot);
  };
  const addConsumer = (): void => {
    const slot = nextSlot++;
    consumers.set(start(queueConsumer, [q, results, slot, taken, late, stop]), slot);
  };
  for (let i = 0; i < P; i++) addProducer();
  for (let i = 0; i < C; i++) addConsumer();
  // Per producer slot, how many times each seq arrived (saturating at 255): millions of
  // items fit where a Map of keys would not.
  const received = new Map<number, Uint8Array>();
  let garbled = 0;
  const note = (slot: number, seq: number): void => {
    if (!Number.isInteger(slot) || !Number.isInteger(seq) || slot < 0 || seq < 0 || seq > 1e8) {
      garbled++;
      return;
    }
    let a = received.get(slot);
    if (!a || a.length <= seq) {
      const b = new Uint8Array(Math.max(1024, (seq + 1) * 2));
      if (a) b.set(a);
      received.set(slot, (a = b));
    }
    if (a[seq] < 255) a[seq]++;
  };
  const count = (slot: number, seq: number): number => received.get(slot)?.[seq] ?? 0;
  let corrupt = 0;
  let lastProgress = performance.now();
  let faults = 0;
  let worstWait = 0;
  let pendingFault: number | null = null;
  let draining = true;
  // The parent drains the results as they come.
  const drain = (async () => {
    while (draining || !results.empty()) {
      let r: [number, number, boolean];
      try {
        r = (await results.get(true, 0.2)) as [number, number, boolean];
      } catch {
        continue;
      }
      note(r[0], r[1]);
      if (!r[2]) corrupt++;
      lastProgress = performance.now();
      if (pendingFault !== null) {
        worstWait = Math.max(worstWait, lastProgress - pendingFault);
        pendingFault = null;
      }
    }
  })();
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await sleep(100 + rand(300));
    const victims = [...producers.keys(), ...consumers.keys()];
    const v = victims[rand(victims.length)];
    const consumerSlot = consumers.get(v);
    await kill(v);
    faults++;
    pendingFault ??= performance.now();
    if (consumerSlot !== undefined) {
      consumers.delete(v);
      killedConsumerSlots.push(consumerSlot);
      addConsumer();
    } else {
      producers.delete(v);
      addProducer();
    }
  }
  // Stop producing, then let the consumers empty the queue.
  Atomics.store(stop, 0, 1);
  let hangs = 0;
  for (const p of producers.keys()) if (!(await within(p.join(10).then(() => p.exitcode !== null), 11_000, false))) hangs++;
  Atomics.store(stop, 0, 2);
  for (const p of consumers.keys()) if (!(await within(p.join(30).then(() => p.exitcode !== null), 31_000, false))) hangs++;
  draining = false;
  await within(drain, 10_000, undefined);
  for (const p of [...producers.keys(), ...consumers.keys()]) if (p.exitcode === null) await kill(p);
  // Every item whose put returned arrived once, or was in the hands of a consumer killed
  // with it (at most one per killed consumer; its slot says which when it got that far).
  let missing = 0;
  let ops = 0;
  let duplicates = 0;
  let impossible = 0;
  const missingKeys = new Set<string>();
  for (const [slot] of producerOf) {
    for (let seq = 0; seq < done[slot]; seq++) {
      const n = count(slot, seq);
      if (n === 0) {
        missing++;
        missingKeys.add(`${slot}:${seq}`);
      }
      if (n > 1) duplicates += n - 1;
    }
  }
  for (const [slot, a] of received) {
    for (let seq = 0; seq < a.length; seq++) {
      const n = a[seq];
      if (n === 0) continue;
      ops += n;
      // A producer killed mid-put may have published its last item: seq == done.
      if (seq > done[slot]) impossible++;
      if (seq === done[slot] && n > 1) duplicates += n - 1;
    }
  }
  let tracked = 0;
  for (const s of killedConsumerSlots) {
    const key = `${taken[3 * s]}:${taken[3 * s + 1]}`;
    if (taken[3 * s + 2] === 1 && missingKeys.delete(key)) tracked++;
  }
  // A consumer killed inside get (before its slot said anything) takes at most that one item.
  const untrackedAllowance = killedConsumerSlots.length - tracked;
  const lost = Math.max(0, missingKeys.size - untrackedAllowance);
  hangs += late.reduce((a, b) => a + b, 0);
  const row: Row = {
    scenario: 'queue', duration_s: round((performance.now() - t0) / 1000), faults, ops, lost, duplicates, hangs,
    worst_wait_after_fault_ms: round(worstWait), ok: false,
    producers_killed: faults - killedConsumerSlots.length, consumers_killed: killedConsumerSlots.length,
    taken_by_killed_consumers: missing - missingKeys.size + Math.min(missingKeys.size, untrackedAllowance), corrupt: corrupt + impossible + garbled,
  };
  row.ok = lost === 0 && duplicates === 0 && hangs === 0 && corrupt + impossible + garbled === 0;
  return row;
}

// --- Locks and shared Values: holders killed at random ---------------------------

async function locksScenario(ms: number): Promise<Row> {
  const W = 4;
  const SLOTS = 512;
  const lock = new Lock();
  const value: Int32Array = RawArray('i', 1);
  const counts: Float64Array = RawArray('d', SLOTS);
  const stop: Int32Array = RawArray('i', 1);
  let nextSlot = 0;
  const workers: Process[] = [];
  const add = (): void => {
    workers.push(start(lockIncrementer, [lock, value, counts, nextSlot++, stop]));
  };
  for (let i = 0; i < W; i++) add();
  let faults = 0;
  let worstWait = 0;
  let hangs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await sleep(50 + rand(250));
    const i = rand(workers.length);
    const before = Atomics.load(value, 0);
    await kill(workers[i]);
    workers.splice(i, 1);
    add();
    faults++;
    // The others go on: the value moves again once a survivor has taken the lock over.
    const t = performance.now();
    while (Atomics.load(value, 0) === before && performance.now() - t < 10_000) await sleep(1);
    const waited = performance.now() - t;
    if (waited >= 10_000) hangs++;
    worstWait = Math.max(worstWait, waited);
  }
  Atomics.store(stop, 0, 1);
  for (const p of workers) {
    if (!(await within(p.join(10).then(() => p.exitcode !== null), 11_000, false))) hangs++;
    if (p.exitcode === null) await kill(p);
  }
  const completed = counts.reduce((a, b) => a + b, 0);
  const final = Atomics.load(value, 0);
  // Each kill may leave one increment made and not yet counted; none may vanish.
  const lost = Math.max(0, completed - final);
  const duplicates = Math.max(0, final - completed - faults);
  const row: Row = {
    scenario: 'locks', duration_s: round((performance.now() - t0) / 1000), faults, ops: final, lost, duplicates, hangs,
    worst_wait_after_fault_ms: round(worstWait), ok: false, value: final, completed_increments: completed,
    made_by_killed_holders: final - completed,
  };
  row.ok = lost === 0 && duplicates === 0 && hangs === 0;
  return row;
}

// --- Pool: workers killed during map, imap and applyAsync -------------------------

async function poolScenario(ms: number): Promise<Row> {
  const pool = new Pool(3);
  const pids = new Set<number>();
  let faults = 0;
  let ops = 0;
  let wrong = 0;
  let failedWithLost = 0;
  let otherErrors = 0;
  let hangs = 0;
  let worstWait = 0;
  let lastFault: number | null = null;
  const progress = (): void => {
    if (lastFault !== null) {
      worstWait = Math.max(worstWait, performance.now() - lastFault);
      lastFault = null;
    }
  };
  let running = true;
  const killer = (async () => {
    while (running) {
      await sleep(100 + rand(400));
      if (!running) break;
      const ws = pool._pool;
      for (const w of ws) if (w.pid) pids.add(w.pid);
      const v = ws[rand(ws.length)];
      if (v?.pid && v.exitcode === null) {
        process.kill(v.pid, 'SIGKILL');
        faults++;
        lastFault ??= performance.now();
      }
    }
  })();
  const outcome = (e: unknown): void => {
    if (e instanceof WorkerLostError) failedWithLost++;
    else otherErrors++;
  };
  const t0 = performance.now();
  const LIMIT = 60_000;
  while (performance.now() - t0 < ms) {
    const xs = Array.from({ length: 40 + rand(80) }, (_, i) => i + rand(1000));
    const kind = rand(3);
    if (kind === 0) {
      const r = await within(pool.map(square, xs, 1 + rand(4)).then((v) => ({ v }), (e) => ({ e })), LIMIT, null);
      if (r === null) hangs++;
      else if ('e' in r) outcome(r.e);
      else {
        ops += xs.length;
        for (let i = 0; i < xs.length; i++) if (r.v[i] !== xs[i] * xs[i]) wrong++;
        progress();
      }
    } else if (kind === 1) {
      const cs = 1 + rand(4);
      const it = pool.imap(square, xs, cs);
      for (let i = 0; i < xs.length; i++) {
        let r: IteratorResult<number>;
        try {
          r = await it.next(LIMIT / 1000);
        } catch (e) {
          if ((e as Error).name === 'TimeoutError') {
            hangs++;
            break;
          }
          outcome(e);
          // As Python's imap: after a failed item next() goes on; a failed chunk of
          // several items ends the iteration.
          if (cs === 1) continue;
          const after = await within(it.next(), LIMIT, null);
          if (after === null) hangs++;
          else if (!after.done) wrong++;
          break;
        }
        if (r.done) {
          wrong++;
          break;
        }
        ops++;
        if (r.value !== xs[i] * xs[i]) wrong++;
        progress();
      }
    } else {
      const rs = xs.map((x) => [x, pool.applyAsync(square, [x])] as const);
      for (const [x, r] of rs) {
        try {
          const v = await r.get(LIMIT / 1000);
          ops++;
          if (v !== x * x) wrong++;
          progress();
        } catch (e) {
          if ((e as Error).name === 'TimeoutError') hangs++;
          else outcome(e);
        }
      }
    }
  }
  running = false;
  await killer;
  for (const w of pool._pool) if (w.pid) pids.add(w.pid);
  pool.close();
  if (!(await within(pool.join().then(() => true), 60_000, false))) hangs++;
  const zombies = [...pids].filter((pid) => !reaped(pid)).length;
  const row: Row = {
    scenario: 'pool', duration_s: round((performance.now() - t0) / 1000), faults, ops, lost: 0, duplicates: 0, hangs,
    worst_wait_after_fault_ms: round(worstWait), ok: false, wrong_results: wrong,
    failed_with_worker_lost: failedWithLost, other_errors: otherErrors, zombies,
  };
  row.ok = hangs === 0 && wrong === 0 && otherErrors === 0 && zombies === 0;
  return row;
}

// --- Listener: good clients' round trips while bad clients misbehave ---------------

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function goodRun(address: string, key: Buffer, n: number, ms: number, bad: boolean): Promise<{ lat: number[]; badCounts: number[] }> {
  const stop: Int32Array = RawArray('i', 1);
  const badCounts: Float64Array = RawArray('d', 8);
  const clients: Array<[Process, Connection]> = [];
  for (let i = 0; i < n; i++) {
    const [mine, theirs] = Pipe();
    clients.push([start(goodClient, [address, key, theirs, stop]), mine]);
    theirs.close();
  }
  const badProc = bad ? start(badClients, [address, key, badCounts, stop, 8]) : null;
  await sleep(ms);
  Atomics.store(stop, 0, 1);
  const lat: number[] = [];
  for (const [p, c] of clients) {
    const got = await within(c.recv() as Promise<number[]>, 30_000, null);
    if (got) for (const x of got) lat.push(x);
    c.close();
    await within(p.join(10), 11_000, undefined);
    if (p.exitcode === null) await kill(p);
  }
  if (badProc) {
    await within(badProc.join(15), 16_000, undefined);
    if (badProc.exitcode === null) await kill(badProc);
  }
  return { lat, badCounts: [...badCounts] };
}

async function listenerScenario(ms: number): Promise<Row> {
  const key = Buffer.from('soak-key');
  const l = new Listener({ authkey: key, handshakeTimeout: 2, backlog: 64 });
  const address = l.address as string;
  let serving = true;
  let refused = 0;
  let served = 0;
  const conns = new Set<Connection>();
  const acceptLoop = (async () => {
    while (serving) {
      let c: Connection;
      try {
        c = await l.accept();
      } catch {
        refused++;
        continue;
      }
      served++;
      conns.add(c);
      void (async () => {
        try {
          for (;;) c.sendBytes(await c.recvBytes(1 << 20));
        } catch {
          /* the client left, or sent garbage */
        }
        conns.delete(c);
        c.close();
      })();
    }
  })();
  const t0 = performance.now();
  const quiet = await goodRun(address, key, 2, Math.min(5_000, ms / 4), false);
  const rssBefore = process.memoryUsage().rss;
  const loaded = await goodRun(address, key, 2, ms - Math.min(5_000, ms / 4), true);
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  serving = false;
  l.close();
  await within(acceptLoop, 5_000, undefined);
  for (const c of conns) c.close();
  const p50q = percentile(quiet.lat, 0.5);
  const p50l = percentile(loaded.lat, 0.5);
  const p99q = percentile(quiet.lat, 0.99);
  const p99l = percentile(loaded.lat, 0.99);
  const worst = loaded.lat.length ? loaded.lat.reduce((a, b) => Math.max(a, b), 0) : Infinity;
  const badTotal = loaded.badCounts.reduce((a, b) => a + b, 0);
  const row: Row = {
    scenario: 'listener', duration_s: round((performance.now() - t0) / 1000), faults: badTotal, ops: quiet.lat.length + loaded.lat.length,
    lost: 0, duplicates: 0, hangs: worst > 5_000 ? 1 : 0, worst_wait_after_fault_ms: round(worst, 2), ok: false,
    p50_unloaded_ms: round(p50q, 3), p50_loaded_ms: round(p50l, 3), p99_unloaded_ms: round(p99q, 3), p99_loaded_ms: round(p99l, 3),
    p50_factor: round(p50l / p50q, 2), bad_clients_refused: refused, connections_served: served, rss_growth_mb: round(rssGrowth / 2 ** 20),
  };
  // Good clients kept going at a latency within a small factor of the quiet run (the bad
  // clients share the machine's two cores), and the server's memory stayed bounded.
  row.ok = loaded.lat.length > 0 && row.hangs === 0 && p50l / p50q < 10 && rssGrowth < 256 * 2 ** 20;
  return row;
}

// --- Managers: clients killed mid-call ----------------------------------------------

async function managersScenario(ms: number): Promise<Row> {
  const W = 3;
  const SLOTS = 512;
  const m = await Manager();
  const shared = (await m.dict()) as DictProxy<number, number>;
  // What the server holds before any client: the shared dict (the clients' objects come
  // and go; killed clients' must go too).
  const baseline = await m.numberOfObjects();
  const done: Float64Array = RawArray('d', SLOTS);
  const stop: Int32Array = RawArray('i', 1);
  let nextSlot = 0;
  const clients: Process[] = [];
  const add = (): void => {
    clients.push(start(managerClient, [m.address, m._authkey, shared, nextSlot++, done, stop]));
  };
  for (let i = 0; i < W; i++) add();
  let faults = 0;
  let hangs = 0;
  let worstWait = 0;
  let maxObjects = baseline;
  const t0 = performance.now();
  while (performance.now() - t0 < ms && nextSlot < SLOTS) {
    await sleep(100 + rand(400));
    const i = rand(clients.length);
    await kill(clients[i]);
    clients.splice(i, 1);
    add();
    faults++;
    // The server goes on serving the others: a call of ours returns.
    const t = performance.now();
    const n = await within(m.numberOfObjects(), 10_000, null);
    const waited = performance.now() - t;
    if (n === null) hangs++;
    else maxObjects = Math.max(maxObjects, n);
    worstWait = Math.max(worstWait, waited);
  }
  Atomics.store(stop, 0, 1);
  for (const p of clients) {
    if (!(await within(p.join(10).then(() => p.exitcode !== null), 11_000, false))) hangs++;
    if (p.exitcode === null) await kill(p);
  }
  // Every client is gone: the server's object count returns to its baseline.
  let objects = await m.numberOfObjects();
  for (const t = performance.now(); objects !== baseline && performance.now() - t < 10_000;) {
    await sleep(100);
    objects = await m.numberOfObjects();
  }
  // Each slot's value is its completed rounds, or one more (a set made, then killed
  // before counting it).
  const values = new Map(await shared.items());
  let lost = 0;
  let duplicates = 0;
  let completed = 0;
  for (let slot = 0; slot < nextSlot; slot++) {
    const c = done[slot];
    const v = values.get(slot) ?? 0;
    completed += c;
    if (v < c) lost += c - v;
    if (v > c + 1) duplicates += v - c - 1;
  }
  const serverAlive = m._process?.exitcode === null;
  await m.shutdown();
  const row: Row = {
    scenario: 'managers', duration_s: round((performance.now() - t0) / 1000), faults, ops: completed, lost, duplicates, hangs,
    worst_wait_after_fault_ms: round(worstWait), ok: false, clients: nextSlot, objects_baseline: baseline,
    objects_peak: maxObjects, objects_at_end: objects, server_alive: serverAlive,
  };
  row.ok = lost === 0 && duplicates === 0 && hangs === 0 && objects === baseline && serverAlive;
  return row;
}

// --- Leaks: start/join, Pipe messages, Locks and Values made and dropped -----------

function resources(): { fds: number; memfds: number; rss: number; arenas: number } {
  const fds = readdirSync('/proc/self/fd');
  let memfds = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:')) memfds++;
    } catch {
      /* the directory's own descriptor, closed meanwhile */
    }
  }
  const arenas = readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('mp-heap')).length;
  return { fds: fds.length, memfds, rss: process.memoryUsage().rss, arenas };
}

async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 5; i++) {
    gc?.();
    await sleep(20);
  }
}

async function leaksScenario(ms: number): Promise<Row> {
  // Each phase has a third of the time, up to the figures (1,000 start/join
  // cycles, a million Pipe messages, 10,000 Locks and Values); the full-length run
  // (no time given) goes to the figures whatever the time.
  const phase = fullLength ? Infinity : ms / 3;
  const t0 = performance.now();
  // Warm up what stays for the life of the process (reactor, waiter, first arenas).
  {
    const p = start(square, [1]);
    await p.join();
    const [a, b] = Pipe();
    a.send(1);
    await b.recv();
    a.close();
    b.close();
    for (let i = 0; i < 100; i++) new Lock();
    Value('i', 1);
    await collect();
  }
  const base = resources();
  let ops = 0;
  let cycles = 0;
  for (let t = performance.now(); cycles < 1000 && performance.now() - t < phase; cycles++) {
    const p = new Process({ target: square, args: [cycles] });
    p.start();
    await p.join();
    ops++;
  }
  let messages = 0;
  const [a, b] = Pipe();
  for (let t = performance.now(); messages < 1_000_000 && (messages % 1000 !== 0 || performance.now() - t < phase); messages++) {
    a.send(messages);
    if (b.recvSync() !== messages) throw new Error('pipe message out of order');
    ops++;
  }
  a.close();
  b.close();
  // Locks and Values in two rounds: blocks freed by collection are reused, so the second
  // round must not add arenas (an arena, once mapped, stays for the life of the process).
  let objects = 0;
  let mid = base;
  for (const round of [0, 1]) {
    for (let t = performance.now(), n = 0; n < 5_000 && (n % 100 !== 0 || performance.now() - t < phase / 2); n++, objects++) {
      const lock = new Lock();
      lock.acquireSync();
      lock.release();
      const v = Value('d', n);
      v.value += 1;
      ops += 2;
    }
    await collect();
    if (round === 0) mid = resources();
  }
  const end = resources();
  const row: Row = {
    scenario: 'leaks', duration_s: round((performance.now() - t0) / 1000), faults: 0, ops, lost: 0, duplicates: 0, hangs: 0,
    worst_wait_after_fault_ms: 0, ok: false, start_join_cycles: cycles, pipe_messages: messages, locks_and_values: objects,
    full_figures: cycles >= 1000 && messages >= 1_000_000 && objects >= 10_000,
    fds_growth: end.fds - base.fds, memfd_growth: end.memfds - base.memfds, arena_growth: end.arenas - base.arenas,
    rss_growth_mb: round((end.rss - base.rss) / 2 ** 20), gc: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
  row.arenas_added_by_second_round = end.arenas - mid.arenas;
  // Descriptors and memfds back to the baseline, but for the arenas the first round of
  // Locks/Values mapped (kept for the life of the process); the second round maps none;
  // RSS within 64 MiB (V8's heap settles where it likes).
  const arenas = end.arenas - base.arenas;
  row.ok = (!fullLength || row.full_figures === true) && end.fds - base.fds <= arenas && end.memfds - base.memfds <= arenas && end.arenas === mid.arenas && end.fds === mid.fds &&
    (row.rss_growth_mb as number) < 64;
  return row;
}

const scenarios: Record<string, (ms: number) => Promise<Row>> = {
  queue: queueScenario,
  locks: locksScenario,
  pool: poolScenario,
  listener: listenerScenario,
  managers: managersScenario,
  leaks: leaksScenario,
};

let failed = false;
for (const name of chosen) {
  const run = scenarios[name];
  if (!run) {
    console.error(`unknown scenario ${name}: ${ALL.join(', ')}`);
    process.exit(2);
  }
  const row = await run(seconds * 1000);
  console.log(JSON.stringify(row));
  if (!row.ok) failed = true;
}
process.exit(failed ? 1 : 0);
