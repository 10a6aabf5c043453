/**
 * The memo of file digests: an unchanged file is not read again, a changed one is, and
 * callers asking at the same moment (both extractions probing one database) share one read.
 */
import {writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {StatMemo} from '../src/cache/stat-memo.js';
import {digestFile} from '../src/util/hash.js';
import {temporaryFolder} from './support/temp.js';

function counting(): {compute: (path: string) => Promise<string>; calls: string[]} {
  const calls: string[] = [];
  return {
    calls,
    compute: async (path) => {
      calls.push(path);
      return digestFile(path);
    },
  };
}

describe('StatMemo', () => {
  it('reads a file once for callers asking at the same moment, and not again while it is unchanged', async () => {
    const dir = temporaryFolder('stat-memo-');
    const file = join(dir, 'source.duckdb');
    writeFileSync(file, 'x'.repeat(3 << 20));
    const memo = new StatMemo(join(dir, 'memo.json'));
    const {compute, calls} = counting();

    const [a, b, c] = await Promise.all([memo.get(file, compute), memo.get(file, compute), memo.get(file, compute)]);
    expect(calls).toEqual([file]);
    expect(new Set([a, b, c]).size).toBe(1);
    expect(a).toBe(await digestFile(file));

    await memo.flush();
    const reloaded = new StatMemo(join(dir, 'memo.json'));
    expect(await reloaded.get(file, compute)).toBe(a);
    expect(calls).toHaveLength(1);

    writeFileSync(file, 'y'.repeat(3 << 20));
    const changed = await reloaded.get(file, compute);
    expect(calls).toHaveLength(2);
    expect(changed).not.toBe(a);
    expect(changed).toBe(await digestFile(file));
  });

  it('a failed read fails every caller waiting on it and is tried again by the next', async () => {
    const dir = temporaryFolder('stat-memo-');
    const file = join(dir, 'source.duckdb');
    writeFileSync(file, 'content');
    const memo = new StatMemo(join(dir, 'memo.json'));
    let attempts = 0;
    const failing = async () => {
      attempts++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw new Error('EIO: i/o error, read');
    };
    const results = await Promise.allSettled([memo.get(file, failing), memo.get(file, failing)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(attempts).toBe(1);
    expect(await memo.get(file, digestFile)).toBe(await digestFile(file));
  });
});
