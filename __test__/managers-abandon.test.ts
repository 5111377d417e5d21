// Abandoning a manager call (not in Python): `_callmethod(name, args, kwds, { timeout, signal })`,
// `_callmethodSync(..., { timeout })` and the `_withOptions({ timeout, signal })` view of a proxy.
// A call that runs out of time or is aborted rejects at once; its reply, when it comes, is
// dropped by its id, and the one connection goes on serving every proxy of the process: with a
// local client's shared-memory channel and with a remote (TCP) client alike.
import test from 'ava';
import { BaseProxy, SyncManager } from '../src/managers.js';
import { TimeoutError } from '../src/errors.js';
import { runTs } from './helpers.js';
import { Sleeper } from './fixtures/manager_types.js';

class AbandonManager extends SyncManager {}
AbandonManager.register('Sleeper', Sleeper);

type SleeperProxy = BaseProxy & Record<string, (...a: any[]) => any>;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function started(where: 'local' | 'tcp'): Promise<AbandonManager> {
  const m = new AbandonManager(where === 'tcp' ? { address: ['127.0.0.1', 0] } : {});
  await m.start();
  return m;
}

for (const where of ['local', 'tcp'] as const) {
  test(`${where}: a call that runs out of time rejects with TimeoutError; the same and other proxies go on with the right results`, async (t) => {
    const m = await started(where);
    if (where === 'tcp') t.true(Array.isArray(m.address));
    else t.is(typeof m.address, 'string');
    try {
      const s = (await (m as any).Sleeper()) as SleeperProxy;
      const other = (await (m as any).Sleeper()) as SleeperProxy;
      const d = await m.dict<string, number>();
      await d.setItem('before', 1);

      // Positional form: _callmethod(name, args, kwds, { timeout }).
      const t0 = Date.now();
      await t.throwsAsync(s._callmethod('slow', [3000, 'late 1'], null, { timeout: 0.2 }), { instanceOf: TimeoutError, message: /slow\(\)/ });
      t.true(Date.now() - t0 < 2800, 'the timeout did not wait for the reply');
      // While the slow call still runs in the server: the same proxy, another one, a dict.
      t.is(await s.echo('a'), 'a');
      t.is(await other.echo(2), 2);
      t.is(await d.getItem('before'), 1);
      t.is(s.echoSync('b'), 'b');

      // The view's form, both call forms.
      await t.throwsAsync(s._withOptions({ timeout: 0.1 }).slow(3000, 'late 2'), { instanceOf: TimeoutError });
      t.throws(() => s._withOptions({ timeout: 0.1 }).slowSync(3000, 'late 3'), { instanceOf: TimeoutError });
      t.throws(() => s._callmethodSync('slow', [3000, 'late 4'], null, { timeout: 0.1 }), { instanceOf: TimeoutError });
      // A call with time enough resolves as usual.
      t.is(await s._withOptions({ timeout: 30 }).slow(10, 'in time'), 'in time');
      t.is(s._callmethodSync('slow', [10, 'in time sync'], null, { timeout: 30 }), 'in time sync');

      // Every late reply has come by now (and was dropped): replies still match their calls,
      // one at a time, pipelined, and blocking.
      await sleep(3500);
      t.is(await s.echo('after'), 'after');
      t.is(await other.echo('other after'), 'other after');
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? s : other).echo(i)));
      t.deepEqual(many, Array.from({ length: 50 }, (_, i) => i));
      t.is(s.echoSync('sync after'), 'sync after');
      await d.setItem('after', 2);
      t.deepEqual(await d.items(), [['before', 1], ['after', 2]]);
    } finally {
      await m.shutdown();
    }
  });

  test(`${where}: a referent that holds the server's thread: the timed-out call, then the next calls answered once it is done`, async (t) => {
    const m = await started(where);
    try {
      const s = (await (m as any).Sleeper()) as SleeperProxy;
      const l = await m.list<number>();
      await t.throwsAsync(s._withOptions({ timeout: 0.1 }).block(800, 'late'), { instanceOf: TimeoutError });
      // Sent while the server is held: answered after it, each with its own result.
      const [echoed, , len] = await Promise.all([s.echo('next'), l.append(7), l.len()]);
      t.is(echoed, 'next');
      t.is(len, 1);
      t.deepEqual(await l._getvalue(), [7]);
      t.throws(() => s._callmethodSync('block', [800, 'late sync'], null, { timeout: 0.1 }), { instanceOf: TimeoutError });
      t.is(s.echoSync('next sync'), 'next sync');
      t.is(await l.getItem(0), 7);
    } finally {
      await m.shutdown();
    }
  });

  test(`${where}: an aborted call rejects with the signal's reason; an already aborted signal sends nothing`, async (t) => {
    const m = await started(where);
    try {
      const s = (await (m as any).Sleeper()) as SleeperProxy;
      const ac = new AbortController();
      const p = s._withOptions({ signal: ac.signal }).slow(5000, 'late');
      setTimeout(() => ac.abort(), 100);
      // Node's default reason is a DOMException named AbortError (not an Error for AVA's throwsAsync).
      const e = await p.then(() => null, (err: unknown) => err as DOMException);
      t.is(e?.name, 'AbortError');
      t.is(e, ac.signal.reason);
      const mine = new Error('my reason');
      const ac2 = new AbortController();
      const p2 = s._callmethod('slow', [5000, 'late 2'], null, { signal: ac2.signal, timeout: 60 });
      ac2.abort(mine);
      t.is(await t.throwsAsync(p2), mine);
      // Already aborted: rejected (and thrown, in the blocking form) without a call.
      await t.throwsAsync(s._withOptions({ signal: ac2.signal }).count(), { is: mine });
      t.throws(() => s._withOptions({ signal: ac2.signal }).countSync(), { is: mine });
      t.is(await s.count(), 1, 'the calls of an already aborted signal were not sent');
      t.is(await s.echo('still'), 'still');
    } finally {
      await m.shutdown();
    }
  });

  test(`${where}: after a call runs out of time, nothing keeps the process alive`, async (t) => {
    // The fixture's slow call would take two minutes; the script must end long before.
    const t0 = Date.now();
    const r = await runTs('__test__/fixtures/manager_abandon_main.ts', [where], 100_000);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.trim(), 'timed out');
    t.true(Date.now() - t0 < 90_000, `took ${Date.now() - t0} ms`);
  });
}

test('bad call options are a TypeError at the call', async (t) => {
  const m = await started('local');
  try {
    const s = (await (m as any).Sleeper()) as SleeperProxy;
    t.throws(() => s._withOptions({ timeout: 1, retries: 2 } as never), { instanceOf: TypeError, message: /retries/ });
    t.throws(() => s._withOptions(5 as never), { instanceOf: TypeError });
    await t.throwsAsync(s._callmethod('echo', [1], null, { timeout: 'soon' as never }), { instanceOf: TypeError });
    t.is(await s._callmethod('echo', [1], null, { timeout: null }), 1);
    // A negative timeout is zero: a call that cannot be answered at once runs out of time.
    await t.throwsAsync(s._callmethod('slow', [500, 1], null, { timeout: -1 }), { instanceOf: TimeoutError });
  } finally {
    await m.shutdown();
  }
});

test("serializer 'pickle' (Python's protocol, answered in order): the timed-out call's reply is dropped in its turn; a blocking call's own connection is closed", async (t) => {
  class PickleAbandon extends SyncManager {}
  PickleAbandon.register('Sleeper', Sleeper);
  const m = new PickleAbandon({ address: ['127.0.0.1', 0], serializer: 'pickle' });
  await m.start();
  try {
    const s = (await (m as any).Sleeper()) as SleeperProxy;
    const d = await m.dict<string, number>();
    await t.throwsAsync(s._callmethod('slow', [1000, 'late'], null, { timeout: 0.1 }), { instanceOf: TimeoutError });
    // The next calls get their own replies (after the late one, which comes first and is dropped).
    t.is(await s.echo('a'), 'a');
    await d.setItem('k', 1);
    t.is(await d.getItem('k'), 1);
    const ac = new AbortController();
    const p = s._withOptions({ signal: ac.signal }).slow(1000, 'late 2');
    ac.abort();
    t.is((await p.then(() => null, (e: unknown) => e as DOMException))?.name, 'AbortError');
    t.is(await s.echo('b'), 'b');
    t.throws(() => s._callmethodSync('block', [1000, 'late 3'], null, { timeout: 0.1 }), { instanceOf: TimeoutError });
    t.is(s.echoSync('c'), 'c');
    t.is(await s.echo('d'), 'd');
  } finally {
    await m.shutdown();
  }
});
