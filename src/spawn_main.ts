// The entry point of a spawn child (Python's spawn_main): the bootstrap socket is
// descriptor 3 (child_main.ts).
import { runChild } from './child_main.js';

runChild(3);
