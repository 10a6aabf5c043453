/**
 * Facts about files remembered by their (size, mtime, inode) signature, like git's index:
 * an unchanged file is not read again; any write to it changes the signature.
 */
import {mkdir, readFile, rename, stat, writeFile} from 'node:fs/promises';
import {dirname} from 'node:path';

export async function fileSignature(path: string): Promise<string> {
  const info = await stat(path);
  return `${info.size}:${info.mtimeMs}:${info.ino}`;
}

export class StatMemo {
  readonly #file: string;
  #entries: Record<string, {signature: string; value: string}> | undefined;
  #changed = false;

  /** `file` is where the memo is kept between runs. */
  constructor(file: string) {
    this.#file = file;
  }

  /** The remembered value for `path` if the file has not changed since; else `compute` it. */
  async get(path: string, compute: (path: string) => Promise<string>): Promise<string> {
    const entries = await this.#load();
    const signature = await fileSignature(path);
    const known = entries[path];
    if (known?.signature === signature) return known.value;
    const value = await compute(path);
    // The file may have changed while it was read; remember the signature from before.
    entries[path] = {signature, value};
    this.#changed = true;
    return value;
  }

  /** Records a fact just established about a file. */
  async set(path: string, value: string): Promise<void> {
    (await this.#load())[path] = {signature: await fileSignature(path), value};
    this.#changed = true;
  }

  async forget(path: string): Promise<void> {
    delete (await this.#load())[path];
    this.#changed = true;
  }

  /** Saves the memo atomically; losing an update only costs re-reading a file. */
  async flush(): Promise<void> {
    if (!this.#changed || this.#entries === undefined) return;
    await mkdir(dirname(this.#file), {recursive: true});
    const temporary = `${this.#file}.tmp-${process.pid}`;
    await writeFile(temporary, JSON.stringify(this.#entries));
    await rename(temporary, this.#file);
    this.#changed = false;
  }

  async #load(): Promise<Record<string, {signature: string; value: string}>> {
    if (this.#entries === undefined) {
      try {
        this.#entries = JSON.parse(await readFile(this.#file, 'utf8')) as Record<string, {signature: string; value: string}>;
      } catch {
        this.#entries = {};
      }
    }
    return this.#entries;
  }
}

/** A small persistent string map (facts keyed by digest), saved with `flush`. */
export class KeyValueMemo {
  readonly #file: string;
  #entries: Record<string, string> | undefined;
  #changed = false;

  constructor(file: string) {
    this.#file = file;
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.#load())[key];
  }

  async set(key: string, value: string): Promise<void> {
    const entries = await this.#load();
    if (entries[key] === value) return;
    entries[key] = value;
    this.#changed = true;
  }

  async flush(): Promise<void> {
    if (!this.#changed || this.#entries === undefined) return;
    await mkdir(dirname(this.#file), {recursive: true});
    const temporary = `${this.#file}.tmp-${process.pid}`;
    await writeFile(temporary, JSON.stringify(this.#entries));
    await rename(temporary, this.#file);
    this.#changed = false;
  }

  async #load(): Promise<Record<string, string>> {
    if (this.#entries === undefined) {
      try {
        this.#entries = JSON.parse(await readFile(this.#file, 'utf8')) as Record<string, string>;
      } catch {
        this.#entries = {};
      }
    }
    return this.#entries;
  }
}
