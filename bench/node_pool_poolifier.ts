// The worker of bench/node_threadpools.ts for poolifier: each worker thread runs this file
// (compiled, dist/bench/node_pool_poolifier.js).
import { ThreadWorker } from 'poolifier';

export default new ThreadWorker((x?: number): number => x! * x!);
