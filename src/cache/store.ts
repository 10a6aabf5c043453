/**
 * The content-addressed store (cacache under `.cache/`). Outputs are stored by content;
 * an entry maps a fingerprint to its outputs' digests and is written only after every
 * output is stored, so an interrupted run never leaves an entry a later run would trust.
 */
import {createReadStream, createWriteStream} from 'node:fs';
import {mkdir, rename, rm, stat} from 'node:fs/promises';
import {createRequire} from 'node:module';
import {dirname, join} from 'node:path';
import {pipeline} from 'node:stream/promises';
import cacache from 'cacache';
import type {CacheKey, FingerprintParts} from '../fingerprint.js';
import type {TaskResult} from '../task-api.js';
import {StatMemo} from './stat-memo.js';

const require = createRequire(import.meta.url);
const ssri = require('ssri') as {
  parse(integrity: string, options: {single: true}): {algorithm: string; hexDigest(): string};
  checkStream(stream: NodeJS.ReadableStream, integrity: string): Promise<unknown>;
};

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
}

/** The result of a lookup: a hit you can apply, a miss, or a damaged entry (then removed). */
export type Lookup = {kind: 'hit'; entry: CacheEntry} | {kind: 'miss'} | {kind: 'corrupt'; problem: string};

const entryKey = (key: CacheKey) => `task:${key}`;
const lastKey = (task: string) => `last:${task}`;
const aliasKey = (alias: string) => `alias:${alias}`;

export class CacheStore {
  readonly dir: string;
  /** Blobs already hashed and found intact; an unchanged blob is not hashed again. */
  readonly #verified: StatMemo;

  constructor(dir: string) {
    this.dir = dir;
    this.#verified = new StatMemo(join(dir, 'verified-blobs.json'));
  }

  /** The entry for a fingerprint, with every output present and intact. */
  get(key: CacheKey): Promise<Lookup> {
    return this.#lookup(entryKey(key));
  }

  /**
   * The latest entry stored with `alias` (see `set`): used to reuse a result without
   * probing its source (`--skip-extraction`).
   */
  getByAlias(alias: string): Promise<Lookup> {
    return this.#lookup(aliasKey(alias));
  }

  async #lookup(indexKey: string): Promise<Lookup> {
    let entry: CacheEntry;
    try {
      const {data} = await cacache.get(this.dir, indexKey);
      entry = JSON.parse(data.toString('utf8')) as CacheEntry;
    } catch (error) {
      const code = (error as {code?: string}).code;
      if (code === 'ENOENT' || code === 'ENOTCACHED') return {kind: 'miss'};
      await cacache.rm.entry(this.dir, indexKey).catch(() => undefined);
      return {kind: 'corrupt', problem: `cache entry ${indexKey.slice(0, 16)} is damaged (${code ?? String(error)})`};
    }
    for (const [name, output] of Object.entries(entry.outputs)) {
      const problem = await this.#check(output);
      if (problem !== undefined) {
        await this.#forget(entry.key);
        await cacache.rm.entry(this.dir, indexKey).catch(() => undefined);
        await rm(this.blobPath(output), {force: true});
        return {kind: 'corrupt', problem: `stored output ${name} of ${entry.task} ${problem}`};
      }
    }
    return {kind: 'hit', entry};
  }

  /** The last entry stored for a task name, to explain what changed since. */
  async previous(task: string): Promise<CacheEntry | undefined> {
    try {
      const {data} = await cacache.get(this.dir, lastKey(task));
      return JSON.parse(data.toString('utf8')) as CacheEntry;
    } catch {
      return undefined;
    }
  }

  /** Stores every output, then the entry: the entry is the commit point. */
  async set(entry: Omit<CacheEntry, 'outputs'>, files: Record<string, string>, alias?: string): Promise<CacheEntry> {
    const outputs: Record<string, StoredOutput> = {};
    for (const [name, file] of Object.entries(files)) {
      let integrity = '';
      const sink = cacache.put.stream(this.dir, `output:${entry.key}:${name}`);
      sink.on('integrity', (value: unknown) => (integrity = String(value)));
      await pipeline(createReadStream(file), sink);
      outputs[name] = {integrity, size: (await stat(file)).size};
      await this.#remember(outputs[name]);
    }
    const complete: CacheEntry = {...entry, outputs};
    const integrity = await cacache.put(this.dir, entryKey(entry.key), JSON.stringify(complete));
    await cacache.index.insert(this.dir, lastKey(entry.task), integrity);
    if (alias !== undefined) await cacache.index.insert(this.dir, aliasKey(alias), integrity);
    return complete;
  }

  /** Where an output's content is on disk (read it, never write it). */
  blobPath(output: StoredOutput): string {
    const sri = ssri.parse(output.integrity, {single: true});
    const hex = sri.hexDigest();
    return join(this.dir, 'content-v2', sri.algorithm, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
  }

  /** Copies an output's content to `dest` through a temporary name, so `dest` is never half-written. */
  async copyOut(output: StoredOutput, dest: string): Promise<void> {
    await mkdir(dirname(dest), {recursive: true});
    const temporary = `${dest}.tmp-${process.pid}`;
    try {
      await pipeline(createReadStream(this.blobPath(output)), createWriteStream(temporary));
      await rename(temporary, dest);
    } finally {
      await rm(temporary, {force: true});
    }
  }

  /** Removes an entry whose outputs turned out to be damaged. */
  async #forget(key: CacheKey): Promise<void> {
    await cacache.rm.entry(this.dir, entryKey(key)).catch(() => undefined);
  }

  /** Why an output cannot be used, or undefined when it is present and intact. */
  async #check(output: StoredOutput): Promise<string | undefined> {
    const path = this.blobPath(output);
    try {
      const verdict = await this.#verified.get(path, async () => {
        try {
          await ssri.checkStream(createReadStream(path), output.integrity);
          return 'intact';
        } catch {
          return 'damaged';
        }
      });
      if (verdict === 'intact') return undefined;
      await this.#verified.forget(path);
      return 'failed its integrity check';
    } catch {
      return 'is missing from the store';
    }
  }

  async #remember(output: StoredOutput): Promise<void> {
    await this.#verified.set(this.blobPath(output), 'intact');
  }

  /** Saves what was verified in this run. */
  async flush(): Promise<void> {
    await this.#verified.flush();
  }
}
