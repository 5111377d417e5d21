// 17.2.4 with multiprocessing.dummy: using a pool of threads, the same program as
// pool_using.ts with the dummy module in place of the package. The task functions come from
// that example; `calculate` names the thread that runs it (dummy's currentProcess()).
import { pathToFileURL } from 'node:url';
import { TimeoutError } from 'node-multiprocessing';
import { currentProcess, freezeSupport, Pool } from 'node-multiprocessing/dummy';
import { f, mul, plus } from './pool_using.js';

//
// Functions used by test code
//

type Task = [(...args: number[]) => number | Promise<number>, number[]];

export async function calculate(func: Task[0], args: number[]): Promise<string> {
  const result = await func(...args);
  return `${currentProcess().name} says that ${func.name}(${args.join(', ')}) = ${result}`;
}

export function calculatestar(args: Task): Promise<string> {
  return calculate(...args);
}

/** An error from a worker keeps its class name. */
function isZeroDivision(e: unknown): boolean {
  return e instanceof Error && e.name === 'ZeroDivisionError';
}

const range = (n: number): number[] => [...Array(n).keys()];

//
// Test code
//

async function test(): Promise<void> {
  const PROCESSES = 4;
  console.log(`Creating pool with ${PROCESSES} threads\n`);

  await using pool = new Pool(PROCESSES);
  //
  // Tests
  //

  const TASKS: Task[] = [
    ...range(10).map((i): Task => [mul, [i, 7]]),
    ...range(10).map((i): Task => [plus, [i, 8]]),
  ];

  const results = TASKS.map((t) => pool.applyAsync(calculate, t));
  const imapIt = pool.imap(calculatestar, TASKS);
  const imapUnorderedIt = pool.imapUnordered(calculatestar, TASKS);

  console.log('Ordered results using pool.applyAsync():');
  for (const r of results) {
    console.log('\t', await r.get());
  }
  console.log();

  console.log('Ordered results using pool.imap():');
  for await (const x of imapIt) {
    console.log('\t', x);
  }
  console.log();

  console.log('Unordered results using pool.imapUnordered():');
  for await (const x of imapUnorderedIt) {
    console.log('\t', x);
  }
  console.log();

  console.log('Ordered results using pool.map() --- will block till complete:');
  for (const x of await pool.map(calculatestar, TASKS)) {
    console.log('\t', x);
  }
  console.log();

  //
  // Test error handling
  //

  console.log('Testing error handling:');

  try {
    console.log(await pool.apply(f, [5]));
    throw new Error('expected ZeroDivisionError');
  } catch (e) {
    if (!isZeroDivision(e)) throw e;
    console.log('\tGot ZeroDivisionError as expected from pool.apply()');
  }

  try {
    console.log(await pool.map(f, range(10)));
    throw new Error('expected ZeroDivisionError');
  } catch (e) {
    if (!isZeroDivision(e)) throw e;
    console.log('\tGot ZeroDivisionError as expected from pool.map()');
  }

  try {
    const all = [];
    for await (const x of pool.imap(f, range(10))) all.push(x);
    console.log(all);
    throw new Error('expected ZeroDivisionError');
  } catch (e) {
    if (!isZeroDivision(e)) throw e;
    console.log('\tGot ZeroDivisionError as expected from a for await loop over pool.imap()');
  }

  const it = pool.imap(f, range(10));
  let i = 0;
  for (; i < 10; i++) {
    let r: IteratorResult<number>;
    try {
      r = await it.next();
    } catch (e) {
      if (!isZeroDivision(e)) throw e;
      if (i === 5) continue;
      throw e;
    }
    if (r.done) break;
    if (i === 5) throw new Error('expected ZeroDivisionError');
  }

  if (i !== 10) throw new Error(`IMapIterator.next() stopped at ${i}`);
  console.log('\tGot ZeroDivisionError as expected from IMapIterator.next()');
  console.log();

  //
  // Testing timeouts
  //

  process.stdout.write('Testing ApplyResult.get() with timeout: ');
  const res = pool.applyAsync(calculate, TASKS[0]);
  for (;;) {
    try {
      process.stdout.write(`\n\t${await res.get(0.02)}`);
      break;
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      process.stdout.write('.');
    }
  }
  console.log();
  console.log();

  process.stdout.write('Testing IMapIterator.next() with timeout: ');
  const it2 = pool.imap(calculatestar, TASKS);
  for (;;) {
    try {
      const r = await it2.next(0.02);
      if (r.done) break;
      process.stdout.write(`\n\t${r.value}`);
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      process.stdout.write('.');
    }
  }
  console.log();
  console.log();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  freezeSupport();
  await test();
}
