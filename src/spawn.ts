// Starting a child the 'spawn' way (Python's popen_spawn_posix + spawn): a fresh
// node process, started by fork/exec in the Rust core with the parent's executable
// and execArgv, receives its preparation data and its Process object over a Unix
// socket (descriptor 3) and runs it (spawn_main.ts).
import { fileURLToPath } from 'node:url';
import { nativeCall } from './errors.js';
import { native } from './native.js';
import type { Popen } from './process.js';
import { _startMethodForChild, BaseProcess, currentProcess, registerProcessClass } from './process.js';
import { dumps, type Dumped } from './reduction.js';
import { blockFor } from './timeouts.js';
import { Finalize, libraryModuleUrl } from './util.js';
import { _loggingForChild } from './logging.js';
import * as wait from './wait.js';

type NativeConnectionType = InstanceType<typeof native.NativeConnection>;

let executable = process.execPath;

/** Python's `set_executable`: the node binary children run. */
export function setExecutable(path: string): void {
  executable = path;
}
export function getExecutable(): string {
  return executable;
}

/** The spawn child's entry point. @internal */
export const bootstrapPath = fileURLToPath(libraryModuleUrl('spawn_main'));

/** Options of the parent that must not reach a child (they would run other code, or clash). */
const DROP_WITH_VALUE = new Set(['-e', '--eval', '-p', '--print', '-r_', '--input-type', '--inspect-port', '--debug-port']);
const DROP_PREFIX = ['--eval=', '--print=', '--input-type=', '--inspect', '--debug-port=', '--watch', '--test', '--interactive'];

export function childExecArgv(argv: string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (DROP_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a === '-i' || DROP_PREFIX.some((p) => a.startsWith(p))) continue;
    out.push(a);
  }
  return out;
}

/** What a child needs before its Process object is loaded (Python's preparation data). */
export interface Preparation {
  parentName: string;
  /** The parent called logToStderr(): so does the child. */
  logToStderr: boolean;
  /** The parent's logger level, if it has asked for its logger. */
  logLevel?: number;
  /** The parent's start method, when set (Python's `start_method`): the child's default. */
  startMethod?: string | null;
}

/** Stop watching `fd` and close it (a released sentinel). @internal */
export function closePidfd(fd: number): void {
  wait.forget(fd);
  native.closeFd(fd);
}

/** Release a child's pidfd and, for a fork server's child, its status descriptor. */
function closeDescriptors(pidfd: number, status: number): void {
  closePidfd(pidfd);
  if (status >= 0) closePidfd(status);
}

let endedFd = -1;
/**
 * A descriptor that is always readable (a socket whose peer is closed): the sentinel of
 * every process whose own pidfd was released, as a finished process's sentinel is.
 */
export function alwaysReadable(): number {
  if (endedFd < 0) {
    const [a, b] = nativeCall(() => native.socketPair());
    native.closeFd(b);
    endedFd = a;
  }
  return endedFd;
}

/**
 * A started child: its pid and a pidfd (signals; the sentinel of this process's own
 * children, reaped with waitpid). A child of the fork server also has `status`: the
 * descriptor on which the server writes its exit code (a 4-byte message) once it has
 * reaped it, or that ends if the server died (code 255, as CPython reports): its sentinel. @internal
 */
export interface Child {
  pid: number;
  pidfd: number;
  status?: number;
}

/** A started child and the parent's end of its bootstrap socket. @internal */
export interface Started {
  child: Child;
  conn: number;
}

/** The exit code on a fork server's status descriptor, or null if not there yet. */
function readStatus(fd: number): number | null {
  const conn = new native.NativeConnection(fd);
  try {
    const data = nativeCall(() => conn.recv(false, null, null));
    return data === null ? null : data.readInt32LE(0);
  } catch {
    return 255; // the server died before it could say
  } finally {
    conn.detach();
  }
}

/** Start a fresh node process that runs `args` after its node options, bootstrap socket on descriptor 3. @internal */
export function startNode(args: string[], env: string[], dieWithParent: boolean): Started {
  const [parentEnd, childEnd] = nativeCall(() => native.socketPair());
  try {
    const child = nativeCall(() =>
      native.spawnChild({
        program: executable,
        args: [...childExecArgv(), ...args],
        env,
        passFds: [childEnd],
        dieWithParent,
        // As Python's _close_stdin: a child reads nothing of the parent's input.
        nullStdin: true,
      }),
    );
    return { child, conn: parentEnd };
  } catch (e) {
    native.closeFd(parentEnd);
    throw e;
  } finally {
    native.closeFd(childEnd);
  }
}

/**
 * Send the preparation data and the Process object on a child's bootstrap socket. False if
 * the child has already ended (it did not read them; its exit code tells the story). @internal
 */
export function sendBootstrap(conn: NativeConnectionType, [prep, proc]: [Dumped, Dumped]): boolean {
  try {
    nativeCall(() => {
      conn.send(prep.data, prep.fds);
      conn.send(proc.data, proc.fds);
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * How a Popen's child is started and handed its two messages (the preparation data and the
 * Process object); returns the child. @internal
 */
export type Launch = (messages: [Dumped, Dumped]) => Child;

/** The spawn way: a fresh node process for this Process object. */
function spawnLaunch(proc: BaseProcess): Launch {
  return (messages) => {
    const started = startNode([bootstrapPath, '--multiprocessing-fork'], environment(), diesWithParent(proc));
    const conn = new native.NativeConnection(started.conn);
    // If the child died before reading, the Process object's counts are given back.
    if (!sendBootstrap(conn, messages)) messages[1].undo?.();
    conn.close();
    return started.child;
  };
}

/**
 * Whether `proc` must die with its parent: a daemonic process, or a manager's server, which
 * is not daemonic but goes with its parent (BaseManager.start). @internal
 */
export function diesWithParent(proc: BaseProcess): boolean {
  return proc.daemon || (proc as unknown as { _dieWithParent?: boolean })._dieWithParent === true;
}

/** The parent's environment as `KEY=VALUE` strings. @internal */
export function environment(): string[] {
  return Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
}

/**
 * A child of this process, watched through its pidfd (the sentinel) and reaped with
 * waitpid: the Popen of the spawn and forkserver start methods, which differ in how the
 * child was started (`start`). @internal
 */
export class SpawnPopen implements Popen {
  readonly pid: number;
  /** The child's pidfd, until released. */
  #pidfd: number;
  /** A fork server's child: the descriptor of its exit status (see Child), -1 otherwise. */
  #status: number;
  /** Whether `sentinel` was handed out: then the pidfd lives until close() or collection, as in Python. */
  #exposed = false;
  readonly #finalizer: Finalize<[number, number]>;
  returncode: number | null = null;
  #closed = false;

  constructor(proc: BaseProcess, launch: Launch = spawnLaunch(proc)) {
    // Serialize first: an unsendable argument fails here, before any child exists.
    const prep: Preparation = { parentName: currentProcess().name, ..._loggingForChild(), startMethod: _startMethodForChild() };
    const messages: [Dumped, Dumped] = [dumps(prep), dumps(proc)];
    let child: Child;
    try {
      child = launch(messages);
    } catch (e) {
      messages[1].undo?.();
      throw e;
    }
    this.pid = child.pid;
    this.#pidfd = child.pidfd;
    this.#status = child.status ?? -1;
    // Python's Popen finalizer: a collected process object releases its descriptors.
    this.#finalizer = new Finalize(this, closeDescriptors, [child.pidfd, this.#status]);
  }

  /** The descriptor readable once the exit code is known. */
  get #ended(): number {
    return this.#status >= 0 ? this.#status : this.#pidfd;
  }

  #exitCode(timeout: number | null): number | null {
    if (this.#status < 0) return nativeCall(() => native.waitChild(this.pid, this.#pidfd, timeout));
    return nativeCall(() => native.waitReadable(this.#status, timeout)) ? readStatus(this.#status) : null;
  }

  /**
   * A descriptor readable once the process has ended (usable with `wait()`). Once
   * handed out, it stays open until `close()` or collection, as in Python.
   */
  get sentinel(): number {
    if (this.#finalizer.stillActive()) {
      this.#exposed = true;
      return this.#ended;
    }
    return alwaysReadable();
  }

  /** The pidfd for this object's own waits (does not hand it out). @internal */
  get _waitFd(): number {
    return this.#finalizer.stillActive() ? this.#ended : alwaysReadable();
  }

  /** The child has been reaped: nothing needs its pidfd unless it was handed out. */
  #reaped(code: number | null): number | null {
    this.returncode = code;
    if (code !== null && !this.#exposed) this.#finalizer.call();
    return code;
  }

  poll(): number | null {
    if (this.returncode === null && !this.#closed) {
      this.#reaped(this.#exitCode(0));
    }
    return this.returncode;
  }

  waitSync(timeout?: number | null): number | null {
    if (this.returncode !== null || this.#closed) return this.returncode;
    const secs = timeout == null ? null : Math.max(0, timeout);
    return this.#reaped(blockFor(secs, (s) => this.#exitCode(s), (code) => code == null));
  }

  async wait(timeout?: number | null): Promise<number | null> {
    const deadline = timeout == null ? null : Date.now() + Math.max(0, timeout) * 1000;
    for (;;) {
      if (this.poll() !== null) return this.returncode;
      const left = deadline === null ? null : Math.max(0, deadline - Date.now()) / 1000;
      if (left === 0) return null;
      await wait.readable(this.#ended, left);
    }
  }

  #signal(sig: number): void {
    if (this.poll() === null) nativeCall(() => native.signalChild(this.#pidfd, sig));
  }

  terminate(): void {
    this.#signal(15);
  }

  kill(): void {
    this.#signal(9);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#finalizer.call();
  }
}

/** Process started by spawning a fresh node process (Python's context.SpawnProcess). */
export class SpawnProcess extends BaseProcess {
  protected override _Popen(proc: BaseProcess): Popen {
    return new SpawnPopen(proc);
  }
}
registerProcessClass(SpawnProcess);
