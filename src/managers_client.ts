// A process's (a JS thread's) channel to a manager's server: ONE authenticated connection,
// multiplexed with request ids. Async calls pipeline (the requests of one tick leave in one
// message); synchronous calls block on the same connection and set aside the replies of
// other ids; decrefs are batched and need no reply. Proxies of a server living in this very
// process talk to it directly (a server never connects to itself). A client on the same
// machine (a Unix socket address) gets a shared-memory channel in its hello reply and sends
// and receives its batches there (managers_shm.ts); the socket stays for liveness, wake-ups
// and what the shared memory cannot carry.
// One file past 800 lines on purpose: the pending-call table, the pipelining flush, the
// blocking path that sets aside other ids' replies and the failure of every pending call
// when the server goes are one protocol over the same state.
import { threadId } from 'node:worker_threads';
import { inspect } from 'node:util';
import { _connectSync, type Address, type Connection } from './connection.js';
import { ManagerGoneError, pythonErrorClass, RemoteError, TimeoutError } from './errors.js';
import { Backoff, ShmLink, ShmSegment } from './managers_shm.js';
import { unflatten, v8Dialect, type Dialect, type ReplyKind, type Request } from './managers_wire.js';
import { timeoutSeconds, type Timeout } from './timeouts.js';
import { atExit } from './util.js';
import * as reactor from './wait.js';

/** A reply's kind and value. @internal */
export type RawReply = [kind: ReplyKind, value: unknown];

/** A server in this process, answering its own proxies directly. @internal */
export interface LocalServer {
  sid: string;
  request(ident: string | null, method: string, args: unknown[]): RawReply | Promise<RawReply>;
}
const localServers = new Map<string, LocalServer>();
/** @internal */
export function registerLocalServer(sid: string, s: LocalServer): void {
  localServers.set(sid, s);
}

/**
 * How long a proxy's call may take (`proxy._callmethod(name, args, kwds, { timeout, signal })`,
 * `proxy._withOptions({ timeout, signal })`). A call that runs out of time rejects with
 * `TimeoutError`, an aborted one with the signal's reason; either is abandoned: its reply,
 * when it comes, is dropped, and the connection goes on serving the other calls. A reply read
 * after the time ran out (the event loop was busy meanwhile) counts as too late as well.
 */
export interface CallOptions {
  /** Seconds to wait for the reply at most (null or absent: no limit; negative: zero). */
  timeout?: Timeout;
  /** Abandon the call when this signal aborts (the async form only; a `...Sync` call takes it only if already aborted). */
  signal?: AbortSignal | null;
}

/** What a reply becomes (a proxy's result, or its error thrown), computed where the reply is read. @internal */
export type Finish = (kind: ReplyKind, value: unknown) => unknown;

/** What proxies call through. @internal */
export interface Channel {
  /**
   * Call `method` of object `ident` (null: of the server). Resolves with `finish(kind, value)`
   * (one Promise per call), or with the `[kind, value]` reply when `finish` is null.
   */
  call(ident: string | null, method: string, args: unknown[], finish?: Finish | null, limits?: CallOptions | null): Promise<any>;
  callSync(ident: string | null, method: string, args: unknown[], limits?: CallOptions | null): RawReply;
  /** A request needing no reply (sent with the next batch, or at once when `now`). */
  notify(ident: string | null, method: string, args: unknown[], now?: boolean): void;
  /** Give back one reference (batched). */
  decref(ident: string): void;
  /** Whether the server is known to be gone. */
  readonly gone: boolean;
}

class LocalChannel implements Channel {
  constructor(private readonly server: LocalServer) {}
  get gone(): boolean {
    return false;
  }
  call(ident: string | null, method: string, args: unknown[], finish: Finish | null = null, limits: CallOptions | null = null): Promise<any> {
    let p: Promise<RawReply>;
    try {
      p = Promise.resolve(this.server.request(ident, method, args));
    } catch (e) {
      p = Promise.reject(e);
    }
    return withLimits(finish ? p.then((r) => finish(r[0], r[1])) : p, method, limits);
  }
  callSync(ident: string | null, method: string, args: unknown[], limits: CallOptions | null = null): RawReply {
    if (limits?.signal?.aborted) throw limits.signal.reason;
    const r = this.server.request(ident, method, args);
    if (r instanceof Promise) throw new TypeError(`${method}() of an object in this process returns a Promise: use the async form`);
    return r;
  }
  notify(ident: string | null, method: string, args: unknown[]): void {
    void this.server.request(ident, method, args);
  }
  decref(ident: string): void {
    void this.server.request(null, 'decref', [ident]);
  }
}

/** Seconds a reply may take and still be read by a blocking poll rather than through the reactor. */
const QUICK_WAIT = 0.0002;
/** After quick polls missed, at most this many waits go through the reactor before the next try. */
const QUICK_PAUSE = 8;
/** Quick replies in a row before the event loop gets a turn. */
const QUICK_STREAK = 64;
/** Shared-memory channel: microseconds an async call's reply is spun for before the pump sleeps. */
const SHM_QUICK_SPIN_US = 30;
/** Shared-memory channel: microseconds a blocking call spins for its reply before it sleeps. */
const SHM_SYNC_SPIN_US = 30;
/** After spins missed, at most this many waits sleep at once. */
const SPIN_PAUSE = 8;
/** Requests per batch on the shared-memory channel (the server starts on the first while the rest are written). */
const SHM_CHUNK = 256;

/** A settled Promise: `resolved.then(f)` runs `f` as a microtask (cheaper than queueMicrotask, which makes an AsyncResource per call). */
const resolved = Promise.resolve();

/** An async call waiting for its reply. */
interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  finish: Finish | null;
  /** Its timeout, and its signal's listener (null: none). */
  timer: NodeJS.Timeout | null;
  signal: AbortSignal | null;
  onAbort: (() => void) | null;
  /**
   * With a timeout: when it runs out (performance.now() ms; 0: no timeout), and the call's
   * method and seconds (for the error). A reply read after the deadline (the event loop was
   * busy when the timer was due) rejects too: the timeout bounds the wait, whatever ran first.
   */
  deadline: number;
  method: string;
  seconds: number;
}

/** The TimeoutError of a call that ran out of time. @internal */
export function callTimedOut(method: string, seconds: number): TimeoutError {
  return new TimeoutError(`the manager's reply to ${method}() did not come within ${seconds} s (the call is abandoned)`);
}

/**
 * `p` with a call's limits (a channel that cannot drop a pending call itself): it rejects
 * when the time runs out or the signal aborts; `p`'s own outcome is then ignored.
 */
export function withLimits<T>(p: Promise<T>, method: string, limits: CallOptions | null): Promise<T> {
  if (limits === null) return p;
  let seconds: number | null;
  try {
    seconds = timeoutSeconds(limits.timeout);
  } catch (e) {
    p.catch(() => {});
    return Promise.reject(e);
  }
  const signal = limits.signal ?? null;
  if (seconds === null && signal === null) return p;
  if (signal?.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | null = null;
    const settle = (): void => {
      if (timer !== null) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      settle();
      reject(signal!.reason);
    };
    if (seconds !== null) {
      const limit = seconds;
      timer = setTimeout(() => {
        settle();
        reject(callTimedOut(method, limit));
      }, limit * 1000);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const deadline = seconds === null ? 0 : performance.now() + seconds * 1000;
    p.then((v) => {
      settle();
      if (deadline !== 0 && performance.now() > deadline) reject(callTimedOut(method, seconds!));
      else resolve(v);
    }, (e) => {
      settle();
      reject(e);
    });
  });
}

class SocketChannel implements Channel {
  #address: Address;
  #authkey: Uint8Array;
  #dialect: Dialect = v8Dialect;
  #conn: Connection | null = null;
  #gone: Error | null = null;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  /** Requests to send with the next flush, five fields each (id, ident, method, args, kwds). */
  #out: unknown[] = [];
  #decrefs: string[] | null = null;
  #flushQueued = false;
  /** The flush of a tick's requests (a microtask), then the pump if replies are awaited. */
  readonly #tick = (): void => {
    try {
      this.#flush();
    } catch {
      /* #die rejected the calls */
    }
    if (this.#pending.size > 0 && !this.#pumping && !this.#inSync) this.#pump();
  };
  #pumping = false;
  /** When a reply is waited for by a quick poll, or through the reactor at once (see #pump). */
  #quick = new Backoff(QUICK_PAUSE);
  /** When a wait spins first, or sleeps at once (see #spin). */
  #spins = new Backoff(SPIN_PAUSE);
  /** Replies read by a quick poll since the event loop last had a turn. */
  #streak = 0;
  /** Set while a synchronous call reads the connection. */
  #inSync = false;
  #stopPump: AbortController | null = null;
  /** The shared-memory channel (a local client of a 'v8' server); null: everything on the socket. */
  #link: ShmLink | null = null;
  /** Requests that found the ring full, oldest first, five fields each (see #flushShm). */
  #held: unknown[] = [];
  /** Set while a flush must send everything now (a notification sent at once, the exit). */
  #sendAll = false;
  /** Replies read and not yet delivered, three fields each (reused; null while in use). */
  #got: unknown[] | null = [];

  constructor(address: Address, authkey: Uint8Array) {
    this.#address = address;
    this.#authkey = authkey;
    // Decrefs still waiting leave before the process does.
    atExit(() => {
      try {
        this.#flushAll();
      } catch {
        /* the server is gone: nothing to give back */
      }
    }, 10);
  }

  get gone(): boolean {
    return this.#gone !== null;
  }

  #goneError(cause?: unknown): ManagerGoneError {
    const e = new ManagerGoneError(`the manager at ${inspect(this.#address)} has gone (its process ended or the connection broke)`);
    if (cause !== undefined) (e as Error).cause = cause;
    return e;
  }

  /** The connection, made (blocking) on first use. */
  #connection(): Connection {
    if (this.#gone) throw this.#goneError(this.#gone);
    if (this.#conn) return this.#conn;
    let c: Connection;
    try {
      c = _connectSync(this.#address, this.#authkey);
    } catch (e) {
      if (e instanceof Error && e.name === 'AuthenticationError') throw e;
      throw this.#goneError(e);
    }
    this.#conn = c;
    if (this.#dialect !== v8Dialect) {
      this.#out.unshift(0, null, 'hello', [process.pid, threadId], null);
      return c;
    }
    // Say who we are, and (a local client) ask for the shared-memory channel; its segment comes
    // in the reply, before any request goes.
    const local = typeof this.#address === 'string';
    try {
      const id = this.#nextId++;
      this.#dialect.sendRequests(c, [[id, null, 'hello', [process.pid, threadId, local], null]]);
      const replies = this.#dialect.replies(c.recvSync());
      const r = replies.find((x) => x[0] === id);
      if (!r) throw new TypeError('the manager did not answer hello');
      const value = unwrap([r[1], r[2]]);
      if (Array.isArray(value) && value[1] instanceof ShmSegment) this.#link = new ShmLink(value[1], 0, c);
    } catch (e) {
      this.#conn = null;
      c.close();
      if (e instanceof Error && e.name === 'AuthenticationError') throw e;
      throw this.#goneError(e);
    }
    return c;
  }

  #die(cause: unknown): void {
    if (this.#gone) return;
    this.#gone = cause instanceof Error ? cause : new Error(String(cause));
    this.#conn?.close();
    this.#conn = null;
    this.#link = null;
    this.#held = [];
    this.#stopPump?.abort();
    const err = this.#goneError(cause);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      unlisten(p);
      p.reject(err);
    }
  }

  /** Queue a request (sent by the tick's flush). */
  #queue(id: number, ident: string | null, method: string, args: unknown[]): void {
    if (this.#conn === null) this.#connection();
    this.#out.push(id, ident, method, args, null);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      resolved.then(this.#tick);
    }
  }

  /** A pending call's promise fails: reject it and forget it (its reply, if it comes, is dropped). */
  #fail(id: number, p: Pending, err: unknown): void {
    this.#pending.delete(id);
    unlisten(p);
    p.reject(err);
  }

  /** Give up a pending call (its timeout, its signal): the pump stops when no other call waits. */
  #abandon(id: number, err: unknown): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#fail(id, p, err);
    if (this.#pending.size === 0) this.#stopPump?.abort();
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#decrefs) {
      // First: a call made after the proxies were dropped (numberOfObjects) sees them gone.
      this.#out.unshift(0, null, 'decref', this.#decrefs, null);
      this.#decrefs = null;
    }
    if (this.#out.length === 0 || this.#gone) return;
    const batch = this.#out;
    this.#out = [];
    if (this.#link) {
      this.#flushShm(this.#link, batch);
      return;
    }
    const reqs = unflatten(batch, 0, batch.length, 5) as Request[];
    try {
      this.#dialect.sendRequests(this.#connection(), reqs);
    } catch (e) {
      if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError' || e.name === 'ManagerGoneError')) {
        this.#die(e);
        throw this.#goneError(e);
      }
      // An argument that does not travel: reject those calls, send the others one by one.
      for (const r of reqs) {
        try {
          this.#dialect.sendRequests(this.#connection(), [r]);
        } catch (err) {
          const p = this.#pending.get(r[0]);
          if (p) this.#fail(r[0], p, err);
        }
      }
    }
  }

  /**
   * #flush on the shared-memory channel: batches of SHM_CHUNK requests, then the doorbell if
   * the server sleeps. Async calls that find the ring full wait in #held (in order, before
   * any later call) until the pump sees room; a blocking call's flush sends everything.
   */
  #flushShm(link: ShmLink, batch: unknown[]): void {
    if (this.#held.length > 0) {
      batch = batch.length > 0 ? this.#held.concat(batch) : this.#held;
      this.#held = [];
    }
    const socketIfFull = this.#inSync || this.#sendAll;
    const chunk = 5 * SHM_CHUNK;
    try {
      for (let i = 0; i < batch.length; i += chunk) {
        const end = Math.min(batch.length, i + chunk);
        try {
          if (!link.sendFlat(batch, i, end, 5, socketIfFull)) {
            this.#held = i === 0 ? batch : batch.slice(i);
            break;
          }
        } catch (e) {
          if (!(e instanceof TypeError)) throw e;
          // An argument that does not travel: reject those calls, send the others one by one.
          for (let j = i; j < end; j += 5) {
            try {
              link.sendFlat(batch, j, j + 5, 5);
            } catch (err) {
              if (!(err instanceof TypeError)) throw err;
              const id = batch[j] as number;
              const p = this.#pending.get(id);
              if (p) this.#fail(id, p, err);
            }
          }
        }
      }
      link.wake();
    } catch (e) {
      this.#die(e);
      throw this.#goneError(e);
    }
  }

  /**
   * Deliver every reply that has come on the shared-memory channel; returns whether any had,
   * or the reply to `syncId` (a blocking call's) when it came.
   */
  #takeShm(link: ShmLink, syncId = 0): RawReply | boolean {
    let got: RawReply | boolean = false;
    // A delivery may run a proxy type's constructor, which may call (and read) again: it gets an array of its own.
    const flat = this.#got ?? [];
    this.#got = null;
    try {
      while (link.take(3, flat)) {
        if (got === false) got = true;
        for (let i = 0; i < flat.length; i += 3) {
          const id = flat[i];
          const kind = flat[i + 1];
          if (typeof id !== 'number' || typeof kind !== 'string') throw new TypeError('a manager reply must be a batch of [id, kind, value]');
          if (id === syncId) got = [kind as ReplyKind, flat[i + 2]];
          else this.#deliver(id, kind as ReplyKind, flat[i + 2]);
        }
        flat.length = 0;
      }
    } finally {
      flat.length = 0;
      this.#got = flat;
    }
    return got;
  }

  /**
   * #pump on the shared-memory channel. A reply that comes soon is waited for on this thread:
   * a short spin (while spins pay), then a blocking poll of the socket up to QUICK_WAIT; a
   * later one through the reactor (the event loop runs meanwhile).
   */
  async #pumpShm(): Promise<void> {
    try {
      await this.#pumpShmLoop();
    } catch (e) {
      this.#die(e);
    } finally {
      this.#pumping = false;
    }
    // A call made after the loop's last look (by code its deliveries ran) found it still running;
    // one whose request waits for the tick's flush is pumped by that tick.
    if (this.#pending.size > 0 && !this.#gone && !this.#flushQueued) this.#pump();
  }

  async #pumpShmLoop(): Promise<void> {
    while (this.#pending.size > 0 && this.#link) {
      const link = this.#link;
      // Never wait for the replies of requests not sent yet.
      if (this.#flushQueued) this.#flush();
      if (this.#held.length > 0) this.#flushShm(link, []);
      if (this.#takeShm(link)) continue;
      if (this.#streak >= QUICK_STREAK) {
        // Let timers and I/O run, then carry on.
        this.#streak = 0;
        await new Promise((r) => setImmediate(r));
        continue;
      }
      if (this.#quick.tryNow()) {
        this.#streak++;
        if (!this.#spin(link, SHM_QUICK_SPIN_US)) link.waitSync(QUICK_WAIT);
        if (link.ready()) {
          this.#quick.hit();
          continue;
        }
        this.#quick.miss();
      }
      if (this.#held.length > 0) {
        // Requests wait for room: look again soon (their replies cannot wake us).
        await new Promise((r) => setTimeout(r, 1));
        this.#streak = 0;
        continue;
      }
      if (this.#pending.size === 0) break;
      if (link.sleepBegin()) {
        const stop = (this.#stopPump = new AbortController());
        try {
          await reactor.readable(this.#conn!.fileno(), null, stop.signal);
        } finally {
          this.#stopPump = null;
          link.sleepEnd();
        }
        this.#streak = 0;
      }
      if (this.#link === link) link.drainSocket();
    }
  }

  /** Spin for a batch, unless the last spins missed (the server is busy or descheduled). */
  #spin(link: ShmLink, us: number): boolean {
    if (!this.#spins.tryNow()) return false;
    if (link.spin(us)) {
      this.#spins.hit();
      return true;
    }
    this.#spins.miss();
    return false;
  }

  /** A reply to an async call: settle its Promise with what the reply becomes (dropped when the call was abandoned). */
  #deliver(id: number, kind: ReplyKind, value: unknown): void {
    const p = this.#pending.get(id);
    if (p === undefined) return; // an abandoned call's reply
    this.#pending.delete(id);
    if (p.timer !== null || p.onAbort !== null) unlisten(p);
    if (p.deadline !== 0 && performance.now() > p.deadline) {
      p.reject(callTimedOut(p.method, p.seconds));
      return;
    }
    if (p.finish === null) {
      p.resolve([kind, value]);
      return;
    }
    let v: unknown;
    try {
      v = p.finish(kind, value);
    } catch (e) {
      p.reject(e);
      return;
    }
    p.resolve(v);
  }

  /**
   * Read replies while async calls wait; stops (releasing the event loop) when none does.
   * A reply that comes within QUICK_WAIT of the request is read by a short blocking poll (no
   * hop through the reactor thread); after a miss, the next few go through the reactor,
   * and a long run of quick replies yields to the event loop now and then.
   */
  #pump(): void {
    if (this.#pumping) return;
    const link = this.#link;
    if (link !== null) {
      // Most replies come within the quick wait: taken here, without the async loop's machinery.
      try {
        if (this.#quickShm(link)) return;
      } catch (e) {
        this.#die(e);
        return;
      }
      this.#pumping = true;
      void this.#pumpShm();
      return;
    }
    this.#pumping = true;
    void this.#pumpSocket();
  }

  /**
   * The pump's first round on the shared-memory channel, synchronous: take the replies that
   * have come and, while calls wait, one quick wait (see #pumpShm). True when no call waits
   * any more (the async loop is not needed).
   */
  #quickShm(link: ShmLink): boolean {
    if (this.#held.length > 0 || this.#flushQueued) return false;
    this.#takeShm(link);
    if (this.#pending.size === 0) return true;
    if (this.#streak >= QUICK_STREAK || !this.#quick.tryNow()) return false;
    this.#streak++;
    if (!this.#spin(link, SHM_QUICK_SPIN_US)) link.waitSync(QUICK_WAIT);
    if (!link.ready()) {
      this.#quick.miss();
      return false;
    }
    this.#quick.hit();
    this.#takeShm(link);
    return this.#pending.size === 0;
  }

  /** #pump on the socket (a remote client). */
  async #pumpSocket(): Promise<void> {
    try {
      while (this.#pending.size > 0 && this.#conn) {
        const conn = this.#conn;
        let ready = conn.pollSync(0);
        if (!ready && this.#streak < QUICK_STREAK && this.#quick.tryNow()) {
          ready = conn.pollSync(QUICK_WAIT);
          if (ready) {
            this.#streak++;
            this.#quick.hit();
          } else this.#quick.miss();
        }
        if (!ready) {
          if (this.#streak >= QUICK_STREAK) {
            // Let timers and I/O run, then carry on.
            this.#streak = 0;
            await new Promise((r) => setImmediate(r));
            continue;
          }
          if (this.#pending.size === 0) break;
          const stop = (this.#stopPump = new AbortController());
          await reactor.readable(conn.fileno(), null, stop.signal);
          this.#stopPump = null;
          this.#streak = 0;
          continue;
        }
        let msg: unknown;
        try {
          msg = conn.recvSync();
        } catch (e) {
          this.#die(e);
          return;
        }
        for (const [id, kind, value] of this.#dialect.replies(msg)) this.#deliver(id, kind, value);
      }
    } catch (e) {
      this.#die(e);
    } finally {
      this.#pumping = false;
    }
  }

  call(ident: string | null, method: string, args: unknown[], finish: Finish | null = null, limits: CallOptions | null = null): Promise<any> {
    const id = this.#nextId++;
    let p!: Pending;
    const promise = new Promise<unknown>((resolve, reject) => {
      p = { resolve, reject, finish, timer: null, signal: null, onAbort: null, deadline: 0, method, seconds: 0 };
    });
    if (limits !== null) {
      let seconds: number | null;
      try {
        seconds = timeoutSeconds(limits.timeout);
        if (limits.signal?.aborted) throw limits.signal.reason;
      } catch (e) {
        p.reject(e);
        return promise;
      }
      if (seconds !== null) {
        p.deadline = performance.now() + seconds * 1000;
        p.seconds = seconds;
        p.timer = setTimeout(() => this.#abandon(id, callTimedOut(method, seconds)), seconds * 1000);
      }
      const signal = limits.signal;
      if (signal != null) {
        p.signal = signal;
        p.onAbort = () => this.#abandon(id, signal.reason);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
    }
    this.#pending.set(id, p);
    try {
      this.#queue(id, ident, method, args);
    } catch (e) {
      this.#fail(id, p, e);
    }
    return promise;
  }

  callSync(ident: string | null, method: string, args: unknown[], limits: CallOptions | null = null): RawReply {
    let deadline = Infinity;
    if (limits !== null) {
      if (limits.signal?.aborted) throw limits.signal.reason;
      const seconds = timeoutSeconds(limits.timeout);
      if (seconds !== null) deadline = performance.now() + seconds * 1000;
    }
    const conn = this.#connection();
    const id = this.#nextId++;
    this.#out.push(id, ident, method, args, null);
    this.#inSync = true;
    try {
      this.#flush();
    } finally {
      this.#inSync = false;
    }
    const mine = this.#link ? this.#waitShm(this.#link, id, deadline) : this.#waitSocket(conn, id, deadline);
    if (mine === null || (deadline !== Infinity && performance.now() > deadline)) {
      // Abandoned: its reply, when it comes, finds no call and is dropped (one read past the deadline is dropped too).
      const seconds = timeoutSeconds(limits!.timeout)!;
      throw callTimedOut(method, seconds);
    }
    return mine;
  }

  /** callSync's wait on the socket; null when `deadline` passes first. */
  #waitSocket(conn: Connection, id: number, deadline: number): RawReply | null {
    for (;;) {
      let msg: unknown;
      try {
        if (deadline !== Infinity && !conn.pollSync(Math.max(0, (deadline - performance.now()) / 1000))) {
          this.#resumePump();
          return null;
        }
        msg = conn.recvSync();
      } catch (e) {
        this.#die(e);
        throw this.#goneError(e);
      }
      let mine: RawReply | null = null;
      for (const [rid, kind, value] of this.#dialect.replies(msg)) {
        if (rid === id) mine = [kind, value];
        else this.#deliver(rid, kind, value);
      }
      if (mine) {
        this.#resumePump();
        return mine;
      }
    }
  }

  /** After a blocking call read the connection: a sleeping pump looks again (or stops when no call waits). */
  #resumePump(): void {
    if (this.#pending.size === 0 || this.#link) this.#stopPump?.abort();
    if (this.#pending.size > 0 && !this.#pumping) this.#pump();
  }

  /** callSync's wait on the shared-memory channel: spin, then sleep on the socket; null when `deadline` passes first. */
  #waitShm(link: ShmLink, id: number, deadline: number): RawReply | null {
    let mine: RawReply | boolean | null;
    try {
      for (;;) {
        mine = this.#takeShm(link, id);
        if (typeof mine !== 'boolean') break;
        if (this.#spin(link, SHM_SYNC_SPIN_US)) continue;
        if (deadline === Infinity) link.waitSync(null);
        else {
          const left = (deadline - performance.now()) / 1000;
          if (left <= 0) {
            mine = null;
            break;
          }
          link.waitSync(left);
        }
      }
    } catch (e) {
      this.#die(e);
      throw this.#goneError(e);
    }
    // A pump asleep on the socket relied on the flag just taken down: it looks again.
    this.#resumePump();
    return mine as RawReply | null;
  }

  notify(ident: string | null, method: string, args: unknown[], now = false): void {
    this.#queue(0, ident, method, args);
    if (now) this.#flushAll();
  }

  /** #flush, sending even what finds the shared-memory ring full (by the socket). */
  #flushAll(): void {
    this.#sendAll = true;
    try {
      this.#flush();
    } finally {
      this.#sendAll = false;
    }
  }

  decref(ident: string): void {
    if (this.#gone || !this.#conn) return;
    (this.#decrefs ??= []).push(ident);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      resolved.then(this.#tick);
    }
  }
}

/** A settled call no longer listens to its timer and signal. */
function unlisten(p: Pending): void {
  if (p.timer !== null) {
    clearTimeout(p.timer);
    p.timer = null;
  }
  if (p.onAbort !== null) {
    p.signal!.removeEventListener('abort', p.onAbort);
    p.onAbort = null;
  }
}

const channels = new Map<string, SocketChannel>();
/** Channels speaking Python's protocol (managers_pickle.ts), by the same key. */
const pickleChannels = new Map<string, Channel>();

function channelKey(address: Address, authkey: Uint8Array): string {
  return `${typeof address === 'string' ? address : `${address[0]}:${address[1]}`}\0${Buffer.from(authkey).toString('hex')}`;
}

/** Proxies of the manager at `address` talk through `channel` (Python's protocol). @internal */
export function _setChannel(address: Address, authkey: Uint8Array, channel: Channel): void {
  pickleChannels.set(channelKey(address, authkey), channel);
}

/** The channel to the manager at `address` (this process's server directly when `sid` is its own). @internal */
export function channelFor(address: Address, authkey: Uint8Array, sid: string | null): Channel {
  const local = sid !== null ? localServers.get(sid) : undefined;
  if (local) return new LocalChannel(local);
  const key = channelKey(address, authkey);
  if (pickleChannels.size > 0) {
    const p = pickleChannels.get(key);
    if (p) return p;
  }
  let c = channels.get(key);
  if (!c) {
    c = new SocketChannel(address, authkey);
    channels.set(key, c);
  }
  return c;
}

/** The value of a reply, or its error thrown here (the remote one as `cause`, gh-78279). @internal */
export function unwrap(r: RawReply): unknown {
  return unwrapValue(r[0], r[1]);
}

/** `unwrap` of a reply's kind and value. @internal */
export function unwrapValue(kind: ReplyKind, value: unknown): unknown {
  if (kind === '#RETURN' || kind === '#PROXY') return value;
  if (kind === '#TRACEBACK') {
    const e = new RemoteError(`\n${'-'.repeat(75)}\n${String(value)}\n${'-'.repeat(75)}`);
    throw e;
  }
  const remote = value as Error;
  const name = remote?.name ?? 'Error';
  const Cls = pythonErrorClass(name);
  const e = new Cls(remote?.message ?? String(value));
  if (e.name !== name) Object.defineProperty(e, 'name', { value: name, configurable: true, writable: true });
  Object.defineProperty(e, 'cause', { value: remote, configurable: true, writable: true });
  throw e;
}
