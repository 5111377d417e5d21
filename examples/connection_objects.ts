// 17.2.2.4: Connection objects, send/recv, sendBytes/recvBytes/recvBytesInto.
import assert from 'node:assert';
import { Pipe } from 'node-multiprocessing';

const [a, b] = Pipe();
a.send([1, 'hello', null]);
console.log(await b.recv());
b.sendBytes(Buffer.from('thank you'));
console.log((await a.recvBytes()).toString());
const arr1 = Int32Array.from([0, 1, 2, 3, 4]);
const arr2 = new Int32Array(10);
a.sendBytes(arr1);
const count = await b.recvBytesInto(arr2);
assert.equal(count, arr1.length * arr1.BYTES_PER_ELEMENT);
console.log(arr2);
