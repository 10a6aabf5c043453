// After `tsc`, records which source each built task module was compiled from, so the
// runner loads the build only when it matches the code (see src/task-modules.ts).
import {createHash} from 'node:crypto';
import {readdirSync, readFileSync, writeFileSync} from 'node:fs';
import {join, relative} from 'node:path';
import {ModuleDigests, PACKAGE_DIR, combinedDigest} from '../dist/src/task-modules.js';

const stamps = {};
const code = new ModuleDigests(PACKAGE_DIR);
const walk = async (dir) => {
  for (const entry of readdirSync(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      stamps[relative(PACKAGE_DIR, path)] = combinedDigest(await code.of(path));
    }
  }
};
await walk(join(PACKAGE_DIR, 'tasks'));
writeFileSync(join(PACKAGE_DIR, 'dist', '.build-stamps.json'), JSON.stringify(stamps, null, 2) + '\n');

// The runner's own build id: remembered configurations (src/config/memo.ts) are only
// reused by the build that validated them.
const sources = [];
const collect = (dir) => {
  for (const entry of readdirSync(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) collect(path);
    else if (entry.name.endsWith('.ts')) sources.push(path);
  }
};
collect(join(PACKAGE_DIR, 'src'));
const hash = createHash('sha256');
for (const path of sources.sort()) hash.update(relative(PACKAGE_DIR, path)).update('\0').update(readFileSync(path)).update('\0');
writeFileSync(join(PACKAGE_DIR, 'dist', '.build-id'), hash.digest('hex') + '\n');
