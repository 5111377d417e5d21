// node-multiprocessing/dummy (Python's multiprocessing.dummy: the same API over threads).
// Not part of this release; the subpath exists so that the package layout matches
// Python's and imports resolve. See README, "Status".
export {};
