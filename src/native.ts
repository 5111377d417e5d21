// The napi addon, loaded once. Only the TypeScript modules of this package use it.
import { createRequire } from 'node:module';
import type * as Binding from '../native/binding.cjs';

const require = createRequire(import.meta.url);
// From src/ (run by tsx) and from dist/src/ (compiled) the addon is in <root>/native.
const here = new URL('.', import.meta.url).pathname;
const root = here.includes('/dist/src/') ? '../../' : '../';

export const native: typeof Binding = require(`${root}native/binding.cjs`);
