/**
 * Creating a folder and its missing parents. Node's own `mkdir(path, {recursive: true})`
 * never returns on a path the file system refuses while its parent exists (`/proc/x`:
 * ENOENT each time, so it climbs and retries for ever); this one retries once. Synchronous:
 * a few system calls, made before a run starts (the log file opens before anything yields).
 */
import {mkdirSync} from 'node:fs';
import {dirname} from 'node:path';

export function makeFolders(path: string): void {
  try {
    mkdirSync(path);
  } catch (error: unknown) {
    if (code(error) === 'EEXIST') return;
    if (code(error) !== 'ENOENT' || dirname(path) === path) throw error;
    makeFolders(dirname(path));
    try {
      mkdirSync(path);
    } catch (again: unknown) {
      if (code(again) !== 'EEXIST') throw again;
    }
  }
}

function code(error: unknown): string | undefined {
  return (error as {code?: string}).code;
}
