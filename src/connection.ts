// Connection objects (Python's multiprocessing.connection): framed messages over a
// stream socket. Objects go through the one serializer (reduction.ts); descriptors of
// library objects inside a message ride along by SCM_RIGHTS.
import { inspect } from 'node:util';
import { BufferTooShort, mapNativeError, nativeCall, OSError, ValueError } from './errors.js';
import { native } from './native.js';
import { dumps, loads, loadsAsync, reduce, registerKind, type Reduced } from './reduction.js';
import * as wait from './wait.js';

type NativeConnection = InstanceType<typeof native.NativeConnection>;

export class Connection {
  #conn: NativeConnection | null;
  #readable: boolean;
  #writable: boolean;

  /** Wrap (and take ownership of) a connected stream socket descriptor. */
  constructor(fd: number, readable = true, writable = true) {
    if (!readable && !writable) throw new ValueError('at least one of `readable` and `writable` must be True');
    this.#conn = new native.NativeConnection(fd);
    this.#readable = readable;
    this.#writable = writable;
  }

  get closed(): boolean {
    return this.#conn === null;
  }
  get readable(): boolean {
    return this.#readable;
  }
  get writable(): boolean {
    return this.#writable;
  }

  #open(): NativeConnection {
    if (!this.#conn) throw new OSError('handle is closed');
    return this.#conn;
  }
  #forReading(): NativeConnection {
    const c = this.#open();
    if (!this.#readable) throw new OSError('connection is write-only');
    return c;
  }
  #forWriting(): NativeConnection {
    const c = this.#open();
    if (!this.#writable) throw new OSError('connection is read-only');
    return c;
  }

  fileno(): number {
    return this.#open().fd;
  }

  close(): void {
    const c = this.#conn;
    if (!c) return;
    this.#conn = null;
    wait.forget(c.fd);
    c.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Send an object; returns once all of it is written (as Python's send). */
  send(obj: unknown): void {
    const c = this.#forWriting();
    const { data, fds } = dumps(obj);
    nativeCall(() => c.send(data, fds));
  }

  /** Send `buf[offset, offset + size)` as one message. */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): void {
    const c = this.#forWriting();
    const bytes = toBytes(buf);
    if (offset < 0) throw new ValueError('offset is negative');
    if (bytes.length < offset) throw new ValueError('buffer length < offset');
    size ??= bytes.length - offset;
    if (size < 0) throw new ValueError('size is negative');
    if (offset + size > bytes.length) throw new ValueError('buffer length < offset + size');
    nativeCall(() => c.send(bytes.subarray(offset, offset + size), null));
  }

  /** Receive one whole message without waiting; null if none is complete yet. */
  #tryRecv(maxlength?: number | null): Buffer | null {
    const c = this.#forReading();
    return nativeCall(() => c.recv(false, null, maxlength ?? null));
  }

  async #recvRaw(maxlength?: number | null): Promise<Buffer> {
    for (;;) {
      const got = this.#tryRecv(maxlength);
      if (got) return got;
      await wait.readable(this.#forReading().fd);
    }
  }

  #recvRawSync(maxlength?: number | null): Buffer {
    const c = this.#forReading();
    const got = nativeCall(() => c.recv(true, null, maxlength ?? null));
    return got!;
  }

  #takeFds = (n: number): number[] => nativeCall(() => this.#open().takeFds(n));

  /** Receive an object sent with `send`. */
  async recv(): Promise<any> {
    const data = await this.#recvRaw();
    return loadsAsync(data, this.#takeFds);
  }

  recvSync(): any {
    return loads(this.#recvRawSync(), this.#takeFds);
  }

  /** Receive one message's bytes; a message longer than `maxlength` raises and leaves the connection unreadable. */
  async recvBytes(maxlength?: number | null): Promise<Buffer> {
    checkMaxlength(maxlength);
    return this.#recvRaw(maxlength);
  }

  recvBytesSync(maxlength?: number | null): Buffer {
    checkMaxlength(maxlength);
    return this.#recvRawSync(maxlength);
  }

  /** Read a message into `buf` at `offset`; returns its length. BufferTooShort carries the message in `args[0]`. */
  async recvBytesInto(buf: ArrayBufferView | ArrayBuffer, offset = 0): Promise<number> {
    const target = toBytes(buf);
    checkOffset(target, offset);
    return copyInto(await this.#recvRaw(), target, offset);
  }

  recvBytesIntoSync(buf: ArrayBufferView | ArrayBuffer, offset = 0): number {
    const target = toBytes(buf);
    checkOffset(target, offset);
    return copyInto(this.#recvRawSync(), target, offset);
  }

  /**
   * Whether data is available. No argument: answer at once; a number: wait up to
   * that many seconds; `null`: wait for ever.
   */
  async poll(timeout: number | null = 0): Promise<boolean> {
    const c = this.#forReading();
    if (nativeCall(() => c.poll(0))) return true;
    if (timeout !== null && timeout <= 0) return false;
    const deadline = timeout === null ? null : Date.now() + timeout * 1000;
    for (;;) {
      const left = deadline === null ? null : Math.max(0, deadline - Date.now()) / 1000;
      const ready = await wait.readable(this.#forReading().fd, left);
      if (ready || nativeCall(() => this.#forReading().poll(0))) return true;
      if (deadline !== null && Date.now() >= deadline) return false;
    }
  }

  pollSync(timeout: number | null = 0): boolean {
    const c = this.#forReading();
    return nativeCall(() => c.poll(timeout === null ? null : Math.max(0, timeout)));
  }

  /** Give up the descriptor without closing it (Python's `_detach`). */
  _detach(): number {
    const c = this.#open();
    this.#conn = null;
    wait.forget(c.fd);
    return c.detach();
  }

  [reduce](): Reduced {
    return { kind: 'connection', state: { r: this.#readable, w: this.#writable }, fds: [this.fileno()] };
  }

  toString(): string {
    return `<Connection fd=${this.#conn?.fd ?? 'closed'}${this.#readable ? ' readable' : ''}${this.#writable ? ' writable' : ''}>`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind('connection', (s: { r: boolean; w: boolean }, fds) => new Connection(fds[0], s.r, s.w));

function toBytes(buf: ArrayBufferView | ArrayBuffer): Buffer {
  if (buf instanceof ArrayBuffer) return Buffer.from(buf);
  if (ArrayBuffer.isView(buf)) return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError('a bytes-like object is required');
}

function checkMaxlength(maxlength?: number | null): void {
  if (maxlength != null && maxlength < 0) throw new ValueError('negative maxlength');
}

function checkOffset(target: Buffer, offset: number): void {
  if (offset < 0) throw new ValueError('negative offset');
  if (offset > target.length) throw new ValueError('offset too large');
}

function copyInto(msg: Buffer, target: Buffer, offset: number): number {
  if (msg.length > target.length - offset) throw new BufferTooShort(msg);
  msg.copy(target, offset);
  return msg.length;
}

/**
 * A pair of connected Connections. Duplex by default; `Pipe(false)` returns
 * `[receiveOnly, sendOnly]` as Python does.
 */
export function Pipe(duplex = true): [Connection, Connection] {
  const [a, b] = nativeCall(() => native.socketPair());
  if (duplex) return [new Connection(a), new Connection(b)];
  try {
    native.shutdownFd(a, 1);
    native.shutdownFd(b, 0);
  } catch (e) {
    throw mapNativeError(e);
  }
  return [new Connection(a, true, false), new Connection(b, false, true)];
}
