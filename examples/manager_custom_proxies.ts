// 17.2.4 Customized managers and proxies: registering a class (all or some of its methods
// exposed), a generator function with a proxy type of its own, and a function returning a module.
import assert from 'node:assert';
import { pathToFileURL } from 'node:url';
import { freezeSupport } from 'node-multiprocessing';
import { BaseManager, BaseProxy } from 'node-multiprocessing/managers';

export class Foo {
  f(): void {
    console.log('you called Foo.f()');
  }
  g(): void {
    console.log('you called Foo.g()');
  }
  _h(): void {
    console.log('you called Foo._h()');
  }
}

// A simple generator function
export function* baz(): Generator<number> {
  for (let i = 0; i < 10; i++) yield i * i;
}

// Proxy type for generator objects: Python's `__next__` is the generator's `next`,
// Python's iteration is `for await`.
export class GeneratorProxy extends BaseProxy {
  static override _exposed_ = ['next'];
  async *[Symbol.asyncIterator](): AsyncGenerator<number> {
    for (;;) {
      const r = (await this._callmethod('next')) as IteratorResult<number>;
      if (r.done) return;
      yield r.value;
    }
  }
}

// What Python's `operator` module is here: a module of functions.
const operator = {
  add: (a: bigint, b: bigint): bigint => a + b,
  sub: (a: bigint, b: bigint): bigint => a - b,
  mul: (a: bigint, b: bigint): bigint => a * b,
  pow: (a: bigint, b: bigint): bigint => a ** b,
};

// Function to return the operator module
export function getOperatorModule(): typeof operator {
  return operator;
}

type Methods = Record<string, (...args: any[]) => Promise<any>>;

export class MyManager extends BaseManager {
  declare Foo1: () => Promise<BaseProxy & Methods>;
  declare Foo2: () => Promise<BaseProxy & Methods>;
  declare baz: () => Promise<GeneratorProxy>;
  declare operator: () => Promise<BaseProxy & Methods>;
}

// register the Foo class; make `f()` and `g()` accessible via proxy
MyManager.register('Foo1', Foo);

// register the Foo class; make `g()` and `_h()` accessible via proxy
MyManager.register('Foo2', Foo, { exposed: ['g', '_h'] });

// register the generator function baz; use `GeneratorProxy` to make proxies
MyManager.register('baz', baz, { proxytype: GeneratorProxy });

// register getOperatorModule(); make public functions accessible via proxy
MyManager.register('operator', getOperatorModule);

async function test(): Promise<void> {
  const manager = new MyManager();
  await manager.start();

  console.log('-'.repeat(20));

  const f1 = await manager.Foo1();
  await f1.f();
  await f1.g();
  assert.ok(!('_h' in f1));
  assert.deepStrictEqual([...f1._exposed_!].sort(), ['f', 'g']);

  console.log('-'.repeat(20));

  const f2 = await manager.Foo2();
  await f2.g();
  await f2._h();
  assert.ok(!('f' in f2));
  assert.deepStrictEqual([...f2._exposed_!].sort(), ['_h', 'g']);

  console.log('-'.repeat(20));

  const it = await manager.baz();
  const out: string[] = [];
  for await (const i of it) out.push(`<${i}>`);
  console.log(out.join(' '));

  console.log('-'.repeat(20));

  const op = await manager.operator();
  console.log('op.add(23, 45) =', String(await op.add(23n, 45n)));
  console.log('op.pow(2, 94) =', String(await op.pow(2n, 94n)));
  console.log('op._exposed_ =', op._exposed_);

  await manager.shutdown();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  freezeSupport();
  await test();
}
