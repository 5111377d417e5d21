// JoinableQueue: workers mark each task done; join() returns once every task is done.
import { pathToFileURL } from 'node:url';
import { JoinableQueue, Process, type Queue } from 'node-multiprocessing';

export function worker(tasks: JoinableQueue, results: Queue): void {
  for (;;) {
    const n = tasks.getSync() as number;
    results.putSync(n * n);
    tasks.taskDone();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const tasks = new JoinableQueue();
  const results = new JoinableQueue();
  const workers = Array.from({ length: 3 }, () => new Process({ target: worker, args: [tasks, results], daemon: true }));
  for (const w of workers) w.start();
  for (let i = 1; i <= 10; i++) await tasks.put(i);
  await tasks.join(); // every task has been marked done
  const squares: number[] = [];
  while (!results.empty()) squares.push((await results.get()) as number);
  console.log(squares.sort((a, b) => a - b).join(' '));
  console.log('all tasks done');
}
