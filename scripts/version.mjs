// The `version` script (`npm version <v>` runs it after writing package.json): give the platform
// packages (npm/*/package.json) and the exact-version optionalDependencies the new version, and
// stage those files for npm's version commit.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const write = (file, obj) => writeFileSync(file, JSON.stringify(obj, null, 2) + '\n');
const rootFile = join(root, 'package.json');
const pkg = JSON.parse(readFileSync(rootFile, 'utf8'));
const files = [rootFile];
for (const dir of readdirSync(join(root, 'npm'))) {
  const file = join(root, 'npm', dir, 'package.json');
  const sub = JSON.parse(readFileSync(file, 'utf8'));
  sub.version = pkg.version;
  write(file, sub);
  files.push(file);
  pkg.optionalDependencies[sub.name] = pkg.version;
}
write(rootFile, pkg);
if (process.env.npm_lifecycle_event === 'version') execFileSync('git', ['add', ...files], { cwd: root });
console.log(`npm/* and optionalDependencies at ${pkg.version}`);
