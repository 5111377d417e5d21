// Shared test helpers.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a TypeScript file under tsx (as a user would) and collect its output. */
export function runTs(file: string, args: string[] = [], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // node itself with tsx's loader (not the tsx CLI, which would run node as a grandchild
    // that a kill on timeout would not reach).
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, file), ...args], { cwd: root });
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
