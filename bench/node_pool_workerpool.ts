// The worker script of bench/node_pools.ts for workerpool (process mode): each child
// process runs this file (compiled, dist/bench/node_pool_workerpool.js).
import workerpool from 'workerpool';

workerpool.worker({ square: (x: number): number => x * x });
