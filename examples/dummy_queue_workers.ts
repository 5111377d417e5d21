// 17.2.4 with multiprocessing.dummy: feeding tasks to worker threads through one queue and
// collecting the results through another, the same program as queue_workers.ts with the
// dummy module in place of the package (`calculate` names the thread: dummy's
// currentProcess()).
import { pathToFileURL } from 'node:url';
import { currentProcess, freezeSupport, Process, Queue } from 'node-multiprocessing/dummy';

type Task = [(a: number, b: number) => Promise<number>, [number, number]];

// Function run by worker threads
export async function worker(input: Queue, output: Queue): Promise<void> {
  for (let task = await input.get(); task !== 'STOP'; task = await input.get()) {
    const [func, args] = task as Task;
    await output.put(await calculate(func, args));
  }
}

// Function used to calculate result
async function calculate(func: Task[0], args: Task[1]): Promise<string> {
  const result = await func(...args);
  return `${currentProcess().name} says that ${func.name}(${args.join(', ')}) = ${result}`;
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

// Functions referenced by tasks
export async function mul(a: number, b: number): Promise<number> {
  await sleep(0.5 * Math.random());
  return a * b;
}

export async function plus(a: number, b: number): Promise<number> {
  await sleep(0.5 * Math.random());
  return a + b;
}

async function test(): Promise<void> {
  const NUMBER_OF_PROCESSES = 4;
  const TASKS1: Task[] = Array.from({ length: 20 }, (_, i) => [mul, [i, 7]]);
  const TASKS2: Task[] = Array.from({ length: 10 }, (_, i) => [plus, [i, 8]]);

  // Create queues
  const taskQueue = new Queue();
  const doneQueue = new Queue();

  // Submit tasks
  for (const task of TASKS1) await taskQueue.put(task);

  // Start worker threads
  for (let i = 0; i < NUMBER_OF_PROCESSES; i++) new Process({ target: worker, args: [taskQueue, doneQueue] }).start();

  // Get and print results
  console.log('Unordered results:');
  for (let i = 0; i < TASKS1.length; i++) console.log('\t', await doneQueue.get());

  // Add more tasks using `put()`
  for (const task of TASKS2) await taskQueue.put(task);

  // Get and print some more results
  for (let i = 0; i < TASKS2.length; i++) console.log('\t', await doneQueue.get());

  // Tell the threads to stop
  for (let i = 0; i < NUMBER_OF_PROCESSES; i++) await taskQueue.put('STOP');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  freezeSupport();
  await test();
}
