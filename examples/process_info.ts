// 17.2.1.1: the expanded example showing the process ids involved.
import { pathToFileURL } from 'node:url';
import { Process } from 'node-multiprocessing';

const isMain = import.meta.url === pathToFileURL(process.argv[1]).href;

export function info(title: string): void {
  console.log(title);
  // Python prints __name__: '__main__' in the parent, '__mp_main__' in a spawned child.
  console.log('module name:', isMain ? '__main__' : '__mp_main__');
  console.log('parent process:', process.ppid);
  console.log('process id:', process.pid);
}

export function f(name: string): void {
  info('function f');
  console.log('hello', name);
}

if (isMain) {
  info('main line');
  const p = new Process({ target: f, args: ['bob'] });
  p.start();
  await p.join();
}
