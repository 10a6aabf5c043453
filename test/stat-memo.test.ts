/**
 * The memo of file digests: an unchanged file is not read again, a changed one is, and
 * callers asking at the same moment (both extractions probing one database) share one read.
 * Task modules' code digests are remembered the same way.
 */
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {StatMemo} from '../src/cache/stat-memo.js';
import {ModuleDigests} from '../src/task-modules.js';
import {digestFile, sha256} from '../src/util/hash.js';
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

describe('ModuleDigests with a memo', () => {
  it('takes an unchanged module from the memo, reads an edited one, and resolves imports afresh each run', async () => {
    const dir = temporaryFolder('module-memo-');
    mkdirSync(join(dir, 'tasks', 'lib'), {recursive: true});
    const task = join(dir, 'tasks', 'a.ts');
    writeFileSync(task, "import {helper} from './lib/helper.js';\nexport default {run: helper};\n");
    writeFileSync(join(dir, 'tasks', 'lib', 'helper.ts'), 'export const helper = () => 1;\n');
    const memoFile = join(dir, 'module-files.json');
    const first = new StatMemo(memoFile);
    const digests = await new ModuleDigests(dir, first).of(task);
    expect(digests).toEqual({'tasks/a.ts': sha256(readFileSync(task, 'utf8')), 'tasks/lib/helper.ts': sha256('export const helper = () => 1;\n')});
    await first.flush();

    // The next run believes the memo while the file's signature holds: what it remembers is
    // what it reports (so the file was not read)...
    const remembered = JSON.parse(readFileSync(memoFile, 'utf8')) as Record<string, {signature: string; value: string}>;
    const facts = JSON.parse(remembered[task]!.value) as Record<string, unknown>;
    remembered[task]!.value = JSON.stringify({...facts, digest: 'remembered'});
    writeFileSync(memoFile, JSON.stringify(remembered));
    expect((await new ModuleDigests(dir, new StatMemo(memoFile)).of(task))['tasks/a.ts']).toBe('remembered');
    // ...unless it was found by another way of finding imports (before an upgrade): read again.
    remembered[task]!.value = JSON.stringify({...facts, digest: 'remembered', scanner: 'older'});
    writeFileSync(memoFile, JSON.stringify(remembered));
    expect((await new ModuleDigests(dir, new StatMemo(memoFile)).of(task))['tasks/a.ts']).toBe(sha256(readFileSync(task, 'utf8')));

    // ...and reads it again once it is edited; a helper that now resolves elsewhere is followed.
    writeFileSync(task, "import {helper} from './lib/other.js';\nexport default {run: helper};\n");
    writeFileSync(join(dir, 'tasks', 'lib', 'other.ts'), 'export const helper = () => 2;\n');
    expect(await new ModuleDigests(dir, new StatMemo(memoFile)).of(task)).toEqual({
      'tasks/a.ts': sha256(readFileSync(task, 'utf8')),
      'tasks/lib/other.ts': sha256('export const helper = () => 2;\n'),
    });
  });
});
