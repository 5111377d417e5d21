// 17.2.2.7 Customized managers: a BaseManager subclass with a registered class.
import { pathToFileURL } from 'node:url';
import { BaseManager, type BaseProxy } from 'node-multiprocessing/managers';

export class MathsClass {
  add(x: number, y: number): number {
    return x + y;
  }
  mul(x: number, y: number): number {
    return x * y;
  }
}

export class MyManager extends BaseManager {
  declare Maths: () => Promise<BaseProxy & { add(x: number, y: number): Promise<number>; mul(x: number, y: number): Promise<number> }>;
}

MyManager.register('Maths', MathsClass);

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await using manager = new MyManager();
  await manager.start();
  const maths = await manager.Maths();
  console.log(await maths.add(4, 3)); // prints 7
  console.log(await maths.mul(7, 8)); // prints 56
}
