// The fork server of the 'forkserver' start method (Python's forkserver.main): a node
// process started by the parent (forkserver.ts) with V8 single-threaded, which loads the
// library and the preload modules, then forks itself for each child it is asked for.
//
// The server never returns to its event loop: it waits in a blocking poll() on its socket
// to the parent (descriptor 3) and on the pidfds of its children, so that at each fork no
// JavaScript, no V8 background task and no libuv request is in progress (what the native
// fork needs: crates/node/src/forkself.rs). The addon's own threads are never started here.
//
// Per request (the child's environment and working directory, with the child's end of its
// bootstrap socket), it forks; it sends the parent the child's pid with a pidfd (for
// signals) and the parent's end of a status socket, the sentinel, on which it writes the
// exit code once it has reaped the child (CPython sends it the same way). The child drops
// what is the server's and runs as a spawn child does (child_main.ts). After its reply, the
// server loads the modules of sent functions the request names (learn()), so that the next
// children do not import them.
import { getRandomValues } from 'node:crypto';
import { native } from './native.js';
import { runChild } from './child_main.js';
import { _importFunctionModule, _setImportingForChild } from './reduction.js';
import { EAGER, SINGLE_THREADED } from './forkserver.js';
import { setFlagsFromString } from 'node:v8';

const PARENT = 3;

interface Forked {
  pid: number;
  pidfd: number;
  /** The server's end of the child's status socket. */
  status: number;
}

/**
 * What the parent asks for: the child's environment and working directory (from its
 * start()), and the modules of the functions it has sent that this server has not been
 * told of yet, which the server loads after its reply (see learn()).
 */
export interface ForkRequest {
  env: Record<string, string>;
  cwd: string;
  modules?: string[];
}

/** What a forked child needs to become the requested process. */
interface ForkedFrom {
  /** Its end of the bootstrap socket (the parent sends the Process object on it). */
  bootstrap: number;
  request: ForkRequest;
}

async function preload(modules: string[]): Promise<void> {
  for (const m of modules) {
    try {
      await import(m);
    } catch (e) {
      // As CPython's server: reported, left out.
      process.stderr.write(`forkserver: cannot preload ${m}: ${(e as Error)?.message ?? e}\n`);
    }
  }
}

function statusBytes(code: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(code);
  return b;
}

/** Whether the server has handles or requests pending that it did not have at `before` (process.getActiveResourcesInfo()). */
function pendingSince(before: string[]): boolean {
  const left = [...before];
  for (const r of process.getActiveResourcesInfo()) {
    const i = left.indexOf(r);
    if (i < 0) return true;
    left.splice(i, 1);
  }
  return false;
}

/**
 * Load the modules of the parent's targets here, after the reply to the start that named
 * them (as CPython's server preloads the main module), so that the children forked next
 * find them loaded instead of importing them at their start. A module is kept only if its
 * top level ran clean: it neither threw nor exited, left nothing pending (a timer, a
 * socket, a file read would run in the server, or be half done in every child) and started
 * no thread of the addon (this process could no longer fork). Otherwise this server is no
 * longer fit to fork, and the module is returned: the parent starts another server, which
 * is not told of it, and the children load it themselves, as spawn children do.
 */
async function learn(modules: string[], request: ForkRequest): Promise<string | null> {
  // The module's top level sees the environment and directory of the start that named it.
  applyEnvironment(request);
  const before = process.getActiveResourcesInfo();
  let clean = true;
  const exit = process.exit;
  const onError = (): void => {
    clean = false;
  };
  process.exit = ((code?: number) => {
    clean = false;
    throw new Error(`process.exit(${code ?? ''}) while the fork server loaded a module`);
  }) as typeof process.exit;
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  // As in a child loading its target: starting a process now is the bootstrapping error.
  _setImportingForChild(true);
  try {
    for (const m of modules) {
      try {
        await _importFunctionModule(m);
      } catch {
        clean = false;
      }
      // A turn of the event loop, for what the top level left queued.
      await new Promise((r) => setImmediate(r));
      if (!clean || pendingSince(before) || !native.forkSelfPossible()) return m;
    }
  } finally {
    _setImportingForChild(false);
    process.exit = exit;
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
  return null;
}

/**
 * Serve until the parent has closed its end and the last child has ended (null), or, in a
 * forked child, return what it needs to become the requested process.
 */
async function serve(): Promise<ForkedFrom | null> {
  const parent = new native.NativeConnection(PARENT);
  const children = new Map<number, Forked>();
  // Once the parent has closed its end (it ended, or it uses another server now), the
  // children still running are waited for, so that their exit codes reach it.
  let closing = false;
  for (;;) {
    if (closing && children.size === 0) return null;
    const ready = native.pollReadable(closing ? [...children.keys()] : [PARENT, ...children.keys()], null);
    for (const fd of ready) {
      const c = children.get(fd);
      if (!c) continue;
      const code = native.waitChild(c.pid, c.pidfd, 0);
      if (code === null) continue;
      const status = new native.NativeConnection(c.status);
      try {
        status.send(statusBytes(code));
      } catch {
        /* the parent has closed its end */
      }
      // Closed by its wrapper, which would otherwise close the number again when collected.
      status.close();
      native.closeFd(c.pidfd);
      children.delete(fd);
    }
    if (!ready.includes(PARENT)) continue;
    let data: Buffer;
    try {
      data = parent.recv(true, null, null)!;
    } catch {
      closing = true;
      continue;
    }
    const [bootstrap] = parent.takeFds(1);
    const request = JSON.parse(data.toString()) as ForkRequest;
    const pid = native.forkSelf();
    if (pid === 0) {
      // The child: nothing of the server's stays open in it.
      parent.close();
      for (const c of children.values()) {
        native.closeFd(c.status);
        native.closeFd(c.pidfd);
      }
      return { bootstrap, request };
    }
    native.closeFd(bootstrap);
    const pidfd = native.pidfdOpen(pid);
    const [mine, theirs] = native.socketPair();
    try {
      parent.send(Buffer.from(String(pid)), [pidfd, theirs]);
    } catch {
      /* the parent has ended: its children are reaped here until then */
    }
    native.closeFd(theirs);
    children.set(pidfd, { pid, pidfd, status: mine });
    const unfit = request.modules?.length ? await learn(request.modules, request) : null;
    if (unfit !== null) {
      // Unfit to fork: the parent's next start reads which module made it so, and starts
      // another server; this one still reports its children's exit codes until they have ended.
      try {
        parent.send(Buffer.from(JSON.stringify({ unfit })));
      } catch {
        /* the parent has ended */
      }
      parent.close();
      closing = true;
    }
  }
}

/**
 * Math.random as V8's own (xorshift128+, 53 bits per number) with a fresh seed: V8 keeps
 * its state in the heap, which every child would otherwise share with the server (CPython
 * reseeds `random` after a fork for the same reason). The crypto module's generator
 * (OpenSSL) reseeds itself after a fork.
 */
function reseedMathRandom(): void {
  const mask = (1n << 64n) - 1n;
  let s0 = 0n;
  let s1 = 0n;
  const random = (): number => {
    // Seeded on its first call: the crypto generator's first use after a fork costs a few
    // milliseconds, which a child that never calls Math.random does not pay at its start.
    if (s0 === 0n) {
      const s = getRandomValues(new BigUint64Array(2));
      s0 = s[0] | 1n;
      s1 = s[1];
    }
    let x = s0;
    const y = s1;
    s0 = y || 1n;
    x = (x ^ (x << 23n)) & mask;
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return Number((s1 + y) & mask & ((1n << 53n) - 1n)) / 2 ** 53;
  };
  Object.defineProperty(Math, 'random', { value: random, writable: true, configurable: true });
}

/** The environment and working directory of the start() of `request`. */
function applyEnvironment(request: ForkRequest): void {
  for (const k of Object.keys(process.env)) if (!(k in request.env)) delete process.env[k];
  Object.assign(process.env, request.env);
  try {
    process.chdir(request.cwd);
  } catch {
    /* gone since: the server's */
  }
}

/**
 * In the forked child, before anything of the target runs: its own pid and parent pid (node
 * reads them once at its start), its own Math.random, the environment and working directory
 * of the start(), the parent's node options (without the server's own), the
 * argv of a spawn child; and an end without node's teardown, which would join the
 * platform's threads that only the server has: once the 'exit' event has run (process.exit,
 * the end of the event loop, an uncaught exception, whose report node prints after that
 * event, so it is printed here), the process ends with that code.
 */
function becomeForked(request: ForkRequest): void {
  const define = (key: string, value: unknown) => Object.defineProperty(process, key, { value, writable: true, enumerable: true, configurable: true });
  define('pid', native.getpid());
  define('ppid', native.getppid());
  reseedMathRandom();
  applyEnvironment(request);
  for (const option of [SINGLE_THREADED, EAGER]) {
    const at = process.execArgv.lastIndexOf(option);
    if (at >= 0) process.execArgv.splice(at, 1);
  }
  process.argv.splice(2, process.argv.length - 2, '--multiprocessing-fork');
  let fatal: { error: unknown } | null = null;
  process.on('uncaughtExceptionMonitor', (error) => {
    if (process.listenerCount('uncaughtException') === 0) fatal = { error };
  });
  const end = (code: number): never => {
    if (fatal) process.stderr.write(`${(fatal.error as Error)?.stack ?? String(fatal.error)}\n\nNode.js ${process.version}\n`);
    return native.exitNow(code) as never;
  };
  const emit = process.emit as (this: NodeJS.Process, event: string | symbol, ...args: unknown[]) => boolean;
  process.emit = function (this: NodeJS.Process, event: string | symbol, ...args: unknown[]) {
    const r = emit.call(this, event, ...args);
    if (event === 'exit') end(Number(process.exitCode ?? args[0] ?? 0) || 0);
    return r;
  } as typeof process.emit;
  (process as unknown as { reallyExit: (code?: number) => void }).reallyExit = (code) => end(Number(code ?? 0) || 0);
}

const [library, ...modules] = JSON.parse(process.argv[2] ?? '[]') as string[];
await preload([library]);
// The library is compiled now (see EAGER); what else runs here is compiled when it first runs.
setFlagsFromString('--lazy');
await preload(modules);
const forked = await serve();
if (forked) {
  becomeForked(forked.request);
  runChild(forked.bootstrap, native.getppid());
} else process.exit(0);
