/** Canonical JSON and the digests built on it. */
import {createHash} from 'node:crypto';
import {createReadStream} from 'node:fs';

/** A hex SHA-256 digest of file or blob content. */
export type ContentDigest = string & {readonly __brand: 'ContentDigest'};

/**
 * JSON with object keys sorted at every level, so equal values always give equal text.
 * Non-finite numbers are written as strings: JSON has no NaN, and `null` would mix them up.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Files are read in 1 MiB pieces (64 KiB by default): fewer, larger buffers to hash and collect. */
export const READ_CHUNK = 1 << 20;

/** Streams a file through SHA-256. */
export async function digestFile(path: string): Promise<ContentDigest> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, {highWaterMark: READ_CHUNK})) hash.update(chunk as Buffer);
  return hash.digest('hex') as ContentDigest;
}
