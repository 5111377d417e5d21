// The task of threadpool_map_1MiB for piscina (bench/node_threadpools.ts), with transfer
// lists both ways: byte-swap the Buffer in place and move it back.
import { Piscina } from 'piscina';

export default function swap32(b: Uint8Array): unknown {
  const out = Buffer.from(b.buffer, b.byteOffset, b.byteLength).swap32();
  return Piscina.move(out);
}
