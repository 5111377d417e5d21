// A child's life once started (Python's spawn._main): read the preparation data and the
// Process object from the bootstrap socket, become that process, run it, exit with its
// code. Used by the entry point (spawn_main.ts) of spawn children and of children
// started in advance by the forkserver start method (forkserver.ts).
import { nativeCall } from './errors.js';
import { native } from './native.js';
import { _becomeChild, _inheritStartMethod, type BaseProcess } from './process.js';
import { _setImportingForChild, importFunctionModule, loads, loadsAsync } from './reduction.js';
import { _applyParentLogging, info } from './logging.js';
import { fromSources } from './util.js';
import { diesWithParent, type Preparation } from './spawn.js';
// Registers SpawnProcess and ForkServerProcess. Nothing else of the library is loaded up front: the modules
// of the objects a message carries are loaded when it is decoded (reduction.ts).
import './spawn.js';
import './forkserver.js';

let bootstrapped = false;
const READY = new Uint8Array([0]);
const ACK = new Uint8Array([1]);

/** Load the modules of a child started in advance; one that fails is reported and left out, as by CPython's fork server. */
async function preload(modules: string[]): Promise<void> {
  for (const m of modules) {
    try {
      await import(m);
    } catch (e) {
      process.stderr.write(`forkserver: cannot preload ${m}: ${(e as Error)?.message ?? e}\n`);
    }
  }
}

/**
 * The modules of earlier Process objects' targets: loaded as a target's module is, before
 * the Process object arrives. One that fails is left out silently: if the target needs
 * it, loading the Process object reports the error.
 */
async function preloadTargets(urls: string[]): Promise<void> {
  _setImportingForChild(true);
  try {
    for (const url of urls) await importFunctionModule(url).catch(() => {});
  } finally {
    _setImportingForChild(false);
  }
}

/** What a child started in advance loads before it is ready: see forkserver.ts. */
export interface Preloads {
  /** The library root and the modules of setForkserverPreload. */
  modules: string[];
  /** The modules of the parent's recent targets. */
  targets: string[];
}

async function main(fd: number, preloads: Preloads | null): Promise<number> {
  const startedInAdvance = preloads !== null;
  // Under a TypeScript loader (tsx), require() of a library module makes a second copy
  // of it, so reduction.ts could not load a kind synchronously: load them all up front.
  if (fromSources) await import('./context.js');
  const channel = new native.NativeConnection(fd);
  if (startedInAdvance) {
    await preload(preloads.modules);
    await preloadTargets(preloads.targets);
    // Ready: the parent hands a Process object to a ready child first, and waits for it to
    // acknowledge (below). A parent that has ended: the next recv says so.
    try {
      channel.send(READY);
    } catch {
      /* the parent has ended */
    }
  }
  const takeFds = (n: number) => channel.takeFds(n);
  let first: Buffer;
  try {
    first = channel.recv(true, null, null)!;
  } catch (e) {
    // Started in advance, it waited for a parent that has ended: nothing to do.
    if (startedInAdvance) process.exit(0);
    throw e;
  }
  const prep = loads(first, takeFds, false, true) as Preparation;
  _applyParentLogging(prep);
  _inheritStartMethod(prep.startMethod);
  const procData = channel.recv(true, null, null)!;
  if (startedInAdvance) {
    // Taken: the parent waits for this before counting the start as done (a waiting child
    // killed just before could not say it). A parent that did not wait has closed its end.
    try {
      channel.send(ACK);
    } catch {
      /* the parent did not wait for it */
    }
  }
  let proc: BaseProcess;
  // While the target's modules load, starting a process is Python's bootstrapping error.
  _setImportingForChild(true);
  try {
    proc = (await loadsAsync(procData, takeFds, false, true)) as BaseProcess; // from the parent
  } finally {
    _setImportingForChild(false);
    channel.close();
  }
  // Started in advance, it learns only now that it is daemonic (or a manager's server): it dies with the parent
  // from here on (as a daemonic spawn child), or at once if the parent is already gone.
  if (startedInAdvance && diesWithParent(proc) && !nativeCall(() => native.setParentDeathSignal(true, proc._parentPid!))) process.exit(1);
  _becomeChild(proc, prep.parentName);
  // A target that calls process.exit() skips the end of _bootstrap: say how it exits.
  process.on('exit', (code) => {
    if (!bootstrapped) info('process exiting with exitcode %d', code);
  });
  const code = await proc._bootstrap();
  bootstrapped = true;
  return code;
}

/**
 * Run the child whose preparation data and Process object arrive on `fd`, then exit.
 * `preloads`: started in advance by the forkserver start method, which loads these first.
 */
export function runChild(fd: number, preloads: Preloads | null = null): void {
  main(fd, preloads).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
