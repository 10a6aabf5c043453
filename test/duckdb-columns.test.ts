/**
 * The typed-array reader of DuckDB results (tasks/lib/duckdb-columns.ts): the fast path
 * (the C API's chunks of a materialised result) and the public fallback give every value in
 * order; NULLs and wrong types are refused.
 */
import {DuckDBInstance} from '@duckdb/node-api';
import type {DuckDBConnection, DuckDBMaterializedResult} from '@duckdb/node-api';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {ColumnResult, queryColumns} from '../tasks/lib/duckdb-columns.js';

let instance: DuckDBInstance;
let conn: DuckDBConnection;

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
});

afterAll(() => {
  conn.closeSync();
  instance.closeSync();
});

// 5,000 rows: several chunks of 2,048 and a partial one.
const SQL = 'SELECT CAST(i % 7 AS UINTEGER) AS tag, i / 3.0 AS x FROM range(5000) t(i) ORDER BY i';
const KINDS = ['uint32', 'double'] as const;

async function collect(result: ColumnResult<typeof KINDS>) {
  const tags: number[] = [];
  const values: number[] = [];
  const rows = await result.forEachChunk((size, [t, x]) => {
    for (let i = 0; i < size; i++) {
      tags.push(t[i]!);
      values.push(x[i]!);
    }
  });
  return {rows, tags, values};
}

describe('ColumnResult', () => {
  it('reads every value in order through the C API chunks', async () => {
    const {rows, tags, values} = await collect(await queryColumns(conn, SQL, KINDS));
    expect(rows).toBe(5000);
    expect(tags).toEqual(Array.from({length: 5000}, (_, i) => i % 7));
    expect(values).toEqual(Array.from({length: 5000}, (_, i) => i / 3));
  });

  it('reads the same through the public fetchChunk when the result handle is not exposed', async () => {
    const materialized = await conn.run(SQL);
    const hidden = new Proxy(materialized, {
      get: (target, key) => {
        if (key === 'result') return undefined;
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as DuckDBMaterializedResult;
    const fallback = await collect(new ColumnResult(hidden, KINDS));
    const fast = await collect(await queryColumns(conn, SQL, KINDS));
    expect(fallback).toEqual(fast);
  });

  it('reads the same from a streamed result (what large sorts use, to keep memory bounded)', async () => {
    const streamed = await collect(await queryColumns(conn, SQL, KINDS, 'streamed'));
    const fast = await collect(await queryColumns(conn, SQL, KINDS));
    expect(streamed).toEqual(fast);
  });

  it('stops early when the signal aborts', async () => {
    const controller = new AbortController();
    const result = await queryColumns(conn, SQL, KINDS);
    let chunks = 0;
    await result.forEachChunk(() => {
      chunks++;
      controller.abort();
    }, controller.signal);
    expect(chunks).toBe(1);
  });

  it('refuses NULLs and columns of another type', async () => {
    const nulls = await queryColumns(conn, 'SELECT CAST(1 AS UINTEGER) AS tag, CASE WHEN i = 3 THEN NULL ELSE i END::DOUBLE AS x FROM range(10) t(i)', KINDS);
    await expect(nulls.forEachChunk(() => undefined)).rejects.toThrow('column 1 contains NULL');
    await expect(queryColumns(conn, 'SELECT 1 AS tag, 2.5::DOUBLE AS x', KINDS)).rejects.toThrow('column 0 (tag) must be UINTEGER, is INTEGER');
    await expect(queryColumns(conn, 'SELECT CAST(1 AS UINTEGER) AS tag', KINDS)).rejects.toThrow('expected 2 columns, the query returns 1');
  });
});
