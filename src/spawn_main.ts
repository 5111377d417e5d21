// The child's entry point (Python's spawn_main): read the preparation data and the
// Process object from descriptor 3, become that process, run it, exit with its code.
import { native } from './native.js';
import { _becomeChild, type BaseProcess } from './process.js';
import { _setImportingForChild, loads, loadsAsync } from './reduction.js';
import { _applyParentLogging, info } from './logging.js';
import { fromSources } from './util.js';
import type { Preparation } from './spawn.js';
// Registers SpawnProcess. Nothing else of the library is loaded up front: the modules
// of the objects a message carries are loaded when it is decoded (reduction.ts).
import './spawn.js';

const BOOTSTRAP_FD = 3;
let bootstrapped = false;

async function main(): Promise<number> {
  // Under a TypeScript loader (tsx), require() of a library module makes a second copy
  // of it, so reduction.ts could not load a kind synchronously: load them all up front.
  if (fromSources) await import('./context.js');
  const channel = new native.NativeConnection(BOOTSTRAP_FD);
  const takeFds = (n: number) => channel.takeFds(n);
  const prep = loads(channel.recv(true, null, null)!, takeFds, false, true) as Preparation;
  _applyParentLogging(prep);
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
  _becomeChild(proc, prep.parentName);
  // A target that calls process.exit() skips the end of _bootstrap: say how it exits.
  process.on('exit', (code) => {
    if (!bootstrapped) info('process exiting with exitcode %d', code);
  });
  const code = await proc._bootstrap();
  bootstrapped = true;
  return code;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
    process.exit(1);
  },
);
