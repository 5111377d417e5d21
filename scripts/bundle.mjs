// `node scripts/bundle.mjs` (part of `npm run build`, after tsc): join the library's compiled
// modules (dist/src/*.js) into two files, so that a process that imports the package loads a
// few modules instead of about fifty. Node 20's ES module loader pays for each module (resolving
// every import, reading the file, linking), and every spawn child pays that again: joined, a
// spawn child's start costs about 25 ms less CPU.
//
//   dist/src/lib.js        every module that the package root, a child's bootstrap and the kinds
//                          of the messages reach by static imports, each module's exports under
//                          `<module>$<name>`;
//   dist/src/lib_extra.js  the modules loaded on first use (managers, pickle), the same way;
//   dist/src/<module>.js   each module's file stays, with its exports, as a re-export of its
//                          names from lib.js or lib_extra.js: the package's subpath exports, the
//                          library's own references by path (a child's entry, the module of a
//                          message's kind) and a user's deep import find the same module
//                          instance; the .d.ts files beside them (tsc's) are unchanged;
//   spawn_main, forkserver_main, dummy_main: programs (modules that nothing imports, started by
//                          their path, that run when loaded; found by the build), each bundled
//                          on its own, importing the library from lib.js.
//
// Names of top-level functions and classes stay as written: they are visible (inspect, errors)
// and a function is sent by its name (reduction.ts maps a function of lib.js back to the
// module file that exports it). esbuild renames a top-level name that two modules share
// (`decode` -> `decode2`) and names a class that refers to itself `_X`: their `name` is set back
// (restoreNames). Not esbuild's keepNames, which also names every closure where it is made: a
// defineProperty each time, about 1 us per call on paths such as a wait or a send.
import { build } from 'esbuild';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'src');
const MARK = '// node-multiprocessing: bundled by scripts/bundle.mjs';
const LIBS = ['lib', 'lib_extra'];
const modules = readdirSync(dir)
  .filter((f) => f.endsWith('.js'))
  .map((f) => basename(f, '.js'))
  .filter((m) => !LIBS.includes(m));
for (const m of modules) {
  if (readFileSync(join(dir, `${m}.js`), 'utf8').startsWith(MARK)) {
    console.error(`bundle: dist/src/${m}.js is already bundled; compile first (tsc)`);
    process.exit(1);
  }
}
const file = (m) => join(dir, `${m}.js`);

// Programs: the modules that no module imports and the package does not export, which the
// library starts by their path (a spawn child, the fork server, a thread) and whose top level
// runs that program. Never inside a lib, where it would run whenever the lib is loaded: each is
// bundled on its own. (A module that is merely unused is treated the same, harmlessly.)
const exported = new Set(
  Object.values(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports)
    .map((e) => /^\.\/dist\/src\/([a-z_]+)\.js$/.exec(e?.default ?? '')?.[1])
    .filter(Boolean),
);
const imported = new Set(['index']);
for (const m of modules) {
  for (const [, n] of readFileSync(file(m), 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"]\.\/([a-z_]+)\.js['"]/g)) if (n !== m) imported.add(n);
}
const PROGRAMS = modules.filter((m) => !imported.has(m) && !exported.has(m));
/** What lib.js must hold besides what the package root imports: a child's bootstrap, the modules of kinds. */
const CORE_ROOTS = ['index', 'child_main', 'dummy', 'thread_channel', 'pool_shared', 'wait', ...PROGRAMS];
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, logLevel: 'warning', legalComments: 'none' };

/** A library module imported by a relative path (`./x.js`), or null. */
function libraryModule(path) {
  const m = /^\.\/([a-z_]+)\.js$/.exec(path);
  return m && modules.includes(m[1]) ? m[1] : null;
}

// 1. Each module's exports (esbuild's metafile of the unbundled modules).
const exportsOf = new Map();
{
  const r = await build({ entryPoints: modules.map(file), outdir: join(root, 'dist', '.bundle-scan'), bundle: false, format: 'esm', write: false, metafile: true, logLevel: 'warning' });
  for (const [out, meta] of Object.entries(r.metafile.outputs)) {
    if (meta.entryPoint) exportsOf.set(basename(meta.entryPoint, '.js'), meta.exports);
  }
}

// 2. The modules of lib.js: what the core roots reach by static imports. Dynamic imports of the
// library stay imports of its files (which lead back to lib.js or lib_extra.js).
const dynamicExternal = {
  name: 'library-dynamic-imports',
  setup(b) {
    b.onResolve({ filter: /^\.\/[a-z_]+\.js$/ }, (a) => (a.kind === 'dynamic-import' && libraryModule(a.path) ? { path: a.path, external: true } : undefined));
  },
};
const core = new Set();
{
  const r = await build({ ...common, entryPoints: CORE_ROOTS.map(file), outdir: join(root, 'dist', '.bundle-scan'), splitting: true, metafile: true, plugins: [dynamicExternal] });
  for (const input of Object.keys(r.metafile.inputs)) {
    const m = basename(input, '.js');
    if (modules.includes(m) && !PROGRAMS.includes(m)) core.add(m);
  }
}
const extra = modules.filter((m) => !core.has(m) && !PROGRAMS.includes(m));
const libOf = (m) => (core.has(m) ? 'lib' : 'lib_extra');

/** `export { a as m$a, ... } from './m.js'` for each module of a lib. */
function libEntry(members) {
  return members.map((m) => `export { ${exportsOf.get(m).map((n) => `${n} as ${m}$${n}`).join(', ')} } from './${m}.js';`).join('\n');
}

/** The module file that re-exports m's names from its lib (at `from`, relative to the file). */
function stub(m, from = './') {
  const names = exportsOf.get(m);
  const lib = `${from}${libOf(m)}.js`;
  const body = names.length ? `export { ${names.map((n) => `${m}$${n} as ${n}`).join(', ')} } from '${lib}';` : `import '${lib}';`;
  return `${MARK}: this module is part of ${libOf(m)}.js.\n${body}\n`;
}

/**
 * Imports of a module outside the bundle being built become imports of its lib (a re-export
 * module made here), so that each module exists once.
 */
function viaLibs(inside) {
  return {
    name: 'library-via-libs',
    setup(b) {
      b.onResolve({ filter: /^\.\/lib(_extra)?\.js$/ }, (a) => ({ path: a.path, external: true }));
      b.onResolve({ filter: /^\.\/[a-z_]+\.js$/ }, (a) => {
        const m = libraryModule(a.path);
        if (!m || PROGRAMS.includes(m)) return undefined;
        if (a.kind === 'dynamic-import') return { path: a.path, external: true };
        return inside.has(m) ? undefined : { path: m, namespace: 'library-stub' };
      });
      b.onLoad({ filter: /.*/, namespace: 'library-stub' }, (a) => ({ contents: stub(a.path), resolveDir: dir, loader: 'js' }));
    },
  };
}

// The top-level functions and classes of the modules, by name.
const declared = new Set();
for (const m of modules) {
  for (const [, n] of readFileSync(file(m), 'utf8').matchAll(/^(?:export )?(?:async )?(?:function\*?|class) ([\w$]+)/gm)) declared.add(n);
}

/** Give back their names to the top-level functions and classes that esbuild renamed in `text`. */
function restoreNames(name, text) {
  const lines = text.split('\n');
  const fail = (what) => {
    throw new Error(`bundle: ${name}.js: ${what}`);
  };
  const original = (n) => {
    const o = n.replace(/\d+$/, '');
    if (o === n || !declared.has(o)) fail(`cannot tell the original name of '${n}'`);
    return o;
  };
  const top = [];
  for (let i = 0; i < lines.length; i++) {
    const f = /^(?:async )?function\*? ([\w$]+)\(/.exec(lines[i]);
    if (f && !declared.has(f[1])) top.push(`Object.defineProperty(${f[1]}, "name", { value: "${original(f[1])}" });`);
    const c = /^var ([\w$]+) = class(?: (?!extends\b)([\w$]+))?/.exec(lines[i]);
    if (c && (!declared.has(c[1]) || (c[2] !== undefined && c[2] !== c[1]))) {
      const want = declared.has(c[1]) ? c[1] : original(c[1]);
      // After the class body, before anything else of its module runs.
      const end = lines.indexOf('};', i);
      if (end < 0) fail(`no end found for class ${c[1]}`);
      lines[end] += ` Object.defineProperty(${c[1]}, "name", { value: "${want}" });`;
    }
  }
  // Function declarations are hoisted: their names are right before any code runs.
  return [...top, ...lines].join('\n');
}

// The names that modules declare at top level with `const` or `class` (never assigned again),
// and with `let`/`var` (assigned).
const constNames = new Set();
const mutableNames = new Set();
for (const m of modules) {
  const text = readFileSync(file(m), 'utf8');
  for (const [, n, c] of text.matchAll(/^(?:export )?(?:const ([\w$]+) =|class ([\w$]+))/gm)) constNames.add(n ?? c);
  for (const [, n] of text.matchAll(/^(?:export )?(?:let|var) ([\w$]+)\b/gm)) mutableNames.add(n);
}

/**
 * Give `const` back to the top-level constants that esbuild declares with `var` in a bundle.
 * V8's optimizing compiler folds a module's `const` into the code that reads it (a lock's
 * word index, a tag, the addon's functions) but must load a `var` each time: with them all
 * `var`, a Lock's acquire and release, a locked Value's increment and pickle's loads ran 5-15%
 * slower than from the separate modules. Only a name that modules declared `const` or `class`
 * and none `let`/`var`, and that nothing in the bundle assigns again.
 */
function constify(name, text) {
  const assigns = (n) => {
    const id = n.replace(/\$/g, '\\$');
    const re = new RegExp(`(?<![\\w$.])${id}\\s*(?:[-+*/%&|^]|\\*\\*|<<|>>>?|&&|\\|\\||\\?\\?)?=(?![=>])|(?:\\+\\+|--)\\s*${id}(?![\\w$])|(?<![\\w$.])${id}\\s*(?:\\+\\+|--)|for\\s*\\(\\s*${id}\\s+(?:of|in)\\b|[\\[{,]\\s*${id}\\s*[\\]},][^;\\n]*[\\]}]\\s*=(?![=>])`, 'g');
    return [...text.matchAll(re)].length;
  };
  // esbuild renames a name that several modules declare (`recent` -> `recent2`).
  const wasConst = (n) => [n, n.replace(/\d+$/, '')].some((o) => constNames.has(o) && !mutableNames.has(o));
  return text.replace(/^var ([\w$]+) = /gm, (decl, n) => (wasConst(n) && assigns(n) === 1 ? `const ${n} = ` : decl));
}

/**
 * Node's built-in modules through process.getBuiltinModule (Node >= 20.16) rather than import
 * declarations: an import of a built-in makes Node build an ES module facade of it, which reads
 * every export (node:fs's getters load the file streams, node:util's parseArgs and MIME), about
 * 2 ms of CPU at each start for the library's eleven built-ins. The same objects, bound before
 * any code of the file runs, as imports are.
 */
function builtinsByCall(name, text) {
  const consts = [];
  const out = text.replace(/^import (.*) from "(node:[\w/]+)";\n/gm, (line, what, id) => {
    const get = `process.getBuiltinModule(${JSON.stringify(id)})`;
    const star = /^\* as ([\w$]+)$/.exec(what);
    const named = /^\{([^}]*)\}$/.exec(what);
    if (star) consts.push(`const ${star[1]} = ${get};`);
    else if (named) {
      const parts = named[1].split(',').map((p) => p.trim()).filter(Boolean).map((p) => p.replace(/^([\w$]+) as ([\w$]+)$/, '$1: $2'));
      consts.push(`const { ${parts.join(', ')} } = ${get};`);
    } else if (/^[\w$]+$/.test(what)) consts.push(`const ${what} = ${get};`);
    else throw new Error(`bundle: ${name}.js: cannot rewrite: ${line.trim()}`);
    return '';
  });
  if (/^import\b[^;]*"node:/m.test(out)) throw new Error(`bundle: ${name}.js: an import of a built-in is left`);
  return [...consts, out].join('\n');
}

const outputs = new Map();
async function bundle(name, contents, inside) {
  const r = await build({ ...common, stdin: { contents, resolveDir: dir, sourcefile: `${name}.js`, loader: 'js' }, outfile: file(name), plugins: [viaLibs(inside)] });
  outputs.set(name, `${MARK}.\n${builtinsByCall(name, constify(name, restoreNames(name, r.outputFiles[0].text)))}`);
}
await bundle('lib', libEntry([...core]), core);
await bundle('lib_extra', libEntry(extra), new Set(extra));
for (const p of PROGRAMS) await bundle(p, readFileSync(file(p), 'utf8'), new Set());
for (const m of [...core, ...extra]) outputs.set(m, stub(m));

for (const [name, text] of outputs) {
  writeFileSync(file(name), text);
  rmSync(`${file(name)}.map`, { force: true });
}
// The package root (tsc's `export * from './src/index.js'`) re-exports from lib.js itself: one
// module less to load in every process that imports the package.
const rootIndex = join(root, 'dist', 'index.js');
if (!/^export \* from '\.\/src\/index\.js';$/m.test(readFileSync(rootIndex, 'utf8'))) {
  console.error('bundle: dist/index.js is not what tsc makes of index.ts');
  process.exit(1);
}
writeFileSync(rootIndex, stub('index', './src/'));
rmSync(`${rootIndex}.map`, { force: true });
console.log(`bundle: dist/src/lib.js (${core.size} modules), lib_extra.js (${extra.length}), entry points ${PROGRAMS.join(', ')}`);
