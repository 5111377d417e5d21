// The process tests with the default start method, spawn (see process_suite.ts).
import { processSuite } from './process_suite.js';

processSuite('spawn');
