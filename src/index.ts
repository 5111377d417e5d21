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
export { getLogger, logToStderr, SUBDEBUG, SUBWARNING } from './util.js';
export { reduce, registerKind, type Reduced, type Shareable } from './reduction.js';
export {
  ApplyResult, AsyncResult, IMapIterator, IMapUnorderedIterator, MapResult, MaybeEncodingError, Pool,
  RemoteTraceback, WorkerLostError, type PoolOptions,
} from './pool.js';
