// The `multiprocessing` namespace.
export { Connection, Pipe } from './connection.js';
export {
  BaseContext, DefaultContext, Process, SpawnContext, SpawnProcess, cpuCount, defaultContext,
  freezeSupport, getAllStartMethods, getContext, getStartMethod, setStartMethod,
} from './context.js';
export {
  AuthenticationError, BrokenBarrierError, BufferTooShort, EOFError, Empty, Full, OSError,
  ProcessError, RemoteError, RuntimeError, TimeoutError, ValueError,
} from './errors.js';
export { activeChildren, BaseProcess, currentProcess, parentProcess, ParentProcess } from './process.js';
export { setExecutable } from './spawn.js';
// Python's logging levels (logging.INFO...) with multiprocessing's own two; there is no logging module here.
export { CRITICAL, DEBUG, ERROR, getLogger, INFO, logToStderr, SUBDEBUG, SUBWARNING, WARNING } from './util.js';
export { reduce, registerKind, type Reduced, type Shareable } from './reduction.js';
export {
  ApplyResult, AsyncResult, IMapIterator, IMapUnorderedIterator, MapResult, MaybeEncodingError, Pool,
  RemoteTraceback, WorkerLostError, type PoolOptions,
} from './pool.js';
export {
  Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore, SemLock, type AcquireOptions, type Held,
} from './synchronize.js';
export {
  Array, SharedArray, RawArray, RawValue, Value, copy, synchronized, Structure,
  c_bool, c_char, c_byte, c_ubyte, c_short, c_ushort, c_int, c_uint, c_long, c_ulong,
  c_longlong, c_ulonglong, c_float, c_double, c_size_t,
  Synchronized, SynchronizedArray, SynchronizedString, SynchronizedBase, CValue, CharArray, StructArray, SimpleCType,
} from './sharedctypes.js';
export { JoinableQueue, Queue, SimpleQueue, type GetOptions, type PutOptions, type QueueOptions } from './queues.js';
