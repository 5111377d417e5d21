// The napi addon, loaded once; the one place that finds it. Only this package's modules use it.
//
// Where it looks, in this order (napi-rs's layout, without its generated loader, whose
// error lists every load failure but not what to do):
//   1. <package>/native/multiprocessing.<platform>.node: a build from source, made by
//      `npm install` in a clone of the repository (`napi build --platform`);
//   2. the package node-multiprocessing-<platform>: the prebuilt binary, an exact-version
//      optionalDependency that npm installs only on its platform (npm/<platform>/ in the repository).
// Neither: one error that names the platform, both places, and how to build from source.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as Binding from '../native/binding.cjs';

/** The platforms with a prebuilt binary package (kept equal to package.json's optionalDependencies by a test). */
export const PREBUILT_PLATFORMS = ['linux-x64-gnu', 'linux-arm64-gnu'] as const;
const PACKAGE = 'node-multiprocessing';

const require = createRequire(import.meta.url);
// From src/ (run by tsx) and from dist/src/ (compiled, where this code is part of lib.js:
// scripts/bundle.mjs), the package root is the same.
const root = fileURLToPath(new URL(/\/dist\/src\/[a-z_]+\.js$/.test(import.meta.url) ? '../../' : '../', import.meta.url));

/** The file the addon was loaded from (a worker thread can load the same one first thing). */
export let nativeFile = '';

function isMusl(): boolean {
  try {
    // glibc's ldd is a script naming glibc, musl's names ld-musl: a 5 KB read, not a 15 ms report.
    return readFileSync('/usr/bin/ldd', 'latin1').includes('musl');
  } catch {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    return !header?.glibcVersionRuntime;
  }
}

/** napi-rs's name of this platform: `linux-x64-gnu`, `linux-arm64-musl`, `darwin-arm64`... */
export function platformName(): string {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  const libc = isMusl() ? 'musl' : 'gnu';
  return `linux-${arch}-${arch === 'arm' ? `${libc}eabihf` : libc}`;
}

function errorCode(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

function load(): typeof Binding {
  const platform = platformName();
  const local = `${root}native/multiprocessing.${platform}.node`;
  const pkg = `${PACKAGE}-${platform}`;
  const failures: string[] = [];
  const causes: unknown[] = [];

  try {
    const binding = require(local) as typeof Binding;
    nativeFile = local;
    return binding;
  } catch (e) {
    if (errorCode(e) !== 'MODULE_NOT_FOUND') {
      failures.push(`  ${local} (a build from source): ${(e as Error).message}`);
      causes.push(e);
    } else failures.push(`  ${local} (a build from source): not built`);
  }

  try {
    const binding = require(pkg) as typeof Binding;
    const want = (require(`${root}package.json`) as { version: string }).version;
    const got = (require(`${pkg}/package.json`) as { version: string }).version;
    if (got !== want) {
      failures.push(`  the package ${pkg}: version ${got}, but ${PACKAGE} ${want} needs the same version`);
    } else {
      nativeFile = require.resolve(pkg);
      return binding;
    }
  } catch (e) {
    const missing = errorCode(e) === 'MODULE_NOT_FOUND' && (e as Error).message.includes(`'${pkg}'`);
    failures.push(`  the package ${pkg} (the prebuilt binary): ${missing ? 'not installed' : (e as Error).message}`);
    causes.push(e);
  }

  const prebuilt = (PREBUILT_PLATFORMS as readonly string[]).includes(platform);
  const lines = [
    `${PACKAGE} could not load its native engine for ${platform} (Node.js ${process.version}).`,
    'Looked for:',
    ...failures,
    prebuilt
      ? `${pkg} is an optional dependency of ${PACKAGE}: install ${PACKAGE} again without --omit=optional ` +
        `or --no-optional (and with the same version of both), or build from source.`
      : `There is no prebuilt binary for ${platform}; there are for ${PREBUILT_PLATFORMS.join(' and ')}. ` +
        `${PACKAGE} needs Linux 5.16 or newer.`,
    `To build from source (needs Rust's cargo, https://rustup.rs): clone ${PACKAGE}'s repository, run ` +
      '`npm install` in the clone (it builds the engine), then `npm install <path of the clone>` in your project.',
  ];
  throw Object.assign(new Error(lines.join('\n'), { cause: causes.length > 1 ? new AggregateError(causes) : causes[0] }), {
    code: 'ERR_MULTIPROCESSING_NO_NATIVE',
  });
}

export const native: typeof Binding = load();
