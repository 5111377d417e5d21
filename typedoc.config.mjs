// `npm run docs`: the API reference (TypeDoc) into docs/api/. Its entry points are the package's
// `exports` (package.json), so a new subpath is documented, and checked, without an edit here.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const entryPoints = Object.values(pkg.exports)
  .map((e) => (typeof e === 'object' ? e.types : e))
  .filter((types) => types?.endsWith('.d.ts'))
  .map((types) => types.replace(/^\.\/dist\//, './').replace(/\.d\.ts$/, '.ts'));

/** @type {Partial<import('typedoc').TypeDocOptions>} */
export default {
  name: 'node-multiprocessing',
  entryPoints,
  tsconfig: 'tsconfig.build.json',
  out: 'docs/api',
  readme: 'README.md',
  excludeInternal: true,
  excludePrivate: true,
  excludeProtected: true,
  validation: { notExported: true, invalidLink: true, notDocumented: true },
  // `npm test` runs this: an export without a doc comment fails the build.
  treatWarningsAsErrors: true,
  // Internal types that public signatures mention: a job's callback interface (pool_jobs.ts), and
  // the engine's handles that constructors accept when an object is re-created in another process.
  intentionallyNotExported: ['Job', 'NativeBarrier', 'NativeCondition', 'NativeEvent', 'NativeSemLock'],
};
