// The task of bench/node_pools.ts for piscina and tinypool: they load this file
// (compiled, dist/bench/node_pool_task.js) in each worker and call its default export.
export default function square(x: number): number {
  return x * x;
}
