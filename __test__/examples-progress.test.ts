// The example users look for: a long imapUnordered driving a progress bar (cli-progress).
import test from 'ava';
import { runTs } from './helpers.js';

test('a progress bar over a long imapUnordered counts every result up to 100%', async (t) => {
  const r = await runTs('examples/pool_progress.ts', ['100000']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'below 100000, the longest Collatz sequence starts at 77031 (350 steps)\n');
  // Not a terminal: one line per redraw (noTTYOutput), the first at 0, the last at 100%.
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('Collatz |'));
  t.true(lines.length >= 2, r.stderr);
  const counts = lines.map((l) => {
    const m = /\| (\d+)% \| (\d+)\/99999 \| \d+s$/.exec(l);
    t.truthy(m, l);
    return Number(m?.[2]);
  });
  t.is(counts[0], 0);
  t.is(counts.at(-1), 99999);
  t.true(lines.at(-1)!.includes('| 100% |'), lines.at(-1));
  t.deepEqual(counts, [...counts].sort((a, b) => a - b), 'the bar never goes back');
});
