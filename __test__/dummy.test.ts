// multiprocessing.dummy: threads as processes, and the library's objects shared between
// threads and processes.
import test from 'ava';
import { readdirSync, readlinkSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { currentProcess as processOf, Pipe, Process, ValueError } from '../index.js';
import { wait } from '../src/connection.js';
import * as dummy from '../src/dummy.js';
import { DummyProcess, Manager, Namespace } from '../src/dummy.js';
import { RawArray } from '../src/sharedctypes.js';
import { Queue } from '../src/queues.js';
import { Event, Lock } from '../src/synchronize.js';
import {
  consume, exitThread, fail, holdLock, lockRepr, lockedIncrements, lockedIncrementsSync, nested, produce, report, runTyped, startsProcess, touchNamespace,
  tryLock, typed, waitOn,
} from './fixtures/dummy_targets.js';
import { runTs, startChild } from './helpers.js';

/** Start a thread that is terminated (if still running) and joined when the test ends. */
function startThread(t: { teardown(fn: () => Promise<void>): void }, target: (...a: any[]) => unknown, args: unknown[]): DummyProcess {
  const p = new DummyProcess({ target, args });
  p.start();
  t.teardown(async () => {
    if (p.isAlive()) p.terminate();
    await p.join(30);
  });
  return p;
}

test.serial('a thread runs its target with copied arguments and shared connections; name, ident, exitcode, repr', async (t) => {
  t.true(isMainThread);
  t.is(String(dummy.currentProcess()), '<_MainThread(MainThread, started 0)>');
  const [a, b] = Pipe();
  const p = new DummyProcess({ target: report, args: [b, 21] });
  t.regex(p.name, /^Thread-\d+$/);
  t.is(String(p), `<DummyProcess(${p.name}, initial)>`);
  t.is(p.exitcode, null);
  t.is(p.ident, null);
  t.false(p.daemon);
  p.start();
  t.throws(() => p.start(), { message: /twice/ });
  t.true(typeof p.ident === 'number' && p.ident > 0);
  t.is(p.threadId, p.ident);
  t.is(p.pid, process.pid);
  const got = (await a.recv()) as Record<string, unknown>;
  // The thread sees itself as the dummy module's current process, and the process it runs
  // in (with the same authkey) as the root module's.
  t.deepEqual(got, {
    x: 42, name: p.name, ident: p.ident, threadId: p.ident, daemon: false, process: processOf().name,
    authkey: processOf().authkey.toString('hex'),
  });
  // The sentinel is readable once the thread has ended (connection.wait takes it).
  t.deepEqual(await wait([p.sentinel], 30), [p.sentinel]);
  await p.join();
  t.false(p.isAlive());
  t.is(p.exitcode, 0);
  t.is(String(p), `<DummyProcess(${p.name}, stopped ${p.ident})>`);
  t.deepEqual(dummy.activeChildren(), []);
  p.close();
});

test.serial('exit codes: a target that throws is 1 (and says so on stderr), process.exit(n) in the thread is n, terminate() is -15', async (t) => {
  const r = await runTs('__test__/fixtures/dummy_exit_main.ts');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['throws 1 false', 'exit 5 false', 'terminated -15 false', 'main still running']);
  t.regex(r.stderr, /Exception in thread Thread-\d+:\nRangeError: thrown in the thread/);
});

test.serial('join with a timeout returns while the thread runs; joinSync waits; a daemon flag; activeChildren', async (t) => {
  const started = new Event();
  const release = new Event();
  const p = new DummyProcess({ target: waitOn, args: [started, release], daemon: true });
  t.true(p.daemon);
  p.start();
  t.teardown(() => {
    release.set();
  });
  t.true(await started.wait(30));
  await p.join(0.05);
  t.true(p.isAlive());
  t.is(p.exitcode, null);
  p.joinSync(0.05);
  t.true(p.isAlive());
  t.deepEqual(dummy.activeChildren(), [p]);
  t.true(String(p).includes('started daemon'));
  release.set();
  p.joinSync(30);
  t.false(p.isAlive());
  t.is(p.exitcode, 0);
  t.deepEqual(dummy.activeChildren(), []);
});

test.serial('a thread blocked in a ...Sync call is stopped by terminate(); a blocked ThreadPool terminates; blocked daemon threads do not keep the process', async (t) => {
  const r = await runTs('__test__/fixtures/dummy_blocked_main.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const kinds = ['Event.waitSync', 'Lock.acquireSync', 'Queue.getSync', 'Connection.recvSync', 'Connection.pollSync'];
  t.is(lines.length, kinds.length + 2, r.stdout);
  kinds.forEach((kind, i) => {
    const m = /^terminated in (\S+): (-?\d+) (true|false) (\d+) ms$/.exec(lines[i]);
    t.truthy(m, lines[i]);
    t.is(m![1], kind);
    t.is(m![2], '-15', lines[i]);
    t.is(m![3], 'false');
    // A slice is 0.1 s; generous for a loaded machine, far below "never".
    t.true(Number(m![4]) < 20_000, lines[i]);
  });
  t.regex(lines[kinds.length], /^pool: ProcessError ProcessError \d+ ms$/);
  // The process then ended by itself with five daemon threads still blocked.
  t.is(lines[kinds.length + 1], 'main done');
});

test.serial('TypeScript targets run in threads under tsx', async (t) => {
  // This file runs under tsx; `typed` has type annotations, a generic and `satisfies`.
  const [a, b] = Pipe();
  const p = startThread(t, runTyped, [b]);
  t.is(await a.recv(), 6);
  await p.join(30);
  t.is(p.exitcode, 0);
  t.is(typed([4, 5]), 9);
});

test.serial('a Lock passed to threads and to processes is one lock', async (t) => {
  const lock = new Lock();
  const counter = RawArray('i', 2) as Int32Array;
  const n = 150;
  const workers = [
    startThread(t, lockedIncrements, [lock, counter, n]),
    startThread(t, lockedIncrementsSync, [lock, counter, n]),
    startChild(t, lockedIncrements, [lock, counter, n]),
    startChild(t, lockedIncrementsSync, [lock, counter, n]),
  ];
  for (const w of workers) await w.join(60);
  for (const w of workers) t.is(w.exitcode, 0);
  t.is(counter[0], 4 * n);
  // Held by a thread: a process cannot take it; released: it can.
  const held = new Event();
  const release = new Event();
  const holder = startThread(t, holdLock, [lock, held, release]);
  t.true(await held.wait(30));
  t.false(lock.acquireSync(false));
  const [a, b] = Pipe();
  const child = startChild(t, tryLock, [lock, b]);
  t.false(await a.recv());
  await child.join(30);
  release.set();
  await holder.join(30);
  const child2 = startChild(t, tryLock, [lock, b]);
  t.true(await a.recv());
  await child2.join(30);
  // Python's repr names a thread owner `process|thread`.
  const r = startThread(t, lockRepr, [lock, b]);
  t.is(await a.recv(), `<Lock(owner=MainProcess|${r.name})>`);
  await r.join(30);
  t.is(String(lock), '<Lock(owner=None)>');
});

test.serial('a Queue with producers in threads and consumers in processes', async (t) => {
  const q = new Queue();
  const out = new Queue();
  const producers = [0, 1, 2].map((id) => startThread(t, produce, [q, id, 100]));
  const consumers = [0, 1].map(() => startChild(t, consume, [q, out]));
  for (const p of producers) await p.join(60);
  for (const p of producers) t.is(p.exitcode, 0);
  for (const _ of consumers) await q.put(null);
  const got = [...((await out.get(true, 60)) as unknown[]), ...((await out.get(true, 60)) as unknown[])] as Array<[number, number]>;
  for (const c of consumers) await c.join(60);
  t.is(got.length, 300);
  const seen = new Set(got.map(([id, seq]) => `${id}:${seq}`));
  t.is(seen.size, 300);
  // Each producer's items arrive in the order it put them, whoever took them.
  for (const id of [0, 1, 2]) {
    const mine = got.filter(([i]) => i === id).map(([, seq]) => seq);
    t.is(mine.length, 100);
  }
});

test.serial('threads that end leave no descriptors behind', async (t) => {
  const fds = (): Map<string, string> => {
    const m = new Map<string, string>();
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        m.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
      } catch {
        /* closed meanwhile */
      }
    }
    return m;
  };
  const lock = new Lock();
  const q = new Queue();
  const [a, b] = Pipe();
  // Each round: a thread that gets a lock and a connection, one that puts on a queue.
  const round = async (i: number): Promise<void> => {
    const p = new DummyProcess({ target: tryLock, args: [lock, b] });
    p.start();
    t.true(await a.recv());
    await p.join(30);
    p.close();
    // Not closed: a joined thread whose sentinel was not handed out releases it.
    const p2 = new DummyProcess({ target: produce, args: [q, i, 1] });
    p2.start();
    await p2.join(30);
    await q.get();
  };
  // Warm up (the first threads load modules, start the reactor...).
  for (let i = 0; i < 3; i++) await round(i);
  const before = fds();
  for (let i = 0; i < 20; i++) await round(i);
  // A leak would be one or more per thread (40). A thread's own event loop closes its
  // descriptors just after it is seen to end, and other tests' leftovers come and go.
  let added: string[] = [];
  for (let wait = 0; wait < 40; wait++) {
    const after = fds();
    added = [...after].filter(([fd, what]) => before.get(fd) !== what).map(([fd, what]) => `${fd} -> ${what}`);
    if (added.length <= 2) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.true(added.length <= 8, `new descriptors after 40 threads: ${added.join(', ')}`);
});

test.serial('an argument that cannot be sent fails at start with TypeError, and no thread starts', (t) => {
  const p = new DummyProcess({ target: report, args: [Symbol('x')] });
  t.throws(() => p.start(), { instanceOf: TypeError });
  t.is(p.ident, null);
  t.deepEqual(dummy.activeChildren(), []);
});

test.serial('Manager() is the module; Namespace; dict and list; freezeSupport', async (t) => {
  const m = Manager();
  t.is(m, dummy);
  const ns = new m.Namespace({ x: 1, _hidden: 2, s: 'a' });
  t.is(String(ns), "Namespace(s='a', x=1)");
  t.true(ns instanceof Namespace);
  const [a, b] = Pipe();
  startThread(t, touchNamespace, [ns, b]);
  t.deepEqual(await a.recv(), ['Namespace', "Namespace(s='a', x=1, y=2)"]);
  t.is(ns.y, undefined, 'a Namespace is copied into a thread');
  t.deepEqual(m.dict([['a', 1]]), new Map([['a', 1]]));
  t.deepEqual(m.list(new Set([1, 2])), [1, 2]);
  t.is(m.freezeSupport(), undefined);
  const q = new m.Queue();
  await q.put(1);
  t.is(await q.get(), 1);
  t.is(m.Process, DummyProcess);
});

test.serial('errors of the thread API: join before start, start in the wrong state, bad target', async (t) => {
  const p = new DummyProcess({ target: fail, args: ['x'] });
  await t.throwsAsync(p.join(), { message: /started/ });
  t.throws(() => new DummyProcess({ target: 42 as unknown as () => void }), { instanceOf: TypeError });
  p.close();
  t.throws(() => p.start(), { instanceOf: ValueError });
});

test.serial('a thread started from a thread; threads in a child process', async (t) => {
  const [a, b] = Pipe();
  const p = startThread(t, nested, [b]);
  const got = (await a.recv()) as { name: string; process: string };
  t.regex(got.name, /^Thread-\d+$/);
  t.is(got.process, processOf().name);
  await p.join(30);
  const child = startChild(t, nested, [b]);
  const got2 = (await a.recv()) as { name: string; process: string };
  t.is(got2.process, child.name);
  t.is(got2.name, 'Thread-1');
  await child.join(30);
  t.is(child.exitcode, 0);
});

test.serial('a process started in a thread is a child of this process', async (t) => {
  const [a, b] = Pipe();
  const p = startThread(t, startsProcess, [b]);
  const got = (await a.recv()) as { x: number; process: string };
  t.is(got.x, 10);
  t.regex(got.process, /^Process-\d+$/);
  t.is(await a.recv(), 0);
  await p.join(30);
  t.true(Process !== (DummyProcess as unknown));
  t.throws(() => new Lock().release(), { instanceOf: ValueError });
});

test.serial('exitThread fixture: process.exit in a thread ends that thread only', async (t) => {
  const p = startThread(t, exitThread, [3]);
  await p.join(30);
  t.is(p.exitcode, 3);
  t.is(processOf().name, 'MainProcess');
});
