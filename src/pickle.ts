// Python's pickle (Lib/pickle.py, Modules/_pickle.c) for exchanging objects with CPython:
// protocols 0 to 5 are read, 3 to 5 written (4 by default, as Python 3.8+ does).
//
// The mapping (../shared/API.md, "Objects to and from Python"): None <-> null, bool <->
// boolean, int <-> number when safe else bigint, float <-> number (a number that is a safe
// integer sends int; PyFloat sends float), str <-> string, bytes/bytearray <-> Buffer,
// list <-> Array, tuple <-> Tuple, dict <-> plain object (str keys) or Map, set/frozenset
// <-> Set, exceptions <-> errors named as the Python class with `args`.
//
// Reading never imports or runs anything: GLOBAL/STACK_GLOBAL names are looked up in a
// fixed allow-list (`allowed` below), and each entry says what REDUCE/NEWOBJ/BUILD do with
// it. The reader is a loop over the opcodes with no recursion; every length it reads is
// checked against the bytes that remain before anything is allocated, so a hostile or
// truncated pickle fails with UnpicklingError (or ValueError) and allocates at most a
// small multiple of its own size.
export { PickleError, PicklingError, UnpicklingError } from './errors.js';
export { DEFAULT_PROTOCOL, HIGHEST_PROTOCOL, PyFloat, Tuple } from './pickle_common.js';
export { _allowGlobal, type GlobalDef } from './pickle_globals.js';
export { loads } from './pickle_read.js';
export { dumps, type DumpsOptions } from './pickle_write.js';
