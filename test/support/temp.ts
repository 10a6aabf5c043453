/**
 * Temporary folders for tests and benchmarks that clean up after themselves: each lives until
 * the test file (or the benchmark's process) is done with it, then goes. Test runs used to
 * leave thousands of folders in the system's temp folder.
 */
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

const folders: string[] = [];
const removeFolders = () => folders.splice(0).forEach((folder) => rmSync(folder, {recursive: true, force: true}));
// Vitest ends its workers with a signal, which skips exit handlers: under it the clean-up is
// a hook of the test file importing this module.
if (process.env['VITEST'] === undefined) process.once('exit', removeFolders);
else (await import('vitest')).afterAll(removeFolders);

/** A new empty folder under the system's temp folder, named `<prefix>XXXXXX`. */
export function temporaryFolder(prefix: string): string {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  folders.push(folder);
  return folder;
}
