/**
 * A parsed YAML (or JSON) file that remembers where every value came from, so that a
 * problem found later can point at `file:line:column`.
 */
import {readFileSync} from 'node:fs';
import {relative} from 'node:path';
import {isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument} from 'yaml';
import type {Document, Node} from 'yaml';
import type {Diagnostic, Location} from './diagnostics.js';

/** A path into a value: keys and list indexes. */
export type ValuePath = readonly (string | number)[];

/** A parsed document, its plain value, and positions for every path in it. */
export class YamlSource {
  readonly file: string;
  readonly value: unknown;
  readonly diagnostics: Diagnostic[] = [];
  readonly #document: Document.Parsed;
  readonly #lines: LineCounter;

  private constructor(file: string, text: string) {
    this.file = file;
    this.#lines = new LineCounter();
    this.#document = parseDocument(text, {lineCounter: this.#lines, prettyErrors: false, uniqueKeys: true});
    const json = /\.json$/i.test(file);
    for (const error of this.#document.errors) {
      const [start] = error.pos;
      this.diagnostics.push({
        location: this.#at(start),
        message: `Invalid ${json ? 'JSON' : 'YAML'}: ${error.message.split('\n')[0]}`,
      });
    }
    // YAML reads more than JSON allows (a trailing comma, comments): a .json file is held to JSON.
    if (this.diagnostics.length === 0 && json) {
      try {
        JSON.parse(text);
      } catch (error: unknown) {
        const message = (error as Error).message;
        const position = /at position (\d+)/.exec(message);
        this.diagnostics.push({
          location: this.#at(position === null ? 0 : Number(position[1])),
          message: `Invalid JSON: ${message.replace(/ in JSON at position \d+.*$/s, '')}`,
        });
      }
    }
    this.value = this.diagnostics.length === 0 ? this.#document.toJS({maxAliasCount: 100}) : undefined;
  }

  /** Parses `text`; `file` names it in messages (shown relative to the working directory). */
  static parse(file: string, text: string): YamlSource {
    return new YamlSource(file, text);
  }

  static read(path: string): YamlSource {
    return new YamlSource(relative(process.cwd(), path) || path, readFileSync(path, 'utf8'));
  }

  /** The position of the value at `path`, or of its nearest ancestor present in the file. */
  locate(path: ValuePath): Location {
    return this.#at(this.#find(path, 'value'));
  }

  /** The position of the key of the entry at `path` (for unknown keys). */
  locateKey(path: ValuePath): Location {
    return this.#at(this.#find(path, 'key'));
  }

  /** Whether the file sets a value at `path`. */
  has(path: ValuePath): boolean {
    return this.#node(path) !== undefined;
  }

  #node(path: ValuePath): Node | undefined {
    let node: unknown = this.#document.contents;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (pair === undefined) return undefined;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
      } else {
        return undefined;
      }
    }
    return isNode(node) ? node : undefined;
  }

  #find(path: ValuePath, want: 'key' | 'value'): number {
    let node: unknown = this.#document.contents;
    let offset = isNode(node) ? (node.range?.[0] ?? 0) : 0;
    for (const [index, segment] of path.entries()) {
      const last = index === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (!isPair(pair)) return offset;
        const key = pair.key;
        if (last && want === 'key' && isNode(key)) return key.range?.[0] ?? offset;
        node = pair.value;
        offset = isNode(node) ? (node.range?.[0] ?? offset) : isNode(key) ? (key.range?.[0] ?? offset) : offset;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
        if (!isNode(node)) return offset;
        offset = node.range?.[0] ?? offset;
      } else {
        return offset;
      }
    }
    return offset;
  }

  #at(offset: number): Location {
    const {line, col} = this.#lines.linePos(offset);
    return {source: this.file, line, column: col};
  }
}
