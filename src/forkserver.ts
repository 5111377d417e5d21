// The 'forkserver' start method. CPython's fork server is a process that forks itself for
// each child, having imported the library and the preload modules. A node process cannot
// fork itself and go on running JavaScript (measured: the forked child crashes as soon as
// V8 runs again; see the notes of issue 16), so the server's part is played differently:
// this process keeps a few children started in advance (Node booted, the library and
// the preload modules loaded), each blocked on its bootstrap socket, and gives the next
// Process object to one of them, starting a replacement. They are this process's own
// children, so pid, exit code, sentinel, terminate/kill behave exactly as for spawn.
// A waiting child that reads the end of its socket (this process has ended) exits; one
// that becomes a daemonic process sets its parent-death signal then (child_main.ts).
import { nativeCall } from './errors.js';
import { native } from './native.js';
import { BaseProcess, registerProcessClass, type Popen } from './process.js';
import { bootstrapPath, childExecArgv, environment, getExecutable, SpawnPopen, startNode, type Started } from './spawn.js';
import { fromSources } from './util.js';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** How many started children wait for a Process object. */
const SPARES = 2;

const libraryRoot = new URL(fromSources ? '../index.ts' : '../index.js', import.meta.url).href;

let preload: string[] = [];

/**
 * Python's `set_forkserver_preload(module_names)`: modules that the children started in
 * advance load before they receive their Process object (after the library itself), so
 * that a target's module finds them loaded. Paths (absolute, or relative to the working
 * directory) and package names; one that fails to load is reported on the child's
 * standard error and left out, as CPython's server does. Children already waiting are
 * replaced.
 */
export function setForkserverPreload(moduleNames: string[]): void {
  if (!Array.isArray(moduleNames) || !moduleNames.every((m) => typeof m === 'string')) {
    throw new TypeError('module_names must be a list of strings');
  }
  preload = [...moduleNames];
}

/** A preload name as a child can import it: a file URL, or the name as given if it does not resolve from here. */
function resolvePreload(name: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(name)) return name;
  if (name.startsWith('/') || name.startsWith('.')) return pathToFileURL(resolve(name)).href;
  try {
    return pathToFileURL(createRequire(join(process.cwd(), 'noop.js')).resolve(name)).href;
  } catch {
    return name;
  }
}

interface Spare extends Started {
  /** The configuration it was started with: a spare of another one is not used. */
  config: string;
}

const spares: Spare[] = [];

/** What a waiting child was started with: node, its options, the environment, the preload modules. */
function configuration(): { key: string; args: string[]; env: string[] } {
  const env = environment();
  const modules = [libraryRoot, ...preload.map(resolvePreload)];
  const args = [bootstrapPath, '--multiprocessing-forkserver', JSON.stringify(modules)];
  return { key: JSON.stringify([getExecutable(), childExecArgv(), env, modules]), args, env };
}

function startSpare(c: ReturnType<typeof configuration>): Spare {
  return { ...startNode(c.args, c.env, false), config: c.key };
}

function discard(s: Spare): void {
  native.closeFd(s.conn);
  try {
    nativeCall(() => native.signalChild(s.child.pidfd, 9));
    nativeCall(() => native.waitChild(s.child.pid, s.child.pidfd, null));
  } finally {
    native.closeFd(s.child.pidfd);
  }
}

/** A waiting child for a new process (one started now if none is ready), and replacements. */
function take(): Started {
  const c = configuration();
  let got: Started | null = null;
  while (!got && spares.length) {
    const s = spares.shift()!;
    // Started with another configuration, or ended (killed while it waited): not usable.
    if (s.config !== c.key || nativeCall(() => native.waitReadable(s.child.pidfd, 0))) discard(s);
    else got = s;
  }
  got ??= startSpare(c);
  while (spares.length < SPARES) spares.push(startSpare(c));
  return got;
}

/** Pids of the children waiting for a Process object (for tests and diagnostics). @internal */
export function _forkserverSpares(): number[] {
  return spares.map((s) => s.child.pid);
}

/** Process started by the fork server (Python's context.ForkServerProcess). */
export class ForkServerProcess extends BaseProcess {
  protected override _Popen(proc: BaseProcess): Popen {
    return new SpawnPopen(proc, take);
  }
}
registerProcessClass(ForkServerProcess);
