// 17.2.2.12: logging to stderr with the library's logger, in the `[LEVEL/ProcessName]` format.
import { INFO, logToStderr } from 'node-multiprocessing';

const logger = logToStderr();
logger.setLevel(INFO); // Python's logging.INFO
logger.warning('doomed');
// The docs then start a Manager, whose logging shows here; managers do not exist yet in this library.
