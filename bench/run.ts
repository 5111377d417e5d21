// `npm run bench [-- --quick] [--rounds N] [--no-first] [--readme] [group ...]`
//
// Measures as users' programs run: every script of a group (bench/<script>.ts, a program
// with a main-module guard whose targets import the package root) runs in a fresh process,
// and CPython's figures for the same cases (bench/py_bench.py) in a fresh python3, one after
// the other, for each group in turn; that is one round, and rounds are repeated (3 by
// default, the order of ours and CPython's alternating). Each figure is the median of its
// rounds, and a ratio is the ratio of two medians of the same run. Then the first-call
// variants (`--first`: each operation once in a fresh process, what a short script sees),
// in the same rounds.
//
// Prints JSON lines: for each case ours, CPython's, the ratio, other Node implementations
// and ours relative to them; `rounds` holds each round's figure. Writes docs/bench.svg (the
// ratios at a glance, shown by the README) and docs/bench.json; `--readme` also rewrites the
// README's performance table between its `bench:table` markers.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartSvg, readmeTable, type Result } from './report.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const roundsArg = argv.indexOf('--rounds');
const rounds = roundsArg >= 0 ? Number(argv[roundsArg + 1]) : 3;
const only = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--rounds');
const withFirst = !argv.includes('--no-first');

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const root = join(here, '..', '..');
const pyScript = join(root, 'bench', 'py_bench.py');

interface Group {
  name: string;
  /** Our script (dist/bench/<script>.js) and its arguments. */
  ours: string[];
  /** py_bench.py's cases. */
  py: string[];
  /** Scripts of other Node implementations of the same cases. */
  node?: string[][];
  /** py_bench.py's cases for the first-call variant; none: no first-call variant. */
  pyFirst?: string[];
  /** Only a first-call variant. */
  firstOnly?: boolean;
}

const groups: Group[] = [
  { name: 'import', ours: ['import'], py: [], pyFirst: ['import_package'], firstOnly: true },
  { name: 'process', ours: ['process'], py: ['process_start_join_spawn'], pyFirst: ['process_start_join_spawn'] },
  { name: 'pipe', ours: ['pipe'], py: ['pipe_roundtrip'], pyFirst: ['pipe_roundtrip'] },
  { name: 'listener', ours: ['listener'], py: ['listener_client_roundtrip'], pyFirst: ['listener_client_roundtrip'] },
  { name: 'queue_8B', ours: ['queues', '--8B'], py: ['queue_throughput_8B'], pyFirst: ['queue'] },
  { name: 'queue_1MiB', ours: ['queues', '--1MiB'], py: ['queue_bandwidth_1MiB'] },
  { name: 'pool', ours: ['pool'], py: ['pool'], node: [['node_pools']], pyFirst: ['pool'] },
  { name: 'threadpool', ours: ['threadpool'], py: ['threadpool'], node: [['node_threadpools']], pyFirst: ['threadpool'] },
  {
    name: 'sync',
    ours: ['sync'],
    py: ['lock_acquire_release', 'raw_array_elem_rw', 'locked_value_increment'],
    pyFirst: ['lock_acquire_release', 'raw_array_elem_rw', 'locked_value_increment'],
  },
  { name: 'pickle', ours: ['pickle', 'pickle'], py: ['pickle'] },
  { name: 'pickle_roundtrip_vs_python', ours: ['pickle', 'pickle_roundtrip_vs_python'], py: ['pickle_roundtrip_vs_python'] },
  { name: 'managers', ours: ['managers'], py: ['manager'] },
  { name: 'forkserver', ours: ['forkserver'], py: ['process_start_join_forkserver', 'process_start_latency_forkserver', 'pool_start_forkserver'] },
];

interface Row {
  case: string;
  impl?: string;
  value: number;
  unit: string;
}

function runLines(cmd: string, args: string[], label: string): Row[] {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: root, maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    console.error(`${label} failed (${r.status ?? r.signal}): ${r.stderr}`);
    return [];
  }
  if (r.stderr.trim()) console.error(`${label}: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Row);
}

const node = (script: string[], flags: string[]): Row[] =>
  runLines(process.execPath, [join(here, `${script[0]}.js`), ...script.slice(1), ...flags], `node ${script.join(' ')} ${flags.join(' ')}`);
const python = (cases: string[], flags: string[]): Row[] =>
  runLines('python3', [pyScript, ...flags, ...cases], `python3 ${cases.join(' ')} ${flags.join(' ')}`).map((r) => ({ ...r, impl: 'cpython' }));

/** Every figure of every round, by case then implementation. */
const figures = new Map<string, Map<string, { unit: string; values: number[] }>>();
function record(rows: Row[]): void {
  for (const r of rows) {
    const impl = r.impl ?? 'node-multiprocessing';
    let byImpl = figures.get(r.case);
    if (!byImpl) figures.set(r.case, (byImpl = new Map()));
    let f = byImpl.get(impl);
    if (!f) byImpl.set(impl, (f = { unit: r.unit, values: [] }));
    f.values.push(r.value);
  }
}

const machine = { cpus: cpus().length, loadavgBefore: loadavg().map((x) => +x.toFixed(2)), loadavgAfter: [] as number[] };
const selected = groups.filter((g) => only.length === 0 || only.includes(g.name));
for (let round = 0; round < rounds; round++) {
  for (const g of selected) {
    const flags = quick ? ['--quick'] : [];
    const jobs = g.firstOnly ? [] : [() => node(g.ours, flags), () => python(g.py, flags)];
    if (round % 2 === 1) jobs.reverse();
    for (const s of g.node ?? []) jobs.push(() => node(s, flags));
    if ((withFirst || g.firstOnly) && g.pyFirst) {
      const firstJobs = [() => node(g.ours, ['--first']), () => python(g.pyFirst!, ['--first'])];
      if (round % 2 === 1) firstJobs.reverse();
      jobs.push(...firstJobs);
    }
    for (const job of jobs) record(job());
    console.error(`round ${round + 1}/${rounds}: ${g.name} done (load ${loadavg()[0].toFixed(2)})`);
  }
}
machine.loadavgAfter = loadavg().map((x) => +x.toFixed(2));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const lowerIsBetter = (unit: string): boolean => ['ms', 'us', 'ns'].includes(unit);
const round3 = (x: number): number => +x.toPrecision(4);

const results: Result[] = [];
console.log(JSON.stringify({ case: 'machine', ...machine, rounds }));
for (const [name, byImpl] of figures) {
  const ours = byImpl.get('node-multiprocessing');
  const py = byImpl.get('cpython');
  const result: Result = { case: name, unit: (ours ?? py)!.unit, lowerIsBetter: lowerIsBetter((ours ?? py)!.unit), impls: {} };
  for (const [impl, f] of byImpl) {
    result.impls[impl] = { value: round3(median(f.values)), rounds: f.values.map(round3) };
    console.log(JSON.stringify({ case: name, impl, value: result.impls[impl].value, unit: f.unit, rounds: result.impls[impl].rounds }));
  }
  if (ours && py) {
    const ratio = median(ours.values) / median(py.values);
    console.log(JSON.stringify({ case: name, impl: 'ratio', value: round3(ratio), unit: result.lowerIsBetter ? 'ours/cpython time' : 'ours/cpython rate' }));
  }
  if (ours) {
    for (const [impl, f] of byImpl) {
      if (impl === 'node-multiprocessing' || impl === 'cpython') continue;
      const kind = result.lowerIsBetter ? 'time' : 'rate';
      console.log(JSON.stringify({ case: name, impl: `ratio_vs_${impl}`, value: round3(median(ours.values) / median(f.values)), unit: `ours/${impl} ${kind}` }));
    }
  }
  results.push(result);
}

if (only.length === 0) {
  writeFileSync(join(root, 'docs', 'bench.json'), JSON.stringify({ machine, rounds, quick, results }, null, 1) + '\n');
  writeFileSync(join(root, 'docs', 'bench.svg'), chartSvg(results, machine));
  console.error('wrote docs/bench.svg and docs/bench.json');
  if (argv.includes('--readme')) {
    const readme = join(root, 'README.md');
    const text = readFileSync(readme, 'utf8');
    const start = '<!-- bench:table -->';
    const end = '<!-- /bench:table -->';
    const a = text.indexOf(start);
    const b = text.indexOf(end);
    if (a < 0 || b < a) throw new Error('README.md has no bench:table markers');
    writeFileSync(readme, text.slice(0, a + start.length) + '\n' + readmeTable(results, machine, rounds) + text.slice(b));
    console.error('rewrote the README performance table');
  }
}
