// 17.2.2.3: freezeSupport() straight after the main-module guard, then a Process.
import { pathToFileURL } from 'node:url';
import { freezeSupport, Process } from 'node-multiprocessing';

export function f(): void {
  console.log('hello world!');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  freezeSupport(); // does nothing here, as in Python on anything but a frozen Windows executable
  const p = new Process({ target: f });
  p.start();
  await p.join();
}
