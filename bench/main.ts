// What every benchmark script shares. Each script under bench/ is a program as users write
// them: its targets are exported from it, it imports the package root, and its main-module
// guard runs the case (bench/run.ts starts each script in a fresh process, round after round,
// beside CPython's figures from bench/py_bench.py). No warm-up that a user would not write.
import { pathToFileURL } from 'node:url';

/** One figure: `impl` unset means ours. */
export interface Row {
  case: string;
  value: number;
  unit: string;
  impl?: string;
}

/** `--quick`: a fifth of the iterations. */
export const quick = process.argv.includes('--quick');
/** `--first`: the first-call variant, each operation once in this fresh process. */
export const first = process.argv.includes('--first');
export const scale = quick ? 1 : 5;
/** Arguments other than flags (e.g. the case names a script is asked for). */
export const wanted = process.argv.slice(2).filter((a) => !a.startsWith('--'));

/** `[0, 1, ..., n - 1]` (Python's `range(n)`). */
export function range(n: number): number[] {
  const a: number[] = [];
  for (let i = 0; i < n; i++) a.push(i);
  return a;
}

/** Items of threadpool_map_1MiB: 1 MiB Buffers, item i filled with i. */
export function bigItems(q: boolean): Buffer[] {
  return Array.from({ length: q ? 32 : 128 }, (_, i) => Buffer.alloc(1 << 20, i));
}

/** The main-module guard: run `body` and print its rows as JSON lines when `url` is the main module. */
export function main(url: string, body: () => Row[] | Promise<Row[]>): void {
  if (process.argv[1] === undefined || url !== pathToFileURL(process.argv[1]).href) return;
  Promise.resolve()
    .then(body)
    .then((rows) => {
      for (const r of rows) console.log(JSON.stringify({ case: r.case, impl: r.impl, value: +r.value.toPrecision(6), unit: r.unit }));
    })
    .catch((e: unknown) => {
      console.error((e as Error)?.stack ?? e);
      process.exitCode = 1;
    });
}
