// The process tests, run once per start method (process.test.ts: spawn, the default;
// process-forkserver.test.ts: forkserver, set as the start method before they run, so
// that `Process` and its subclasses start that way).
import test from 'ava';
import { AssertionError } from 'node:assert';
import {
  activeChildren, currentProcess, getAllStartMethods, getContext, getStartMethod, Pipe, Process, ValueError,
} from '../index.js';
import { describeSelf, exitWith, Greeter, parentOfDaemon, sendBack, sleepForever, startFromDaemon, throws } from './fixtures/targets.js';
import { gone, eventually, runJs } from './helpers.js';

export function processSuite(method: 'spawn' | 'forkserver'): void {
  test('a target runs in a child with its arguments and the exit code is 0', async (t) => {
    const [a, b] = Pipe();
    const p = new Process({ target: sendBack, args: [b, 1, 'two', { three: [3n] }] });
    p.start();
    t.deepEqual(await a.recv(), [1, 'two', { three: [3n] }]);
    await p.join();
    t.is(p.exitcode, 0);
    t.false(p.isAlive());
  });

  test('names, pid, authkey and parent follow Python', async (t) => {
    const [a, b] = Pipe();
    const p = new Process({ target: describeSelf, args: [b] });
    t.regex(p.name, /^Process-\d+$/);
    t.regex(String(p), /^<Process name='Process-\d+' parent=\d+ initial>$/);
    p.start();
    const info = await a.recv();
    await p.join();
    t.is(info.name, p.name);
    t.is(info.pid, p.pid);
    t.is(info.parent, process.pid);
    t.is(info.parentName, 'MainProcess');
    t.deepEqual(Buffer.from(info.authkey), currentProcess().authkey);
    t.is(currentProcess().authkey.length, 32);
    t.regex(String(p), /^<Process name='Process-\d+' pid=\d+ parent=\d+ stopped exitcode=0>$/);
  });

  test('exit codes: throw gives 1, process.exit(n) gives n, signals are negative', async (t) => {
    const p1 = new Process({ target: throws });
    p1.start();
    await p1.join();
    t.is(p1.exitcode, 1);
    const p2 = new Process({ target: exitWith, args: [7] });
    p2.start();
    await p2.join();
    t.is(p2.exitcode, 7);
    const p3 = new Process({ target: sleepForever });
    p3.start();
    p3.terminate();
    await p3.join();
    t.is(p3.exitcode, -15);
    t.regex(String(p3), /exitcode=-SIGTERM>/);
    const p4 = new Process({ target: sleepForever });
    p4.start();
    t.true(p4.isAlive());
    t.true(activeChildren().includes(p4));
    await p4.join(0.1);
    t.is(p4.exitcode, null);
    p4.kill();
    p4.joinSync();
    t.is(p4.exitcode, -9);
    t.false(activeChildren().includes(p4));
  });

  test('a Process subclass is re-created in the child with its fields', async (t) => {
    const [a, b] = Pipe();
    const g = new Greeter();
    g.greeting = 'bonjour';
    g.conn = b;
    g.start();
    t.is(await a.recv(), `bonjour from ${g.name}`);
    await g.join();
    t.is(g.exitcode, 0);
    t.regex(g.name, /^Greeter-\d+$/);
  });

  test('an unserializable argument fails at start with TypeError and no child', (t) => {
    const p = new Process({ target: sendBack, args: [Symbol('x')] });
    const before = activeChildren().length;
    t.throws(() => p.start(), { instanceOf: TypeError });
    t.is(activeChildren().length, before);
  });

  test('misuse gives Python\'s errors', async (t) => {
    const p = new Process({ target: sleepForever });
    await t.throwsAsync(p.join(), { instanceOf: AssertionError });
    p.start();
    t.throws(() => p.start(), { instanceOf: AssertionError });
    t.throws(() => p.close(), { instanceOf: ValueError });
    p.kill();
    await p.join();
    p.close();
    t.throws(() => p.pid, { instanceOf: ValueError, message: 'process object is closed' });
  });

  test('spawn and forkserver are offered; fork gives ValueError with the reason', (t) => {
    t.deepEqual(getAllStartMethods(), ['spawn', 'forkserver']);
    t.throws(() => getContext('fork'), { instanceOf: ValueError, message: /fork/ });
    t.is(getContext('spawn').getStartMethod(), 'spawn');
    t.is(getContext('forkserver').getStartMethod(), 'forkserver');
    t.is(getStartMethod(), method);
  });

  test.serial('setExecutable chooses the node binary children run; a missing one fails at start', async (t) => {
    const { setExecutable } = await import('../index.js');
    const { mkdtempSync, writeFileSync, chmodSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'mp-exe-'));
    const wrapper = join(dir, 'node-wrapper');
    const log = join(dir, 'log');
    writeFileSync(wrapper, `#!/bin/sh\necho used >> ${log}\nexec ${process.execPath} "$@"\n`);
    chmodSync(wrapper, 0o755);
    try {
      setExecutable(wrapper);
      const [a, b] = Pipe();
      const p = new Process({ target: sendBack, args: [b, 'via wrapper'] });
      p.start();
      t.deepEqual(await a.recv(), ['via wrapper']);
      await p.join();
      // Each node started (forkserver: also its server) ran the wrapper.
      t.regex(readFileSync(log, 'utf8'), /^(used\n)+$/);
      setExecutable(join(dir, 'missing'));
      const before = activeChildren().length;
      t.throws(() => new Process({ target: sendBack, args: [b] }).start(), { message: /cannot start/ });
      t.is(activeChildren().length, before);
    } finally {
      setExecutable(process.execPath);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the sentinel is readable once the process ends (usable with connection.wait)', async (t) => {
    const { wait } = await import('../src/connection.js');
    const p = new Process({ target: sleepForever });
    p.start();
    t.deepEqual(await wait([p.sentinel], 0.2), []);
    p.terminate();
    t.deepEqual(await wait([p.sentinel], 10), [p.sentinel]);
    await p.join();
    t.is(p.exitcode, -15);
  });

  test('a child loads the modules of the objects it receives (plain node, built package)', async (t) => {
    // The target's module imports nothing of the library: the Lock and Value arrive as
    // arguments (decoded at start-up) and then inside a message read synchronously.
    const r = await runJs('__test__/fixtures/lazy_kinds_main.mjs', [method]);
    t.is(r.code, 0, r.stderr);
    t.is(r.stderr, '');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    t.deepEqual(lines, [
      { got: ['Lock', false, 1], exitcode: 0 },
      { got: ['Lock', false, 2], exitcode: 0 },
    ]);
  });

  test('a daemonic child dies when its parent is killed with SIGKILL', async (t) => {
    const [a, b] = Pipe();
    const p = new Process({ target: parentOfDaemon, args: [b] });
    p.start();
    const daemonPid: number = await a.recv();
    t.false(gone(daemonPid));
    p.kill();
    await p.join();
    // Its parent-death signal: allow for a loaded machine.
    t.true(await eventually(() => gone(daemonPid), 30_000));
  });

  test('a non-daemonic child outlives its parent killed with SIGKILL', async (t) => {
    const [a, b] = Pipe();
    const p = new Process({ target: parentOfDaemon, args: [b, false] });
    p.start();
    const childPid: number = await a.recv();
    p.kill();
    await p.join();
    await new Promise((r) => setTimeout(r, 300));
    t.false(gone(childPid), 'still running');
    process.kill(childPid, 'SIGKILL');
    t.true(await eventually(() => gone(childPid)));
  });

  test('a daemonic process may not create children', async (t) => {
    const [a, b] = Pipe();
    const p = new Process({ target: startFromDaemon, args: [b], daemon: true });
    p.start();
    t.is(await a.recv(), 'AssertionError: daemonic processes are not allowed to have children');
    await p.join();
  });
}
