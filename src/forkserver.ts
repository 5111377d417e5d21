// The 'forkserver' start method (Python's forkserver + popen_forkserver). The fork server
// (forkserver_main.ts) is a node process that has loaded the library and the preload
// modules and forks itself for each child (natively, V8 single-threaded: see
// crates/node/src/forkself.rs). This module starts it on first use (shared by every
// context of this process), asks it for a child at each start(), and restarts it if it
// has died. The server dies with this process (its parent-death signal; the end of its
// socket). Each child's pid and pidfd come from the server, with the descriptor on which
// the server writes its exit code once it has reaped it (the sentinel); the parent then
// sends the child its preparation data and Process object itself, as for spawn. Each
// request also names the modules of the functions this process has sent that the server
// has not loaded yet: it loads them after its reply, for the next children.
import { nativeCall, TimeoutError } from './errors.js';
import { native } from './native.js';
import { BaseProcess, registerProcessClass, type Popen } from './process.js';
import { childExecArgv, closePidfd, environment, getExecutable, sendBootstrap, SpawnPopen, startNode, type Child } from './spawn.js';
import { _sentModules, type Dumped } from './reduction.js';
import type { ForkRequest } from './forkserver_main.js';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { fromSources, libraryModuleUrl } from './util.js';
import * as wait from './wait.js';

const libraryRoot = new URL(fromSources ? '../index.ts' : '../index.js', import.meta.url).href;
const serverPath = fileURLToPath(libraryModuleUrl('forkserver_main'));

/** The V8 option the server runs with: nothing runs in the background when it forks. @internal */
export const SINGLE_THREADED = '--single-threaded';
/**
 * V8 compiles a function when it first runs: every function of the library that the server
 * never ran (a child's own start, the decoding of its Process object) would be compiled
 * again in each child. The server compiles the library up front, then goes back to
 * compiling other modules lazily (forkserver_main.ts). @internal
 */
export const EAGER = '--no-lazy';

let preload: string[] = [];

/**
 * Python's `set_forkserver_preload(module_names)`: modules that the fork server loads
 * (after the library itself) before it forks any child, so that a target's module finds
 * them loaded. Paths (absolute, or relative to the working directory) and package names;
 * one that fails to load is reported on the server's standard error and left out, as
 * CPython's server does. A server already running with other modules is replaced at the
 * next start.
 */
export function setForkserverPreload(moduleNames: string[]): void {
  if (!Array.isArray(moduleNames) || !moduleNames.every((m) => typeof m === 'string')) {
    throw new TypeError('module_names must be a list of strings');
  }
  preload = [...moduleNames];
}

/** A preload name as the server can import it: a file URL, or the name as given if it does not resolve from here. */
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

interface Server {
  pid: number;
  pidfd: number;
  conn: Channel;
  /** What it was started with (node, its options, the modules): another start needs another server. */
  key: string;
  /** The modules of sent functions it was told to load (ForkRequest.modules). */
  told: Set<string>;
  /** Those told in the last request: it loads them after its reply, and is known to have survived them at its next reply. */
  loading: string[];
}

/**
 * Modules whose loading left a server unfit to fork or ended it (their top level threw,
 * exited, left something pending or hung): never offered to a server again.
 */
const unfit = new Set<string>();

/** A server found dead or unanswering: what it was loading is the likely cause. */
function blame(s: Server): void {
  for (const m of s.loading) unfit.add(m);
  s.loading = [];
}

/** What a server has said outside a reply: which module left it unfit, or (its end) that it has ended. */
function heard(s: Server): void {
  let said: Buffer | null = null;
  try {
    said = nativeCall(() => s.conn.recv(false, null, null));
  } catch {
    /* it has ended */
  }
  let m: string | undefined;
  try {
    m = said ? (JSON.parse(said.toString()) as { unfit?: string }).unfit : undefined;
  } catch {
    /* not what a server says */
  }
  if (m) {
    unfit.add(m);
    s.loading = [];
  } else blame(s);
}

let server: Server | null = null;

/**
 * How long a start waits for the server's answer, the server's boot and preload modules
 * included the first time: a server that hangs (a preload module that never finishes
 * loading) fails the start with TimeoutError instead of blocking this thread for ever.
 */
let answerSeconds = 60;

/** Set the wait for the server's answer (tests). @internal */
export function _setForkserverAnswerTimeout(seconds: number): void {
  answerSeconds = seconds;
}

/** Stop using the server: closing its socket ends it (if it has not ended), and it is reaped once it has. */
function dropServer(s: Server): void {
  if (server === s) server = null;
  s.conn.close();
  const reap = (): void => {
    try {
      nativeCall(() => native.waitChild(s.pid, s.pidfd, 0));
    } finally {
      closePidfd(s.pidfd);
    }
  };
  if (nativeCall(() => native.waitReadable(s.pidfd, 0))) reap();
  else {
    // Its end of the socket is closed: it ends in a moment. Not holding this process open.
    void wait.readable(s.pidfd, null, undefined, false).then(reap, () => {});
  }
}

/** The running server for the current configuration, started (or restarted) if needed. */
function theServer(): Server {
  const modules = [libraryRoot, ...preload.map(resolvePreload)];
  const args = [SINGLE_THREADED, EAGER, serverPath, JSON.stringify(modules)];
  const key = JSON.stringify([getExecutable(), childExecArgv(), args]);
  if (server && server.key !== key) dropServer(server);
  // Between two starts, the server speaks only to say it has become unfit (or by ending).
  else if (server && (nativeCall(() => server!.conn.poll(0)) || nativeCall(() => native.waitReadable(server!.pidfd, 0)))) {
    heard(server);
    dropServer(server);
  }
  if (!server) {
    const started = startNode(args, environment(), true);
    server = { ...started.child, conn: new native.NativeConnection(started.conn), key, told: new Set(), loading: [] };
  }
  return server;
}

/**
 * Ask the server for a child; returns it and this end of its bootstrap socket. Throws if
 * the server is gone (a child it may have forked before reads the end of its socket).
 */
function fork(s: Server): { child: Child; conn: Channel } {
  const [parentEnd, childEnd] = nativeCall(() => native.socketPair());
  try {
    const modules = [..._sentModules()].filter((m) => !s.told.has(m) && !unfit.has(m));
    const request: ForkRequest = { env: process.env as Record<string, string>, cwd: process.cwd(), modules };
    nativeCall(() => s.conn.send(Buffer.from(JSON.stringify(request)), [childEnd]));
    // The server forks at once: it answers within a fork's time (after its boot, the first time).
    const reply = nativeCall(() => s.conn.recv(true, answerSeconds, null));
    if (reply === null) {
      nativeCall(() => native.signalChild(s.pidfd, 9));
      throw new TimeoutError(`the fork server (pid ${s.pid}) did not answer within ${answerSeconds} s: it was ended (a preload module that never finishes loading?)`);
    }
    if (reply[0] === 0x7b) {
      // Not a pid: it has become unfit (see forkserver_main.ts learn()) and ignores this request.
      unfit.add((JSON.parse(reply.toString()) as { unfit: string }).unfit);
      s.loading = [];
      throw new Error('the fork server has stopped taking requests');
    }
    const [pidfd, status] = nativeCall(() => s.conn.takeFds(2));
    // It has answered: it came through what it loaded before; it loads these now.
    for (const m of modules) s.told.add(m);
    s.loading = modules;
    return { child: { pid: Number(reply.toString()), pidfd, status }, conn: new native.NativeConnection(parentEnd) };
  } catch (e) {
    native.closeFd(parentEnd);
    throw e;
  } finally {
    native.closeFd(childEnd);
  }
}

/**
 * Start the child of a Process object: the server forks it, then it gets its messages.
 * If the server has died since the last start, a new one is started and asked once more.
 */
function launch(messages: [Dumped, Dumped]): Child {
  let forked: ReturnType<typeof fork>;
  const s = theServer();
  try {
    forked = fork(s);
  } catch (e) {
    // A server that hung would hang again with the same modules, unless a module of a
    // target it was loading is the cause; a dead one is replaced.
    const learning = s.loading.length > 0;
    blame(s);
    dropServer(s);
    if (e instanceof TimeoutError && !learning) throw e;
    forked = fork(theServer());
  }
  // If the child died before reading, the Process object's counts are given back.
  if (!sendBootstrap(forked.conn, messages)) messages[1].undo?.();
  forked.conn.close();
  return forked.child;
}

/**
 * Whether node runs module customization hooks (`--import`, `--loader`, in the options or
 * NODE_OPTIONS: TypeScript loaders such as tsx register them). In Node 20 they run on a
 * thread of their own, which a forked child would not have (its first import would wait
 * for it for ever): the children of such a program are spawned instead, with the hooks.
 */
function moduleHooks(): boolean {
  const options = [...childExecArgv(), ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return options.some((o) => /^--(import|loader|experimental-loader)(=|$)/.test(o));
}

/** The fork server's pid, or null if none runs (for tests and diagnostics). @internal */
export function _forkserverPid(): number | null {
  return server?.pid ?? null;
}

/** Process started by the fork server (Python's context.ForkServerProcess). */
export class ForkServerProcess extends BaseProcess {
  protected override _Popen(proc: BaseProcess): Popen {
    return moduleHooks() ? new SpawnPopen(proc) : new SpawnPopen(proc, launch);
  }
}
registerProcessClass(ForkServerProcess);
