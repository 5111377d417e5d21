// 17.2.2.1: some of the methods of Process (isAlive, terminate, exitcode) on a sleeping child.
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Process } from 'node-multiprocessing';

// Python's target is time.sleep(1000).
export async function sleepFor(seconds: number): Promise<void> {
  await sleep(seconds * 1000);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const p = new Process({ target: sleepFor, args: [1000] });
  console.log(p, p.isAlive());
  p.start();
  console.log(p, p.isAlive());
  p.terminate();
  await p.join(); // Python sleeps 0.1 s here; join() waits exactly as long as the child takes to die
  console.log(p, p.isAlive());
  console.log(p.exitcode === -constants.signals.SIGTERM);
}
