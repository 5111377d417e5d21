// 17.2.2.12: logging to stderr with the library's logger, in the `[LEVEL/ProcessName]` format;
// a manager's process logs there too.
import { INFO, logToStderr, Manager } from 'node-multiprocessing';

const logger = logToStderr();
logger.setLevel(INFO); // Python's logging.INFO
logger.warning('doomed');
const m = await Manager();
await m.shutdown(); // Python's `del m`
