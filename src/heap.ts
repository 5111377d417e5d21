// The shared heap as JavaScript sees it: ONE ArrayBuffer per arena mapping, from which
// every view (Value, Array, lock state) is sliced. V8 must never see two ArrayBuffers
// over the same memory, so the buffer of an arena is created once and reused.
//
// Buffers of shared arenas (many small blocks) are kept for the life of the process,
// like the mapping itself. A big block has an arena of its own: its buffer is held
// weakly, so that the mapping goes when the last view over it is collected.
import { nativeCall } from './errors.js';
import { native } from './native.js';

export type NativeBlock = InstanceType<typeof native.NativeBlock>;

/** Something that lives in a heap arena and can expose the arena's buffer. */
export interface ArenaResident {
  readonly arenaKey: string;
  readonly byteOffset: number;
  arenaBuffer(): ArrayBuffer;
}

const kept = new Map<string, ArrayBuffer>();
const weak = new Map<string, WeakRef<ArrayBuffer>>();
const forget = new FinalizationRegistry<{ key: string; ref: WeakRef<ArrayBuffer> }>(({ key, ref }) => {
  if (weak.get(key) === ref) weak.delete(key);
});

/** The one ArrayBuffer over `r`'s arena in this process. */
export function arenaBuffer(r: ArenaResident, dedicated = false): ArrayBuffer {
  const key = r.arenaKey;
  const have = kept.get(key) ?? weak.get(key)?.deref();
  if (have) return have;
  const buf = nativeCall(() => r.arenaBuffer());
  if (dedicated) {
    const ref = new WeakRef(buf);
    weak.set(key, ref);
    forget.register(buf, { key, ref });
  } else {
    kept.set(key, buf);
  }
  return buf;
}

/** Number of arena buffers this process holds (for tests). */
export function _arenaBufferCount(): number {
  let n = kept.size;
  for (const r of weak.values()) if (r.deref()) n++;
  return n;
}

/** Releases a block's count in this process when the object using it is collected. */
const release = new FinalizationRegistry<NativeBlock>((b) => b.release());

/** A zero-filled shared block of `size` bytes. */
export function allocBlock(size: number): NativeBlock {
  return nativeCall(() => native.NativeBlock.alloc(size));
}

/** The block sent by another process (see `transferBlock`). */
export function adoptBlock(fd: number, id: BlockId): NativeBlock {
  return nativeCall(() => native.NativeBlock.adopt(fd, id));
}

export type BlockId = ReturnType<NativeBlock['retainForTransfer']>;

/** What an object standing on a shared block sends: see `transferOf`. */
export interface Transfer {
  id: BlockId;
  fds: number[];
  undo: () => void;
}

/**
 * A transfer of `b` in a message: one more count on the block, which the receiver takes
 * over, and the arena's descriptor. `undo` gives the count back when the message is not
 * sent after all.
 */
export function transferOf(b: { retainForTransfer(): BlockId; readonly arenaFd: number }): Transfer {
  const id = b.retainForTransfer();
  return { id, fds: [b.arenaFd], undo: () => nativeCall(() => native.releaseTransfer(id)) };
}

/** Keep `block` (one count) until `owner` is collected. */
export function holdUntilCollected(owner: object, block: NativeBlock): void {
  release.register(owner, block);
}

/** The one ArrayBuffer over `block`'s arena; its bytes start at `block.byteOffset`. */
export function bufferOf(block: NativeBlock): ArrayBuffer {
  return arenaBuffer(block, block.dedicated);
}
