// `npm run stage [-- <dir>]`: lay out the package users install, ready for `npm pack <dir>` or
// `npm publish <dir>` (default dir: stage/package).
//
// The repository's package.json is the contributor's: its `prepare` script builds the Rust
// engine on `npm install` in a clone. npm lists any package whose manifest has a `prepare`,
// `install` or `postinstall` script as one with install scripts, so the published manifest
// keeps only the fields a user's install and import read. The root package is `private` so
// that it cannot be published by mistake with the contributor's scripts.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2] ?? join(root, 'stage', 'package');

const KEEP = [
  'name', 'version', 'description', 'keywords', 'homepage', 'bugs', 'repository', 'license', 'author',
  'type', 'engines', 'main', 'types', 'exports', 'files', 'optionalDependencies', 'dependencies', 'sideEffects',
];

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const manifest = Object.fromEntries(KEEP.filter((k) => k in pkg).map((k) => [k, pkg[k]]));

for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/native/binding.d.cts']) {
  if (!existsSync(join(root, f))) {
    console.error(`stage: ${f} is missing; run \`npm run build\` first`);
    process.exit(1);
  }
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
// `files` in the manifest selects what npm packs from these.
cpSync(join(root, 'dist'), join(out, 'dist'), { recursive: true });
for (const f of ['README.md', 'LICENSE']) if (existsSync(join(root, f))) cpSync(join(root, f), join(out, f));
console.log(out);
