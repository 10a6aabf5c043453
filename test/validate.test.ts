/**
 * The validate task on small hand-written versions whose every count is known by
 * construction: keys, nulls and NaN, tolerances, schema drift, rules and verdicts.
 */
import {describe, expect, it} from 'vitest';
import {DuckDBInstance} from '@duckdb/node-api';
import {ConfigurationError} from '../src/errors.js';
import {COUNTS_BATCH_COLUMNS, DUPLICATES_PART_ROWS, DUPLICATES_TABLE, duplicatesSql, planComparison} from '../tasks/lib/compare-sql.js';
import {whatChanged} from '../tasks/validate.js';
import {compareVersions, runValidate, validateSettings, writeVersions} from './support/validate-fixtures.js';

const MISMATCH_HEADER = 'column,old_value,new_value,abs_diff,rel_diff';

describe('keys', () => {
  it('counts matched, added and removed keys and lists them in order', async () => {
    const run = await compareVersions(
      `SELECT i AS id, i * 1.5 AS v FROM range(1, 6) t(i)`,
      `SELECT i AS id, i * 1.5 AS v FROM range(7, 2, -1) t(i)`, // 7..3, written out of order
    );
    expect(run.json.rows).toEqual({old: 5, new: 5});
    expect(run.json.keys).toEqual({matched: 3, added: 2, removed: 2, duplicated_old: 0, duplicated_new: 0});
    expect(run.json.compared_rows).toBe(3);
    expect(run.json.changed_rows).toBe(0);
    expect(run.json.difference_score).toBeCloseTo(1 - 3 / 5, 12);
    expect(run.files['added_keys.csv']).toBe('id\n6\n7\n');
    expect(run.files['removed_keys.csv']).toBe('id\n1\n2\n');
    expect(run.files['mismatches.csv']).toBe(`id,${MISMATCH_HEADER}\n`);
    expect(run.files['duplicate_keys.csv']).toBe('id,count_old,count_new\n');
    expect(run.result.highlights).toEqual(['0 of 3 compared rows changed (0%); 2 keys added, 2 removed']);
  });

  it('says what changed in one line: rows, the columns most changed, keys', () => {
    const columns = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).map(([name, changed]) => [name, {changed}])) as never;
    const keys = (added: number, removed: number) => ({matched: 0, added, removed, duplicated_old: 0, duplicated_new: 0});
    expect(whatChanged({compared_rows: 994_852, changed_rows: 16_014, keys: keys(4_974, 1), columns: columns({a: 3, p3: 6_002, p1: 10_012, label: 0, b: 3, c: 1})})).toBe(
      '16,014 of 994,852 compared rows changed (1.61%), most in p1 (10,012), p3 (6,002), a (3) and 2 more columns; 4,974 keys added, 1 removed',
    );
    expect(whatChanged({compared_rows: 10, changed_rows: 1, keys: keys(1, 0), columns: columns({x: 1, y: 0})})).toBe('1 of 10 compared rows changed (10%), most in x (1); 1 key added, 0 removed');
    expect(whatChanged({compared_rows: 0, changed_rows: 0, keys: keys(5, 5), columns: columns({x: 0})})).toBe('no key is in both versions, nothing to compare; 5 keys added, 5 removed');
    expect(whatChanged({compared_rows: 0, changed_rows: 0, keys: {...keys(0, 0), matched: 100}, columns: columns({x: 0})})).toBe(
      'every key in both versions is duplicated in one of them (100), nothing to compare; 0 keys added, 0 removed',
    );
  });

  it('counts keys duplicated in either version, lists them, and leaves them out of the comparison', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 'a'), (2, 'b'), (2, 'b2'), (3, 'c'), (4, 'd'), (4, 'd2'), (4, 'd3')) t(id, v)`,
      `FROM (VALUES (1, 'a'), (2, 'b'), (3, 'x'), (3, 'y'), (5, 'e'), (5, 'e2'), (6, 'f')) t(id, v)`,
    );
    // 2 and 4 repeat in the old version, 3 and 5 in the new; 3 differs but is not compared.
    expect(run.json.keys).toEqual({matched: 3, added: 2, removed: 1, duplicated_old: 2, duplicated_new: 2});
    expect(run.json.compared_rows).toBe(1);
    expect(run.json.changed_rows).toBe(0);
    expect(run.json.columns.v.changed).toBe(0);
    expect(run.files['duplicate_keys.csv']).toBe('id,count_old,count_new\n2,2,1\n3,1,2\n4,3,0\n5,0,2\n');
    expect(run.files['added_keys.csv']).toBe('id\n5\n6\n');
    expect(run.files['removed_keys.csv']).toBe('id\n4\n');
    expect(run.files['mismatches.csv']).toBe(`id,${MISMATCH_HEADER}\n`);
    expect(run.json.difference_score).toBeCloseTo(1 - 1 / 7, 12);
  });

  it('finds duplicate keys in parts over many rows: each key in the same part in both versions, however typed', async () => {
    // 2.6M rows a version (over DUPLICATES_PART_ROWS in all: two parts); the key is BIGINT in
    // the old version and INTEGER in the new, and every duplicated key is in both versions,
    // so a count from the wrong part would show.
    expect(2 * 2_600_000).toBeGreaterThan(DUPLICATES_PART_ROWS);
    const run = await compareVersions(
      `SELECT i AS id, i % 7 AS v FROM range(2600000) t(i) UNION ALL SELECT i, i % 7 FROM (VALUES (7), (1000007), (2000007), (42)) d(i)`,
      `SELECT CAST(i AS INTEGER) AS id, i % 7 AS v FROM range(2600000) t(i) UNION ALL SELECT i, i % 7 FROM (VALUES (11), (500011), (2500011), (42), (42)) d(i)`,
    );
    expect(run.progress.map((p) => p.message)).toContain('finding duplicate keys (part 2 of 2)');
    expect(run.files['duplicate_keys.csv']).toBe('id,count_old,count_new\n7,2,1\n11,1,2\n42,2,3\n500011,1,2\n1000007,2,1\n2000007,2,1\n2500011,1,2\n');
    expect(run.json.keys).toEqual({matched: 2_600_000, added: 0, removed: 0, duplicated_old: 4, duplicated_new: 4});
    expect(run.json.compared_rows).toBe(2_600_000 - 7);
  });

  it('gives the same duplicate-key table in any number of parts, for composite, text and retyped keys', async () => {
    const versions = await writeVersions(
      `FROM (VALUES (1, 'a', 1.0), (1, 'a', 2.0), (1, 'b', 3.0), (2, 'a', 4.0), (2, 'a', 5.0), (2, 'a', 6.0), (3, 'c', 7.0), (4, 'd', 8.0)) t(n, s, v)`,
      `FROM (VALUES (1.0, 'a', 1.0), (1.0, 'b', 2.0), (1.0, 'b', 3.0), (2.0, 'a', 4.0), (3.0, 'c', 5.0), (3.0, 'c', 6.0), (5.0, 'e', 7.0), (5.0, 'e', 8.0)) t(n, s, v)`,
    );
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      const schema = async (path: string) =>
        (await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${path}')`)).getRowObjectsJson().map((r) => ({name: String(r['column_name']), type: String(r['column_type'])}));
      const plan = planComparison({
        dialect: 'duckdb',
        sources: versions,
        keys: ['n', 's'],
        columns: null,
        tolerance: {abs: 0, rel: 0, columns: {}},
        schemaOld: await schema(versions.old),
        schemaNew: await schema(versions.new),
      });
      expect(plan.keys[0]).toMatchObject({retyped: true, asText: false});
      const table = async (parts: number) => {
        for (const statement of duplicatesSql(plan, parts)) await connection.run(statement.sql, statement.params);
        return (await connection.runAndReadAll(`SELECT k0, k1, n_old, n_new FROM ${DUPLICATES_TABLE} ORDER BY k0, k1`)).getRowsJson();
      };
      // (1, a) twice in the old version, (1, b) and (3, c) in the new, (2, a) three times in the old, (5, e) only in the new.
      const expected = [[1, 'a', 2, 1], [1, 'b', 1, 2], [2, 'a', 3, 1], [3, 'c', 1, 2], [5, 'e', 0, 2]].map(([n, k, o, c]) => [n, k, String(o), String(c)]);
      for (const parts of [1, 2, 3, 7]) expect((await table(parts)).map(([k0, ...rest]) => [Number(k0), ...rest])).toEqual(expected);
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });

  it('matches composite keys on every part and reports rows with a null key part', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 'x', 10), (1, 'y', 20), (2, 'x', 30), (NULL, 'x', 40), (3, NULL, 50)) t(a, b, v)`,
      `FROM (VALUES (1, 'x', 10), (1, 'y', 21), (2, 'y', 30), (NULL, NULL, 60)) t(a, b, v)`,
      {keys: ['a', 'b']},
    );
    expect(run.json.null_keys).toEqual({old: 2, new: 1});
    expect(run.json.keys).toEqual({matched: 2, added: 1, removed: 1, duplicated_old: 0, duplicated_new: 0});
    expect(run.json.compared_rows).toBe(2);
    expect(run.json.changed_rows).toBe(1);
    expect(run.json.difference_score).toBeCloseTo(1 - 1 / 5, 12);
    expect(run.files['added_keys.csv']).toBe('a,b\n2,y\n');
    expect(run.files['removed_keys.csv']).toBe('a,b\n2,x\n');
    expect(run.files['mismatches.csv']).toBe(`a,b,${MISMATCH_HEADER}\n1,y,v,20,21,1.0,0.05\n`);
  });

  it('handles column names that look like its own working names', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 'b', 1, 'x'), (1, 'a', 2, 'y'), (2, 'a', 3, 'z')) t("k1", "k0", "o0", "in_old")`,
      `FROM (VALUES (1, 'b', 1, 'x'), (1, 'a', 5, 'y'), (3, 'a', 3, 'z')) t("k1", "k0", "o0", "in_old")`,
      {keys: ['k1', 'k0']},
    );
    expect(run.json.keys).toMatchObject({matched: 2, added: 1, removed: 1});
    expect(run.files['mismatches.csv']).toBe(`k1,k0,${MISMATCH_HEADER}\n1,a,o0,2,5,3.0,1.5\n`);
    expect(run.files['removed_keys.csv']).toBe('k1,k0\n2,a\n');
  });

  it('quotes every name, however odd', async () => {
    const run = await compareVersions(
      `SELECT 1 AS "the ""id""", 1.5 AS "it's a value; DROP TABLE x"`,
      `SELECT 1 AS "the ""id""", 2.5 AS "it's a value; DROP TABLE x"`,
      {keys: ['the "id"']},
    );
    expect(run.json.columns["it's a value; DROP TABLE x"].changed).toBe(1);
    expect(run.files['mismatches.csv']).toBe(`"the ""id""",${MISMATCH_HEADER}\n1,it's a value; DROP TABLE x,1.5,2.5,1.0,0.6666666666666666\n`);
  });

  it('is a configuration error when a key column is missing', async () => {
    const versions = await writeVersions(`SELECT 1 AS id, 2 AS v`, `SELECT 1 AS id, 2 AS v`);
    const run = runValidate(versions, validateSettings({keys: ['entity']}));
    await expect(run).rejects.toBeInstanceOf(ConfigurationError);
    await expect(run).rejects.toThrow('Key column "entity" (source.keys[0]) is not in either version');
  });
});

describe('nulls and NaN', () => {
  const old = `FROM (VALUES (1, NULL), (2, NULL), (3, '1'), (4, 'nan'), (5, 'nan'), (6, 'inf'), (7, 'inf'), (8, '1'), (9, '2.5'), (10, '1'))
    t(id, x) SELECT id, x::DOUBLE AS x`;
  const neu = `FROM (VALUES (1, NULL), (2, '1'), (3, NULL), (4, 'nan'), (5, '1'), (6, 'inf'), (7, '-inf'), (8, 'nan'), (9, '2.5'), (10, '2'))
    t(id, x) SELECT id, x::DOUBLE AS x`;

  it('treats two nulls and two NaNs as equal, and null or NaN against a value as a change', async () => {
    const run = await compareVersions(old, neu);
    // Changed: 2 (null->1), 3 (1->null), 5 (NaN->1), 7 (inf->-inf), 8 (1->NaN), 10 (1->2).
    // A change to or from a non-finite value differs infinitely (written as text: JSON has no Infinity).
    expect(run.json.columns.x).toMatchObject({changed: 6, nulls_old: 2, nulls_new: 2, max_abs_diff: 'Infinity', max_rel_diff: 'Infinity'});
    expect(run.json.changed_rows).toBe(6);
    expect(run.files['mismatches.csv']).toBe(
      `id,${MISMATCH_HEADER}\n2,x,,1.0,,\n3,x,1.0,,,\n5,x,nan,1.0,inf,inf\n7,x,inf,-inf,inf,inf\n8,x,1.0,nan,inf,inf\n10,x,1.0,2.0,1.0,1.0\n`,
    );
  });

  it('fails a max_abs_diff rule on a change to or from Infinity or NaN, and passes NaN against NaN', async () => {
    const rules = (max: number) => ({rules: [{check: 'max_abs_diff', column: 'x', max, severity: 'error'}]});
    const infinite = await compareVersions(
      `FROM (VALUES (1, '1.0'), (2, '-inf'), (3, 'nan')) t(id, x) SELECT id, x::DOUBLE AS x`,
      `FROM (VALUES (1, 'inf'), (2, '2.0'), (3, 'nan')) t(id, x) SELECT id, x::DOUBLE AS x`,
      rules(0.5),
    );
    expect(infinite.json.rules[0]).toMatchObject({passed: false, observed: 'Infinity', message: expect.stringContaining('is Infinity, above the limit of 0.5')});
    expect(infinite.result.verdict).toBe('fail');
    const same = await compareVersions(
      `FROM (VALUES (1, 'nan'), (2, 'inf'), (3, '1.0')) t(id, x) SELECT id, x::DOUBLE AS x`,
      `FROM (VALUES (1, 'nan'), (2, 'inf'), (3, '1.25')) t(id, x) SELECT id, x::DOUBLE AS x`,
      rules(0.5),
    );
    expect(same.json.columns.x.max_abs_diff).toBe(0.25);
    expect(same.json.rules[0]).toMatchObject({passed: true});
  });

  it('never lets a tolerance absorb nulls, NaN or infinities', async () => {
    const run = await compareVersions(old, neu, {tolerance: {abs: 1e9, rel: 1, columns: {}}});
    expect(run.json.columns.x.changed).toBe(5); // only 10 (1 -> 2) is now within tolerance
  });

  it('compares strings, booleans, dates and timestamps exactly, whatever the tolerance', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 'a', true, DATE '2024-01-01', TIMESTAMP '2024-01-01 10:00:00'),
                    (2, 'a', true, DATE '2024-01-01', TIMESTAMP '2024-01-01 10:00:00'),
                    (3, '', NULL, NULL, TIMESTAMP '2024-01-01 10:00:00')) t(id, s, b, d, ts)`,
      `FROM (VALUES (1, 'a', true, DATE '2024-01-01', TIMESTAMP '2024-01-01 10:00:00'),
                    (2, 'A', false, DATE '2024-01-02', TIMESTAMP '2024-01-01 10:00:00.000001'),
                    (3, NULL, NULL, DATE '2024-01-01', TIMESTAMP '2024-01-01 10:00:00')) t(id, s, b, d, ts)`,
      {tolerance: {abs: 1000, rel: 1, columns: {}}},
    );
    const changed = Object.fromEntries(Object.entries(run.json.columns).map(([name, c]: [string, any]) => [name, c.changed]));
    expect(changed).toEqual({s: 2, b: 1, d: 2, ts: 1});
    expect(run.json.columns.s).toMatchObject({kind: 'exact', max_abs_diff: null, tolerance: null, nulls_old: 0, nulls_new: 1});
    expect(run.json.changed_rows).toBe(2);
    expect(run.files['mismatches.csv']).toBe(
      `id,${MISMATCH_HEADER}\n` +
        '2,s,a,A,,\n2,b,true,false,,\n2,d,2024-01-01,2024-01-02,,\n2,ts,2024-01-01 10:00:00,2024-01-01 10:00:00.000001,,\n' +
        '3,s,"",,,\n3,d,,2024-01-01,,\n',
    );
  });
});

describe('tolerance', () => {
  it('counts a number as changed only beyond abs + rel * |old|, with per-column overrides', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 1.0, 1.0, 10.0, 1), (2, 1.0, 1.0, 10.0, 1), (3, 1.0, 2.0, 0.0, 5), (4, 100.0, 2.0, 5.0, 5), (5, 1.0, 2.0, 5.0, 5))
        t(id, x, y, r, z) SELECT id, x::DOUBLE AS x, y::DOUBLE AS y, r::DOUBLE AS r, z::INTEGER AS z`,
      `FROM (VALUES (1, 1.1, 1.5, 11.0, 1), (2, 1.2, 1.6, 11.5, 2), (3, 0.9, 2.0, 0.0001, 5), (4, 100.1, 2.0, 5.0, 5), (5, 1.1000001, 2.0, 5.0, 5))
        t(id, x, y, r, z) SELECT id, x::DOUBLE AS x, y::DOUBLE AS y, r::DOUBLE AS r, z::INTEGER AS z`,
      {tolerance: {abs: 0.1, rel: 0, columns: {y: {abs: 0.5}, r: {abs: 0, rel: 0.1}}}},
    );
    // Exactly at the tolerance is not a change: x 1.0 -> 1.1 and 1.0 -> 0.9, y 1.0 -> 1.5, r 10 -> 11.
    expect(run.json.columns.x).toMatchObject({changed: 2, tolerance: {abs: 0.1, rel: 0}});
    expect(run.json.columns.y).toMatchObject({changed: 1, tolerance: {abs: 0.5, rel: 0}});
    expect(run.json.columns.r).toMatchObject({changed: 2, tolerance: {abs: 0, rel: 0.1}});
    expect(run.json.columns.z).toMatchObject({changed: 1, type: 'INTEGER'});
    expect(run.json.changed_rows).toBe(3);
    expect(run.json.columns.x.max_abs_diff).toBeCloseTo(0.2, 12);
    expect(run.json.tolerance).toEqual({abs: 0.1, rel: 0, columns: {y: {abs: 0.5}, r: {abs: 0, rel: 0.1}}});
  });

  it('keeps the rounding it forgives to the last digits: large values, big integers and overflowing differences still change', async () => {
    // Each column changes by more than its tolerance of 0.1 (1 at 1e15, 5 between integers
    // past 2^53, 2e308 between the ends of the DOUBLE range), and w, i and u do not.
    const run = await compareVersions(
      `FROM (VALUES (1, 1e15, 1e308, 100000000000000000, 1.1, 100, 0.3)) t(id, x, y, b, w, i, u)
        SELECT id, x::DOUBLE AS x, y::DOUBLE AS y, b::BIGINT AS b, w::DOUBLE AS w, i::BIGINT AS i, u::DOUBLE AS u`,
      `FROM (VALUES (1, 1e15 + 1, -1e308, 100000000000000005, 1.2, 129, 0.6)) t(id, x, y, b, w, i, u)
        SELECT id, x::DOUBLE AS x, y::DOUBLE AS y, b::BIGINT AS b, w::DOUBLE AS w, i::BIGINT AS i, u::DOUBLE AS u`,
      {tolerance: {abs: 0.1, rel: 0, columns: {i: {abs: 0, rel: 0.29}, u: {abs: 0.3, rel: 0}}}},
    );
    const changed = Object.fromEntries(Object.entries(run.json.columns).map(([name, c]: [string, any]) => [name, c.changed]));
    expect(changed).toEqual({x: 1, y: 1, b: 1, w: 0, i: 0, u: 0});
    expect(run.json.columns.b.max_abs_diff).toBe(5);
    expect(run.json.columns.x.max_abs_diff).toBe(1);
    expect(run.files['mismatches.csv']).toBe(
      `id,${MISMATCH_HEADER}\n1,x,1000000000000000.0,1000000000000001.0,1.0,1e-15\n1,y,1e+308,-1e+308,inf,inf\n1,b,100000000000000000,100000000000000005,5.0,5e-17\n`,
    );
  });

  it('forgives the rounding of each value into a double, no more: at 1.7e15 (a unit in the last place is 0.25) a change of 1 exceeds a tolerance of 0.5', async () => {
    const base = 1.7e15;
    const changes = [0.5, 0.75, 1, 1.75];
    const rows = (offset: (change: number) => number) => changes.map((change, id) => `(${id}, ${base + offset(change)})`).join(', ');
    const run = await compareVersions(
      `FROM (VALUES ${rows(() => 0)}) t(id, x) SELECT id, x::DOUBLE AS x`,
      `FROM (VALUES ${rows((change) => change)}) t(id, x) SELECT id, x::DOUBLE AS x`,
      {tolerance: {abs: 0.5, rel: 0, columns: {}}},
    );
    // Exactly at the tolerance is no change, nor 0.75: two values rounded by an eighth each may
    // make 0.5 read as 0.75. 1 and 1.75 are changes (both were forgiven before).
    expect(run.json.columns.x.changed).toBe(2);
    expect(run.files['mismatches.csv']!.split('\n').slice(1, -1).map((line) => line.split(',')[0])).toEqual(['2', '3']);
  });

  it('takes differences of DECIMALs exactly (HUGEINTs travel as DECIMAL(38,0)): changes past a double\'s digits survive a tolerance', async () => {
    // Each changes by more than the tolerance of 1e-9 (50 at 1.2e17, 1 at 1.2e22, 1e-8 at
    // 1.2e7), which doubles would round away; q moves by exactly its tolerance of 0.1 (no change).
    const run = await compareVersions(
      `SELECT 1 AS id, 123456789012345678::DECIMAL(18,0) AS d, 12345678901234567890123::DECIMAL(38,0) AS h, 12345678.1234567891::DECIMAL(18,10) AS f, 1.10::DECIMAL(4,2) AS q`,
      `SELECT 1 AS id, 123456789012345728::DECIMAL(18,0) AS d, 12345678901234567890124::DECIMAL(38,0) AS h, 12345678.1234567991::DECIMAL(18,10) AS f, 1.20::DECIMAL(4,2) AS q`,
      {tolerance: {abs: 1e-9, rel: 0, columns: {q: {abs: 0.1}}}},
    );
    const columns = run.json.columns;
    expect(Object.fromEntries(['d', 'h', 'f', 'q'].map((c) => [c, columns[c].changed]))).toEqual({d: 1, h: 1, f: 1, q: 0});
    expect([columns.d.max_abs_diff, columns.h.max_abs_diff, columns.q.max_abs_diff]).toEqual([50, 1, 0.1]);
    expect(columns.f.max_abs_diff).toBeCloseTo(1e-8, 20);
    expect(run.files['mismatches.csv']).toContain('1,h,12345678901234567890123,12345678901234567890124,1.0,');
  });

  it('counts every column of a wide table, in batches, each with its own tolerance', async () => {
    // Past COUNTS_BATCH_COLUMNS the counts take several statements. c<j> moves by move(j) on
    // the ids that are multiples of j + 2; c10 (first statement) and c55 on (the second)
    // tolerate 1.5 and 0.6, which absorbs their moves; every other column tolerates nothing.
    const width = COUNTS_BATCH_COLUMNS + 12;
    const move = (j: number) => (j >= 55 ? 0.5 : (j + 1) / 10);
    const tolerated = (j: number) => j === 10 || j >= 55;
    const column = (j: number, moved: boolean) => `(i % 7)::DOUBLE${moved ? ` + CASE WHEN i % ${j + 2} = 0 THEN ${move(j)} ELSE 0 END` : ''} AS c${j}`;
    const version = (moved: boolean) => `SELECT i AS id, ${Array.from({length: width}, (_, j) => column(j, moved)).join(', ')} FROM range(1, 301) t(i)`;
    const columns = Object.fromEntries(Array.from({length: width}, (_, j) => j).filter(tolerated).map((j) => [`c${j}`, {abs: j === 10 ? 1.5 : 0.6}]));
    const run = await compareVersions(version(false), version(true), {tolerance: {abs: 0, rel: 0, columns}});
    for (let j = 0; j < width; j++) {
      expect(run.json.columns[`c${j}`], `c${j}`).toMatchObject({changed: tolerated(j) ? 0 : Math.floor(300 / (j + 2))});
      expect(run.json.columns[`c${j}`].max_abs_diff, `c${j}`).toBeCloseTo(move(j), 9);
    }
    // The changed rows: ids that some column moved in beyond its tolerance.
    const changed = Array.from({length: 300}, (_, i) => i + 1).filter((id) => Array.from({length: width}, (_, j) => j).some((j) => !tolerated(j) && id % (j + 2) === 0));
    expect(run.json.changed_rows).toBe(changed.length);
  });

  it('compares exactly when the tolerance is zero', async () => {
    const run = await compareVersions(
      `SELECT 1 AS id, 1.0::DOUBLE AS x`,
      `SELECT 1 AS id, (1.0 + 2.220446049250313e-16)::DOUBLE AS x`,
    );
    expect(run.json.columns.x.changed).toBe(1);
  });
});

describe('schema', () => {
  it('reports added, removed and retyped columns and still compares retyped ones', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 1, '1', 1.5, 'g'), (2, 2, '01', 2.5, 'g')) t(id, a, b, c, gone) SELECT id, a::INTEGER AS a, b, c, gone`,
      `FROM (VALUES (1, 1.0, 1, 1.5, DATE '2024-01-01'), (2, 2.5, 1, 2.5, DATE '2024-01-01')) t(id, a, b, c, fresh)
        SELECT id, a::DOUBLE AS a, b::INTEGER AS b, c, fresh`,
      {rules: [{check: 'schema_unchanged', severity: 'warn'}]},
    );
    expect(run.json.schema).toEqual({
      added: [{column: 'fresh', type: 'DATE'}],
      removed: [{column: 'gone', type: 'VARCHAR'}],
      retyped: [
        {column: 'a', old: 'INTEGER', new: 'DOUBLE'},
        {column: 'b', old: 'VARCHAR', new: 'INTEGER'},
      ],
    });
    expect(Object.keys(run.json.columns)).toEqual(['a', 'b', 'c']);
    // a compares as numbers (1 = 1.0), b as text ('01' <> '1').
    expect(run.json.columns.a).toMatchObject({type: 'DOUBLE', type_old: 'INTEGER', kind: 'numeric', changed: 1});
    expect(run.json.columns.b).toMatchObject({type: 'INTEGER', type_old: 'VARCHAR', kind: 'exact', changed: 1});
    expect(run.json.rules[0]).toMatchObject({check: 'schema_unchanged', passed: false, observed: 4, limit: 0});
    expect(run.json.rules[0].message).toContain('retyped "b" (VARCHAR -> INTEGER)');
    expect(run.json.status).toBe('warn');
  });

  it('finds every change of lists and structs, those DuckDB hashes alike included ([0] and [0, 0]; NULL, [] and [NULL])', async () => {
    const pairs: [string, string][] = [
      ['[0]', '[0, 0]'],
      ['[0.0, 0.0, 0.25]', '[0.25]'],
      ['NULL', '[]'],
      ['[]', 'NULL'],
      ['[NULL]', '[]'],
      ['[1, 2]', '[1, 2]'],
    ];
    const side = (pick: 0 | 1) =>
      `FROM (VALUES ${pairs.map((pair, id) => `(${id}, ${pair[pick]}::DOUBLE[], ${pair[pick] === '[1, 2]' ? "{'a': 1, 'b': 2}" : pick === 0 ? "{'a': NULL, 'b': NULL}" : 'NULL'})`).join(', ')}) t(id, v, s) SELECT id, v, s::STRUCT(a INTEGER, b INTEGER) AS s`;
    const run = await compareVersions(side(0), side(1));
    // Every row but the last changes v, and s (a struct of NULLs against NULL).
    expect(run.json.columns.v.changed).toBe(5);
    expect(run.json.columns.s.changed).toBe(5);
    expect(run.json.changed_rows).toBe(5);
  });

  it('reports a retyped key as schema drift, while still matching its values', async () => {
    const run = await compareVersions(
      `FROM (VALUES (1, 'a'), (2, 'b')) t(id, x) SELECT id::INTEGER AS id, x`,
      `FROM (VALUES (1, 'a'), (2, 'c')) t(id, x) SELECT id::VARCHAR AS id, x`,
      {rules: [{check: 'schema_unchanged', severity: 'warn'}]},
    );
    expect(run.json.schema.retyped).toEqual([{column: 'id', old: 'INTEGER', new: 'VARCHAR'}]);
    expect(run.json.keys).toMatchObject({matched: 2, added: 0, removed: 0});
    expect(run.json.columns.x.changed).toBe(1);
    expect(run.json.rules[0]).toMatchObject({check: 'schema_unchanged', passed: false, observed: 1});
  });

  it('writes each value in mismatches.csv as its own type prints it, ordered by key then column', async () => {
    // Integers, decimals, big integers and doubles (retyped or not) sorted side by side must
    // not be widened to one type on the way: 5 stays 5, 1.10 stays 1.10, 2^53 + 1 stays exact.
    const run = await compareVersions(
      `FROM (VALUES (2, 5, 1.10, 9007199254740993, 1, 'a', 0.5), (1, 7, 2.25, 1, 2, 'b', 1.5))
        t(id, i, d, b, r, s, x) SELECT id, i::INTEGER AS i, d::DECIMAL(6,2) AS d, b::BIGINT AS b, r::INTEGER AS r, s, x::DOUBLE AS x`,
      `FROM (VALUES (2, 6, 1.20, 9007199254740992, 1.5, 'A', 0.75), (1, 7, 2.25, 2, 2, 'b', 1.5))
        t(id, i, d, b, r, s, x) SELECT id, i::INTEGER AS i, d::DECIMAL(6,2) AS d, b::BIGINT AS b, r::DOUBLE AS r, s, x::DOUBLE AS x`,
    );
    expect(run.files['mismatches.csv']).toBe(
      `id,${MISMATCH_HEADER}\n` +
        '1,b,1,2,1.0,1.0\n' +
        '2,i,5,6,1.0,0.2\n2,d,1.10,1.20,0.1,0.09090909090909091\n' +
        '2,b,9007199254740993,9007199254740992,1.0,1.1102230246251565e-16\n' +
        '2,r,1,1.5,0.5,0.5\n2,s,a,A,,\n2,x,0.5,0.75,0.25,0.5\n',
    );
  });

  it('limits the comparison and the schema to source.columns', async () => {
    const run = await compareVersions(
      `SELECT 1 AS id, 1 AS a, 2 AS b, 3 AS gone`,
      `SELECT 1 AS id, 1 AS a, 3 AS b, 4 AS fresh`,
      {columns: ['a', 'gone']},
    );
    expect(Object.keys(run.json.columns)).toEqual(['a']);
    expect(run.json.schema).toEqual({added: [], removed: [{column: 'gone', type: 'INTEGER'}], retyped: []});
    expect(run.json.changed_rows).toBe(0);
  });
});

describe('rules', () => {
  // 100 old rows (ids 1..100); 101 new rows (ids 3..102 and a second 50). Added 101, 102;
  // removed 1, 2; 98 matched, 97 compared (50 is duplicated). v changes at id 10 by 0.5;
  // w becomes null at ids 3..7.
  const old = `SELECT i AS id, i::DOUBLE AS v, 'x' AS w FROM range(1, 101) t(i)`;
  const neu = `SELECT i AS id, CASE WHEN i = 10 THEN 10.5 ELSE i::DOUBLE END AS v, CASE WHEN i <= 7 THEN NULL ELSE 'x' END AS w
    FROM range(3, 103) t(i) UNION ALL SELECT 50, 50.0, 'x'`;
  let versions: Promise<{old: string; new: string}> | undefined;
  const check = async (rules: object[]) => {
    versions ??= writeVersions(old, neu);
    return runValidate(await versions, validateSettings({rules: rules as never}));
  };
  const cases: [name: string, passing: object, failing: object, observed: unknown, unit: string | undefined][] = [
    ['row_count_change', {check: 'row_count_change', max_pct: 1}, {check: 'row_count_change', max_pct: 0.5}, 1, '%'],
    ['added_keys by count', {check: 'added_keys', max: 2}, {check: 'added_keys', max: 1}, 2, 'keys'],
    ['added_keys by percent', {check: 'added_keys', max_pct: 2}, {check: 'added_keys', max_pct: 1.9}, 2, '%'],
    ['added_keys by both', {check: 'added_keys', max: 2, max_pct: 2}, {check: 'added_keys', max: 5, max_pct: 1}, {count: 2, pct: 2}, undefined],
    ['removed_keys', {check: 'removed_keys', max_pct: 2}, {check: 'removed_keys', max: 1}, undefined, 'keys'],
    ['duplicate_keys', {check: 'duplicate_keys', max: 1}, {check: 'duplicate_keys', max: 0}, 1, 'keys'],
    ['changed_rows', {check: 'changed_rows', max_pct: 7}, {check: 'changed_rows', max_pct: 6}, (6 / 97) * 100, '%'],
    ['changed_rows of a column', {check: 'changed_rows', column: 'v', max_pct: 2}, {check: 'changed_rows', column: 'v', max_pct: 1}, (1 / 97) * 100, '%'],
    ['null_rate_change', {check: 'null_rate_change', max_pp: 5}, {check: 'null_rate_change', max_pp: 4}, (5 / 101) * 100, 'pp'],
    ['null_rate_change of a column', {check: 'null_rate_change', column: 'v', max_pp: 0}, {check: 'null_rate_change', column: 'w', max_pp: 0}, undefined, 'pp'],
    ['max_abs_diff', {check: 'max_abs_diff', column: 'v', max: 0.5}, {check: 'max_abs_diff', column: 'v', max: 0.4}, 0.5, undefined],
  ];

  it.each(cases)('%s passes within its limit and fails beyond it, saying in what unit', async (_name, passing, failing, observed, unit) => {
    const run = await check([
      {...passing, severity: 'error'},
      {...failing, severity: 'warn'},
    ]);
    const [pass, fail] = run.json.rules;
    expect(pass).toMatchObject({passed: true, severity: 'error'});
    expect(fail).toMatchObject({passed: false, severity: 'warn'});
    if (typeof observed === 'number') expect(fail.observed).toBeCloseTo(observed, 9);
    else if (observed !== undefined) expect(fail.observed).toEqual(observed);
    expect(fail.unit).toBe(unit);
    expect(run.json.status).toBe('warn');
    expect(run.result.verdict).toBe('warn');
    expect(run.result.verdictReasons).toEqual([`[warn] ${fail.message}`]);
  });

  it('names the limits a rule of two limits exceeded, and both when it passes', async () => {
    const run = await check([
      {check: 'added_keys', max: 5, max_pct: 1, severity: 'warn'},
      {check: 'added_keys', max: 5, max_pct: 3, severity: 'warn'},
    ]);
    expect(run.json.rules.map((rule: {message: string}) => rule.message)).toEqual([
      "added_keys: 2 added keys (2% of the old version's keys), above the limit of 1%",
      "added_keys: 2 added keys (2% of the old version's keys), within the limit of 5 keys and 3%",
    ]);
  });

  it('fails the run when an error rule fails, and passes it when none does', async () => {
    const failing = await check([
      {check: 'row_count_change', max_pct: 0.5, severity: 'error'},
      {check: 'duplicate_keys', max: 0, severity: 'warn'},
    ]);
    expect(failing.json.status).toBe('fail');
    expect(failing.result.verdict).toBe('fail');
    expect(failing.result.verdictReasons).toEqual([
      '[error] row_count_change: row count changed by 1% (100 -> 101), above the limit of 0.5%',
      '[warn] duplicate_keys: 1 duplicated keys (0 in the old version, 1 in the new), above the limit of 0',
    ]);
    const passing = await check([{check: 'row_count_change', max_pct: 5, severity: 'error'}]);
    expect(passing.json.status).toBe('pass');
    expect(passing.result).toMatchObject({verdict: 'pass', verdictReasons: [], rows: 97});
    expect(passing.json.rules[0]).toEqual({
      check: 'row_count_change',
      severity: 'error',
      passed: true,
      observed: 1,
      limit: 5,
      unit: '%',
      message: 'row_count_change: row count changed by 1% (100 -> 101), within the limit of 5%',
    });
  });

  it('fails a rule naming a column only one version has', async () => {
    const run = await compareVersions(`SELECT 1 AS id, 1.0 AS gone`, `SELECT 1 AS id`, {
      rules: [{check: 'max_abs_diff', column: 'gone', max: 1, severity: 'error'}],
    });
    expect(run.json.rules[0]).toMatchObject({passed: false, observed: null});
    expect(run.json.rules[0].message).toContain('column "gone" is only in the old version');
    expect(run.json.status).toBe('fail');
    // So does one numeric in one version only: drift, not a mistake in the rule.
    const retyped = await compareVersions(`SELECT 1 AS id, 1.5::DECIMAL(4, 2) AS x`, `SELECT 1 AS id, '1.5' AS x`, {
      rules: [{check: 'max_abs_diff', column: 'x', max: 1, severity: 'warn'}],
    });
    expect(retyped.json.rules[0]).toMatchObject({passed: false, observed: null});
    expect(retyped.json.rules[0].message).toBe('max_abs_diff: column "x" is DECIMAL(4,2) in the old version and VARCHAR in the new one, so it cannot be compared');
    expect(retyped.json.status).toBe('warn');
  });

  it('reports unknown checks, missing fields and unknown columns as configuration errors with their position', async () => {
    // A rule's shape is the settings schema's to check (the CLI reports it with its file
    // position, see the diagnostics tests); run on its own, the task refuses it the same way.
    await expect(check([{check: 'row_count_change', max_pct: 5, severity: 'error'}, {check: 'row_cont', severity: 'warn'}]))
      .rejects.toThrow(/^validation\.rules\.1\.check: /);
    await expect(check([{check: 'max_abs_diff', column: 'v', severity: 'warn'}])).rejects.toThrow(/^validation\.rules\.0\.max: /);
    await expect(check([{check: 'added_keys', severity: 'warn'}])).rejects.toThrow('validation.rules.0: a limit: "max", "max_pct" or both');
    // What the schema cannot know: a column must be one the versions have.
    await expect(check([{check: 'changed_rows', column: 'typo', max_pct: 1, severity: 'warn'}]))
      .rejects.toThrow('validation.rules[0].column: "typo" is not a compared column of either version');
    await expect(check([{check: 'max_abs_diff', column: 'w', max: 1, severity: 'warn'}])).rejects.toBeInstanceOf(ConfigurationError);
  });

  it('writes byte-identical outputs for the same inputs', async () => {
    const rules = [{check: 'changed_rows', max_pct: 1, severity: 'warn'}];
    const first = await check(rules);
    const second = await check(rules);
    expect(second.files).toEqual(first.files);
    expect(first.files['mismatches.csv']).toBe(
      `id,${MISMATCH_HEADER}\n3,w,x,,,\n4,w,x,,,\n5,w,x,,,\n6,w,x,,,\n7,w,x,,,\n10,v,10.0,10.5,0.5,0.05\n`,
    );
  });
});
