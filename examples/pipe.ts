// 17.2.1.3: exchanging objects through a Pipe.
import { pathToFileURL } from 'node:url';
import { Pipe, Process, type Connection } from 'node-multiprocessing';

export function f(conn: Connection): void {
  conn.send([42, null, 'hello']);
  conn.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [parentConn, childConn] = Pipe();
  const p = new Process({ target: f, args: [childConn] });
  p.start();
  console.log(await parentConn.recv()); // prints "[ 42, null, 'hello' ]"
  await p.join();
}
