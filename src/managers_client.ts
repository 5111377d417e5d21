// A process's (a JS thread's) channel to a manager's server: ONE authenticated connection,
// multiplexed with request ids. Async calls pipeline (the requests of one tick leave in one
// message); synchronous calls block on the same connection and set aside the replies of
// other ids; decrefs are batched and need no reply. Proxies of a server living in this very
// process talk to it directly (a server never connects to itself). A client on the same
// machine (a Unix socket address) gets a shared-memory channel in its hello reply and sends
// and receives its batches there (managers_shm.ts); the socket stays for liveness, wake-ups
// and what the shared memory cannot carry.
import { threadId } from 'node:worker_threads';
import { inspect } from 'node:util';
import { _connectSync, type Address, type Connection } from './connection.js';
import { ManagerGoneError, pythonErrorClass, RemoteError } from './errors.js';
import { ShmLink, ShmSegment } from './managers_shm.js';
import { v8Dialect, type Dialect, type ReplyKind, type Request } from './managers_wire.js';
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

/** What proxies call through. @internal */
export interface Channel {
  call(ident: string | null, method: string, args: unknown[]): Promise<RawReply>;
  callSync(ident: string | null, method: string, args: unknown[]): RawReply;
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
  async call(ident: string | null, method: string, args: unknown[]): Promise<RawReply> {
    return this.server.request(ident, method, args);
  }
  callSync(ident: string | null, method: string, args: unknown[]): RawReply {
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
/** After a quick poll missed, this many waits go through the reactor before the next try. */
const QUICK_PAUSE = 8;
/** Quick replies in a row before the event loop gets a turn. */
const QUICK_STREAK = 64;
/** Shared-memory channel: microseconds an async call's reply is spun for before the pump sleeps. */
const SHM_QUICK_SPIN_US = 30;
/** Shared-memory channel: microseconds a blocking call spins for its reply before it sleeps. */
const SHM_SYNC_SPIN_US = 30;
/** After a spin missed, this many waits sleep at once. */
const SPIN_PAUSE = 8;
/** Requests per batch on the shared-memory channel (the server starts on the first while the rest are written). */
const SHM_CHUNK = 256;

interface Pending {
  resolve(r: RawReply): void;
  reject(e: unknown): void;
}

class SocketChannel implements Channel {
  #address: Address;
  #authkey: Uint8Array;
  #dialect: Dialect = v8Dialect;
  #conn: Connection | null = null;
  #gone: Error | null = null;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #outbox: Request[] = [];
  #decrefs: string[] | null = null;
  #flushQueued = false;
  #pumping = false;
  /** Replies to take through the reactor before trying a quick poll again (after a miss; see #pump). */
  #quickOff = 0;
  /** Waits that sleep at once before the next spin (see #spin). */
  #spinOff = 0;
  /** Replies read by a quick poll since the event loop last had a turn. */
  #streak = 0;
  /** Set while a synchronous call reads the connection. */
  #inSync = false;
  #stopPump: AbortController | null = null;
  /** The shared-memory channel (a local client of a 'v8' server); null: everything on the socket. */
  #link: ShmLink | null = null;
  /** Requests that found the ring full, oldest first (see #flushShm). */
  #held: Request[] = [];
  /** Set while a flush must send everything now (a notification sent at once, the exit). */
  #sendAll = false;

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
      this.#outbox.unshift([0, null, 'hello', [process.pid, threadId], null]);
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
    for (const p of pending) p.reject(err);
  }

  #queue(req: Request): void {
    this.#connection();
    this.#outbox.push(req);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => {
        try {
          this.#flush();
        } catch {
          /* #die rejected the calls */
        }
      });
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#decrefs) {
      // First: a call made after the proxies were dropped (numberOfObjects) sees them gone.
      this.#outbox.unshift([0, null, 'decref', this.#decrefs, null]);
      this.#decrefs = null;
    }
    if (this.#outbox.length === 0 || this.#gone) return;
    const batch = this.#outbox;
    this.#outbox = [];
    if (this.#link) {
      this.#flushShm(this.#link, batch);
      return;
    }
    try {
      this.#dialect.sendRequests(this.#connection(), batch);
      if (this.#pending.size > 0 && !this.#pumping && !this.#inSync) queueMicrotask(() => void this.#pump());
    } catch (e) {
      if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError' || e.name === 'ManagerGoneError')) {
        this.#die(e);
        throw this.#goneError(e);
      }
      // An argument that does not travel: reject those calls, send the others one by one.
      for (const r of batch) {
        try {
          this.#dialect.sendRequests(this.#connection(), [r]);
        } catch (err) {
          const p = this.#pending.get(r[0]);
          this.#pending.delete(r[0]);
          p?.reject(err);
        }
      }
    }
  }

  /**
   * #flush on the shared-memory channel: batches of SHM_CHUNK requests, then the doorbell if
   * the server sleeps. Async calls that find the ring full wait in #held (in order, before
   * any later call) until the pump sees room; a blocking call's flush sends everything.
   */
  #flushShm(link: ShmLink, batch: Request[]): void {
    if (this.#held.length > 0) {
      batch = batch.length > 0 ? this.#held.concat(batch) : this.#held;
      this.#held = [];
    }
    const socketIfFull = this.#inSync || this.#sendAll;
    try {
      for (let i = 0; i < batch.length; i += SHM_CHUNK) {
        const part = batch.length <= SHM_CHUNK ? batch : batch.slice(i, i + SHM_CHUNK);
        try {
          if (!link.send(part, socketIfFull)) {
            this.#held = i === 0 ? batch : batch.slice(i);
            break;
          }
        } catch (e) {
          if (!(e instanceof TypeError)) throw e;
          // An argument that does not travel: reject those calls, send the others one by one.
          for (const r of part) {
            try {
              link.send([r]);
            } catch (err) {
              if (!(err instanceof TypeError)) throw err;
              const p = this.#pending.get(r[0]);
              this.#pending.delete(r[0]);
              p?.reject(err);
            }
          }
        }
      }
      link.wake();
    } catch (e) {
      this.#die(e);
      throw this.#goneError(e);
    }
    if (this.#pending.size > 0 && !this.#pumping && !this.#inSync) queueMicrotask(() => void this.#pump());
  }

  /** Deliver every reply that has come on the shared-memory channel; returns whether any had. */
  #takeShm(link: ShmLink, syncId = 0): RawReply | boolean {
    let got: RawReply | boolean = false;
    for (let b = link.next(); b !== undefined; b = link.next()) {
      if (got === false) got = true;
      for (const r of b as unknown[]) {
        if (!Array.isArray(r) || r.length !== 3 || typeof r[0] !== 'number' || typeof r[1] !== 'string') throw new TypeError('a manager reply must be a batch of [id, kind, value]');
        if (r[0] === syncId) got = [r[1] as ReplyKind, r[2]];
        else this.#deliver(r[0], r[1] as ReplyKind, r[2]);
      }
    }
    return got;
  }

  /**
   * #pump on the shared-memory channel. A reply that comes soon is waited for on this thread:
   * a short spin (while spins pay), then a blocking poll of the socket up to QUICK_WAIT; a
   * later one through the reactor (the event loop runs meanwhile).
   */
  async #pumpShm(): Promise<void> {
    while (this.#pending.size > 0 && this.#link) {
      const link = this.#link;
      if (this.#held.length > 0) this.#flushShm(link, []);
      if (this.#takeShm(link)) continue;
      if (this.#streak >= QUICK_STREAK) {
        // Let timers and I/O run, then carry on.
        this.#streak = 0;
        await new Promise((r) => setImmediate(r));
        continue;
      }
      if (this.#quickOff === 0) {
        this.#streak++;
        if (this.#spin(link, SHM_QUICK_SPIN_US)) continue;
        link.waitSync(QUICK_WAIT);
        if (link.ready()) continue;
        this.#quickOff = QUICK_PAUSE;
      }
      if (this.#held.length > 0) {
        // Requests wait for room: look again soon (their replies cannot wake us).
        await new Promise((r) => setTimeout(r, 1));
        this.#streak = 0;
        continue;
      }
      if (link.sleepBegin()) {
        const stop = (this.#stopPump = new AbortController());
        try {
          await reactor.readable(this.#conn!.fileno(), null, stop.signal);
        } finally {
          this.#stopPump = null;
          link.sleepEnd();
        }
        if (this.#quickOff > 0) this.#quickOff--;
        this.#streak = 0;
      }
      if (this.#link === link) link.drainSocket();
    }
  }

  /** Spin for a batch, unless the last spins missed (the server is busy or descheduled). */
  #spin(link: ShmLink, us: number): boolean {
    if (this.#spinOff > 0) {
      this.#spinOff--;
      return false;
    }
    if (link.spin(us)) return true;
    this.#spinOff = SPIN_PAUSE;
    return false;
  }

  #deliver(id: number, kind: ReplyKind, value: unknown): void {
    const p = this.#pending.get(id);
    if (!p) return; // an abandoned call's reply
    this.#pending.delete(id);
    p.resolve([kind, value]);
  }

  /**
   * Read replies while async calls wait; stops (releasing the event loop) when none does.
   * A reply that comes within QUICK_WAIT of the request is read by a short blocking poll (no
   * hop through the reactor thread); after a miss, the next few go through the reactor,
   * and a long run of quick replies yields to the event loop now and then.
   */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    if (this.#link) {
      try {
        await this.#pumpShm();
      } catch (e) {
        this.#die(e);
      } finally {
        this.#pumping = false;
      }
      return;
    }
    try {
      while (this.#pending.size > 0 && this.#conn) {
        const conn = this.#conn;
        let ready = conn.pollSync(0);
        if (!ready && this.#quickOff === 0 && this.#streak < QUICK_STREAK) {
          ready = conn.pollSync(QUICK_WAIT);
          if (ready) this.#streak++;
          else this.#quickOff = QUICK_PAUSE;
        }
        if (!ready) {
          if (this.#streak >= QUICK_STREAK) {
            // Let timers and I/O run, then carry on.
            this.#streak = 0;
            await new Promise((r) => setImmediate(r));
            continue;
          }
          const stop = (this.#stopPump = new AbortController());
          await reactor.readable(conn.fileno(), null, stop.signal);
          this.#stopPump = null;
          if (this.#quickOff > 0) this.#quickOff--;
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

  call(ident: string | null, method: string, args: unknown[]): Promise<RawReply> {
    return new Promise<RawReply>((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { resolve, reject });
      try {
        this.#queue([id, ident, method, args, null]);
      } catch (e) {
        this.#pending.delete(id);
        reject(e);
      }
    });
  }

  callSync(ident: string | null, method: string, args: unknown[]): RawReply {
    const conn = this.#connection();
    const id = this.#nextId++;
    this.#outbox.push([id, ident, method, args, null]);
    this.#inSync = true;
    try {
      this.#flush();
    } finally {
      this.#inSync = false;
    }
    if (this.#link) return this.#waitShm(this.#link, id);
    for (;;) {
      let msg: unknown;
      try {
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
        if (this.#pending.size === 0) this.#stopPump?.abort();
        else if (!this.#pumping) void this.#pump();
        return mine;
      }
    }
  }

  /** callSync's wait on the shared-memory channel: spin, then sleep on the socket. */
  #waitShm(link: ShmLink, id: number): RawReply {
    let mine: RawReply | boolean;
    try {
      for (;;) {
        mine = this.#takeShm(link, id);
        if (typeof mine !== 'boolean') break;
        if (this.#spin(link, SHM_SYNC_SPIN_US)) continue;
        link.waitSync(null);
      }
    } catch (e) {
      this.#die(e);
      throw this.#goneError(e);
    }
    // A pump asleep on the socket relied on the flag just taken down: it looks again.
    this.#stopPump?.abort();
    if (this.#pending.size > 0 && !this.#pumping) void this.#pump();
    return mine;
  }

  notify(ident: string | null, method: string, args: unknown[], now = false): void {
    this.#queue([0, ident, method, args, null]);
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
      queueMicrotask(() => {
        try {
          this.#flush();
        } catch {
          /* gone */
        }
      });
    }
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
  const [kind, value] = r;
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
