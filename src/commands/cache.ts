/** `cache status | verify | gc | clear`: looking after the content-addressed store. */
import {readdir, rm} from 'node:fs/promises';
import {join, relative, resolve} from 'node:path';
import {CacheStore, removeKeepingLink} from '../cache/store.js';
import type {CacheEntry} from '../cache/store.js';
import {ConfigurationError} from '../errors.js';
import {acquireLock} from '../lock.js';
import {ValidationRunner} from '../runner.js';
import {didYouMean} from '../util/suggest.js';
import {formatBytes, parseBytes, parseDuration} from '../util/units.js';

interface CacheFlags {
  config?: string;
  pipeline?: string;
  set?: string[];
  'max-size'?: string;
  'max-age'?: string;
  'no-wait'?: boolean;
}

/** The stored files no entry refers to. */
function unreferenced(store: CacheStore, kept: CacheEntry[], blobs: Map<string, number>): {paths: string[]; bytes: number} {
  const referenced = new Set(kept.flatMap((entry) => Object.values(entry.outputs).map((output) => store.blobPath(output))));
  const paths = [...blobs.keys()].filter((path) => !referenced.has(path));
  return {paths, bytes: paths.reduce((sum, path) => sum + blobs.get(path)!, 0)};
}

/**
 * Removes blobs no entry refers to, what a killed run left being stored (`incoming/`) or
 * spilled by DuckDB (`tmp/`; gc holds the lock, so no run is using either), and the index of
 * caches written by cacache (the store's entries are authoritative).
 */
async function sweep(store: CacheStore, kept: CacheEntry[]): Promise<{files: number; bytes: number}> {
  const unused = unreferenced(store, kept, await store.blobs());
  const leftovers = await store.leftovers();
  for (const path of unused.paths) await rm(path, {force: true});
  await store.clearLeftovers();
  await rm(join(store.dir, 'index-v5'), {recursive: true, force: true});
  return {files: unused.paths.length + leftovers.size, bytes: unused.bytes + [...leftovers.values()].reduce((sum, size) => sum + size, 0)};
}

export async function cacheCommand(args: string[], flags: CacheFlags): Promise<number> {
  const [action] = args;
  const runner = new ValidationRunner(flags.config, flags.pipeline === undefined ? {} : {pipelineFile: flags.pipeline});
  // The settings alone: a task that could not run (its module deleted, say) does not stop these commands.
  const {projectDir, settings, warnings} = await runner.loadSettings(flags.set === undefined ? {} : {set: flags.set});
  // A misspelt PIPELINE_CACHE_DIR would otherwise send these commands to another folder unseen.
  for (const warning of warnings) process.stderr.write(`Warning: ${warning}\n`);
  const dir = resolve(projectDir, settings.cache.dir);
  const store = new CacheStore(dir);
  const shown = relative(process.cwd(), dir) || dir;
  const out = (line: string) => process.stdout.write(line + '\n');
  switch (action) {
    case 'status': {
      const entries = await store.entries();
      const stored = await store.blobs();
      const total = [...stored.values()].reduce((sum, size) => sum + size, 0);
      out(`Cache ${shown}: ${entries.length} entries, ${stored.size} stored files, ${formatBytes(total)}`);
      // Last use is what gc goes by (least recently used first).
      const perTask = new Map<string, {entries: number; bytes: number; lastUsed: number}>();
      for (const {entry, size, lastUsed} of entries) {
        const row = perTask.get(entry.task) ?? {entries: 0, bytes: 0, lastUsed: 0};
        row.entries++;
        row.bytes += size;
        row.lastUsed = Math.max(row.lastUsed, lastUsed);
        perTask.set(entry.task, row);
      }
      for (const [task, row] of [...perTask].sort(([a], [b]) => a.localeCompare(b))) {
        out(`  ${task.padEnd(24)} ${String(row.entries).padStart(4)} entries  ${formatBytes(row.bytes).padStart(10)}  last used ${new Date(row.lastUsed).toISOString()}`);
      }
      // status takes no lock: these may be a running run's as well as a killed one's.
      const leftovers = await store.leftovers();
      if (leftovers.size > 0) {
        const bytes = [...leftovers.values()].reduce((sum, size) => sum + size, 0);
        out(
          `${leftovers.size} ${leftovers.size === 1 ? 'file' : 'files'} being stored or spilled (${formatBytes(bytes)}): a running run's, or left by one that was killed; ` +
            'the next run or `cache gc` removes them.',
        );
      }
      return 0;
    }
    case 'verify': {
      // The store's entries are authoritative: cacache's own verify is not used, as it deletes
      // every stored file its index does not list (and `gc` removes that index).
      let damaged = 0;
      const entries = await store.entries();
      const intact: CacheEntry[] = [];
      for (const {path, entry} of entries) {
        const problem = await store.verifyEntry(path);
        if (problem === undefined) {
          intact.push(entry);
          continue;
        }
        damaged++;
        out(`removed ${entry.task} entry ${entry.key.slice(0, 12)}: ${problem}`);
      }
      out(damaged === 0 ? `Verified ${entries.length} entries: all intact.` : `Verified ${entries.length} entries: removed ${damaged} damaged; they will be recomputed when needed.`);
      const unused = unreferenced(store, intact, await store.blobs());
      const files = unused.paths.length;
      if (files > 0) out(`${files} stored ${files === 1 ? 'file belongs' : 'files belong'} to no entry (${formatBytes(unused.bytes)}); \`cache gc\` removes them.`);
      return 0;
    }
    case 'gc':
    case 'clear': {
      const lock = await acquireLock(join(dir, 'lock'), {
        wait: !(flags['no-wait'] ?? false),
        signal: new AbortController().signal,
        notify: (message) => process.stderr.write(message + '\n'),
      });
      try {
        if (action === 'clear') {
          const before = await store.size();
          // A folder moved to another disk through a symlink (content-v2, say) is emptied, the link kept.
          for (const name of await readdir(dir).catch(() => [] as string[])) if (name !== 'lock') await removeKeepingLink(join(dir, name));
          out(`Cleared ${shown}: ${formatBytes(before)} freed.`);
          return 0;
        }
        const maxSize = flags['max-size'] === undefined ? Infinity : parseBytes(flags['max-size'], '--max-size');
        const maxAge = flags['max-age'] === undefined ? Infinity : parseDuration(flags['max-age'], '--max-age');
        const protectedKeys = await store.latestRunKeys();
        const entries = (await store.entries()).sort((a, b) => b.lastUsed - a.lastUsed);
        const blobs = await store.blobs();
        const kept: CacheEntry[] = [];
        // Sizes on disk: a file several entries share (the same extraction for two comparisons) counts once.
        const keptFiles = new Set<string>();
        let size = 0;
        let removed = 0;
        for (const item of entries) {
          const files = Object.values(item.entry.outputs).map((output) => store.blobPath(output));
          const added = [...new Set(files)].filter((file) => !keptFiles.has(file)).reduce((sum, file) => sum + (blobs.get(file) ?? 0), 0);
          const keep = protectedKeys.has(item.entry.key) || (Date.now() - item.lastUsed <= maxAge && size + added <= maxSize);
          if (keep) {
            kept.push(item.entry);
            size += added;
            for (const file of files) keptFiles.add(file);
          } else {
            await store.remove(item.path);
            removed++;
          }
        }
        const swept = await sweep(store, kept);
        // Remembered configurations (one small file per distinct set of flags and variables)
        // are rebuilt by the next run that needs them.
        await rm(join(projectDir, '.cache', 'config'), {recursive: true, force: true});
        out(`Removed ${removed} entries and ${swept.files} files (${formatBytes(swept.bytes)}); kept ${kept.length} entries (${formatBytes(size)}), including the latest run's.`);
        return 0;
      } finally {
        await lock.release();
      }
    }
    default:
      throw new ConfigurationError(
        `Expected "cache status", "cache verify", "cache gc" or "cache clear", got ${action === undefined ? 'nothing' : `"cache ${action}"`}.${action === undefined ? '' : didYouMean(action, ['status', 'verify', 'gc', 'clear'])}`,
      );
  }
}
