// import_package_first: loading the package root in a fresh process (what every script and
// every spawned child pays before its first call), beside CPython importing the modules that
// cover the same API (multiprocessing and its connection, pool, queues, synchronize and
// sharedctypes modules).
import { performance } from 'node:perf_hooks';
import { main } from './main.js';

main(import.meta.url, async () => {
  const t = performance.now();
  await import('node-multiprocessing');
  return [{ case: 'import_package_first', value: performance.now() - t, unit: 'ms' }];
});
