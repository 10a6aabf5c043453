/**
 * File globs with DuckDB's syntax (`*`, `?`, `[a-z]`, `**` for any depth of folders),
 * expanded in Node rather than by DuckDB so that the freshness probe can list and digest the
 * matched files without loading DuckDB, and the extraction then reads exactly that list.
 */
import {readdir, stat} from 'node:fs/promises';
import {isAbsolute, join, sep} from 'node:path';

/** True when the path has glob characters and must be expanded. */
export function isGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/** The regular files an absolute glob matches, sorted (byte order, as DuckDB sorts them). */
export async function expandGlob(pattern: string): Promise<string[]> {
  if (!isAbsolute(pattern)) throw new TypeError(`expandGlob needs an absolute pattern, got ${pattern}`);
  const segments = pattern.split(sep).filter((segment) => segment.length > 0);
  // Start below the longest prefix that has no glob characters: no need to list it.
  let literal = 0;
  while (literal < segments.length - 1 && !isGlob(segments[literal]!)) literal++;
  const root = sep + segments.slice(0, literal).join(sep);
  const matches = new Set<string>();
  await walk(root, segments.slice(literal), matches);
  return [...matches].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function walk(dir: string, rest: readonly string[], matches: Set<string>): Promise<void> {
  const [segment, ...tail] = rest;
  if (segment === undefined) {
    if (await isFile(dir)) matches.add(dir);
    return;
  }
  if (segment === '**') {
    await walk(dir, tail, matches);
    // Real folders only (Dirent does not follow symlinks), so a link cycle cannot loop.
    for (const entry of await list(dir)) {
      if (entry.isDirectory()) await walk(join(dir, entry.name), rest, matches);
    }
    return;
  }
  if (!isGlob(segment)) {
    await walk(join(dir, segment), tail, matches);
    return;
  }
  const regex = segmentRegex(segment);
  for (const entry of await list(dir)) {
    if (regex.test(entry.name)) await walk(join(dir, entry.name), tail, matches);
  }
}

async function list(dir: string) {
  try {
    return await readdir(dir, {withFileTypes: true});
  } catch (error: unknown) {
    // A folder that does not exist (or is a file) simply matches nothing.
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return [];
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (error: unknown) {
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return false;
    throw error;
  }
}

/** One path segment's pattern as an anchored regular expression. */
function segmentRegex(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const char = segment[i]!;
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close === -1) {
        source += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      const negated = body.startsWith('!') || body.startsWith('^');
      if (negated) body = body.slice(1);
      source += `[${negated ? '^' : ''}${body.replaceAll('\\', '\\\\').replaceAll(']', '\\]')}]`;
      i = close;
    } else source += char.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'u');
}

/** True when `error` is a Node system error with this code. */
export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
