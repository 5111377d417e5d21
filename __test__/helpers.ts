// Shared test helpers.
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Process } from '../index.js';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a TypeScript file under tsx (as a user would) and collect its output. */
export function runTs(file: string, args: string[] = [], timeoutMs = 60_000, nodeOptions: string[] = []): Promise<RunResult> {
  // node itself with tsx's loader (not the tsx CLI, which would run node as a grandchild
  // that a kill on timeout would not reach).
  return runNode([...nodeOptions, '--import', 'tsx', join(root, file), ...args], timeoutMs);
}

/** Run a JavaScript file with plain node (no TypeScript loader) and collect its output. */
export function runJs(file: string, args: string[] = [], timeoutMs = 60_000): Promise<RunResult> {
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
