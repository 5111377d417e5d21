// 17.2.3.2: safe importing of the main module: start processes only under the main-module guard.
import { pathToFileURL } from 'node:url';
import { freezeSupport, Process, setStartMethod } from 'node-multiprocessing';

export function foo(): void {
  console.log('hello');
}

// Without the guard, the child that imports this module to find foo() would start a process
// itself; start() refuses that with Python's "bootstrapping phase" RuntimeError.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  freezeSupport();
  setStartMethod('spawn');
  const p = new Process({ target: foo });
  p.start();
  await p.join();
}
