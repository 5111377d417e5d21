// The report of bench/run.ts: the SVG chart of the ratios (written by hand, no dependency)
// and the README's performance table, both from the medians of one run.

/** A case's medians by implementation ('node-multiprocessing', 'cpython', other Node ones). */
export interface Result {
  case: string;
  unit: string;
  lowerIsBetter: boolean;
  impls: Record<string, { value: number; rounds: number[] }>;
}

export interface Machine {
  cpus: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
}

const OURS = 'node-multiprocessing';
const PY = 'cpython';

/** Issues 17's, 13's and 15's targets: ours relative to CPython (a rate ratio, or a time ratio when `time`). */
const TARGETS: Record<string, { ratio: number; time?: boolean; vs?: string; note?: string }> = {
  queue_throughput_8B: { ratio: 10 },
  queue_bandwidth_1MiB: { ratio: 8 },
  pool_map_trivial: { ratio: 2 },
  pool_apply_async_trivial: { ratio: 8 },
  pool_imap_unordered_chunk1: { ratio: 5 },
  pipe_roundtrip: { ratio: 0.12, time: true },
  listener_client_roundtrip: { ratio: 0.12, time: true },
  lock_acquire_release: { ratio: 0.5, time: true },
  locked_value_increment: { ratio: 0.15, time: true },
  raw_array_elem_rw: { ratio: 1.5, time: true, vs: 'plain Float64Array' },
  threadpool_apply_async_trivial: { ratio: 1.5, note: 'and ≥ 2x the best Node pool' },
  threadpool_map_trivial: { ratio: 1, note: 'and ≥ our process Pool' },
  threadpool_map_1MiB: { ratio: 1, vs: 'piscina' },
  pickle_dumps_small: { ratio: 1, time: true },
  pickle_loads_small: { ratio: 1, time: true },
  pickle_dumps_1k: { ratio: 1, time: true },
  pickle_loads_1k: { ratio: 1, time: true },
  pickle_roundtrip_vs_python: { ratio: 1, time: true },
};

/** What a case is compared with in the chart: CPython, else its first other implementation. */
function baseline(r: Result): string | undefined {
  if (r.impls[PY]) return PY;
  return Object.keys(r.impls).find((i) => i !== OURS && !i.startsWith(OURS));
}

/** How many times the baseline's speed (CPython's) `impl` runs the case at (> 1: faster). */
function speed(r: Result, impl: string): number | undefined {
  const base = baseline(r);
  const v = r.impls[impl]?.value;
  const p = base === undefined ? undefined : r.impls[base]?.value;
  if (v === undefined || p === undefined || !(v > 0) || !(p > 0)) return undefined;
  return r.lowerIsBetter ? p / v : v / p;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmtX(x: number): string {
  return x >= 10 ? `${x.toFixed(0)}x` : x >= 1 ? `${x.toFixed(1)}x` : x >= 0.01 ? `${x.toFixed(2)}x` : `${x.toPrecision(1)}x`;
}

const COLORS: Record<string, string> = { [OURS]: '#1f6feb', 'plain Float64Array': '#8b949e' };
const OTHER = ['#d29922', '#a371f7', '#3fb950', '#db6d28', '#bf3989', '#1b7c83', '#6e7781'];

/** Bars of ours and other Node implementations relative to CPython's speed (the line at 1x), log scale. */
export function chartSvg(results: Result[], machine: Machine): string {
  const rows = results.filter((r) => speed(r, OURS) !== undefined);
  const others = [...new Set(rows.flatMap((r) => Object.keys(r.impls)))].filter((i) => i !== OURS && i !== PY && !i.startsWith(OURS));
  const color = (impl: string): string => COLORS[impl] ?? OTHER[others.indexOf(impl) % OTHER.length];
  const speeds = rows.flatMap((r) => Object.keys(r.impls).map((i) => speed(r, i) ?? 1));
  const lo = Math.min(-1, Math.floor(Math.log10(Math.min(...speeds)) - 0.1));
  const hi = Math.max(2, Math.ceil(Math.log10(Math.max(...speeds)) + 0.1));
  const labelW = 250;
  const plotW = 560;
  const bar = 11;
  const gap = 9;
  const x = (s: number): number => labelW + ((Math.log10(s) - lo) / (hi - lo)) * plotW;
  const out: string[] = [];
  let y = 46;
  for (const r of rows) {
    const base = baseline(r);
    const impls = Object.keys(r.impls).filter((i) => i !== base && (i === OURS || !i.startsWith(OURS)));
    const h = impls.length * (bar + 2);
    const label = base === PY ? r.case : `${r.case} (1x: ${base})`;
    out.push(`<text x="${labelW - 8}" y="${y + h / 2 + 4}" text-anchor="end">${esc(label)}</text>`);
    impls.forEach((impl, k) => {
      const s = speed(r, impl);
      if (s === undefined) return;
      const by = y + k * (bar + 2);
      const [a, b] = [x(1), x(s)].sort((p, q) => p - q);
      out.push(
        `<rect x="${a.toFixed(1)}" y="${by}" width="${Math.max(1, b - a).toFixed(1)}" height="${bar}" fill="${color(impl)}"><title>${esc(impl)}: ${fmtX(s)} CPython's speed</title></rect>`,
      );
      const right = s >= 1;
      out.push(`<text x="${(right ? b + 3 : a - 3).toFixed(1)}" y="${by + bar - 2}" font-size="9" text-anchor="${right ? 'start' : 'end'}">${fmtX(s)}</text>`);
    });
    const t = TARGETS[r.case];
    if (t && !t.vs && base === PY) {
      const ts = t.time ? 1 / t.ratio : t.ratio;
      out.push(`<line x1="${x(ts).toFixed(1)}" x2="${x(ts).toFixed(1)}" y1="${y - 2}" y2="${y + bar + 2}" stroke="#cf222e" stroke-width="2"><title>target: ${fmtX(ts)}</title></line>`);
    }
    y += h + gap;
  }
  const names = [OURS, ...others];
  // The legend flows in lines of the chart's width (about 6 px per character at this size).
  const spots: [number, number][] = [];
  let [lx, ly] = [labelW - 60, y + 26];
  for (const n of names) {
    const w = 26 + n.length * 6;
    if (lx + w > labelW + plotW + 50) [lx, ly] = [labelW - 60, ly + 16];
    spots.push([lx, ly]);
    lx += w;
  }
  const height = ly + 24;
  const axis: string[] = [];
  for (let e = lo; e <= hi; e++) {
    const s = 10 ** e;
    axis.push(`<line x1="${x(s)}" x2="${x(s)}" y1="38" y2="${y}" stroke="${e === 0 ? '#24292f' : '#d0d7de'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`);
    axis.push(`<text x="${x(s)}" y="${y + 14}" text-anchor="middle">${e === 0 ? 'CPython' : fmtX(s)}</text>`);
  }
  const legend = names.map((impl, i) => {
    const [lx, ly] = spots[i];
    return `<rect x="${lx}" y="${ly}" width="10" height="10" fill="${color(impl)}"/><text x="${lx + 14}" y="${ly + 9}">${esc(impl)}</text>`;
  });
  legend.push(`<line x1="${labelW - 120}" x2="${labelW - 120}" y1="${y + 24}" y2="${y + 38}" stroke="#cf222e" stroke-width="2"/><text x="${labelW - 114}" y="${y + 35}">target</text>`);
  const load = `load average ${machine.loadavgBefore[0]} → ${machine.loadavgAfter[0]} on ${machine.cpus} cores`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 60}" height="${height}" font-family="sans-serif" font-size="11" fill="#24292f">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${labelW}" y="16" font-size="13" font-weight="bold">Speed relative to CPython's multiprocessing (log scale; right of the line: faster)</text>`,
    `<text x="${labelW}" y="30" font-size="10">medians of interleaved rounds, same run, fresh processes, no warm-up; ${esc(load)}</text>`,
    ...axis,
    ...out,
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}

function fmtValue(v: number, unit: string): string {
  const u = unit === 'us' ? 'µs' : unit;
  if (['msg/s', 'task/s'].includes(unit)) {
    if (v >= 1e6) return `${(v / 1e6).toPrecision(3)} M ${u}`;
    if (v >= 1e3) return `${(v / 1e3).toPrecision(3)} k ${u}`;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toPrecision(3)} ${u}`;
}

/** The README's table: one row per case, medians of the run, ratios, others and targets. */
export function readmeTable(results: Result[], machine: Machine, rounds: number): string {
  const lines = [
    `One full run (\`npm run bench -- --readme\`): ${rounds} interleaved rounds, medians, every script in a fresh process, ` +
      `load average ${machine.loadavgBefore[0]} before and ${machine.loadavgAfter[0]} after on ${machine.cpus} cores ` +
      (Math.max(machine.loadavgBefore[0], machine.loadavgAfter[0]) > machine.cpus
        ? '(other work ran beside it: compare ratios, which come from the same run, more than figures). '
        : '(a quiet machine). ') +
      'Cases ending in `_first` are the first-call variants.',
    '',
    '| case | ours | CPython | ours vs CPython | other Node implementations | target |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const ours = r.impls[OURS];
    const py = r.impls[PY];
    if (!ours) continue;
    const ratio = py ? ours.value / py.value : undefined;
    const ratioText = ratio === undefined ? '' : r.lowerIsBetter ? `${ratio.toPrecision(3)}x the time` : `${ratio.toPrecision(3)}x`;
    const others = Object.entries(r.impls)
      .filter(([i]) => i !== OURS && i !== PY)
      .map(([i, f]) => `${i}: ${fmtValue(f.value, r.unit)}`)
      .join('; ');
    const t = TARGETS[r.case];
    let target = '';
    if (t) {
      const base = t.vs ? r.impls[t.vs]?.value : py?.value;
      const rr = base ? ours.value / base : undefined;
      const met = rr === undefined ? '' : t.time ? rr <= t.ratio : rr >= t.ratio;
      const what = t.vs ? `${t.vs}'s` : "CPython's";
      target = `${t.time ? '≤' : '≥'} ${t.ratio}x ${what}${t.time ? ' time' : ''}${t.note ? ` ${t.note}` : ''}${met === '' ? '' : met ? ': met' : ': not met'}`;
      if (t.vs && rr !== undefined) target += ` (${rr.toPrecision(3)}x)`;
    }
    lines.push(`| \`${r.case}\` | ${fmtValue(ours.value, r.unit)} | ${py ? fmtValue(py.value, r.unit) : ''} | ${ratioText} | ${others} | ${target} |`);
  }
  return lines.join('\n') + '\n';
}
