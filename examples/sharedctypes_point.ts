// 17.2.2.6.1: ctypes objects in shared memory modified by a child process.
import { pathToFileURL } from 'node:url';
import { Lock, Process } from 'node-multiprocessing';
import { Value, Array, Structure, c_double, type CharArray } from 'node-multiprocessing/sharedctypes';

export class Point extends Structure {
  static override _fields_ = [['x', c_double], ['y', c_double]] as const;
  declare x: number;
  declare y: number;
}

export function modify(n: { value: number }, x: { value: number }, s: CharArray, A: Iterable<Point>): void {
  n.value **= 2;
  x.value **= 2;
  s.value = s.value.toString().toUpperCase();
  for (const a of A) {
    a.x **= 2;
    a.y **= 2;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const lock = new Lock();

  const n = Value('i', 7);
  const x = Value(c_double, 1.0 / 3.0, { lock: false });
  const s = Array('c', Buffer.from('hello world'), { lock });
  const A = Array(Point, [[1.875, -6.25], [-5.75, 2.0], [2.375, 9.5]], { lock });

  const p = new Process({ target: modify, args: [n, x, s, A] });
  p.start();
  await p.join();

  console.log(n.value);
  console.log(x.value);
  console.log(s.value.toString());
  console.log([...A].map((a: Point) => [a.x, a.y]));
}
