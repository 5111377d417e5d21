// Benchmarks of managers; names match the anchors' (py_mp_bench.py) and py_bench.py's cases.
import { performance } from 'node:perf_hooks';
import { Manager } from 'node-multiprocessing';
import { main, scale, type Row } from './main.js';

/**
 * manager_dict_op: `d[i] = i` for n keys, then `d[i]` for each, one call at a time from one
 * client (`await d.setItem(i, i)`; the `...Sync` form as a variant). manager_dict_op_pipelined:
 * the same operations issued as Promises, all in flight (compared with CPython's blocking figure).
 */
async function benchManagers(): Promise<Row[]> {
  const n = 2000 * scale;
  const rows: Row[] = [];
  await using m = await Manager();
  const d = await m.dict<number, number>();
  let t = performance.now();
  for (let i = 0; i < n; i++) await d.setItem(i, i);
  for (let i = 0; i < n; i++) await d.getItem(i);
  rows.push({ case: 'manager_dict_op', value: (2 * n) / ((performance.now() - t) / 1000), unit: 'op/s' });

  const s = await m.dict<number, number>();
  t = performance.now();
  for (let i = 0; i < n; i++) s.setItemSync(i, i);
  for (let i = 0; i < n; i++) s.getItemSync(i);
  rows.push({ case: 'manager_dict_op', impl: 'node-multiprocessing (...Sync)', value: (2 * n) / ((performance.now() - t) / 1000), unit: 'op/s' });

  const p = await m.dict<number, number>();
  const keys = [...Array(n).keys()];
  t = performance.now();
  await Promise.all(keys.map((i) => p.setItem(i, i)));
  const got = await Promise.all(keys.map((i) => p.getItem(i)));
  rows.push({ case: 'manager_dict_op_pipelined', value: (2 * n) / ((performance.now() - t) / 1000), unit: 'op/s' });
  if (got[n - 1] !== n - 1) throw new Error('manager_dict_op_pipelined: wrong value');

  const k = 100 * scale;
  t = performance.now();
  for (let i = 0; i < k; i++) {
    let x: unknown = await m.dict();
    x = null;
    void x;
  }
  rows.push({ case: 'manager_create_object', value: k / ((performance.now() - t) / 1000), unit: 'obj/s' });
  return rows;
}

main(import.meta.url, benchManagers);
