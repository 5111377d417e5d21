// How the package finds its native engine (src/native.ts), and the package layout that
// npm relies on. `npm run check:package` installs the packed package for real.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PREBUILT_PLATFORMS, platformName } from '../src/native.js';
import { root, runJs } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const host = platformName();

/** Import the package's compiled entry with plain node, as `platform` and `arch` if given. */
function importAs(entry: string, as: { platform?: string; arch?: string } = {}) {
  const fake = Object.entries(as)
    .map(([k, v]) => `Object.defineProperty(process, '${k}', { value: '${v}' });`)
    .join('');
  const native = join(entry, '..', 'src', 'native.js');
  const code =
    `${fake} const mp = await import(${JSON.stringify(entry)}); const [a, b] = mp.Pipe(); a.send('up');` +
    `console.log(b.recvSync(), (await import(${JSON.stringify(native)})).nativeFile);`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
}

/** A project whose node_modules holds the compiled package without a build from source. */
function installedLayout(t: { teardown(fn: () => void): void }): { dir: string; entry: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mp-packaging-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const home = join(dir, 'node_modules', 'node-multiprocessing');
  mkdirSync(home, { recursive: true });
  cpSync(join(root, 'dist', 'index.js'), join(home, 'dist', 'index.js'));
  cpSync(join(root, 'dist', 'src'), join(home, 'dist', 'src'), { recursive: true });
  cpSync(join(root, 'package.json'), join(home, 'package.json'));
  return { dir, entry: join(home, 'dist', 'index.js') };
}

function addPlatformPackage(dir: string, version: string): void {
  const home = join(dir, 'node_modules', `node-multiprocessing-${host}`);
  mkdirSync(home, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(root, 'npm', host, 'package.json'), 'utf8'));
  writeFileSync(join(home, 'package.json'), JSON.stringify({ ...manifest, version }));
  cpSync(join(root, 'native', `multiprocessing.${host}.node`), join(home, manifest.main));
}

test('a clone loads its own build from source', (t) => {
  const r = importAs(join(root, 'dist', 'index.js'));
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, `up ${root}/native/multiprocessing.${host}.node\n`);
});

test('an installed package loads the binary of its platform package', (t) => {
  const { dir, entry } = installedLayout(t);
  addPlatformPackage(dir, pkg.version);
  const r = importAs(entry);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, `up ${dir}/node_modules/node-multiprocessing-${host}/multiprocessing.${host}.node\n`);
});

test('a platform package of another version is refused, saying which versions', (t) => {
  const { dir, entry } = installedLayout(t);
  addPlatformPackage(dir, '0.0.1');
  const r = importAs(entry);
  t.not(r.status, 0);
  t.regex(r.stderr, new RegExp(`the package node-multiprocessing-${host}: version 0\\.0\\.1, but node-multiprocessing ${pkg.version.replace(/\./g, '\\.')} needs the same version`));
});

test('without its platform package, the error names the package and how to get it', (t) => {
  const { entry } = installedLayout(t);
  const r = importAs(entry);
  t.not(r.status, 0);
  t.true(r.stderr.includes(`node-multiprocessing could not load its native engine for ${host} (Node.js ${process.version}).`), r.stderr);
  t.true(r.stderr.includes(`/node-multiprocessing/native/multiprocessing.${host}.node (a build from source): not built`), r.stderr);
  t.true(r.stderr.includes(`the package node-multiprocessing-${host} (the prebuilt binary): not installed`), r.stderr);
  t.true(r.stderr.includes('without --omit=optional'), r.stderr);
  t.true(r.stderr.includes("code: 'ERR_MULTIPROCESSING_NO_NATIVE'"), r.stderr);
});

for (const [as, name] of [
  [{ arch: 'riscv64' }, 'linux-riscv64-gnu'],
  [{ platform: 'darwin', arch: 'arm64' }, 'darwin-arm64'],
] as const) {
  test(`on ${name}, which has no binary, one error says so and how to build from source`, (t) => {
    const r = importAs(join(root, 'dist', 'index.js'), as);
    t.not(r.status, 0);
    const message = r.stderr.slice(r.stderr.indexOf('Error: '), r.stderr.indexOf('\n    at '));
    t.is(
      message,
      [
        `Error: node-multiprocessing could not load its native engine for ${name} (Node.js ${process.version}).`,
        'Looked for:',
        `  ${root}/native/multiprocessing.${name}.node (a build from source): not built`,
        `  the package node-multiprocessing-${name} (the prebuilt binary): not installed`,
        `There is no prebuilt binary for ${name}; there are for linux-x64-gnu and linux-arm64-gnu. node-multiprocessing needs Linux 5.16 or newer.`,
        "To build from source (needs Rust's cargo, https://rustup.rs): clone node-multiprocessing's repository, run " +
          '`npm install` in the clone (it builds the engine), then `npm install <path of the clone>` in your project.',
      ].join('\n'),
    );
  });
}

test('the compiled package, its modules joined (scripts/bundle.mjs), works as one instance from every export', async (t) => {
  // Its own name resolves to dist/ (the package's exports) from inside the repository.
  const r = await runJs('__test__/fixtures/bundled_main.mjs');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), {
    same: [true, true, true, true, true, true],
    renamed: [],
    spawn: [['Queue', 'Lock'], 0, 1, [1, 4, 9]],
    forkserver: [['Queue', 'Lock'], 0, 1, [1, 4, 9]],
    manager: 42,
    threads: [16, 25],
    dummy: [36],
    pickle: [1, 'a'],
  });
  // Each module keeps its file, which re-exports its names from the joined file.
  const lib = readdirSync(join(root, 'dist', 'src')).filter((f) => f.endsWith('.js'));
  for (const m of readdirSync(join(root, 'src')).filter((f) => f.endsWith('.ts'))) t.true(lib.includes(m.replace(/\.ts$/, '.js')), m);
});

test('the prebuilt platforms, optionalDependencies, napi targets and npm/ packages agree', (t) => {
  const triple = (target: string) => {
    const [arch, , os, abi] = target.split('-');
    return `${os}-${{ x86_64: 'x64', aarch64: 'arm64' }[arch] ?? arch}-${abi}`;
  };
  t.deepEqual(pkg.napi.targets.map(triple).sort(), [...PREBUILT_PLATFORMS].sort());
  t.deepEqual(readdirSync(join(root, 'npm')).sort(), [...PREBUILT_PLATFORMS].sort());
  // Exact versions, napi-rs style: the binary always matches the JavaScript beside it.
  t.deepEqual(pkg.optionalDependencies, Object.fromEntries(PREBUILT_PLATFORMS.map((p) => [`node-multiprocessing-${p}`, pkg.version])));
  for (const p of PREBUILT_PLATFORMS) {
    const m = JSON.parse(readFileSync(join(root, 'npm', p, 'package.json'), 'utf8'));
    const [os, cpu, abi] = p.split('-');
    t.like(m, {
      name: `node-multiprocessing-${p}`,
      version: pkg.version,
      os: [os],
      cpu: [cpu],
      libc: [abi === 'gnu' ? 'glibc' : 'musl'],
      main: `multiprocessing.${p}.node`,
      files: [`multiprocessing.${p}.node`],
      engines: pkg.engines,
      license: pkg.license,
    });
    t.is(m.scripts, undefined);
  }
  // No install script on a user's machine; the contributor's build runs on `prepare`, which
  // the published manifest (scripts/stage.mjs) does not carry.
  for (const s of ['preinstall', 'install', 'postinstall']) t.is(pkg.scripts[s], undefined, s);
  t.is(pkg.private, true);
});
