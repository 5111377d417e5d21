// Every example of the Python documentation has a TypeScript twin; each is run here.
import test from 'ava';
import { runTs } from './helpers.js';

test('17.2.1.1 hello bob', async (t) => {
  const r = await runTs('examples/hello_bob.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello bob\n');
});

test('17.2.1.1 process ids', async (t) => {
  const r = await runTs('examples/process_info.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.is(lines.length, 9);
  t.is(lines[0], 'main line');
  t.is(lines[1], 'module name: __main__');
  const mainPid = Number(lines[3].split(': ')[1]);
  t.is(lines[4], 'function f');
  t.is(lines[5], 'module name: __mp_main__');
  t.is(Number(lines[6].split(': ')[1]), mainPid, 'the child\'s parent is the main process');
  t.not(Number(lines[7].split(': ')[1]), mainPid);
  t.is(lines[8], 'hello bob');
});

test('17.2.1.3 Pipe', async (t) => {
  const r = await runTs('examples/pipe.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "[ 42, null, 'hello' ]\n");
});

test('17.2.2.4 Connection objects', async (t) => {
  const r = await runTs('examples/connection_objects.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "[ 1, 'hello', null ]\nthank you\nInt32Array(10) [\n  0, 1, 2, 3, 4,\n  0, 0, 0, 0, 0\n]\n");
});
