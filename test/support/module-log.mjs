// Loaded with `node --import`: records every module the process resolves (its URL, one a
// line) into the file named by MODULE_LOG, so a test can say what a run did not load.
import {register} from 'node:module';

register('./module-log-hooks.mjs', import.meta.url);
