// The docs' manager examples (17.2.2.7 customized and remote managers, 17.2.4 customized
// managers and proxies), each run as a user would; the remote one across three processes
// over TCP, with a wrong key refused while the server keeps serving.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { root, runTs } from './helpers.js';

test('17.2.2.7 customized manager (MathsClass)', async (t) => {
  const r = await runTs('examples/manager_custom_maths.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '7\n56\n');
});

test('17.2.4 customized managers and proxies', async (t) => {
  const r = await runTs('examples/manager_custom_proxies.ts');
  t.is(r.code, 0, r.stderr);
  const line = '-'.repeat(20);
  t.is(r.stdout, [
    line,
    'you called Foo.f()',
    'you called Foo.g()',
    line,
    'you called Foo.g()',
    'you called Foo._h()',
    line,
    '<0> <1> <4> <9> <16> <25> <36> <49> <64> <81>',
    line,
    'op.add(23, 45) = 68',
    'op.pow(2, 94) = 19807040628566084398385987584',
    "op._exposed_ = [ 'add', 'sub', 'mul', 'pow' ]",
    '',
  ].join('\n'));
});

test('17.2.2.7 remote manager: a queue server and two clients over TCP; a wrong key is refused', async (t) => {
  const server = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples/manager_remote_server.ts'), '0'], { cwd: root });
  let stderr = '';
  server.stderr.on('data', (d) => (stderr += d));
  try {
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout }).once('line', resolve);
      server.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    });
    const port = /serving on port (\d+)/.exec(first)![1];
    const put = await runTs('examples/manager_remote_put.ts', ['localhost', port, 'hello']);
    t.is(put.code, 0, put.stderr);
    const wrong = await runTs('examples/manager_remote_get.ts', ['localhost', port, 'wrong key']);
    t.not(wrong.code, 0);
    t.regex(wrong.stderr, /AuthenticationError/);
    const get = await runTs('examples/manager_remote_get.ts', ['127.0.0.1', port]);
    t.is(get.code, 0, get.stderr);
    t.is(get.stdout, 'hello\n');
  } finally {
    server.kill('SIGKILL');
  }
});

test('17.2.2.7 remote manager serving a local Queue that a local Worker process fills', async (t) => {
  const server = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples/manager_remote_worker.ts'), '0'], { cwd: root });
  let stderr = '';
  server.stderr.on('data', (d) => (stderr += d));
  try {
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout }).once('line', resolve);
      server.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    });
    const port = /serving on port (\d+)/.exec(first)![1];
    const get = await runTs('examples/manager_remote_get.ts', ['localhost', port]);
    t.is(get.code, 0, get.stderr);
    t.is(get.stdout, 'local hello\n');
  } finally {
    server.kill('SIGKILL');
  }
});
