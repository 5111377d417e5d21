// The shared-memory channel between a manager's server and a client on the same machine
// (the issue allows it: "a local client may use a shared-memory channel to the server; a
// remote one uses the socket").
//
// One shared block (the library's heap) per client connection, made by the server when the
// client asks for it in its `hello` over the authenticated Unix socket, and sent back over
// that socket. It holds two single-producer single-consumer byte rings: requests (client to
// server) and replies (server to client). A message is one batch, in the compact form of
// managers_wire.ts or as the library's serializer writes it. The socket stays:
//  - liveness: a side that waits for long sleeps on it (through the reactor), so that the
//    peer's death (EOF) is seen at once, as before; a blocking wait looks at it between slices;
//  - wake-ups: a side about to sleep raises its flag in the block, saying how it sleeps: on
//    the flag itself (a futex: the short blocking waits, and the ...Sync calls), or on the
//    socket. A writer that finds the reader's flag raised takes it down and wakes it: a
//    futex wake, or a one-byte doorbell frame on the socket;
//  - fallback: a batch carrying descriptors, or one the ring has no room for, goes on the
//    socket as a data frame. Every batch has a sequence number, so the reader takes them in
//    the order they were sent whichever way each went; a counter in the block says how many
//    data frames were sent, so a reader that spins on the block notices them.
// A side never waits for room in a ring: nothing here can deadlock on a full ring.
import { Buffer } from 'node:buffer';
import type { Connection } from './connection.js';
import { adoptBlock, allocBlock, bufferOf, transferOf, type BlockId, type NativeBlock } from './heap.js';
import { compactScratch, COMPACT_TAG, decodeFlat, encodeCompact, encodeReplies, encodeRequests, flattenBatch, unflatten } from './managers_wire.js';
import { dumps, loads, reduce, registerKind, type Reduced } from './reduction.js';

/** Bytes of each ring (a power of two). */
const CAP = 1 << 18;
const MASK = CAP - 1;
const HEADER = 4096;
/** The block: header, then the request ring, then the reply ring. */
const BLOCK_SIZE = HEADER + 2 * CAP;
/** A message bigger than this goes on the socket. */
const MAX_RING_MSG = CAP >> 2;
const MAGIC = 0x6d67_7231; // 'mgr1'
/** A record's length word that means "the rest of the ring is unused: go on at its start". */
const WRAP = 0xffffffff;
/**
 * Where both rings start: 4 KiB before their end (plus 8 bytes, so that batches of one size
 * do not fill it exactly), so that the wrap path runs after a few dozen batches, while the
 * code is still interpreted but already collecting type feedback. Starting at 0, the first
 * wrap came thousands of calls later and deoptimized the optimized send and take functions
 * on both sides, which were then compiled again.
 */
const START = CAP - 4104;

// Int32 indices into the header, each on a cache line of its own. Direction 0: requests
// (written by the client), 1: replies (written by the server).
const I_MAGIC = 0;
const headIdx = (d: number): number => (64 + d * 256) >> 2;
const tailIdx = (d: number): number => (128 + d * 256) >> 2;
/** Data frames sent on the socket in direction d. */
const sockIdx = (d: number): number => (192 + d * 256) >> 2;
/** Whether the reader of direction d sleeps: 0 no, FUTEX (on this word), SOCKET (wants a doorbell). */
const sleepIdx = (d: number): number => (576 + d * 64) >> 2;
const FUTEX = 1;
const SOCKET = 2;
/** Seconds a blocking wait sleeps on the futex before it looks at the socket (the peer's death). */
const LIVENESS_SLICE = 0.05;

/** Frame kinds on the socket once the channel is up. */
const DOORBELL = 0xdb;
const DATA = 0xda;
const DOORBELL_FRAME = Buffer.of(DOORBELL);

const noFds = (): number[] => [];

/** The block as it crosses to the client (in the hello reply). */
export class ShmSegment {
  constructor(readonly block: NativeBlock) {}

  /** @internal */
  [reduce](): Reduced {
    const { id, fds, undo } = transferOf(this.block);
    return { kind: 'manager-shm', state: { id }, fds, undo };
  }
}
registerKind('manager-shm', (s: { id: BlockId }, fds: number[]) => new ShmSegment(adoptBlock(fds[0], s.id)));

/** A new segment for a client (server side). */
export function newSegment(): ShmSegment {
  const block = allocBlock(BLOCK_SIZE);
  const link = new Int32Array(bufferOf(block), block.byteOffset, HEADER >> 2);
  for (const d of [0, 1]) {
    Atomics.store(link, headIdx(d), START);
    Atomics.store(link, tailIdx(d), START);
  }
  Atomics.store(link, I_MAGIC, MAGIC);
  return new ShmSegment(block);
}

/**
 * One side of the channel: `side` 0 is the client (writes requests, reads replies), 1 the
 * server. Sending and receiving take whole batches (arrays); `next()` returns them in the
 * order they were sent.
 */
export class ShmLink {
  readonly #seg: ShmSegment;
  readonly #conn: Connection;
  readonly #words: Int32Array;
  readonly #bytes: Buffer;
  readonly #view: DataView;
  /** Byte offsets (in #bytes) of the ring this side writes and of the one it reads. */
  readonly #outData: number;
  readonly #inData: number;
  readonly #out: number;
  readonly #in: number;
  /** Indices of the header words of the ring this side writes (out) and of the one it reads (in). */
  readonly #headOut: number;
  readonly #tailOut: number;
  readonly #sockOut: number;
  readonly #sleepOut: number;
  readonly #headIn: number;
  readonly #tailIn: number;
  readonly #sockIn: number;
  readonly #sleepIn: number;
  #wHead = 0;
  #rTail = 0;
  #outSeq = 0;
  #inSeq = 0;
  /** Data frames read from the socket, not yet taken (in sequence order). */
  #stash: Array<{ seq: number; data: Buffer }> = [];
  /** Data frames read from the socket so far. */
  #sockRead = 0;
  /** Set once the peer must be woken after this batch of sends. */
  #sent = false;

  constructor(seg: ShmSegment, side: 0 | 1, conn: Connection) {
    this.#seg = seg;
    this.#conn = conn;
    const ab = bufferOf(seg.block);
    const base = seg.block.byteOffset;
    this.#words = new Int32Array(ab, base, HEADER >> 2);
    if (Atomics.load(this.#words, I_MAGIC) !== MAGIC) throw new TypeError('not a manager channel segment');
    this.#bytes = Buffer.from(ab, base, BLOCK_SIZE);
    this.#view = new DataView(ab, base, BLOCK_SIZE);
    this.#out = side;
    this.#in = 1 - side;
    this.#outData = HEADER + this.#out * CAP;
    this.#inData = HEADER + this.#in * CAP;
    this.#headOut = headIdx(this.#out);
    this.#tailOut = tailIdx(this.#out);
    this.#sockOut = sockIdx(this.#out);
    this.#sleepOut = sleepIdx(this.#out);
    this.#headIn = headIdx(this.#in);
    this.#tailIn = tailIdx(this.#in);
    this.#sockIn = sockIdx(this.#in);
    this.#sleepIn = sleepIdx(this.#in);
    this.#wHead = Atomics.load(this.#words, this.#headOut) >>> 0;
    this.#rTail = Atomics.load(this.#words, this.#tailIn) >>> 0;
  }

  /** The segment (kept alive with the link). */
  get segment(): ShmSegment {
    return this.#seg;
  }

  // ---- sending ----

  /**
   * Send one batch (in the ring when it fits, else as a data frame on the socket). Throws a
   * TypeError, with nothing sent, when something in it cannot be serialized; an OSError
   * when the socket fails. Call `wake()` after a run of sends. With `socketIfFull` false, a
   * batch of simple values that finds no room in the ring is not sent: false (the caller
   * keeps it and tries again once the peer has taken some).
   */
  send(batch: unknown[], socketIfFull = true): boolean {
    const n = encodeCompact(batch);
    if (n >= 0) return this.#sendCompact(n, socketIfFull);
    return this.#sendSerialized(batch);
  }

  /**
   * `send` of the requests (`width` 5) or replies (`width` 3) `flat[from, to)`, their fields
   * one after the other (see managers_wire.ts encodeRequests): no arrays are made for them
   * unless the batch needs the serializer.
   */
  sendFlat(flat: readonly unknown[], from: number, to: number, width: 3 | 5, socketIfFull = true): boolean {
    const n = width === 5 ? encodeRequests(flat, from, to) : encodeReplies(flat, from, to);
    if (n >= 0) return this.#sendCompact(n, socketIfFull);
    return this.#sendSerialized(unflatten(flat, from, to, width));
  }

  /** Send the compact batch of `n` bytes in the scratch buffer. */
  #sendCompact(n: number, socketIfFull: boolean): boolean {
    if (n <= MAX_RING_MSG) {
      if (this.#put(compactScratch(), n)) return true;
      if (!socketIfFull) return false;
    }
    this.#frame(Buffer.from(compactScratch().subarray(0, n)), null);
    return true;
  }

  #sendSerialized(batch: unknown[]): boolean {
    // Serializing may have effects (a proxy in transit counts itself): what is serialized goes.
    const d = dumps(batch);
    if (d.fds.length === 0 && d.data.length <= MAX_RING_MSG && this.#put(d.data, d.data.length)) return true;
    try {
      this.#frame(d.data, d.fds);
    } catch (e) {
      d.undo?.();
      throw e;
    }
    return true;
  }

  #frame(data: Buffer, fds: number[] | null): void {
    const head = Buffer.allocUnsafe(5);
    head[0] = DATA;
    head.writeUInt32LE(this.#outSeq, 1);
    this.#conn._sendFrame(Buffer.concat([head, data]), fds);
    this.#outSeq = (this.#outSeq + 1) >>> 0;
    Atomics.add(this.#words, this.#sockOut, 1);
    this.#sent = true;
  }

  /** Append a record to the ring this side writes; false when there is no room. */
  #put(src: Uint8Array, n: number): boolean {
    const w = this.#words;
    const head = this.#wHead;
    const tail = Atomics.load(w, this.#tailOut) >>> 0;
    const need = 8 + ((n + 7) & ~7);
    let p = head & MASK;
    const toEnd = CAP - p;
    const skip = need > toEnd ? toEnd : 0;
    if (((head - tail) >>> 0) + skip + need > CAP) return false;
    const data = this.#outData;
    if (skip) {
      this.#view.setUint32(data + p, WRAP, true);
      p = 0;
    }
    const at = data + p;
    this.#view.setUint32(at, n, true);
    this.#view.setUint32(at + 4, this.#outSeq, true);
    const bytes = this.#bytes;
    if (n <= 64) for (let i = 0; i < n; i++) bytes[at + 8 + i] = src[i];
    else bytes.set(src.subarray(0, n), at + 8);
    const next = (head + skip + need) >>> 0;
    this.#wHead = next;
    Atomics.store(w, this.#headOut, next | 0);
    this.#outSeq = (this.#outSeq + 1) >>> 0;
    this.#sent = true;
    return true;
  }

  /** After sends: ring the peer's doorbell if it sleeps. */
  wake(): void {
    if (!this.#sent) return;
    this.#sent = false;
    const w = this.#words;
    const s = this.#sleepOut;
    if (Atomics.load(w, s) === 0) return;
    const how = Atomics.exchange(w, s, 0);
    if (how === FUTEX) this.#seg.block.wakeWord(s << 2, 1);
    else if (how === SOCKET) this.#conn._sendFrame(DOORBELL_FRAME, null);
  }

  // ---- receiving ----

  /** Whether a batch may be waiting (in the ring, or on the socket). */
  ready(): boolean {
    const w = this.#words;
    return (Atomics.load(w, this.#headIn) >>> 0) !== this.#rTail || this.#stash.length > 0 || this.#unread(w);
  }

  /**
   * Whether data frames were announced that are not read yet. A frame may be read before it
   * is announced (the sender counts it once its send returns): never wait for one then.
   */
  #unread(w: Int32Array): boolean {
    return ((Atomics.load(w, this.#sockIn) - this.#sockRead) | 0) > 0;
  }

  /** Spin until `ready()` or `us` microseconds pass; returns `ready()`. */
  spin(us: number): boolean {
    if (this.ready()) return true;
    const until = performance.now() + us / 1000;
    for (let k = 1; ; k++) {
      if (this.ready()) return true;
      if ((k & 31) === 0 && performance.now() >= until) return false;
    }
  }

  /**
   * Take the next batch in order, if one has come: the fields of its elements (arrays of
   * `width` fields: 5 for requests, 3 for replies) are pushed onto `out`; false when none
   * has come. Throws EOFError (or OSError) when the socket ended while a data frame was
   * expected, TypeError for a bad message.
   */
  take(width: number, out: unknown[]): boolean {
    for (;;) {
      const w = this.#words;
      const head = Atomics.load(w, this.#headIn) >>> 0;
      let seqInRing = -1;
      if (head !== this.#rTail) {
        let p = this.#rTail & MASK;
        let at = this.#inData + p;
        let n = this.#view.getUint32(at, true);
        if (n === WRAP) {
          this.#rTail = (this.#rTail + CAP - p) >>> 0;
          p = 0;
          at = this.#inData;
          n = this.#view.getUint32(at, true);
        }
        seqInRing = this.#view.getUint32(at + 4, true);
        if (seqInRing === this.#inSeq) {
          if (n > MAX_RING_MSG) throw new TypeError('not a manager batch (record too long)');
          try {
            if (this.#bytes[at + 8] === COMPACT_TAG) decodeFlat(this.#bytes, this.#view, at + 8, at + 8 + n, width, out);
            else flattenBatch(loads(Buffer.from(this.#bytes.subarray(at + 8, at + 8 + n)), noFds, true, true), width, out);
          } finally {
            this.#rTail = (this.#rTail + 8 + ((n + 7) & ~7)) >>> 0;
            Atomics.store(w, this.#tailIn, this.#rTail | 0);
            this.#inSeq = (this.#inSeq + 1) >>> 0;
          }
          return true;
        }
      }
      const first = this.#stash[0];
      if (first !== undefined && first.seq === this.#inSeq) {
        this.#stash.shift();
        this.#inSeq = (this.#inSeq + 1) >>> 0;
        const d = first.data;
        if (d[5] === COMPACT_TAG) decodeFlat(d, new DataView(d.buffer, d.byteOffset, d.length), 5, d.length, width, out);
        else flattenBatch(this.#conn._decode(d.subarray(5)), width, out);
        return true;
      }
      // A data frame is counted once it is wholly sent (and before any later batch is put in
      // the ring): reading the socket then does not wait.
      if (this.#unread(w)) {
        this.#take(this.#conn._frameSync());
        continue;
      }
      if (seqInRing >= 0) throw new TypeError(`not a manager channel (batch ${seqInRing} came before ${this.#inSeq})`);
      return false;
    }
  }

  /** Read the frames the socket holds now (doorbells dropped, data kept). EOFError at its end. */
  drainSocket(): void {
    for (let f = this.#conn._frameNow(); f !== null; f = this.#conn._frameNow()) this.#take(f);
  }

  #take(f: Buffer): void {
    if (f.length === 1 && f[0] === DOORBELL) return;
    if (f.length < 6 || f[0] !== DATA) throw new TypeError('not a manager channel frame');
    this.#stash.push({ seq: f.readUInt32LE(1), data: f });
    this.#sockRead = (this.#sockRead + 1) >>> 0;
  }

  /**
   * About to sleep on the socket: raise this side's flag. False (flag down again) when a batch
   * came meanwhile: do not sleep then.
   */
  sleepBegin(): boolean {
    const s = this.#sleepIn;
    Atomics.store(this.#words, s, SOCKET);
    if (this.ready()) {
      Atomics.store(this.#words, s, 0);
      return false;
    }
    return true;
  }

  /**
   * Block the thread until a batch may have come, the socket ends (EOFError), or `seconds`
   * pass (null: no limit): the flag up (FUTEX), a futex wait on it, the flag down. The wait
   * goes in slices, between which the socket is looked at, so that the peer's death is seen.
   */
  waitSync(seconds: number | null): void {
    const deadline = seconds === null ? Infinity : performance.now() + seconds * 1000;
    const s = this.#sleepIn;
    for (;;) {
      Atomics.store(this.#words, s, FUTEX);
      if (this.ready()) {
        Atomics.store(this.#words, s, 0);
        return;
      }
      const left = (deadline - performance.now()) / 1000;
      try {
        if (left > 0) this.#seg.block.waitWord(s << 2, FUTEX, Math.min(left, LIVENESS_SLICE));
      } finally {
        Atomics.store(this.#words, s, 0);
      }
      if (this.ready()) return;
      this.drainSocket();
      if (this.ready() || performance.now() >= deadline) return;
    }
  }

  /** Awake again (the doorbell, if one was sent, is dropped by the next drainSocket). */
  sleepEnd(): void {
    Atomics.store(this.#words, this.#sleepIn, 0);
  }
}

/**
 * When to skip a quick wait (a spin, a short blocking wait) that keeps missing: after k
 * misses in a row the next min(2^(k-1), max) tries are skipped (the caller sleeps at once
 * instead); a hit starts over. One miss (a collection, a descheduled peer) costs one skip,
 * a peer that is slow for good costs `max` skips in a row.
 */
export class Backoff {
  #skip = 0;
  #misses = 0;
  constructor(private readonly max: number) {}
  /** Whether to try now (a skipped try counts down). */
  tryNow(): boolean {
    if (this.#skip === 0) return true;
    this.#skip--;
    return false;
  }
  hit(): void {
    this.#misses = 0;
  }
  miss(): void {
    this.#skip = Math.min(this.max, 1 << this.#misses);
    if (this.#misses < 16) this.#misses++;
  }
}
