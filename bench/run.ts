// `npm run bench`: each case of node-multiprocessing, then CPython's figure for the
// same case from the same run, as JSON lines {case, impl, value, unit}, and a ratio
// line per case; for the pool case also other Node pools (bench/node_pools.ts), each
// with its ratio line. Run compiled (plain node), so that children start as users' would.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeForkJoin, pipeRoundtrip, processStartJoin, type Row } from './cases.js';
import { benchListener } from './listener.js';
import { benchManagers } from './managers.js';
import { benchNodePools } from './node_pools.js';
import { benchPickleCodec, benchPickleRoundtrip } from './pickle.js';
import { benchPool } from './pool.js';
import { benchNodeThreadPools } from './node_threadpools.js';
import { benchThreadPool } from './threadpool.js';
import { benchQueues } from './queues.js';
import { benchSync } from './sync.js';

const quick = process.argv.includes('--quick');
const scale = quick ? 1 : 5;
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
// The Python script sits next to the TypeScript sources (bench/), also when run from dist/bench.
const here = dirname(fileURLToPath(import.meta.url));
const pyScript = join(here.includes('/dist/') ? join(here, '..', '..', 'bench') : here, 'py_bench.py');

interface Case {
  /** The py_bench.py case(s) that produce CPython's figures. */
  py: string | string[];
  run: () => Promise<Row | Row[]>;
  /** Other Node implementations of the same case(s), rows with `impl`, run after ours. */
  node?: () => Promise<Row[]>;
}

const cases: Record<string, Case> = {
  process_start_join_spawn: { py: 'process_start_join_spawn', run: () => processStartJoin(5 * scale), node: () => nodeForkJoin(5 * scale) },
  pipe_roundtrip: { py: 'pipe_roundtrip', run: () => pipeRoundtrip(5000 * scale) },
  listener_client_roundtrip: { py: 'listener_client_roundtrip', run: () => benchListener(quick) },
  queues: { py: ['queue_throughput_8B', 'queue_bandwidth_1MiB'], run: () => benchQueues(quick) },
  pool: { py: 'pool', run: () => benchPool(quick), node: () => benchNodePools(quick) },
  threadpool: { py: 'threadpool', run: () => benchThreadPool(quick), node: () => benchNodeThreadPools(quick) },
  sync: { py: ['lock_acquire_release', 'raw_array_elem_rw', 'locked_value_increment'], run: () => benchSync(quick) },
  pickle: { py: 'pickle', run: async () => benchPickleCodec(quick) },
  pickle_roundtrip_vs_python: { py: 'pickle_roundtrip_vs_python', run: () => benchPickleRoundtrip(quick) },
  managers: { py: 'manager', run: () => benchManagers(quick) },
};

function cpython(pyCases: string | string[]): Row[] {
  const r = spawnSync('python3', [pyScript, ...(quick ? ['--quick'] : []), ...[pyCases].flat()], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`python3 ${pyCases} failed: ${r.stderr}`);
    return [];
  }
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
}

const lowerIsBetter = (unit: string): boolean => ['ms', 'us', 'ns'].includes(unit);

for (const [name, c] of Object.entries(cases)) {
  if (only.length && !only.includes(name)) continue;
  const ours = [(await c.run())].flat();
  const others = (await c.node?.()) ?? [];
  const theirs = cpython(c.py);
  for (const row of ours) {
    // A row with its own impl is a variant of ours (e.g. another environment): compared with CPython only.
    const variant = row.impl !== undefined;
    console.log(JSON.stringify({ case: row.case, impl: row.impl ?? 'node-multiprocessing', value: +row.value.toFixed(3), unit: row.unit }));
    const py = theirs.find((p) => p.case === row.case);
    if (py) {
      if (!variant) console.log(JSON.stringify({ case: row.case, impl: 'cpython', value: py.value, unit: py.unit }));
      // ratio < 1 means we are faster (time) or ratio > 1 means we are faster (rate).
      const ratio = row.value / py.value;
      const impl = variant ? `ratio (${row.impl})` : 'ratio';
      console.log(JSON.stringify({ case: row.case, impl, value: +ratio.toFixed(3), unit: lowerIsBetter(row.unit) ? 'ours/cpython time' : 'ours/cpython rate' }));
    }
    if (variant) continue;
    for (const o of others.filter((x) => x.case === row.case)) {
      console.log(JSON.stringify({ case: row.case, impl: o.impl, value: +o.value.toFixed(3), unit: o.unit }));
      const ratio = row.value / o.value;
      const kind = lowerIsBetter(row.unit) ? 'time' : 'rate';
      console.log(JSON.stringify({ case: row.case, impl: `ratio_vs_${o.impl}`, value: +ratio.toFixed(3), unit: `ours/${o.impl} ${kind}` }));
    }
  }
}
