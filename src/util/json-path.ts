/** Reading and writing nested values by path (`['validation', 'tolerance', 'abs']`). */

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** The value at `path`, or undefined when any step is missing. */
export function getPath(value: unknown, path: readonly (string | number)[]): unknown {
  let node = value;
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[String(segment)];
  }
  return node;
}

/** Whether every step of `path` exists. */
export function hasPath(value: unknown, path: readonly (string | number)[]): boolean {
  let node = value;
  for (const segment of path) {
    if (node === null || typeof node !== 'object' || !(String(segment) in node)) return false;
    node = (node as Record<string, unknown>)[String(segment)];
  }
  return true;
}

/** Sets the value at `path`, creating objects on the way. */
export function setPath<T>(target: Record<string, T | Record<string, unknown>>, path: readonly string[], value: T): void {
  let node = target as Record<string, unknown>;
  for (const segment of path.slice(0, -1)) {
    const next = node[segment];
    node = isRecord(next) ? next : (node[segment] = {});
  }
  node[path[path.length - 1]!] = value;
}
