// 17.2.2.10: a Listener with an authentication key sends data to a Client.
// Python's example is two scripts on port 6000; here the server asks for a free
// port (0) and starts the client in a child process with the address it got.
import { pathToFileURL } from 'node:url';
import { Process } from 'node-multiprocessing';
import { Client, Listener, type Address } from 'node-multiprocessing/connection';

const authkey = Buffer.from('secret password');

export async function client(address: Address): Promise<void> {
  using conn = await Client(address, { authkey });
  console.log(await conn.recv()); // => [ 2.25, null, 'junk', 42n ]

  console.log((await conn.recvBytes()).toString()); // => hello

  const arr = new Int32Array([0, 0, 0, 0, 0]);
  console.log(await conn.recvBytesInto(arr)); // => 8
  console.log(arr); // => Int32Array(5) [ 42, 1729, 0, 0, 0 ]
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const address: Address = ['localhost', 0]; // family is deduced to be 'AF_INET'

  using listener = new Listener(address, { authkey });
  const p = new Process({ target: client, args: [listener.address] });
  p.start();
  {
    using conn = await listener.accept();
    const [host] = listener.lastAccepted as [string, number];
    console.log('connection accepted from', host);

    conn.send([2.25, null, 'junk', 42n]);

    conn.sendBytes(Buffer.from('hello'));

    conn.sendBytes(new Int32Array([42, 1729]));
  }
  await p.join();
}
