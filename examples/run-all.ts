// `npm run demo`: runs every example in this folder and shows what it prints.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tsx = join(here, '..', 'node_modules', '.bin', 'tsx');
let failed = 0;
for (const file of readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'run-all.ts' && !f.startsWith('_')).sort()) {
  console.log(`\n=== examples/${file}`);
  const r = spawnSync(tsx, [join(here, file)], { stdio: 'inherit', timeout: 120_000 });
  if (r.status !== 0) {
    failed++;
    console.log(`!!! examples/${file} exited with ${r.status ?? r.signal}`);
  }
}
process.exit(failed ? 1 : 0);
