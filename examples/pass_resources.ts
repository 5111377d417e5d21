// 17.2.3.1: explicitly pass resources to child processes: the Lock is an argument of each child.
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Lock, Process } from 'node-multiprocessing';

// ... do something using "l": while it holds the lock, no other child prints in between.
export async function f(l: Lock, i: number): Promise<void> {
  using _held = await l.hold();
  console.log(`process ${i} takes the lock`);
  await sleep(10);
  console.log(`process ${i} releases the lock`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const lock = new Lock();
  const ps: Process[] = [];
  for (let i = 0; i < 10; i++) {
    const p = new Process({ target: f, args: [lock, i] });
    p.start();
    ps.push(p);
  }
  for (const p of ps) await p.join();
}
