// Issue 11: contexts' members, a child's stdin and current process, and the behaviours
// that had no test (the Process constructor's positional form, daemon inheritance, join of
// itself, start-method state, Connection on GC, hold() of a synchronized wrapper, Pool defaults).
import test from 'ava';
import { AssertionError } from 'node:assert';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import * as mp from '../index.js';
import {
  AuthenticationError, BoundedSemaphore, Barrier, BufferTooShort, Condition, cpuCount, currentProcess, Event, getContext,
  JoinableQueue, Lock, Pipe, Pool, Process, ProcessError, Queue, RLock, Semaphore, SimpleQueue, SpawnProcess, TimeoutError, Value,
} from '../index.js';
import { Connection } from '../src/connection.js';
import { CValue, SynchronizedArray, Synchronized } from '../src/sharedctypes.js';
import {
  holdUntilTold, incrementHeld, putFromContextQueue, reportCurrent, reportInheritedDaemon, useForeignProcess,
} from './fixtures/forms_targets.js';
import { sendBack, sleepForever } from './fixtures/targets.js';
import { sleep, whoAmI } from './fixtures/pool_targets.js';
import { root, runTs, startChild } from './helpers.js';

const FIXTURE = '__test__/fixtures/conformance_main.ts';

test('every context member is used as the root export is (with new) and by call, as Python does', async (t) => {
  const ctx = getContext('spawn');
  const classes: Array<[string, Function, unknown[]]> = [
    ['Queue', Queue, [2]], ['JoinableQueue', JoinableQueue, []], ['SimpleQueue', SimpleQueue, []],
    ['Lock', Lock, []], ['RLock', RLock, []], ['Condition', Condition, []], ['Semaphore', Semaphore, [2]],
    ['BoundedSemaphore', BoundedSemaphore, [1]], ['Event', Event, []], ['Barrier', Barrier, [2]],
    ['ProcessError', ProcessError, ['x']], ['BufferTooShort', BufferTooShort, ['x']], ['TimeoutError', TimeoutError, ['x']],
    ['AuthenticationError', AuthenticationError, ['x']], ['Process', SpawnProcess, [{ target: whoAmI }]],
  ];
  for (const [name, cls, args] of classes) {
    const member = (ctx as unknown as Record<string, any>)[name];
    const made = new member(...args);
    const called = member(...args);
    t.true(made instanceof cls, `new ctx.${name}()`);
    t.true(called instanceof cls, `ctx.${name}()`);
    t.true(called instanceof member, `instanceof ctx.${name}`);
    t.is(made.constructor, called.constructor, name);
  }
  // The default context's members are the root's classes.
  t.true(mp.defaultContext.Queue(1) instanceof Queue);
  t.true(new mp.defaultContext.Process({ target: whoAmI }) instanceof Process);
  // Functions, called or with new, as the root's.
  for (const name of ['Pipe', 'Value', 'Array', 'RawValue', 'RawArray'] as const) {
    t.is((ctx as unknown as Record<string, unknown>)[name], (mp as unknown as Record<string, unknown>)[name], name);
  }
  const [a, b] = new (ctx.Pipe as unknown as new () => [Connection, Connection])();
  t.true(a instanceof Connection && b instanceof Connection);
  t.true(ctx.Value('i', 3) instanceof Synchronized);
  t.true(new (ctx.Array as unknown as new (c: string, n: number) => unknown)('d', 3) instanceof SynchronizedArray);
  t.true(ctx.RawValue('i', 1) instanceof CValue);
  t.true(ctx.RawArray('i', 3) instanceof Int32Array);
  // Subclassing a context's Process works as subclassing the class.
  class Mine extends ctx.Process {}
  t.regex(new Mine().name, /^Mine-\d+$/);
  t.is(new ctx.Process().name.split('-')[0], 'SpawnProcess');
  // Methods.
  t.is(ctx.cpuCount(), cpuCount());
  t.is(ctx.currentProcess(), currentProcess());
  t.is(ctx.getContext(), ctx);
  t.deepEqual(ctx.getAllStartMethods(), ['spawn', 'forkserver']);
  t.is(ctx.getStartMethod(), 'spawn');
  t.throws(() => ctx.getContext('fork'), { instanceOf: mp.ValueError });
  t.is(typeof ctx.freezeSupport, 'function');
  t.is(ctx.activeChildren().length, mp.activeChildren().length);
  t.is(ctx.getLogger(), mp.getLogger());
});

test('a context Queue made by call crosses processes; a context Pool starts its workers with the context', async (t) => {
  const ctx = getContext('spawn');
  const q = ctx.Queue();
  const [a, b] = Pipe();
  const p = ctx.Process({ target: putFromContextQueue, args: [q, b] });
  t.teardown(async () => {
    if (p.isAlive()) p.kill();
    await p.join(30);
  });
  p.start();
  t.is(await a.recv(), 'done');
  t.deepEqual(await q.get(), ['made by ctx.Queue()', true]);
  await p.join();
  t.is(p.exitcode, 0);
  await using pool = new ctx.Pool(1);
  t.regex(await pool.apply(whoAmI), /^SpawnPoolWorker-\d+$/);
  await using pool2 = ctx.Pool({ processes: 1 });
  t.is(pool2._processes, 1);
});

test("a child's standard input is /dev/null, not the parent's", async (t) => {
  const r = await runTs(FIXTURE, ['stdin']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.regex(out.parent, /^(pipe|socket):/, 'the test gave the program a pipe');
  t.deepEqual(out.child, { fd0: '/dev/null', read: 0 });
});

test('currentProcess() in a child: its pid, alive, and AssertionError for join/start as Python', async (t) => {
  const [a, b] = Pipe();
  const p = startChild(t, reportCurrent, [b]);
  const r = await a.recv();
  t.deepEqual(r, {
    pid: true, ident: true, alive: true, exitcode: null,
    join: 'AssertionError: can only join a child process',
    joinSync: 'AssertionError: can only join a child process',
    start: 'AssertionError: can only start a process object created by current process',
    repr: `<Process name='${p.name}' parent=${process.pid} started>`,
  });
  // Join of itself in the main process too.
  await t.throwsAsync(currentProcess().join(), { instanceOf: AssertionError, message: 'can only join a child process' });
  t.true(currentProcess().isAlive());
});

test('creator-only checks: a Process object passed to a child cannot be started, tested or joined there', async (t) => {
  // Python pickles a Process only while spawning: as an argument of the process being started.
  const [a, b] = Pipe();
  const foreign = new Process({ target: whoAmI, name: 'made-by-parent' });
  startChild(t, useForeignProcess, [foreign, b]);
  t.deepEqual(await a.recv(), {
    name: 'made-by-parent',
    start: 'AssertionError: can only start a process object created by current process',
    isAlive: 'AssertionError: can only test a child process',
    join: 'AssertionError: can only join a child process',
    joinSync: 'AssertionError: can only join a child process',
    exitcode: null,
    pid: null,
  });
  // Its creator still can.
  foreign.start();
  await foreign.join();
  t.is(foreign.exitcode, 0);
  // A started one cannot travel (Python: its Popen cannot be pickled), nor any Process
  // outside a start (Python: "Pickling an AuthenticationString object is disallowed").
  t.throws(() => new Process({ target: useForeignProcess, args: [foreign, b] }).start(), {
    instanceOf: TypeError, message: /a started Process object cannot be sent/,
  });
  t.throws(() => a.send(new Process({ target: whoAmI })), { instanceOf: TypeError, message: /cannot be sent to other processes/ });
  // The creator's own checks, as Python's.
  const p = new Process({ target: whoAmI });
  await t.throwsAsync(p.join(), { instanceOf: AssertionError, message: 'can only join a started process' });
  t.false(p.isAlive());
  p.start();
  t.throws(() => p.start(), { instanceOf: AssertionError, message: 'cannot start a process twice' });
  t.throws(() => (p.daemon = true), { instanceOf: AssertionError, message: 'process has already started' });
  await p.join();
  t.is(p.exitcode, 0);
});

test("where Python 3.6's AssertionError became ValueError (3.7): the ValueError, with 3.7's messages", async (t) => {
  const pool = new Pool(1);
  t.teardown(() => pool.terminate());
  const r = pool.applyAsync(sleep, [0.5]);
  t.throws(() => r.successful(), { instanceOf: mp.ValueError, message: /not ready$/ });
  await t.throwsAsync(pool.join(), { instanceOf: mp.ValueError, message: 'Pool is still running' });
  pool.close();
  t.throws(() => pool.apply(whoAmI), { instanceOf: mp.ValueError, message: 'Pool not running' });
  t.throws(() => pool.applyAsync(whoAmI), { instanceOf: mp.ValueError, message: 'Pool not running' });
  await pool.join();
  t.true(r.successful());
  // Process.close() (new in 3.7): a closed process object is a ValueError.
  const p = new Process({ target: whoAmI });
  p.start();
  await p.join();
  p.close();
  t.throws(() => p.isAlive(), { instanceOf: mp.ValueError, message: 'process object is closed' });
  await t.throwsAsync(p.join(), { instanceOf: mp.ValueError, message: 'process object is closed' });
});

test("Python's positional Process constructor: (group, target, name, args, kwargs, daemon); group must be null", async (t) => {
  const [a, b] = Pipe();
  const p = new Process(null, sendBack, 'positional', [b, 1, 2], {}, true);
  t.is(p.name, 'positional');
  t.true(p.daemon);
  p.start();
  t.deepEqual(await a.recv(), [1, 2]);
  await p.join();
  t.is(p.exitcode, 0);
  t.throws(() => new Process('group', sendBack), { instanceOf: AssertionError, message: 'group argument must be None for now' });
  t.throws(() => new Process(null, sendBack, null, [], { k: 1 }), { instanceOf: TypeError, message: /kwargs/ });
  const q = new Process(undefined, sendBack);
  t.false(q.daemon);
});

test('daemon is inherited from the creating process', async (t) => {
  for (const daemon of [true, false]) {
    const [a, b] = Pipe();
    const p = new Process({ target: reportInheritedDaemon, args: [b], daemon });
    t.teardown(async () => {
      if (p.isAlive()) p.kill();
      await p.join(30);
    });
    p.start();
    t.is(await a.recv(), daemon);
    await p.join();
  }
  t.false(new Process({ target: sleepForever }).daemon);
});

test('getStartMethod(allowNone) before and after the default is fixed; setStartMethod twice', async (t) => {
  const r = await runTs(FIXTURE, ['start-method']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), [null, null, 'spawn', 'spawn', 'RuntimeError: context has already been set']);
  const r2 = await runTs(FIXTURE, ['set-twice']);
  t.is(r2.code, 0, r2.stderr);
  t.deepEqual(JSON.parse(r2.stdout), ['spawn', 'RuntimeError: context has already been set', 'forced']);
});

test("cpuCount() is the CPUs this process may run on (Python 3.13's process_cpu_count()), and so a default Pool's size", async (t) => {
  // One CPU allowed by affinity on a machine that may have more; CPython 3.13 gives 1 for
  // os.process_cpu_count() there, while os.cpu_count() counts the machine's.
  const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const c = spawn('taskset', ['-c', '0', process.execPath, '--import', 'tsx', FIXTURE, 'cpu'], { cwd: root });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => resolve({ code, out, err }));
  });
  t.is(r.code, 0, r.err);
  const got = JSON.parse(r.out);
  t.true(got.machine >= 1);
  t.deepEqual([got.cpuCount, got.pool, got.workers], [1, 1, 1], `on a machine of ${got.machine} CPUs`);
  t.is(cpuCount(), availableParallelism());
});

test('a Connection dropped without close() is closed when collected', async (t) => {
  const r = await runTs(FIXTURE, ['gc'], undefined, ['--expose-gc']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { before: true, after: false });
});

test('hold() of a synchronized Value excludes other processes; a hold that times out throws', async (t) => {
  const v = Value('i', 0);
  const ps = [0, 1].map(() => startChild(t, incrementHeld, [v, 200]));
  await incrementHeld(v, 200);
  for (const p of ps) await p.join();
  t.is(v.value, 600);
  const [a, b] = Pipe();
  startChild(t, holdUntilTold, [v, b]);
  t.is(await a.recv(), 'holding');
  await t.throwsAsync(v.hold(true, 0.2), { instanceOf: TimeoutError });
  await t.throwsAsync(v.hold(false), { instanceOf: TimeoutError });
  a.send('go');
  {
    using h = await v.hold({ timeout: 30 });
    void h;
    v.value = 7;
  }
  t.is(v.value, 7);
});

test("Pool's default size is cpuCount(); its context option picks the workers' start method", async (t) => {
  await using pool = new Pool();
  t.is(pool._processes, cpuCount());
  t.is(pool._pool.length, cpuCount());
  await using p2 = new Pool({ processes: 1, context: getContext('spawn') });
  t.regex(await p2.apply(whoAmI), /^SpawnPoolWorker-\d+$/);
  await using p3 = new Pool(1, null, [], null, mp.defaultContext);
  t.regex(await p3.apply(whoAmI), /^SpawnPoolWorker-\d+$/);
});

test("the main module's exported functions sent back while its top level awaits: delivered, never a hang", async (t) => {
  const r = await runTs('__test__/fixtures/main_functions.ts', ['main']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.is(out.triple, 6, 'a self-contained export works at once');
  t.true(out.sameFunction, 'a function this process sent comes back as itself');
  t.regex(out.scaledDuringTopLevel, /^ReferenceError: FACTOR is not defined: function 'scaled' of the main module .* top level/);
  t.is(out.scaledAfter, 10, 'after the top level the real export is called');
});

test('functions sent by source may use import(): builtins and paths relative to their own module', async (t) => {
  const r = await runTs('__test__/fixtures/main_functions.ts', ['import']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), [{ ok: '\n' }, { ok: 42 }, { ok: 'function' }]);
});
