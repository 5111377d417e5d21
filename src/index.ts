// The `multiprocessing` namespace.
export { Connection, Pipe, type ConnectionOptions, type SendBytesOptions } from './connection.js';
export {
  BaseContext, DefaultContext, ForkServerContext, ForkServerProcess, Manager, Process, SpawnContext, type CallableClass, type PoolArgs, SpawnProcess,
  cpuCount, defaultContext, freezeSupport, getAllStartMethods, getContext, getStartMethod, setForkserverPreload, setStartMethod,
} from './context.js';
export {
  AuthenticationError, BrokenBarrierError, BufferTooShort, EOFError, Empty, Full, IndexError, KeyError, LookupError,
  ManagerGoneError, OSError, ProcessError, RemoteError, RuntimeError, TimeoutError, ValueError,
} from './errors.js';
export { activeChildren, BaseProcess, currentProcess, parentProcess, ParentProcess, type ProcessOptions } from './process.js';
export { setExecutable } from './spawn.js';
// The logger (Python's get_logger, log_to_stderr) and the parts of Python's logging module
// that the docs use with it: the levels (with multiprocessing's SUBDEBUG and SUBWARNING),
// Formatter, Handler, StreamHandler, LogRecord.
export {
  CRITICAL, DEBUG, ERROR, Formatter, getLogger, Handler, INFO, LogRecord, Logger, logToStderr, NOTSET,
  StreamHandler, SUBDEBUG, SUBWARNING, WARNING, type HandlerLike, type TextStream,
} from './logging.js';
export { reduce, registerKind, type Rebuild, type Reduced, type Shareable } from './reduction.js';
export {
  ApplyResult, AsyncResult, IMapIterator, IMapUnorderedIterator, MapResult, MaybeEncodingError, Pool,
  RemoteTraceback, WorkerLostError, type ApplyOptions, type Callback, type ChunkOptions, type ErrorCallback, type MapOptions,
  type PoolOptions,
} from './pool.js';
export {
  Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore, SemLock, type AcquireOptions, type BarrierAction,
  type BarrierOptions, type ConditionOptions, type ContextOptions, type Held, type SemaphoreOptions,
} from './synchronize.js';
export {
  Array, SharedArray, RawArray, RawValue, Value, copy, synchronized, Structure, ARRAY, ArrayCType, FieldArray,
  c_bool, c_char, c_wchar, c_byte, c_ubyte, c_short, c_ushort, c_int, c_uint, c_long, c_ulong,
  c_longlong, c_ulonglong, c_float, c_double, c_size_t,
  Synchronized, SynchronizedArray, SynchronizedString, SynchronizedBase, CValue, CharArray, WCharArray, StructArray, SimpleCType,
} from './sharedctypes.js';
export { JoinableQueue, Queue, SimpleQueue, type GetOptions, type PutOptions, type QueueOptions } from './queues.js';
export type { Timeout, TimeoutOptions, BlockOptions } from './timeouts.js';
