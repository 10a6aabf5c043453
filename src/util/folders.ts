/**
 * Creating a folder and its missing parents. Node's own `mkdir(path, {recursive: true})`
 * never returns on a path the file system refuses while its parent exists (`/proc/x`:
 * ENOENT each time, so it climbs and retries for ever); this one retries once.
 */
import {mkdir} from 'node:fs/promises';
import {dirname} from 'node:path';

export async function makeFolders(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (error: unknown) {
    const code = (error as {code?: string}).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw error;
    await makeFolders(dirname(path));
    await mkdir(path).catch((again: unknown) => {
      if ((again as {code?: string}).code !== 'EEXIST') throw again;
    });
  }
}
