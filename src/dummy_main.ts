// A thread's bootstrap (the thread twin of spawn_main.ts), imported by the entry that
// dummy_process.ts evaluates in a new worker thread: see the current process as the
// parent thread does, re-create the DummyProcess, run it, exit with its code (written on
// the sentinel pair first, so that the parent can tell it from a thread it terminated).
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { _setCurrentThread, type DummyProcess, type ThreadStart } from './dummy_process.js';
import { _becomeThread, _markCurrent } from './process.js';
import { _setImportingForChild, loadsAsync } from './reduction.js';
import { _applyParentLogging } from './logging.js';
import { fromSources } from './util.js';

const w = (workerData as { start: ThreadStart }).start;

process.on('exit', (code) => {
  try {
    writeSync(w.sentinel, new Uint8Array(Int32Array.of(code).buffer));
  } catch {
    /* the parent closed its end */
  }
});

async function main(): Promise<number> {
  // As in a spawned child: under tsx, kinds cannot be required synchronously later.
  if (fromSources) await import('./context.js');
  _becomeThread(w.prep);
  _applyParentLogging(w.logging);
  let at = 0;
  // The descriptors (and the counts on shared blocks) become this thread's as they are
  // taken, unless the parent took them back (it does when a thread ends before).
  const takeFds = (n: number): number[] => {
    if (at === 0 && Atomics.compareExchange(w.claim, 1, 0, 1) !== 0) throw new Error('the thread was stopped while it started');
    return w.fds.slice(at, (at += n));
  };
  let proc: DummyProcess;
  // While the target's modules load, starting a process is Python's bootstrapping error.
  _setImportingForChild(true);
  try {
    proc = (await loadsAsync(w.data, takeFds, false, true, w.transfer)) as DummyProcess; // from the parent thread
  } finally {
    _setImportingForChild(false);
  }
  _markCurrent(proc);
  _setCurrentThread(proc);
  return proc._bootstrap();
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
    process.exit(1);
  },
);
