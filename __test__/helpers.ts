// Shared test helpers.
import type { ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Process } from '../index.js';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * How long a program run by a test may take before it counts as a hang: under AVA's 2 min
 * timeout, and long enough for a program that starts processes or threads on a loaded
 * 2-core machine (a load average of 90 made 15 s runs take over 60 s).
 */
const RUN_LIMIT_MS = 110_000;

/** Run a TypeScript file under tsx (as a user would) and collect its output. */
export function runTs(file: string, args: string[] = [], timeoutMs = RUN_LIMIT_MS, nodeOptions: string[] = []): Promise<RunResult> {
  // node itself with tsx's loader (not the tsx CLI, which would run node as a grandchild
  // that a kill on timeout would not reach).
  return runNode([...nodeOptions, '--import', 'tsx', join(root, file), ...args], timeoutMs);
}

/** Run a JavaScript file with plain node (no TypeScript loader) and collect its output. */
export function runJs(file: string, args: string[] = [], timeoutMs = RUN_LIMIT_MS): Promise<RunResult> {
  return runNode([join(root, file), ...args], timeoutMs);
}

function runNode(nodeArgs: string[], timeoutMs: number): Promise<RunResult> {
  const file = nodeArgs.find((a) => a.startsWith(root)) ?? nodeArgs.join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} timed out; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Start `target(...args)` in a child that is killed (if still running) and joined when the
 * test ends, passed or failed: a failed assertion throws (AVA 7), and a child left running
 * would be joined by the exit handler (as in Python) and hang the worker.
 */
export function startChild(t: ExecutionContext, target: (...a: any[]) => unknown, args: unknown[]): Process {
  const p = new Process({ target, args });
  p.start();
  t.teardown(async () => {
    if (p.isAlive()) p.kill();
    await p.join(30);
  });
  return p;
}

/** A Python child (python3 unless `exe` names another interpreter) with its stdout read line by line. */
export class Py {
  child: ChildProcessWithoutNullStreams;
  lines: string[] = [];
  #waiters: Array<() => void> = [];
  stderr = '';
  exit: Promise<number | null>;
  constructor(args: string[], exe = 'python3') {
    this.child = spawn(exe, args, { cwd: root });
    this.child.stderr.on('data', (d) => (this.stderr += d));
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.exit = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code) => resolve(code));
    });
  }
  /** The next line of output (consumed). */
  async line(): Promise<string> {
    while (this.lines.length === 0) {
      const closed = await Promise.race([new Promise<boolean>((r) => this.#waiters.push(() => r(false))), this.exit.then(() => true)]);
      if (closed && this.lines.length === 0) throw new Error(`python exited early: ${this.stderr}`);
    }
    return this.lines.shift()!;
  }
  async finish(): Promise<{ code: number | null; out: string }> {
    const code = await this.exit;
    return { code, out: this.lines.join('\n') };
  }
  kill(): void {
    this.child.kill('SIGKILL');
  }
}

export interface PythonInterpreter {
  /** 'X.Y' */
  version: string;
  minor: number;
  exe: string;
}

function pythonVersionOf(exe: string): string | null {
  const r = spawnSync(exe, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * Every python3.x on this machine: pyenv's (`$PYENV_ROOT/versions/3.N.*`), else
 * `python3.N` on PATH, each checked by running it; `absent` names the
 * versions from 3.6 to 3.13 that were not found, `defaultVersion` is what `python3` runs.
 */
export function findPythons(): { found: PythonInterpreter[]; absent: string[]; defaultVersion: string | null } {
  const pyenvVersions = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'versions');
  const installed = existsSync(pyenvVersions) ? readdirSync(pyenvVersions) : [];
  const found: PythonInterpreter[] = [];
  const absent: string[] = [];
  for (let minor = 6; minor <= 20; minor++) {
    const version = `3.${minor}`;
    // pyenv's own executables first: its shims on PATH are slow scripts.
    const candidates = [
      ...installed.filter((d) => d.startsWith(`${version}.`)).sort().reverse().map((d) => join(pyenvVersions, d, 'bin', `python${version}`)),
      `python${version}`,
    ];
    const exe = candidates.find((c) => pythonVersionOf(c) === version);
    if (exe) found.push({ version, minor, exe });
    else if (minor <= 13) absent.push(version);
  }
  return { found, absent, defaultVersion: pythonVersionOf('python3') };
}

/** Whether process `pid` has ended (gone, or a zombie not yet reaped). */
export function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Wait up to `ms` for `cond` to hold. */
export async function eventually(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}
