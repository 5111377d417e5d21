// A child's life once started (Python's spawn._main): read the preparation data and the
// Process object from the bootstrap socket, become that process, run it, exit with its
// code. Used by the entry point (spawn_main.ts) of spawn children and by the children
// forked by the fork server (forkserver_main.ts).
import { nativeCall } from './errors.js';
import { native } from './native.js';
import { _becomeChild, _inheritStartMethod, type BaseProcess } from './process.js';
import { _setImportingForChild, loads, loadsAsync } from './reduction.js';
import { _applyParentLogging, info } from './logging.js';
import { fromSources } from './util.js';
import { diesWithParent, type Preparation } from './spawn.js';
// Registers SpawnProcess and ForkServerProcess. Nothing else of the library is loaded up front: the modules
// of the objects a message carries are loaded when it is decoded (reduction.ts).
import './spawn.js';
import './forkserver.js';

let bootstrapped = false;

async function main(fd: number, server: number | null): Promise<number> {
  // Under a TypeScript loader (tsx), require() of a library module makes a second copy
  // of it, so reduction.ts could not load a kind synchronously: load them all up front.
  if (fromSources) await import('./context.js');
  const channel = new native.NativeConnection(fd);
  const takeFds = (n: number) => channel.takeFds(n);
  const first = channel.recv(true, null, null)!;
  const prep = loads(first, takeFds, false, true) as Preparation;
  _applyParentLogging(prep);
  _inheritStartMethod(prep.startMethod);
  const procData = channel.recv(true, null, null)!;
  let proc: BaseProcess;
  // While the target's modules load, starting a process is Python's bootstrapping error.
  _setImportingForChild(true);
  try {
    proc = (await loadsAsync(procData, takeFds, false, true)) as BaseProcess; // from the parent
  } finally {
    _setImportingForChild(false);
    channel.close();
  }
  // Forked by the fork server, it learns only now that it is daemonic (or a manager's
  // server): it dies with the server, which dies with the parent, from here on (as a
  // daemonic spawn child dies with its parent), or at once if the server is already gone.
  if (server !== null && diesWithParent(proc) && !nativeCall(() => native.setParentDeathSignal(true, server))) process.exit(1);
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
 * `server`: the pid of the fork server that forked this process (forkserver_main.ts).
 */
export function runChild(fd: number, server: number | null = null): void {
  main(fd, server).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
