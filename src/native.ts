// The napi addon, loaded once. Only the TypeScript modules of this package use it.
import { createRequire } from 'node:module';
import type * as Binding from '../native/binding.cjs';

const require = createRequire(import.meta.url);
// From src/ (run by tsx) and from dist/src/ (compiled) the addon is in <root>/native.
const here = new URL('.', import.meta.url).pathname;
const root = here.includes('/dist/src/') ? '../../' : '../';

function load(): typeof Binding {
  // Every child loads the addon at startup: go straight to the local build for glibc
  // Linux, and leave platform detection (musl, npm packages) to napi-rs's loader.
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    try {
      return require(`${root}native/multiprocessing.linux-${process.arch}-gnu.node`);
    } catch {
      /* not built here: fall through */
    }
  }
  return require(`${root}native/binding.cjs`);
}

export const native: typeof Binding = load();
