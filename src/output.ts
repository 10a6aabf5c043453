/**
 * The output folder of one comparison. A run writes into a staging folder beside it and
 * switches the two at the end, so a reader sees either the previous run or this one,
 * never a mix. Files unchanged since the previous run are hard-linked, not copied.
 */
import {existsSync} from 'node:fs';
import {link, mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises';
import {basename, dirname, join} from 'node:path';
import type {CacheStore, StoredOutput} from './cache/store.js';
import {linkSignature} from './cache/stat-memo.js';
import {faultPoint} from './util/fault.js';
import {isAlive} from './util/process.js';
import {makeFolders} from './util/folders.js';

const MANIFEST = '.outputs.json';

/** The integrity of a kept file that changed since it was published: matches no stored output. */
const UNKNOWN_CONTENT = '';

/** What the previous run published: file -> content and on-disk signature. */
export type Manifest = Record<string, {integrity: string; signature: string}>;

export class OutputFolder {
  /** Where the published folder is. */
  readonly path: string;
  /** Where this run writes until `publish`. */
  readonly staging: string;
  readonly #manifest: Manifest = {};

  constructor(path: string) {
    this.path = path;
    this.staging = join(dirname(path), `.${basename(path)}.staging-${process.pid}`);
  }

  /** Creates the staging folder, removing staging folders of runs that died (of any comparison). */
  async prepare(): Promise<void> {
    const parent = dirname(this.path);
    makeFolders(parent);
    // A run killed between the two renames of `publish` left the folder moved away: put back.
    if (!existsSync(this.path)) {
      const left = (await readdir(parent)).find((entry) => {
        const match = /^\.(.+)\.previous-(\d+)$/.exec(entry);
        return match !== null && match[1] === basename(this.path) && !isAlive(Number(match[2]));
      });
      if (left !== undefined) await rename(join(parent, left), this.path);
    }
    for (const entry of await readdir(parent)) {
      const match = /^\..+\.(staging|previous)-(\d+)$/.exec(entry);
      if (match !== null && !isAlive(Number(match[2]))) await rm(join(parent, entry), {recursive: true, force: true});
    }
    await rm(this.staging, {recursive: true, force: true});
    // Not recursive: its parent exists, and a read-only file system is then reported as such (EROFS), not as ENOENT.
    await mkdir(this.staging);
  }

  /** Places a stored output in the staging folder (linked from the previous run when unchanged). */
  async add(file: string, output: StoredOutput, cache: CacheStore, previous: Manifest): Promise<void> {
    const target = join(this.staging, file);
    const existing = join(this.path, file);
    const known = previous[file];
    if (known?.integrity === output.integrity && existsSync(existing) && (await linkSignature(existing)) === known.signature) {
      await link(existing, target);
    } else {
      await cache.copyOut(output, target);
    }
    this.#manifest[file] = {integrity: output.integrity, signature: await linkSignature(target)};
  }

  /**
   * Keeps a file of the previous run that this run did not produce, as it is (a failed run
   * must not take away the last good outputs); false when it is gone. One changed since
   * (edited, or the folder copied) is kept too, but its content is no longer vouched for: a
   * later run that produces it copies it from the store rather than linking this one.
   */
  async keep(file: string, previous: Manifest): Promise<boolean> {
    const known = previous[file];
    const existing = join(this.path, file);
    if (known === undefined || file in this.#manifest || !existsSync(existing)) return false;
    await mkdir(dirname(join(this.staging, file)), {recursive: true});
    await link(existing, join(this.staging, file));
    const signature = await linkSignature(existing);
    this.#manifest[file] = signature === known.signature ? known : {integrity: UNKNOWN_CONTENT, signature};
    return true;
  }

  /** Writes a file the runner produces itself (summary.json, errors.json). */
  async write(file: string, content: string): Promise<void> {
    await writeFile(join(this.staging, file), content);
  }

  async previousManifest(): Promise<Manifest> {
    try {
      return JSON.parse(await readFile(join(this.path, MANIFEST), 'utf8')) as Manifest;
    } catch {
      return {};
    }
  }

  /** Switches the staging folder in place of the published one. */
  async publish(): Promise<void> {
    await writeFile(join(this.staging, MANIFEST), JSON.stringify(this.#manifest, null, 2));
    faultPoint('publish-staged');
    const previous = join(dirname(this.path), `.${basename(this.path)}.previous-${process.pid}`);
    if (existsSync(this.path)) await rename(this.path, previous);
    faultPoint('publish-swapped-out');
    await rename(this.staging, this.path);
    faultPoint('publish-swapped-in');
    await rm(previous, {recursive: true, force: true});
  }

  /** Drops the staging folder (dry runs, interruptions, failures); never throws. */
  async discard(): Promise<void> {
    await rm(this.staging, {recursive: true, force: true}).catch(() => undefined);
  }
}

