// The logger (17.2.2.12): Python's defaults, handlers with formatters, CPython's own
// records at their levels in `[LEVEL/ProcessName] message` form, and the level children inherit.
import test from 'ava';
import { DEBUG, Formatter, getLogger, Handler, INFO, LogRecord, StreamHandler, SUBDEBUG, SUBWARNING, WARNING } from '../index.js';
import { runTs } from './helpers.js';

const FIXTURE = '__test__/fixtures/logging_main.ts';

test("the logger's defaults are Python's: 'multiprocessing', NOTSET, no handler, no propagation", async (t) => {
  const r = await runTs(FIXTURE, ['defaults']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { name: 'multiprocessing', level: 0, handlers: 0, propagate: false, effective: WARNING });
});

test("children inherit the logger's level once it exists, and the stderr handler with logToStderr", async (t) => {
  const r = await runTs(FIXTURE, ['inherit']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), [
    { level: 0, handlers: 0, effective: WARNING },
    { level: DEBUG, handlers: 0, effective: DEBUG },
    { level: INFO, handlers: 1, effective: INFO },
  ]);
});

test("a child's life in CPython's records: run, shutting down, exit code; the parent's exit function", async (t) => {
  const r = await runTs(FIXTURE, ['process']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  const child = lines.filter((l) => l.includes('/Process-1]'));
  t.deepEqual(child, [
    '[INFO/Process-1] child process calling self.run()',
    '[INFO/Process-1] process shutting down',
    '[DEBUG/Process-1] running all "atexit" finalizers with priority >= 0',
    '[DEBUG/Process-1] running the remaining "atexit" finalizers',
    '[INFO/Process-1] process exiting with exitcode 0',
  ]);
  const main = lines.filter((l) => l.includes('/MainProcess]'));
  t.deepEqual(main, [
    '[INFO/MainProcess] process shutting down',
    '[DEBUG/MainProcess] running all "atexit" finalizers with priority >= 0',
    '[INFO/MainProcess] calling terminate() for daemon Sleeper',
    ...main.filter((l) => l.startsWith('[INFO/MainProcess] calling join() for process ')),
    '[DEBUG/MainProcess] running the remaining "atexit" finalizers',
  ].filter((l, i, a) => a.indexOf(l) === i));
  t.true(main.includes('[INFO/MainProcess] calling join() for process Late'), r.stderr);
  t.true(main.includes('[INFO/MainProcess] calling join() for process Sleeper'), r.stderr);
});

test("a Pool's records: workers added, closing and joining, workers told to stop", async (t) => {
  const r = await runTs(FIXTURE, ['pool']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '[1,4,9]\n');
  const lines = r.stderr.trimEnd().split('\n');
  t.is(lines.filter((l) => l === '[DEBUG/MainProcess] added worker').length, 2);
  for (const l of ['closing pool', 'joining pool', 'task handler sending sentinel to workers', 'result handler exiting: len(cache)=0, thread._state=CLOSE']) {
    t.true(lines.includes(`[DEBUG/MainProcess] ${l}`), `${l}\n${r.stderr}`);
  }
  const workers = lines.filter((l) => /^\[DEBUG\/SpawnPoolWorker-\d+\] worker got sentinel -- exiting$/.test(l));
  t.is(workers.length, 2, r.stderr);
  const done = lines.filter((l) => /^\[DEBUG\/SpawnPoolWorker-\d+\] worker exiting after \d+ tasks$/.test(l));
  t.is(done.length, 2, r.stderr);
  t.true(lines.some((l) => /^\[INFO\/SpawnPoolWorker-\d+\] child process calling self\.run\(\)$/.test(l)), r.stderr);
});

test('handlers with a formatter, handler and logger levels, and %-style arguments', (t) => {
  const logger = getLogger();
  const out: string[] = [];
  const h = new StreamHandler({ write: (s: string) => out.push(s) });
  h.setFormatter(new Formatter('%(levelname)-8s|%(name)s|%(processName)s|%(message)s'));
  h.setLevel(INFO);
  const old = logger.level;
  logger.addHandler(h);
  try {
    logger.setLevel(DEBUG);
    logger.debug('not for this handler');
    logger.info('%d items in %s (%r)', 3, 'the queue', 'x');
    logger.setLevel('WARNING');
    logger.info('below the logger level');
    logger.warning('doomed');
    logger.log(SUBWARNING, 'a sub-warning');
    logger.setLevel(SUBDEBUG);
    logger.log(SUBWARNING, 'now shown');
  } finally {
    logger.removeHandler(h);
    logger.setLevel(old);
  }
  t.deepEqual(out, [
    'INFO    |multiprocessing|MainProcess|3 items in the queue (\'x\')\n',
    'WARNING |multiprocessing|MainProcess|doomed\n',
    // As in CPython, multiprocessing's own levels have no registered name.
    'Level 25|multiprocessing|MainProcess|now shown\n',
  ]);
  t.throws(() => logger.setLevel('LOUD'), { name: 'ValueError' });
});

test('a Handler subclass receives LogRecords; a function works as a handler too', (t) => {
  const logger = getLogger();
  const got: LogRecord[] = [];
  class Collect extends Handler {
    override emit(r: LogRecord): void {
      got.push(r);
    }
  }
  const h = new Collect();
  const seen: string[] = [];
  const f = (r: LogRecord): void => void seen.push(`${r.levelname}:${r.message}`);
  logger.addHandler(h);
  logger.addHandler(f);
  try {
    logger.error('bad %s', 'thing');
  } finally {
    logger.removeHandler(h);
    logger.removeHandler(f);
  }
  t.is(got.length, 1);
  t.is(got[0].levelno, 40);
  t.is(got[0].getMessage(), 'bad thing');
  t.is(got[0].process, process.pid);
  t.deepEqual(seen, ['ERROR:bad thing']);
});
