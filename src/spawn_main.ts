// The entry point of a spawn child (Python's spawn_main): the bootstrap socket is
// descriptor 3. With `--multiprocessing-forkserver <modules>` it is a child started in
// advance by the forkserver start method: it loads those modules first (the library and
// the preload modules), then waits for its Process object.
import { runChild } from './child_main.js';

const at = process.argv.indexOf('--multiprocessing-forkserver');
if (at >= 0) {
  const modules = JSON.parse(process.argv[at + 1]) as string[];
  // From here on it is a child as any other.
  process.argv.splice(2, process.argv.length - 2, '--multiprocessing-fork');
  for (const m of modules) {
    try {
      await import(m);
    } catch (e) {
      // As CPython's fork server: a module that cannot be loaded is left out.
      process.stderr.write(`forkserver: cannot preload ${m}: ${(e as Error)?.message ?? e}\n`);
    }
  }
}
runChild(3, at >= 0);
