// Listener, Client, the authentication handshake and wait(): the rules of issue 6,
// across real processes and against the real python3 on this machine.
import test from 'ava';
import { existsSync, rmSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthenticationError, currentProcess, EOFError, OSError, Pipe, Process, ValueError,
} from '../index.js';
import {
  addressType, answerChallenge, Client, deliverChallenge, Listener, SocketListener, wait, type Address,
} from '../src/connection.js';
import { loads } from '../src/reduction.js';
import { Py, root, runTs } from './helpers.js';
import { clientEcho, sendNamed, sleepThenExit } from './fixtures/net_targets.js';

const key = Buffer.from('sesame');
const SHA256_PEER = join(root, 'crates/core/tests/py_sha256_peer.py');

// --- helpers -----------------------------------------------------------------

const PY_LISTENER = `
import sys
from multiprocessing.connection import Listener
a = sys.argv[1]
addr = ('127.0.0.1', 0) if a == 'tcp' else a
with Listener(addr, authkey=b'sesame') as l:
    print(l.address[1] if isinstance(l.address, tuple) else 'ready', flush=True)
    try:
        c = l.accept()
    except Exception as e:
        print('AUTHFAIL', type(e).__name__, e, flush=True)
        sys.exit(3)
    with c:
        c.send_bytes(b'py:' + c.recv_bytes())
    print('OK', flush=True)
`;

const PY_CLIENT = `
import sys
from multiprocessing.connection import Client
a = sys.argv[2]
addr = ('127.0.0.1', int(a)) if a.isdigit() else a
try:
    c = Client(addr, authkey=sys.argv[1].encode())
except Exception as e:
    print('AUTHFAIL', type(e).__name__, e, flush=True)
    sys.exit(3)
with c:
    c.send_bytes(b'hi')
    print(c.recv_bytes().decode(), flush=True)
`;

function tcpAddress(l: Listener): [string, number] {
  return l.address as [string, number];
}

/** A raw TCP socket to the listener, resolved once connected. */
function rawConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

/** The next chunk of data a raw socket receives. */
function nextData(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => s.once('data', resolve));
}

function frame(payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeInt32BE(payload.length);
  return Buffer.concat([h, payload]);
}

/** A legitimate client gets through after whatever came before. */
async function stillAccepting(t: import('ava').ExecutionContext, l: Listener, authkey = key): Promise<void> {
  const [c, s] = await Promise.all([Client(l.address, { authkey }), l.accept()]);
  c.sendBytes(Buffer.from('still here'));
  t.is((await s.recvBytes()).toString(), 'still here');
  c.close();
  s.close();
}

// --- Listener and Client ------------------------------------------------------

test('AF_INET: port 0 picks a free port, address and lastAccepted report it, bytes and objects flow both ways', async (t) => {
  using l = new Listener(['127.0.0.1', 0], null, 1, key);
  const [host, port] = tcpAddress(l);
  t.is(host, '127.0.0.1');
  t.true(port > 0);
  t.is(l.lastAccepted, null);
  const [c, s] = await Promise.all([Client(['127.0.0.1', port], 'AF_INET', key), l.accept()]);
  const last = l.lastAccepted as [string, number];
  t.is(last[0], '127.0.0.1');
  t.true(last[1] > 0 && last[1] !== port);
  c.send({ n: 1, big: 2n ** 65n, m: new Map([[1, 'a']]) });
  t.deepEqual(await s.recv(), { n: 1, big: 2n ** 65n, m: new Map([[1, 'a']]) });
  s.sendBytes(Buffer.from('pong'));
  t.is(c.recvBytesSync().toString(), 'pong');
  c.close();
  await t.throwsAsync(s.recv(), { instanceOf: EOFError });
  s.close();
});

test('an options object stands in for the arguments; "localhost" resolves', async (t) => {
  using l = new Listener({ address: ['localhost', 0], authkey: key });
  const [c, s] = await Promise.all([Client({ address: l.address, authkey: key }), l.accept()]);
  c.sendBytes(Buffer.from('x'));
  t.is((await s.recvBytes()).toString(), 'x');
  c.close();
  s.close();
});

test('no address and no family: AF_UNIX in a fresh private 0700 directory, removed on close', async (t) => {
  const l = new Listener();
  const path = l.address as string;
  t.is(typeof path, 'string');
  const dir = join(path, '..');
  t.is(statSync(dir).mode & 0o777, 0o700);
  t.true(statSync(path).isSocket());
  const [c, s] = await Promise.all([Client(path), l.accept()]);
  t.is(l.lastAccepted, ''); // an unnamed Unix peer, as in Python
  c.send('over unix');
  t.is(await s.recv(), 'over unix');
  c.close();
  s.close();
  l.close();
  t.false(existsSync(path));
  t.false(existsSync(dir));
  t.true(l.closed);
  l.close(); // twice is fine
  t.throws(() => l.address, { instanceOf: OSError });
  await t.throwsAsync(l.accept(), { instanceOf: OSError, message: 'listener is closed' });
});

test('AF_INET family with no address listens on localhost; AF_UNIX path is unlinked on close; abstract names work', async (t) => {
  const inet = new Listener(null, 'AF_INET');
  t.is(addressType(inet.address), 'AF_INET');
  inet.close();

  const path = join(tmpdir(), `nodemp-test-${process.pid}-${Date.now()}.sock`);
  const unix = new Listener(path, null, 1, key);
  t.is(unix.address, path);
  const [c, s] = await Promise.all([Client(path, { authkey: key }), unix.accept()]);
  c.close();
  s.close();
  unix.close();
  t.false(existsSync(path));

  const name = `\0nodemp-test-${process.pid}-${Date.now()}`;
  using abs = new Listener(name, { authkey: key });
  t.is(abs.address, name);
  const [c2, s2] = await Promise.all([Client(name, { authkey: key }), abs.accept()]);
  c2.sendBytes(Buffer.from('abstract'));
  t.is(s2.recvBytesSync().toString(), 'abstract');
  c2.close();
  s2.close();
});

test('family inference and validation follow Python', async (t) => {
  t.is(addressType(['h', 1]), 'AF_INET');
  t.is(addressType('/tmp/x'), 'AF_UNIX');
  t.is(addressType('\0abstract'), 'AF_UNIX');
  t.is(addressType('\\\\.\\pipe\\x'), 'AF_PIPE');
  t.throws(() => addressType(42), { instanceOf: ValueError, message: /address type of 42 unrecognized/ });
  t.throws(() => new Listener('\\\\.\\pipe\\x'), { instanceOf: ValueError, message: 'Family AF_PIPE is not recognized.' });
  t.throws(() => new Listener(null, 'AF_FOO' as never), { instanceOf: ValueError });
  t.throws(() => new Listener('/tmp/x', 'AF_INET'), { instanceOf: TypeError });
  t.throws(() => new Listener(['127.0.0.1', 70000]), { instanceOf: TypeError });
  t.throws(() => new Listener(['127.0.0.1', 0], { authkey: 'text' as never }), { instanceOf: TypeError, message: 'authkey should be a byte string' });
  await t.throwsAsync(Client('\\\\.\\pipe\\x'), { instanceOf: ValueError });
  await t.throwsAsync(Client(['127.0.0.1', 1], { authkey: 'text' as never }), { instanceOf: TypeError });
  // Port in use (no SO_REUSEPORT): OSError with errno.
  using l = new Listener(['127.0.0.1', 0]);
  const e = t.throws(() => new Listener(l.address), { instanceOf: OSError });
  t.is((e as OSError).errno, 98); // EADDRINUSE
});

test('Client to nobody: OSError ECONNREFUSED; to a missing path: OSError ENOENT', async (t) => {
  const l = new Listener(['127.0.0.1', 0]);
  const addr = l.address;
  l.close();
  const e = await t.throwsAsync(Client(addr), { instanceOf: OSError });
  t.is((e as OSError).errno, 111);
  const e2 = await t.throwsAsync(Client('/nonexistent/dir/sock'), { instanceOf: OSError });
  t.is((e2 as OSError).errno, 2);
});

test.serial('accept never blocks the event loop; concurrent accepts take different clients; close wakes a pending accept', async (t) => {
  using l = new Listener(['127.0.0.1', 0], { authkey: key });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const pending = l.accept();
  await new Promise((r) => setTimeout(r, 200));
  t.true(ticks >= 5, `the event loop ran while accept() waited (${ticks} ticks)`);
  const other = l.accept();
  const c1 = await Client(l.address, { authkey: key });
  const c2 = await Client(l.address, { authkey: key });
  const [s1, s2] = await Promise.all([pending, other]);
  clearInterval(timer);
  t.not(s1.fileno(), s2.fileno());
  c1.sendBytes(Buffer.from('1'));
  c2.sendBytes(Buffer.from('2'));
  t.deepEqual([(await s1.recvBytes()).toString(), (await s2.recvBytes()).toString()].sort(), ['1', '2']);
  for (const c of [c1, c2, s1, s2]) c.close();

  const l2 = new Listener();
  const waiting = l2.accept();
  setTimeout(() => l2.close(), 50);
  await t.throwsAsync(waiting, { instanceOf: OSError });
});

test('a Unix listener with backlog 1 and many clients connecting at once from this process: no deadlock', async (t) => {
  using l = new Listener(null, 'AF_UNIX', 1);
  const clients = Array.from({ length: 6 }, () => Client(l.address));
  const servers = [];
  for (let i = 0; i < 6; i++) servers.push(await l.accept());
  const cs = await Promise.all(clients);
  t.is(cs.length, 6);
  for (const c of [...cs, ...servers]) c.close();
});

// --- authentication -------------------------------------------------------------

test('wrong key: AuthenticationError on both sides, and the listener keeps accepting', async (t) => {
  using l = new Listener(['127.0.0.1', 0], { authkey: key });
  const [client, server] = await Promise.allSettled([Client(l.address, { authkey: Buffer.from('wrong') }), l.accept()]);
  t.is(client.status, 'rejected');
  t.is(server.status, 'rejected');
  const ce = (client as PromiseRejectedResult).reason;
  const se = (server as PromiseRejectedResult).reason;
  t.true(ce instanceof AuthenticationError, String(ce));
  t.is(ce.message, 'digest sent was rejected');
  t.true(se instanceof AuthenticationError, String(se));
  t.is(se.message, 'digest received was wrong');
  await stillAccepting(t, l);
});

test('authkey semantics of Python 3.11: null means none; empty key: Listener skips auth, Client does not; authenticate uses currentProcess().authkey', async (t) => {
  // Listener without a key, Client without a key.
  {
    using l = new Listener(['127.0.0.1', 0]);
    const [c, s] = await Promise.all([Client(l.address), l.accept()]);
    c.send(1);
    t.is(await s.recv(), 1);
    c.close();
    s.close();
  }
  // An empty key: the listener does not authenticate (`if self._authkey`), the Client
  // does (`if authkey is not None`) and so waits for a challenge that never comes.
  {
    using l = new Listener(['127.0.0.1', 0], { authkey: Buffer.alloc(0) });
    const accepted = l.accept();
    await t.throwsAsync(Client(l.address, { authkey: Buffer.alloc(0), handshakeTimeout: 0.3 }), {
      instanceOf: AuthenticationError, message: /timed out/,
    });
    (await accepted).close();
  }
  // authenticate: the current process's key, on both ends, in another process too.
  {
    using l = new Listener(['127.0.0.1', 0], { authenticate: true });
    const [c, s] = await Promise.all([Client(l.address, { authkey: currentProcess().authkey }), l.accept()]);
    c.close();
    s.close();
    const p = new Process({ target: clientEcho, args: [l.address, 2] });
    p.start();
    const conn = await l.accept();
    conn.sendBytes(Buffer.from('a'));
    t.is(conn.recvBytesSync().toString(), 'a');
    conn.sendBytes(Buffer.from('b'));
    t.is((await conn.recvBytes()).toString(), 'b');
    conn.close();
    await p.join();
    t.is(p.exitcode, 0);
    // A client with some other key is refused.
    await t.throwsAsync(Promise.all([Client(l.address, { authkey: Buffer.from('x') }), l.accept()]), { instanceOf: AuthenticationError });
  }
});

test('deliverChallenge/answerChallenge over a Pipe: every digest, wrong keys, bad keys', async (t) => {
  for (const digestName of ['md5', 'sha256', 'sha384', 'sha3_256', 'sha3_384']) {
    const [a, b] = Pipe();
    await Promise.all([deliverChallenge(a, key, { digestName }), answerChallenge(b, key)]);
    a.close();
    b.close();
  }
  const [a, b] = Pipe();
  const [d, an] = await Promise.allSettled([deliverChallenge(a, key), answerChallenge(b, Buffer.from('nope'))]);
  t.true((d as PromiseRejectedResult).reason instanceof AuthenticationError);
  t.true((an as PromiseRejectedResult).reason instanceof AuthenticationError);
  await t.throwsAsync(deliverChallenge(a, 'text' as never), { instanceOf: ValueError, message: /Authkey must be bytes/ });
  await t.throwsAsync(deliverChallenge(a, key, { digestName: 'sha1' }), { instanceOf: ValueError });
  // A timeout on a silent peer.
  await t.throwsAsync(answerChallenge(a, key, { timeout: 0.1 }), { instanceOf: AuthenticationError, message: /timed out/ });
  a.close();
  b.close();
});

test.serial('garbage, a header claiming gigabytes, or an early hang-up fail that connection only, at once and without the claimed allocation', async (t) => {
  using l = new Listener(['127.0.0.1', 0], { authkey: key });
  const [, port] = tcpAddress(l);
  const huge31 = Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
  const huge64 = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 9]);
  const cases: Array<[string, Buffer | null, new (...a: any[]) => Error]> = [
    ['small garbage frame', frame(Buffer.from('not a digest')), AuthenticationError],
    ['2 GiB header', huge31, OSError],
    ['4 GiB header', huge64, OSError],
    ['unframed text', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), OSError],
    ['a 16-byte reply of zeros', frame(Buffer.alloc(16)), AuthenticationError],
    ['hang-up', null, EOFError],
  ];
  for (const [what, bytes, cls] of cases) {
    const rss = process.memoryUsage().rss;
    const started = Date.now();
    const accepted = l.accept();
    const raw = await rawConnect(port);
    const challenge = await nextData(raw);
    t.true(challenge.subarray(4, 15).equals(Buffer.from('#CHALLENGE#')), what);
    if (bytes) raw.write(bytes);
    else raw.end();
    const e = await t.throwsAsync(accepted, { instanceOf: cls }, what);
    t.true(Date.now() - started < 3000, `${what}: refused at once`);
    t.true(process.memoryUsage().rss - rss < 256 * 1024 * 1024, `${what}: nothing like the claim was allocated (${e?.message})`);
    raw.destroy();
    await stillAccepting(t, l);
  }
});

test.serial('a client that connects and says nothing: handshake timeout; accept() serves the next client meanwhile', async (t) => {
  using l = new Listener(['127.0.0.1', 0], { authkey: key, handshakeTimeout: 2 });
  const [, port] = tcpAddress(l);
  const started = Date.now();
  const first = l.accept();
  const silent = await rawConnect(port);
  silent.resume(); // read (and drop) the challenge, so that the hang-up is seen
  await new Promise((r) => setTimeout(r, 50));
  // The next client is served while the silent one still holds its handshake: accept()
  // hands out handshakes in the order they finish.
  const c = await Client(l.address, { authkey: key });
  const s = await first;
  t.true(Date.now() - started < 1900, 'served before the silent client timed out');
  await t.throwsAsync(l.accept(), { instanceOf: AuthenticationError, message: 'authentication handshake timed out' });
  const took = Date.now() - started;
  t.true(took >= 1950 && took < 6000, `timed out after ${took} ms`);
  // The silent client's socket was closed by the listener.
  const ended = await Promise.race([new Promise((r) => silent.once('close', () => r(true))), new Promise((r) => setTimeout(() => r(false), 2000))]);
  t.true(ended);
  c.close();
  s.close();
  await stillAccepting(t, l);
});

test.serial('slow loris: silent clients never delay accept() for the others (one accept at a time)', async (t) => {
  // The default handshake timeout (20 s): before the fix, each silent client held the
  // listener's only accept for that long.
  using l = new Listener(['127.0.0.1', 0], { authkey: key });
  const [, port] = tcpAddress(l);
  // Not awaited: with the default backlog of 1 they complete as the listener accepts them.
  const silent = Array.from({ length: 5 }, () => net.connect(port, '127.0.0.1').on('error', () => {}));
  const started = Date.now();
  for (let i = 0; i < 5; i++) {
    const accepted = l.accept();
    const c = await Client(l.address, { authkey: key });
    const s = await Promise.race([accepted, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    t.truthy(s, `good client ${i} was accepted while ${silent.length} silent ones wait`);
    s!.send(i);
    t.is(await c.recv(), i);
    s!.close();
    c.close();
  }
  t.true(Date.now() - started < 10_000);
  for (const r of silent) r.destroy();
});

test('with an authkey nothing from the peer is deserialized before authentication succeeds', async (t) => {
  const marker = join(tmpdir(), `nodemp-evil-${process.pid}-${Date.now()}`);
  const gen = await runTs('__test__/fixtures/net_payload.ts');
  t.is(gen.code, 0, gen.stderr);
  const payload = Buffer.from(gen.stdout, 'base64');
  process.env.NET_EVIL_MARKER = marker;
  try {
    // Server side: the payload in place of the reply to our challenge.
    using l = new Listener(['127.0.0.1', 0], { authkey: key });
    const accepted = l.accept();
    const raw = await rawConnect(tcpAddress(l)[1]);
    await nextData(raw);
    raw.write(frame(payload));
    await t.throwsAsync(accepted, { instanceOf: AuthenticationError });
    raw.destroy();
    // Client side: the payload in place of a challenge.
    const server = net.createServer((s) => s.write(frame(payload)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    await t.throwsAsync(Client(['127.0.0.1', port], { authkey: key }), { instanceOf: AuthenticationError, message: /expected challenge/ });
    server.close();
    await new Promise((r) => setTimeout(r, 100));
    t.false(existsSync(marker), 'the message was not deserialized');
    // The detector works: deserializing the payload does import the module.
    await loads(payload, undefined, false, true);
    await new Promise((r) => setTimeout(r, 100));
    t.true(existsSync(marker), 'deserializing it leaves the mark');
  } finally {
    delete process.env.NET_EVIL_MARKER;
    rmSync(marker, { force: true });
  }
});

test.serial('a listener announcing gigabytes in place of a challenge fails the Client at once', async (t) => {
  const server = net.createServer((s) => s.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0])));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const started = Date.now();
  await t.throwsAsync(Client(['127.0.0.1', port], { authkey: key }), { instanceOf: OSError });
  t.true(Date.now() - started < 3000);
  server.close();
});

// --- CPython interoperability ------------------------------------------------------

test('python3: a Node Client authenticates with a Python Listener over TCP and Unix', async (t) => {
  const py = new Py(['-c', PY_LISTENER, 'tcp']);
  try {
    const port = Number(await py.line());
    const c = await Client(['127.0.0.1', port], { authkey: key });
    c.sendBytes(Buffer.from('hello'));
    t.is((await c.recvBytes()).toString(), 'py:hello');
    c.close();
    const { code, out } = await py.finish();
    t.is(code, 0, out + py.stderr);
    t.is(out, 'OK');
  } finally {
    py.kill();
  }
  const dir = join(tmpdir(), `nodemp-py-${process.pid}-${Date.now()}`);
  const path = `${dir}.sock`;
  const py2 = new Py(['-c', PY_LISTENER, path]);
  try {
    t.is(await py2.line(), 'ready');
    const c = await Client(path, { authkey: key });
    c.sendBytes(Buffer.from('unix'));
    t.is((await c.recvBytes()).toString(), 'py:unix');
    c.close();
    t.is((await py2.finish()).code, 0, py2.stderr);
  } finally {
    py2.kill();
    rmSync(path, { force: true });
  }
});

test('python3: a Node Client with the wrong key is refused by a Python Listener, on both sides', async (t) => {
  const py = new Py(['-c', PY_LISTENER, 'tcp']);
  try {
    const port = Number(await py.line());
    await t.throwsAsync(Client(['127.0.0.1', port], { authkey: Buffer.from('wrong') }), {
      instanceOf: AuthenticationError, message: 'digest sent was rejected',
    });
    const { code, out } = await py.finish();
    t.is(code, 3);
    t.regex(out, /^AUTHFAIL AuthenticationError/);
  } finally {
    py.kill();
  }
});

test('python3: Python Clients authenticate with a Node Listener (TCP and Unix); a wrong key fails both sides and the listener goes on', async (t) => {
  using l = new Listener(['127.0.0.1', 0], { authkey: key });
  const port = String(tcpAddress(l)[1]);
  const bad = new Py(['-c', PY_CLIENT, 'wrong', port]);
  await t.throwsAsync(l.accept(), { instanceOf: AuthenticationError, message: 'digest received was wrong' });
  const badEnd = await bad.finish();
  t.is(badEnd.code, 3);
  t.regex(badEnd.out, /^AUTHFAIL AuthenticationError/);
  for (let i = 0; i < 2; i++) {
    const py = new Py(['-c', PY_CLIENT, 'sesame', port]);
    const c = await l.accept();
    const got = await c.recvBytes();
    t.is(got.toString(), 'hi');
    c.sendBytes(Buffer.concat([Buffer.from('node:'), got]));
    const { code, out } = await py.finish();
    t.is(code, 0, py.stderr);
    t.is(out, 'node:hi');
    c.close();
  }
  using u = new Listener(null, 'AF_UNIX', 1, key);
  const py = new Py(['-c', PY_CLIENT, 'sesame', u.address as string]);
  const c = await u.accept();
  c.sendBytes(await c.recvBytes());
  t.is((await py.finish()).out, 'hi');
  c.close();
});

test('python3 {digest} handshake (3.12+ protocol): every digest both ways, with forced reply digests', async (t) => {
  const variants: Array<[string, string | null]> = [
    ['sha256', null], ['md5', null], ['sha384', null], ['sha3_256', null], ['sha3_384', null], ['sha256', 'sha3_384'], ['sha384', 'md5'],
  ];
  for (const [challenge, reply] of variants) {
    const opts = ['--challenge', challenge, ...(reply ? ['--reply', reply] : [])];
    // Python listens, Node connects.
    const py = new Py([SHA256_PEER, 'listen', 'sesame', ...opts]);
    try {
      const port = Number(await py.line());
      const c = await Client(['127.0.0.1', port], { authkey: key });
      c.sendBytes(Buffer.from('hello'));
      t.is((await c.recvBytes()).toString(), 'py:hello', `${challenge}/${reply}`);
      c.close();
      t.is((await py.finish()).code, 0, py.stderr);
    } finally {
      py.kill();
    }
    // Node listens, Python connects.
    using l = new Listener(['127.0.0.1', 0], { authkey: key });
    const py2 = new Py([SHA256_PEER, 'connect', 'sesame', String(tcpAddress(l)[1]), ...opts]);
    try {
      const c = await l.accept();
      c.sendBytes(Buffer.from('from node'));
      t.is((await c.recvBytes()).toString(), 'py:from node');
      c.close();
      const { code, out } = await py2.finish();
      t.is(code, 0, out + py2.stderr);
    } finally {
      py2.kill();
    }
  }
  // Wrong key through the {sha256} path: both sides fail.
  using l = new Listener(['127.0.0.1', 0], { authkey: key });
  const py = new Py([SHA256_PEER, 'connect', 'other', String(tcpAddress(l)[1])]);
  await t.throwsAsync(l.accept(), { instanceOf: AuthenticationError });
  const { code, out } = await py.finish();
  t.is(code, 3);
  t.regex(out, /^AUTHFAIL/);
});

// --- wait() ------------------------------------------------------------------------

test.serial('wait: returns the ready objects in list order; negative timeout is zero; null waits for ever; timeout gives []', async (t) => {
  const [a1, b1] = Pipe();
  const [a2, b2] = Pipe();
  const [a3, b3] = Pipe();
  t.deepEqual(await wait([a1, a2, a3], 0), []);
  let started = Date.now();
  t.deepEqual(await wait([a1, a2, a3], -5), []);
  t.true(Date.now() - started < 100);
  started = Date.now();
  t.deepEqual(await wait([a1, a2], 0.2), []);
  t.true(Date.now() - started >= 190);
  b3.sendBytes(Buffer.from('3'));
  b1.sendBytes(Buffer.from('1'));
  t.deepEqual(await wait([a1, a2, a3]), [a1, a3]);
  a1.recvBytesSync();
  a3.recvBytesSync();
  setTimeout(() => b2.send('late'), 100);
  started = Date.now();
  t.deepEqual(await wait([a1, a2, a3], null), [a2]);
  t.true(Date.now() - started >= 90);
  // The other end closed: ready (recv then raises EOFError).
  a2.recvSync();
  b1.close();
  t.deepEqual(await wait([a1, a2], 5), [a1]);
  await t.throwsAsync(a1.recv(), { instanceOf: EOFError });
  for (const c of [a1, a2, a3, b2, b3]) c.close();
});

test.serial('wait: a Connection holding buffered messages is ready at once even though its socket is drained', async (t) => {
  const [a, b] = Pipe();
  b.sendBytes(Buffer.from('one'));
  b.sendBytes(Buffer.from('two'));
  await new Promise((r) => setTimeout(r, 20));
  t.is(a.recvBytesSync().toString(), 'one'); // reads both frames off the socket
  const started = Date.now();
  t.deepEqual(await wait([a], 2), [a]);
  t.true(Date.now() - started < 500);
  t.is(a.recvBytesSync().toString(), 'two');
  t.deepEqual(await wait([a], 0), []);
  a.close();
  b.close();
});

test('wait: raw descriptors, process sentinels and listening sockets', async (t) => {
  const [a, b] = Pipe();
  const fd = a.fileno();
  setTimeout(() => b.sendBytes(Buffer.from('x')), 50);
  t.deepEqual(await wait([fd], 5), [fd]);
  t.is(a.recvBytesSync().toString(), 'x');

  const p = new Process({ target: sleepThenExit, args: [0.2] });
  p.start();
  const started = Date.now();
  // Generous: a child can take seconds to start on a loaded machine.
  t.deepEqual(await wait([p.sentinel, a], 60).then((r) => r.filter((x) => x === p.sentinel)), [p.sentinel]);
  t.true(Date.now() - started >= 100, 'ready when the process ended');
  await p.join();

  using l = new Listener(['127.0.0.1', 0]);
  const sock = l._listener as SocketListener;
  t.deepEqual(await wait([sock], 0), []);
  const c = await Client(l.address);
  t.deepEqual(await wait([sock], 5), [sock]);
  const s = await l.accept();
  await t.throwsAsync(wait([{}] as never), { instanceOf: TypeError });
  await t.throwsAsync(wait(['x' as never]), { instanceOf: TypeError });
  await t.throwsAsync(wait([-1]), { instanceOf: ValueError });
  for (const x of [a, b, c, s]) x.close();
});

test('wait: the watches left on objects that were not ready do not keep the process alive', async (t) => {
  const r = await runTs('__test__/fixtures/net_wait_exit.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '1 true\n');
});

test('wait: the Python example with four processes sending through Pipe(false)', async (t) => {
  const readers = [];
  const procs = [];
  for (let i = 0; i < 4; i++) {
    const [r, w] = Pipe(false);
    readers.push(r);
    const p = new Process({ target: sendNamed, args: [w, 10] });
    p.start();
    procs.push(p);
    w.close();
  }
  const got = new Map<string, number[]>();
  while (readers.length > 0) {
    for (const r of await wait(readers, 30)) {
      try {
        const [i, name] = await r.recv();
        got.set(name, [...(got.get(name) ?? []), i]);
      } catch (e) {
        t.true(e instanceof EOFError);
        readers.splice(readers.indexOf(r), 1);
      }
    }
  }
  t.is(got.size, 4);
  for (const p of procs) {
    t.deepEqual(got.get(p.name), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await p.join();
  }
});

// --- the examples of 17.2.2.10 ---------------------------------------------------------

test('example: Listener/Client with an authkey (17.2.2.10)', async (t) => {
  const r = await runTs('examples/listener_client.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "connection accepted from 127.0.0.1\n[ 2.25, null, 'junk', 42n ]\nhello\n8\nInt32Array(5) [ 42, 1729, 0, 0, 0 ]\n");
});

test('example: wait() for messages from several processes (17.2.2.10)', async (t) => {
  const r = await runTs('examples/wait_example.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.is(lines.length, 40);
  const byName = new Map<string, number[]>();
  for (const l of lines) {
    const m = /^\[ (\d), '(Process-\d+)' \]$/.exec(l);
    t.truthy(m, l);
    byName.set(m![2], [...(byName.get(m![2]) ?? []), Number(m![1])]);
  }
  t.is(byName.size, 4);
  for (const seq of byName.values()) t.deepEqual(seq, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});
