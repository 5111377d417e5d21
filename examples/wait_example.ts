// 17.2.2.10: wait() for messages from several processes at once.
import { pathToFileURL } from 'node:url';
import { currentProcess, Pipe, Process, type Connection } from 'node-multiprocessing';
import { wait } from 'node-multiprocessing/connection';

export function foo(w: Connection): void {
  for (let i = 0; i < 10; i++) w.send([i, currentProcess().name]);
  w.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const readers: Connection[] = [];

  for (let i = 0; i < 4; i++) {
    const [r, w] = Pipe(false);
    readers.push(r);
    const p = new Process({ target: foo, args: [w] });
    p.start();
    // We close the writable end of the pipe now to be sure that
    // p is the only process which owns a handle for it.  This
    // ensures that when p closes its handle for the writable end,
    // wait() will promptly report the readable end as being ready.
    w.close();
  }

  while (readers.length > 0) {
    for (const r of await wait(readers)) {
      let msg;
      try {
        msg = await r.recv();
      } catch (e) {
        if ((e as Error).name !== 'EOFError') throw e;
        readers.splice(readers.indexOf(r), 1);
        continue;
      }
      console.log(msg);
    }
  }
}
