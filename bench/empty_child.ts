// The child of nodeForkJoin (bench/cases.ts): a node process that does nothing.
export {};
