// node-multiprocessing/managers (Python's multiprocessing.managers).
// Managers and proxies are not part of this release; the subpath exists so that the
// package layout matches Python's and imports resolve. See README, "Status".
export {};
