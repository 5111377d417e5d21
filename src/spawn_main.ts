// The entry point of a spawn child (Python's spawn_main): the bootstrap socket is
// descriptor 3. With `--multiprocessing-forkserver <modules>` it is a child started in
// advance by the forkserver start method: it loads those modules first (the library, the
// preload modules, the modules of recent targets), then waits for its Process object
// (child_main.ts).
import { runChild, type Preloads } from './child_main.js';

const at = process.argv.indexOf('--multiprocessing-forkserver');
const preloads = at >= 0 ? (JSON.parse(process.argv[at + 1]) as Preloads) : null;
// From here on it is a child as any other.
if (at >= 0) process.argv.splice(2, process.argv.length - 2, '--multiprocessing-fork');
runChild(3, preloads);
