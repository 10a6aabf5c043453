/**
 * The content-addressed store under `.cache/`. Output files are stored by content in
 * cacache's layout (`content-v2/sha256/..`, which `cacache.get.byDigest` reads), written here
 * rather than through cacache's write stream: one copy hashing what it writes, 50-60 ms
 * against 145-312 ms for a 44 MB extraction. An entry maps a fingerprint to its outputs' digests, the
 * fingerprint's parts and the task's result. An entry is written only after every output
 * is stored, each file through a temporary name and a rename, and carries its own
 * checksum: an interrupted run leaves nothing a later run would trust, and a damaged entry
 * is recognised, reported and removed.
 *
 * Neither reading nor writing needs a dependency, so a fully cached run stays fast.
 */
import {createHash, randomUUID} from 'node:crypto';
import {chmod, lstat, mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile} from 'node:fs/promises';
import type {FileHandle} from 'node:fs/promises';
import {basename, dirname, join} from 'node:path';
import type {CacheKey, FingerprintParts} from '../fingerprint.js';
import type {TaskResult} from '../task-api.js';
import {faultPoint} from '../util/fault.js';
import {hashFile, parseKeepingNonFinite, READ_CHUNK, sha256, stringifyKeepingNonFinite} from '../util/hash.js';
import {StatMemo} from './stat-memo.js';

/**
 * SHA-256 rather than cacache's default SHA-512: CPUs hash it in hardware, 3.5x faster here
 * (27 vs 98 ms for a 46 MB extraction, on the thread that drives the run).
 */
const STORE_ALGORITHM = 'sha256';

/** Where files being stored are copied before their digest is known. */
const INCOMING = 'incoming';

/** Where DuckDB spills what does not fit in memory (`performance.max_memory`). */
export const SPILL = 'tmp';

/** A stored output whose content no longer matches its digest. */
export class DamagedOutputError extends Error {}

/** One stored output file. */
export interface StoredOutput {
  /** Subresource-integrity string (the content address). */
  integrity: string;
  size: number;
}

/** What the cache remembers about one successful task run. */
export interface CacheEntry {
  key: CacheKey;
  task: string;
  parts: FingerprintParts;
  outputs: Record<string, StoredOutput>;
  result: TaskResult;
  duration_ms: number;
  created_at: string;
  /** What the task warned of (`ctx.warn`), said again when the result is served from the cache. */
  warnings?: string[];
}

/** The result of a lookup: a hit you can apply, a miss, or a damaged entry (then removed). */
export type Lookup = {kind: 'hit'; entry: CacheEntry} | {kind: 'miss'} | {kind: 'corrupt'; problem: string};

/** How an entry is kept on disk: the entry and a checksum of its JSON text. */
interface EntryFile {
  sha256: string;
  entry: string;
}

/** Writes a file through a temporary name, so readers see the old or the new file, never half. */
export async function writeAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), {recursive: true});
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeFile(temporary, content);
    await rename(temporary, path);
  } finally {
    await rm(temporary, {force: true});
  }
}

export class CacheStore {
  readonly dir: string;
  /** Blobs already hashed and found intact; an unchanged blob is not hashed again. */
  readonly #verified: StatMemo;

  /** A dry run's store: looked up, never changed (no damaged entry removed, no use recorded). */
  readonly #readOnly: boolean;

  constructor(dir: string, options: {readOnly?: boolean} = {}) {
    this.dir = dir;
    this.#verified = new StatMemo(join(dir, 'verified-blobs.json'));
    this.#readOnly = options.readOnly ?? false;
  }

  #entryPath(key: string): string {
    return join(this.dir, 'entries', key.slice(0, 2), `${key}.json`);
  }

  #pointerPath(kind: 'last' | 'alias', name: string): string {
    return join(this.dir, kind, `${encodeURIComponent(name)}.json`);
  }

  /** The entry for a fingerprint, with every output present and intact. */
  get(key: CacheKey): Promise<Lookup> {
    return this.#lookup(this.#entryPath(key));
  }

  /**
   * The latest entry stored with `alias` (see `set`): used to reuse a result without
   * probing its source (`--skip-extraction`).
   */
  async getByAlias(alias: string): Promise<Lookup> {
    const key = await this.#readPointer(this.#pointerPath('alias', alias));
    return key === undefined ? {kind: 'miss'} : this.#lookup(this.#entryPath(key));
  }

  /**
   * Makes `key` the task's latest result (a cache hit counts as much as a run), so the next
   * change is explained against what the task last produced, whichever way it got it; and,
   * with `alias`, the result `--skip-extraction` reuses (the one the latest run used).
   */
  async recordUse(task: string, key: CacheKey, alias?: string): Promise<void> {
    const paths = [this.#pointerPath('last', task), ...(alias === undefined ? [] : [this.#pointerPath('alias', alias)])];
    for (const path of paths) if ((await this.#readPointer(path)) !== key) await writeAtomic(path, JSON.stringify({key}));
  }

  /** The last entry stored for a task name, to explain what changed since. */
  async previous(task: string): Promise<CacheEntry | undefined> {
    const last = await this.last(task);
    return last.kind === 'entry' ? last.entry : undefined;
  }

  /** The task's last result: its entry, or `removed` when the entry has gone since (gc, verify). */
  async last(task: string): Promise<{kind: 'entry'; entry: CacheEntry} | {kind: 'removed'} | {kind: 'none'}> {
    const key = await this.#readPointer(this.#pointerPath('last', task));
    if (key === undefined) return {kind: 'none'};
    const lookup = await this.#read(this.#entryPath(key));
    return lookup.kind === 'hit' ? {kind: 'entry', entry: lookup.entry} : {kind: 'removed'};
  }

  /** Every entry (for `cache status` and `cache gc`), with when it was last used; damaged ones are skipped. */
  async entries(): Promise<{path: string; entry: CacheEntry; size: number; lastUsed: number}[]> {
    const {readdir} = await import('node:fs/promises');
    const found: {path: string; entry: CacheEntry; size: number; lastUsed: number}[] = [];
    const root = join(this.dir, 'entries');
    for (const shard of await readdir(root).catch(() => [] as string[])) {
      for (const file of await readdir(join(root, shard)).catch(() => [] as string[])) {
        if (!file.endsWith('.json')) continue;
        const path = join(root, shard, file);
        const lookup = await this.#read(path);
        if (lookup.kind === 'hit') {
          found.push({
            path,
            entry: lookup.entry,
            size: Object.values(lookup.entry.outputs).reduce((sum, output) => sum + output.size, 0),
            lastUsed: (await stat(path)).mtimeMs,
          });
        }
      }
    }
    return found;
  }

  async #readPointer(path: string): Promise<string | undefined> {
    try {
      return (JSON.parse(await readFile(path, 'utf8')) as {key: string}).key;
    } catch {
      return undefined;
    }
  }

  async #read(path: string): Promise<Lookup> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return {kind: 'miss'};
    }
    try {
      const file = JSON.parse(text) as EntryFile;
      if (typeof file.entry !== 'string' || sha256(file.entry) !== file.sha256) throw new Error('checksum mismatch');
      return {kind: 'hit', entry: parseKeepingNonFinite(file.entry) as CacheEntry};
    } catch {
      return {kind: 'corrupt', problem: `cache entry ${path.split('/').pop()!.slice(0, 12)} is damaged (truncated or altered)`};
    }
  }

  async #lookup(path: string): Promise<Lookup> {
    const lookup = await this.#read(path);
    if (lookup.kind === 'corrupt') {
      if (!this.#readOnly) await rm(path, {force: true});
      return lookup;
    }
    if (lookup.kind === 'miss') return lookup;
    const {entry} = lookup;
    const outputs = Object.entries(entry.outputs);
    const problems = await Promise.all(outputs.map(([, output]) => this.#check(output)));
    const damaged = problems.findIndex((problem) => problem !== undefined);
    if (damaged !== -1) {
      const [name, output] = outputs[damaged]!;
      if (!this.#readOnly) {
        await rm(path, {force: true});
        await rm(this.blobPath(output), {force: true});
      }
      return {kind: 'corrupt', problem: `stored output ${name} of ${entry.task} ${problems[damaged]!}`};
    }
    // Last use, for `cache gc` (least recently used first).
    const now = new Date();
    if (!this.#readOnly) await utimes(path, now, now).catch(() => undefined);
    return lookup;
  }

  /**
   * Re-hashes every output of an entry, whatever the memo says (`cache verify`); removes a
   * damaged entry and returns what was wrong, or undefined when intact.
   */
  async verifyEntry(path: string): Promise<string | undefined> {
    const lookup = await this.#read(path);
    if (lookup.kind === 'miss') return undefined;
    if (lookup.kind === 'corrupt') {
      await rm(path, {force: true});
      return lookup.problem;
    }
    for (const [name, output] of Object.entries(lookup.entry.outputs)) {
      const blob = this.blobPath(output);
      const intact = await integrityOf(blob, output.integrity).catch(() => false);
      if (!intact) {
        await rm(path, {force: true});
        await rm(blob, {force: true});
        await this.#verified.forget(blob);
        return `stored output ${name} is missing or failed its integrity check`;
      }
      await this.#verified.set(blob, 'intact');
    }
    return undefined;
  }

  /** Records the entries the latest run used; `cache gc` never removes them. */
  async recordRun(keys: readonly string[]): Promise<void> {
    await writeAtomic(join(this.dir, 'latest-run.json'), JSON.stringify({keys}));
  }

  async latestRunKeys(): Promise<Set<string>> {
    try {
      return new Set((JSON.parse(await readFile(join(this.dir, 'latest-run.json'), 'utf8')) as {keys: string[]}).keys);
    } catch {
      return new Set();
    }
  }

  /** Every stored file (path -> size), for `cache` housekeeping. */
  async blobs(): Promise<Map<string, number>> {
    return filesIn(join(this.dir, 'content-v2'));
  }

  /**
   * What runs left half-stored (`incoming/`) or spilled (`tmp/`), by path and size. Only a run
   * holding the lock writes there: to one that holds it, these are what killed runs left.
   */
  async leftovers(): Promise<Map<string, number>> {
    return new Map([...(await filesIn(join(this.dir, INCOMING))), ...(await filesIn(join(this.dir, SPILL)))]);
  }

  /** Removes the leftovers; only while holding the lock. */
  async clearLeftovers(): Promise<void> {
    for (const scratch of [INCOMING, SPILL]) await removeKeepingLink(join(this.dir, scratch));
  }

  /** Total size of the stored files. */
  async size(): Promise<number> {
    return [...(await this.blobs()).values()].reduce((sum, size) => sum + size, 0);
  }

  /** Stores every output, then the entry: the entry is the commit point. */
  async set(entry: Omit<CacheEntry, 'outputs'>, files: Record<string, string>, alias?: string): Promise<CacheEntry> {
    const outputs: Record<string, StoredOutput> = {};
    for (const [name, file] of Object.entries(files)) {
      outputs[name] = await this.#put(file);
      faultPoint('blob-stored');
    }
    const complete: CacheEntry = {...entry, outputs};
    // Non-finite arguments and settings kept as such: "why it runs" compares them with the next run's.
    const text = stringifyKeepingNonFinite(complete);
    await writeAtomic(this.#entryPath(entry.key), JSON.stringify({sha256: sha256(text), entry: text} satisfies EntryFile));
    faultPoint('entry-written');
    const pointer = JSON.stringify({key: entry.key});
    await writeAtomic(this.#pointerPath('last', entry.task), pointer);
    if (alias !== undefined) await writeAtomic(this.#pointerPath('alias', alias), pointer);
    return complete;
  }

  /** Removes an entry (cache gc). */
  async remove(path: string): Promise<void> {
    await rm(path, {force: true});
  }

  /**
   * Stores a file by its content: copied into the store's `incoming/`, hashing the bytes
   * written, so the digest is that of the bytes kept, and renamed into place.
   * A file already stored under that digest is replaced, not trusted: it may have been damaged.
   */
  async #put(file: string): Promise<StoredOutput> {
    const temporary = join(this.dir, INCOMING, randomUUID());
    await mkdir(dirname(temporary), {recursive: true});
    try {
      const digest = await copyHashing(file, temporary, STORE_ALGORITHM);
      const output = {integrity: `${STORE_ALGORITHM}-${digest}`, size: (await stat(temporary)).size};
      const blob = this.blobPath(output);
      await mkdir(dirname(blob), {recursive: true});
      await rename(temporary, blob).catch(async (error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
        // content-v2 (or part of it) moved to another file system through a symlink: copied across, then renamed there.
        const beside = `${blob}.tmp-${randomUUID()}`;
        try {
          if ((await copyHashing(temporary, beside, STORE_ALGORITHM)) !== digest) throw new Error(`${file} changed while it was stored`);
          await rename(beside, blob);
        } finally {
          await rm(beside, {force: true});
        }
      });
      await this.#seal(blob);
      return output;
    } finally {
      await rm(temporary, {force: true});
    }
  }

  /** Where an output's content is on disk (read it, never write it). */
  blobPath(output: StoredOutput): string {
    const [algorithm, base64] = splitIntegrity(output.integrity);
    const hex = Buffer.from(base64, 'base64').toString('hex');
    return join(this.dir, 'content-v2', algorithm, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
  }

  /**
   * Copies an output's content to `dest` through a temporary name, so `dest` is never
   * half-written, hashing what it copies: content that no longer matches its digest (changed
   * in the store since it was checked) is not published, and goes from the store.
   */
  async copyOut(output: StoredOutput, dest: string): Promise<void> {
    await mkdir(dirname(dest), {recursive: true});
    const temporary = `${dest}.tmp-${process.pid}`;
    const blob = this.blobPath(output);
    const [algorithm, expected] = splitIntegrity(output.integrity);
    try {
      await stat(blob).catch(() => {
        throw new DamagedOutputError(`the stored content of ${basename(dest)} is missing from the cache; the next run recomputes it`);
      });
      await rm(temporary, {force: true}); // a killed run's, under the same process id
      if ((await copyHashing(blob, temporary, algorithm)) !== expected) {
        await rm(blob, {force: true});
        await this.#verified.forget(blob);
        throw new DamagedOutputError(`the stored content of ${basename(dest)} no longer matches its digest (changed in the cache since it was stored); it was removed, and the next run recomputes it`);
      }
      await rename(temporary, dest);
    } finally {
      await rm(temporary, {force: true});
    }
  }

  /** Why an output cannot be used, or undefined when it is present and intact. */
  async #check(output: StoredOutput): Promise<string | undefined> {
    const path = this.blobPath(output);
    try {
      const verdict = await this.#verified.get(path, async () => ((await integrityOf(path, output.integrity)) ? 'intact' : 'damaged'));
      if (verdict === 'intact') return undefined;
      await this.#verified.forget(path);
      return 'failed its integrity check';
    } catch {
      return 'is missing from the store';
    }
  }

  /**
   * Whether a stored output is as it was stored (a task may have written to it since): by
   * its signature when that is as last found intact, else by its content (a touch or a chmod
   * changes the signature, not the content; the file is then made read-only again).
   */
  async unchanged(output: StoredOutput): Promise<boolean> {
    if ((await this.#check(output)) !== undefined) return false;
    await this.#seal(this.blobPath(output));
    return true;
  }

  /**
   * Makes a stored file read-only, so that a task writing to its input fails at once (for
   * users other than root), and records it intact as it is now (chmod moves the signature).
   */
  async #seal(blob: string): Promise<void> {
    if (((await stat(blob)).mode & 0o222) !== 0) await chmod(blob, 0o444).catch(() => undefined);
    await this.#verified.set(blob, 'intact');
  }

  /** Saves what was verified in this run. */
  async flush(): Promise<void> {
    if (this.#readOnly) return;
    await this.#verified.flush();
  }
}

/** The files under a folder, by path, with their sizes (none when it does not exist). */
/**
 * Removes `path`; a folder reached through a symlink (moved to another disk, say) is emptied
 * instead, the link kept.
 */
export async function removeKeepingLink(path: string): Promise<void> {
  const link = await lstat(path).catch(() => undefined);
  if (link?.isSymbolicLink() && (await stat(path).catch(() => undefined))?.isDirectory()) {
    for (const child of await readdir(path)) await rm(join(path, child), {recursive: true, force: true});
  } else {
    await rm(path, {recursive: true, force: true});
  }
}

async function filesIn(folder: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, {withFileTypes: true}).catch(() => [])) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else found.set(path, (await lstat(path).catch(() => ({size: 0}))).size);
    }
  };
  await walk(folder);
  return found;
}

/** Writes all of `piece` at the file's position (a write may take less than it is given). */
async function writeAll(file: FileHandle, piece: Buffer): Promise<void> {
  for (let written = 0; written < piece.length; ) written += (await file.write(piece, written, piece.length - written)).bytesWritten;
}

/** Whether a file's content matches a subresource-integrity string. */
async function integrityOf(path: string, integrity: string): Promise<boolean> {
  const [algorithm, expected] = splitIntegrity(integrity);
  return (await hashFile(path, createHash(algorithm))).digest('base64') === expected;
}

/** A subresource-integrity string's algorithm and base64 digest. */
function splitIntegrity(integrity: string): [algorithm: string, digest: string] {
  return integrity.split(/-(.*)/s) as [string, string];
}

/**
 * Copies a file to a new file `dest` (of the default mode, whatever the source's: a read-only
 * blob published stays writable), hashing the bytes written: 50-60 ms for 44 MB here,
 * where cacache's write stream took 145-312 ms. Read until its end rather than by the size
 * it had (fs.copyFile, which loops for ever on a file that shrinks meanwhile, as one task
 * code left writing may, and copies nothing of a /proc file), in two buffers: the next piece
 * is read and hashed while the last is written.
 */
async function copyHashing(source: string, dest: string, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  const input = await open(source, 'r');
  const output = await open(dest, 'wx').catch(async (error: unknown) => {
    await input.close();
    throw error;
  });
  try {
    const buffers = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
    let writing: Promise<unknown> = Promise.resolve();
    for (let i = 0; ; i ^= 1) {
      const {bytesRead} = await input.read(buffers[i]!, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      const piece = buffers[i]!.subarray(0, bytesRead);
      hash.update(piece);
      await writing;
      writing = writeAll(output, piece);
      // Awaited with the next piece: a failure meanwhile (a full disk) must not go unhandled.
      writing.catch(() => undefined);
    }
    await writing;
  } finally {
    await Promise.all([input.close(), output.close()]);
  }
  return hash.digest('base64');
}
