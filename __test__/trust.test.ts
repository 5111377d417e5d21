// Safe by default (issue 14, defect 1): a function or class sent by its source text is code
// that the receiver would run. It is accepted only from the process's family and from
// peers authenticated with an authkey; from anyone else the message is refused with an
// AuthenticationError, having evaluated nothing, not even while decoding.
import test from 'ava';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as v8 from 'node:v8';
import { AuthenticationError, Pipe, Queue } from '../index.js';
import { Client, Listener, type Connection } from '../src/connection.js';
import { root } from './helpers.js';
import { square } from './fixtures/pool_targets.js';

const key = Buffer.from('trust-test-key');

declare global {
  // Set by code that must never run.
  var __mpPwned: string | undefined;
  var __mpArmed: boolean | undefined;
}

/** A connected pair through a Listener: [server side, client side]. */
async function pair(listenerOpts: object = {}, clientOpts: object = {}): Promise<[Connection, Connection, Listener]> {
  const l = new Listener({ family: 'AF_UNIX', ...listenerOpts });
  const [server, client] = await Promise.all([l.accept(), Client(l.address, clientOpts)]);
  return [server, client, l];
}

/** A message in the serializer's wire format with one function reference of the given state. */
function functionMessage(state: { url?: string; name: string; source: string }): Buffer {
  const ser = new v8.DefaultSerializer();
  ser.writeHeader();
  ser.writeValue([{ k: 'function', s: state, n: 0 }]);
  ser.writeValue({ __mp_ref__: 0 });
  return ser.releaseBuffer();
}

function pwned(): string | undefined {
  return globalThis.__mpPwned;
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

test.afterEach(() => {
  delete globalThis.__mpPwned;
  delete globalThis.__mpArmed;
});

test.serial('a Listener without an authkey refuses a function sent by source text; the connection stays usable', async (t) => {
  const [server, client, l] = await pair();
  const inline = (x: number): number => x + 1;
  client.send({ f: inline });
  const err = await t.throwsAsync(server.recv(), { instanceOf: AuthenticationError });
  t.regex(err!.message, /did not authenticate/);
  t.regex(err!.message, /authkey/);
  client.send('next');
  t.is(await server.recv(), 'next');
  server.close();
  client.close();
  l.close();
});

test.serial("a class's static block never runs, whichever side receives it", async (t) => {
  const [server, client, l] = await pair();
  // Defining the class runs its block here; only a receiver that rebuilds it runs it armed.
  class Evil {
    static {
      if (globalThis.__mpArmed) globalThis.__mpPwned = 'static block ran';
    }
  }
  globalThis.__mpArmed = true;
  client.send(Evil);
  await t.throwsAsync(server.recv(), { instanceOf: AuthenticationError });
  server.send([Evil]);
  t.throws(() => client.recvSync(), { instanceOf: AuthenticationError });
  t.is(pwned(), undefined);
  server.close();
  client.close();
  l.close();
});

test.serial('a crafted "function source" that is a statement is not evaluated while decoding', async (t) => {
  const [server, client, l] = await pair();
  for (const source of [
    "globalThis.__mpPwned = 'expression ran', function f() {}",
    "f() {}, x: (globalThis.__mpPwned = 'object literal ran')",
    "class { static { globalThis.__mpPwned = 'class ran' } }",
  ]) {
    client.sendBytes(functionMessage({ name: 'f', source }));
    await t.throwsAsync(server.recv(), { instanceOf: AuthenticationError });
    server.sendBytes(functionMessage({ name: 'f', source }));
    await t.throwsAsync(client.recv(), { instanceOf: AuthenticationError });
  }
  t.is(pwned(), undefined);
  server.close();
  client.close();
  l.close();
});

test.serial('a reference to a module this process has not loaded is refused without importing it', async (t) => {
  const marker = join(tmpdir(), `nodemp-trust-${process.pid}-${Date.now()}`);
  process.env.NET_EVIL_MARKER = marker;
  const [server, client, l] = await pair();
  try {
    const url = pathToFileURL(join(root, '__test__/fixtures/net_evil.ts')).href;
    client.sendBytes(functionMessage({ url, name: 'evil', source: 'function evil() {\n  return "evil";\n}' }));
    const err = await t.throwsAsync(server.recv(), { instanceOf: AuthenticationError });
    t.regex(err!.message, /has not loaded/);
    client.sendBytes(functionMessage({ url: 'data:text/javascript,globalThis.__mpPwned=1', name: 'f', source: 'function f() {}' }));
    await t.throwsAsync(server.recv(), { instanceOf: AuthenticationError });
    await new Promise((r) => setTimeout(r, 100));
    t.false(existsSync(marker), 'the module was not imported');
    t.is(pwned(), undefined);
  } finally {
    delete process.env.NET_EVIL_MARKER;
    rmSync(marker, { force: true });
    server.close();
    client.close();
    l.close();
  }
});

test.serial('an exported function of a module loaded here arrives by reference from any peer', async (t) => {
  const [server, client, l] = await pair();
  client.send({ f: square });
  const got = (await server.recv()) as { f: typeof square };
  t.is(got.f, square);
  server.close();
  client.close();
  l.close();
});

test.serial('authenticated peers, and peers marked trustPeer, may send functions by source text', async (t) => {
  const inline = (x: number): number => x * 3;
  {
    const [server, client, l] = await pair({ authkey: key }, { authkey: key });
    client.send(inline);
    t.is(((await server.recv()) as (x: number) => number)(2), 6);
    server.send(inline);
    t.is((client.recvSync() as (x: number) => number)(3), 9);
    server.close();
    client.close();
    l.close();
  }
  {
    const [server, client, l] = await pair({ trustPeer: true }, { trustPeer: true });
    client.send(inline);
    t.is(((await server.recv()) as (x: number) => number)(4), 12);
    server.send(inline);
    t.is(((await client.recv()) as (x: number) => number)(5), 15);
    server.close();
    client.close();
    l.close();
  }
  // The family: a Pipe.
  const [a, b] = Pipe();
  a.send(inline);
  t.is(((await b.recv()) as (x: number) => number)(1), 3);
  a.close();
  b.close();
});

test.serial('a refused message gives back the descriptors that came with it', async (t) => {
  const [server, client, l] = await pair();
  const [x, y] = Pipe();
  const before = openFds();
  for (let i = 0; i < 20; i++) {
    client.send([x, (v: number) => v]);
    await t.throwsAsync(server.recv(), { instanceOf: AuthenticationError });
  }
  t.is(openFds(), before, 'no descriptor left open');
  // The stream of descriptors is still in step: the next one arrives with its message.
  client.send(y);
  const got = (await server.recv()) as Connection;
  x.send('through');
  t.is(await got.recv(), 'through');
  for (const c of [x, y, got, server, client]) c.close();
  l.close();
});

test.serial('a Queue passed by a stranger is a stranger too: source functions put on it are refused', async (t) => {
  const [server, client, l] = await pair();
  const q = new Queue();
  client.send(q);
  const theirs = (await server.recv()) as Queue;
  await q.put({ f: (v: number) => v });
  await t.throwsAsync(theirs.get(true, 5), { instanceOf: AuthenticationError });
  await q.put('plain');
  t.is(await theirs.get(true, 5), 'plain');
  // The family's own queue takes them.
  await q.put((v: number) => v + 1);
  t.is(((await q.get()) as (v: number) => number)(1), 2);
  server.close();
  client.close();
  l.close();
});
