/**
 * Small facts remembered between runs, in JSON files under the cache folder. Losing one
 * (a crash before `flush`, a damaged file) only costs recomputing it.
 */
import {mkdir, readFile, rename, stat, writeFile} from 'node:fs/promises';
import {dirname} from 'node:path';

/**
 * What identifies a file's content without reading it: size, modification time and inode,
 * and its change time, which no one can set back (an edit whose modification time is
 * restored still moves it). A hard link also moves it, so the output folder, which links
 * unchanged files from one run to the next, uses `linkSignature`.
 */
export async function fileSignature(path: string): Promise<string> {
  const info = await stat(path);
  return `${info.size}:${info.mtimeMs}:${info.ino}:${info.ctimeMs}`;
}

/** `fileSignature` without the change time, which linking the file moves. */
export async function linkSignature(path: string): Promise<string> {
  const info = await stat(path);
  return `${info.size}:${info.mtimeMs}:${info.ino}`;
}

/** A JSON object kept in a file: loaded on first use, saved atomically by `flush`. */
class JsonFile<T> {
  readonly #file: string;
  #value: Record<string, T> | undefined;
  /** The first load, shared: callers at the same moment must get the same object to write to. */
  #loading: Promise<Record<string, T>> | undefined;
  #changed = false;

  constructor(file: string) {
    this.#file = file;
  }

  entries(): Promise<Record<string, T>> {
    this.#loading ??= readFile(this.#file, 'utf8')
      .then((text) => JSON.parse(text) as Record<string, T>)
      .catch(() => ({}))
      .then((value) => (this.#value = value));
    return this.#loading;
  }

  touched(): void {
    this.#changed = true;
  }

  async flush(): Promise<void> {
    if (!this.#changed || this.#value === undefined) return;
    await mkdir(dirname(this.#file), {recursive: true});
    const temporary = `${this.#file}.tmp-${process.pid}`;
    await writeFile(temporary, JSON.stringify(this.#value));
    await rename(temporary, this.#file);
    this.#changed = false;
  }
}

/**
 * Facts about files remembered by their signature (size, times, inode), like git's index:
 * an unchanged file is not read again; any write to it changes the signature.
 */
export class StatMemo {
  readonly #store: JsonFile<{signature: string; value: string}>;
  /** Computations under way, so callers asking at the same moment share one (a file read once). */
  readonly #pending = new Map<string, Promise<string>>();

  /** `file` is where the memo is kept between runs. */
  constructor(file: string) {
    this.#store = new JsonFile(file);
  }

  /**
   * The remembered value for `path` if the file has not changed since; else `compute` it,
   * once for all who ask while it is computed (both extractions probe the same database).
   */
  async get(path: string, compute: (path: string) => Promise<string>): Promise<string> {
    const entries = await this.#store.entries();
    const signature = await fileSignature(path);
    const known = entries[path];
    if (known?.signature === signature) return known.value;
    const id = `${signature}\0${path}`;
    let pending = this.#pending.get(id);
    if (pending === undefined) {
      pending = compute(path)
        .then((value) => {
          // The file may change while it is read; the signature from before keeps that safe.
          entries[path] = {signature, value};
          this.#store.touched();
          return value;
        })
        .finally(() => this.#pending.delete(id));
      this.#pending.set(id, pending);
    }
    return pending;
  }

  /** Records a fact just established about a file. */
  async set(path: string, value: string): Promise<void> {
    (await this.#store.entries())[path] = {signature: await fileSignature(path), value};
    this.#store.touched();
  }

  async forget(path: string): Promise<void> {
    delete (await this.#store.entries())[path];
    this.#store.touched();
  }

  flush(): Promise<void> {
    return this.#store.flush();
  }
}

/** A small persistent string map (facts keyed by digest). */
export class KeyValueMemo {
  readonly #store: JsonFile<string>;

  constructor(file: string) {
    this.#store = new JsonFile(file);
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.#store.entries())[key];
  }

  async set(key: string, value: string): Promise<void> {
    const entries = await this.#store.entries();
    if (entries[key] === value) return;
    entries[key] = value;
    this.#store.touched();
  }

  flush(): Promise<void> {
    return this.#store.flush();
  }
}
