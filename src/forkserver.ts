// The 'forkserver' start method. CPython's fork server is a process that forks itself for
// each child, having imported the library and the preload modules. A node process cannot
// fork itself and go on running JavaScript (measured: the forked child crashes as soon as
// V8 runs again; see the notes of issue 16), so the server's part is played differently:
// this process keeps a few children started in advance (Node booted, the library, the
// preload modules and the modules of recent targets loaded), each blocked on its bootstrap
// socket, and gives the next Process object to one of them, starting a replacement. They
// are this process's own children, so pid, exit code, sentinel, terminate/kill behave
// exactly as for spawn. A waiting child says when it is ready, and acknowledges its
// Process object before running anything: one killed just before start() is detected and
// another takes the object. A waiting child that reads the end of its socket (this process
// has ended) exits; one that becomes a daemonic process sets its parent-death signal then
// (child_main.ts).
import { nativeCall } from './errors.js';
import { native } from './native.js';
import { BaseProcess, registerProcessClass, type Popen } from './process.js';
import { bootstrapPath, childExecArgv, closePidfd, environment, getExecutable, sendBootstrap, SpawnPopen, startNode, type Started } from './spawn.js';
import { functionModules, type Dumped } from './reduction.js';
import type { Preloads } from './child_main.js';
import * as wait from './wait.js';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fromSources } from './util.js';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const libraryRoot = new URL(fromSources ? '../index.ts' : '../index.js', import.meta.url).href;

let preload: string[] = [];

/**
 * Python's `set_forkserver_preload(module_names)`: modules that the children started in
 * advance load before they receive their Process object (after the library itself), so
 * that a target's module finds them loaded. Paths (absolute, or relative to the working
 * directory) and package names; one that fails to load is reported on the child's
 * standard error and left out, as CPython's server does. Children already waiting are
 * replaced.
 */
export function setForkserverPreload(moduleNames: string[]): void {
  if (!Array.isArray(moduleNames) || !moduleNames.every((m) => typeof m === 'string')) {
    throw new TypeError('module_names must be a list of strings');
  }
  preload = [...moduleNames];
}

/** A preload name as a child can import it: a file URL, or the name as given if it does not resolve from here. */
function resolvePreload(name: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(name)) return name;
  if (name.startsWith('/') || name.startsWith('.')) return pathToFileURL(resolve(name)).href;
  try {
    return pathToFileURL(createRequire(join(process.cwd(), 'noop.js')).resolve(name)).href;
  } catch {
    return name;
  }
}

type Channel = InstanceType<typeof native.NativeConnection>;

interface Spare {
  child: Started['child'];
  /** This end of its bootstrap socket, and its descriptor (watched until it is ready). */
  conn: Channel;
  fd: number;
  /** The configuration it was started with: a spare of another one is not used. */
  config: string;
  /** It has said that its modules are loaded and it waits for a Process object. */
  ready: boolean;
}

const spares: Spare[] = [];

// How many children wait (adaptive, bounded): at least MIN_SPARES. A start that finds none
// ready adds one; a burst of starts in one turn of the event loop (a Pool's workers) asks
// for as many; each IDLE_MS without a start takes one away. At most MAX_SPARES, and at most
// MAX_LOADING of them load at once (each is a whole Node start: more at once only slows
// the user's own processes on the same cores).
const MIN_SPARES = 2;
const MAX_SPARES = Math.max(4, Math.min(16, 2 * availableParallelism()));
const MAX_LOADING = Math.max(1, availableParallelism());
const IDLE_MS = 5000;
let wanted = MIN_SPARES;
let burst = 0;
let started = false;
let refillQueued = false;
let idleTimer: NodeJS.Timeout | null = null;

/** The modules of recent targets (most recent last), which new waiting children load in advance. */
const MAX_TARGET_MODULES = 16;
const targetModules: string[] = [];

function learnTargets(procMsg: Dumped): void {
  for (const url of functionModules(procMsg.data)) {
    const i = targetModules.indexOf(url);
    if (i === targetModules.length - 1 && i >= 0) continue;
    if (i >= 0) targetModules.splice(i, 1);
    targetModules.push(url);
    if (targetModules.length > MAX_TARGET_MODULES) targetModules.shift();
  }
}

/** What a waiting child is started with: node, its options, the environment, the preload modules. */
function configuration(): { key: string; env: string[]; modules: string[] } {
  const env = environment();
  const modules = [libraryRoot, ...preload.map(resolvePreload)];
  return { key: JSON.stringify([getExecutable(), childExecArgv(), env, modules]), env, modules };
}

function startSpare(c: ReturnType<typeof configuration>): Spare {
  const preloads: Preloads = { modules: c.modules, targets: [...targetModules] };
  const started = startNode([bootstrapPath, '--multiprocessing-forkserver', JSON.stringify(preloads)], c.env, false);
  const s: Spare = { child: started.child, conn: new native.NativeConnection(started.conn), fd: started.conn, config: c.key, ready: false };
  // Told when it is ready (or has died), without holding this process open.
  void wait.readable(s.fd, null, undefined, false).then(() => {
    if (!spares.includes(s)) return;
    if (readiness(s) === 'ended') {
      // It ended while loading: perhaps a module it loads ends the process (process.exit()
      // at the top level of a target's module). Forget the targets' modules, drop the other
      // children still loading them (a Process object must not go to one), and start no
      // replacement before the next start(), so that such a module cannot make a loop.
      targetModules.length = 0;
      for (const other of spares.filter((o) => o === s || readiness(o) !== 'ready')) {
        spares.splice(spares.indexOf(other), 1);
        discard(other);
      }
      return;
    }
    refill();
  });
  return s;
}

/** Close this end of a waiting child's socket (no longer watched). */
function release(s: Spare): void {
  wait.forget(s.fd);
  s.conn.close();
}

/** Kill a waiting child that will not be used; it is reaped once its pidfd says it has ended, without waiting here. */
function discard(s: Spare): void {
  release(s);
  try {
    nativeCall(() => native.signalChild(s.child.pidfd, 9));
  } catch {
    /* already ended */
  }
  const reap = (): void => {
    try {
      nativeCall(() => native.waitChild(s.child.pid, s.child.pidfd, 0));
    } catch {
      /* nothing to reap: it is gone already */
    } finally {
      closePidfd(s.child.pidfd);
    }
  };
  if (nativeCall(() => native.waitReadable(s.child.pidfd, 0))) reap();
  // Not holding the process open: if it ends first, the orphan is reaped by init.
  else void wait.readable(s.child.pidfd, null, undefined, false).then(reap);
}

/**
 * Start waiting children up to the wanted number, MAX_LOADING loading at once. Called
 * outside any start(): if one cannot be started (a missing executable set by
 * setExecutable, no more processes), it stops there; the next start() reports the error.
 */
function refill(): void {
  const c = configuration();
  let loading = spares.filter((s) => readiness(s) === 'loading').length;
  try {
    while (spares.length < wanted && loading < MAX_LOADING) {
      spares.push(startSpare(c));
      loading++;
    }
  } catch {
    /* reported by the next start() */
  }
}

/** After the starts of this turn of the event loop: adapt the wanted number, start replacements. */
function afterStarts(): void {
  refillQueued = false;
  wanted = Math.min(MAX_SPARES, Math.max(wanted, burst));
  burst = 0;
  refill();
  idleTimer?.refresh();
  idleTimer ??= setInterval(() => {
    // Idle: no start for IDLE_MS, and every waiting child is ready (none is killed half-started).
    if (wanted <= MIN_SPARES || spares.some((s) => readiness(s) !== 'ready')) return;
    wanted--;
    // The youngest goes first: it has had the least of its start.
    while (spares.length > wanted) discard(spares.pop()!);
  }, IDLE_MS).unref();
}

/** PF_EXITING in /proc/<pid>/stat's flags: the thread is in the kernel's exit path. */
const PF_EXITING = 0x4;
/** SIGKILL's bit in the pending signals: a fatal signal is being delivered to every thread. */
const SIGKILL_PENDING = 1 << 8;

/**
 * Whether a waiting child is dead or dying. A killed child's pidfd becomes readable only
 * once all its threads have exited; before that, its main thread is already a zombie, or
 * exiting, or has SIGKILL pending (the kernel sets it in every thread when a fatal signal
 * arrives, before kill() returns). /proc/<pid>/stat shows each of these for the main thread.
 */
function dying(s: Spare): boolean {
  if (nativeCall(() => native.waitReadable(s.child.pidfd, 0))) return true;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${s.child.pid}/stat`, 'latin1');
  } catch {
    return true;
  }
  // After "pid (comm) ": state is field 3, flags field 9, the pending signals field 31.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return f[0] === 'Z' || f[0] === 'X' || (Number(f[6]) & PF_EXITING) !== 0 || (Number(f[28]) & SIGKILL_PENDING) !== 0;
}

/**
 * Read what a waiting child has said, without waiting: 'ready' (its modules are loaded, it
 * waits for a Process object), 'loading', or 'ended' (the end of its socket).
 */
function readiness(s: Spare): 'ready' | 'loading' | 'ended' {
  if (!s.ready) {
    try {
      s.ready = nativeCall(() => s.conn.recv(false, null, null)) !== null;
    } catch {
      return 'ended';
    }
  }
  return s.ready ? 'ready' : 'loading';
}

/**
 * How long start() waits for a ready child to say it has taken the Process object before
 * counting it as started anyway (alive but not scheduled yet on a loaded machine). The
 * wait blocks this thread, so it is short: it only guards against a kill that lands
 * during the start itself (one before it is seen in /proc, see dying()).
 */
const ACK_LIMIT_S = 0.5;
/** While waiting, how often it checks that the child is not dying. */
const ACK_SLICE_S = 0.002;

/**
 * Hand the messages to a ready waiting child and wait for its acknowledgement (child_main.ts
 * sends it on receiving the Process object, before running anything). False if it died or
 * is dying first: it did not take the Process object, another child must.
 */
function handOver(s: Spare, messages: [Dumped, Dumped]): boolean {
  if (!sendBootstrap(s.conn, messages)) return false;
  const deadline = performance.now() + ACK_LIMIT_S * 1000;
  for (;;) {
    try {
      if (nativeCall(() => s.conn.poll(ACK_SLICE_S))) return nativeCall(() => s.conn.recv(false, null, null)) !== null;
    } catch {
      return false; // the end of the socket: it died without taking it
    }
    if (dying(s)) return false;
    if (performance.now() > deadline) return true;
  }
}

/**
 * Start the child of a Process object: hand it to the oldest ready waiting child that is
 * alive and was started with the current configuration (the next one if it turns out to be
 * dead or dying); failing that, to the oldest one still loading its modules (it reads the
 * Process object once ready), or to a child started now. Replacements start once this
 * turn of the event loop is over (a Pool starts all its workers first).
 */
function launch(messages: [Dumped, Dumped]): Started['child'] {
  const c = configuration();
  let got: Spare | null = null;
  for (let i = 0; !got && i < spares.length; ) {
    const s = spares[i];
    const state = s.config === c.key && !dying(s) ? readiness(s) : 'ended';
    if (state === 'ended' || (state === 'ready' && !handOver(s, messages))) {
      spares.splice(i, 1);
      discard(s);
    } else if (state === 'ready') {
      spares.splice(i, 1);
      got = s;
    } else i++;
  }
  if (!got) {
    // None ready (after the first start): waiting children are too few for this program's pace.
    if (started) wanted = Math.min(MAX_SPARES, wanted + 1);
    // The oldest loading one (checked alive above) gets it without an acknowledgement; a
    // child started now cannot have been killed by anyone either.
    got = spares.shift() ?? startSpare(c);
    if (!sendBootstrap(got.conn, messages)) messages[1].undo?.();
  }
  release(got);
  learnTargets(messages[1]);
  started = true;
  burst++;
  if (!refillQueued) {
    refillQueued = true;
    setImmediate(afterStarts);
  }
  return got.child;
}

/** Pids of the children waiting for a Process object (for tests and diagnostics). @internal */
export function _forkserverSpares(): number[] {
  return spares.map((s) => s.child.pid);
}

/** Process started by the fork server (Python's context.ForkServerProcess). */
export class ForkServerProcess extends BaseProcess {
  protected override _Popen(proc: BaseProcess): Popen {
    return new SpawnPopen(proc, launch);
  }
}
registerProcessClass(ForkServerProcess);
