/**
 * An independent second method: a few thousand rows with seeded random differences,
 * compared by a plain TypeScript implementation of the semantics in DESIGN.md, must agree
 * with the validate task's SQL on every count.
 */
import {describe, expect, it} from 'vitest';
import {DuckDBInstance} from '@duckdb/node-api';
import {runValidate, validateSettings, writeVersions} from './support/validate-fixtures.js';

type Value = number | string | boolean | null;
type Row = Record<string, Value>;

const KEYS = ['k1', 'k2'];
const TOLERANCE = {abs: 0.1, rel: 0.001, columns: {y: {abs: 0}, z: {rel: 0.05}}};

// mulberry32: small, seeded, good enough to scatter differences.
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Two versions as SQL VALUES, with every kind of difference the comparison knows. */
function generate(seed: number, n: number): {old: string; new: string} {
  const r = random(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(r() * items.length)] as T;
  const special = () => pick(['NULL', "'nan'", "'inf'", "'-inf'"]);
  const oldRows: string[][] = [];
  const newRows: string[][] = [];
  for (let i = 0; i < n; i++) {
    const k1 = r() < 0.01 ? 'NULL' : String(i >> 1);
    const k2 = r() < 0.01 ? 'NULL' : `'${i % 2 === 0 ? 'a' : 'b'}'`;
    const xv = Math.round(r() * 10000) / 100;
    const x = r() < 0.05 ? special() : `'${xv}'`;
    const y = String(Math.floor(r() * 50));
    const z = String(Math.round(r() * 1000) / 10);
    const s = r() < 0.03 ? 'NULL' : `'${pick(['red', 'green', 'blue', "it''s"])}'`;
    const d = `${Math.floor(r() * 30)}`;
    const row = [k1, k2, x, y, z, s, d, `'g${i % 3}'`];
    oldRows.push(row);
    if (r() < 0.01) oldRows.push([k1, k2, `'${r()}'`, y, z, s, d, `'g'`]);
    if (r() < 0.03) continue; // removed
    const next = [...row];
    const change = r();
    if (change < 0.04) next[2] = special();
    else if (change < 0.2) next[2] = `'${Math.round((xv + pick([0.05, 0.1, -0.1, 0.2, 1e-9, xv * 0.001, -xv * 0.001, 3])) * 1e9) / 1e9}'`;
    if (r() < 0.05) next[3] = String(Number(y) + pick([1, -1]));
    if (r() < 0.1) next[4] = String(Math.round(Number(z) * pick([1.04, 1.05, 1.06, 0.95, 1]) * 1e6) / 1e6);
    if (r() < 0.05) next[5] = pick(['NULL', "'red'", "'RED'", "''"]);
    if (r() < 0.02) next[6] = String(Number(d) + 1);
    newRows.push(next.slice(0, 7));
    if (r() < 0.01) newRows.push(next.slice(0, 7));
  }
  for (let i = 0; i < n * 0.03; i++) newRows.push([String(n + i), "'a'", `'${i}'`, '1', '1', "'red'", '0']);
  const values = (rows: string[][]) => rows.map((row) => `(${row.join(', ')})`).join(',\n');
  return {
    old: `SELECT k1::INTEGER AS k1, k2, x::DOUBLE AS x, y::INTEGER AS y, z::INTEGER AS z, s, DATE '2024-01-01' + d::INTEGER AS d, gone
      FROM (VALUES ${values(oldRows)}) t(k1, k2, x, y, z, s, d, gone)`,
    new: `SELECT k1::INTEGER AS k1, k2, x::DOUBLE AS x, y::INTEGER AS y, z::DOUBLE AS z, s, DATE '2024-01-01' + d::INTEGER AS d
      FROM (VALUES ${values(newRows)}) t(k1, k2, x, y, z, s, d)`,
  };
}

async function readRows(path: string): Promise<Row[]> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    const reader = await connection.runAndReadAll(`SELECT * REPLACE (CAST(d AS VARCHAR) AS d) FROM read_parquet($path)`, {path});
    const rows = reader.getRowObjects() as Row[];
    connection.closeSync();
    return rows;
  } finally {
    instance.closeSync();
  }
}

/** The comparison, written the obvious way. */
function compareInTypeScript(oldRows: Row[], newRows: Row[], columns: {name: string; numeric: boolean}[]) {
  const group = (rows: Row[]) => {
    const byKey = new Map<string, Row[]>();
    let nullKeys = 0;
    for (const row of rows) {
      if (KEYS.some((k) => row[k] === null)) {
        nullKeys++;
        continue;
      }
      const key = JSON.stringify(KEYS.map((k) => row[k]));
      byKey.set(key, [...(byKey.get(key) ?? []), row]);
    }
    return {byKey, nullKeys};
  };
  const o = group(oldRows);
  const n = group(newRows);
  const sortKeys = (keys: string[]) =>
    keys.map((k) => JSON.parse(k) as [number, string]).sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const added = sortKeys([...n.byKey.keys()].filter((k) => !o.byKey.has(k)));
  const removed = sortKeys([...o.byKey.keys()].filter((k) => !n.byKey.has(k)));
  const matched = [...o.byKey.keys()].filter((k) => n.byKey.has(k));
  const stats = Object.fromEntries(columns.map((c) => [c.name, {changed: 0, max_abs_diff: 0, max_rel_diff: 0}]));
  let compared = 0;
  let changedRows = 0;
  for (const key of matched) {
    const [a, b] = [o.byKey.get(key), n.byKey.get(key)];
    if (a?.length !== 1 || b?.length !== 1) continue;
    compared++;
    let rowChanged = false;
    for (const column of columns) {
      const [ov, nv] = [a[0]![column.name] ?? null, b[0]![column.name] ?? null];
      const s = stats[column.name]!;
      let changed: boolean;
      if (!column.numeric) {
        changed = ov !== nv;
      } else {
        const [x, y] = [ov as number | null, nv as number | null];
        const finite = x !== null && y !== null && Number.isFinite(x) && Number.isFinite(y);
        if (finite) {
          s.max_abs_diff = Math.max(s.max_abs_diff, Math.abs(y - x));
          if (x !== 0) s.max_rel_diff = Math.max(s.max_rel_diff, Math.abs(y - x) / Math.abs(x));
        }
        const same = x === y || (x !== null && y !== null && Number.isNaN(x) && Number.isNaN(y));
        // A change to or from a non-finite value differs infinitely.
        if (!finite && !same && x !== null && y !== null) s.max_abs_diff = s.max_rel_diff = Infinity;
        const override = (TOLERANCE.columns as Record<string, {abs?: number; rel?: number}>)[column.name] ?? {};
        const abs = override.abs ?? TOLERANCE.abs;
        const rel = override.rel ?? TOLERANCE.rel;
        const within =
          finite && (abs > 0 || rel > 0) &&
          Math.abs(y - x) <= (abs + rel * Math.abs(x)) * (1 + 2 * Number.EPSILON) + 2 * Number.EPSILON * Math.abs(x) + 2 * Number.EPSILON * Math.abs(y);
        changed = !same && !within;
      }
      if (changed) {
        s.changed++;
        rowChanged = true;
      }
    }
    if (rowChanged) changedRows++;
  }
  const nulls = (rows: Row[], name: string) => rows.filter((row) => row[name] === null).length;
  return {
    rows: {old: oldRows.length, new: newRows.length},
    keys: {
      matched: matched.length,
      added: added.length,
      removed: removed.length,
      duplicated_old: [...o.byKey.values()].filter((rows) => rows.length > 1).length,
      duplicated_new: [...n.byKey.values()].filter((rows) => rows.length > 1).length,
    },
    null_keys: {old: o.nullKeys, new: n.nullKeys},
    compared_rows: compared,
    changed_rows: changedRows,
    difference_score: 1 - (compared - changedRows) / Math.max(oldRows.length, newRows.length),
    columns: Object.fromEntries(
      columns.map((c) => [c.name, {...stats[c.name]!, nulls_old: nulls(oldRows, c.name), nulls_new: nulls(newRows, c.name)}]),
    ),
    addedCsv: `k1,k2\n${added.map(([a, b]) => `${a},${b}\n`).join('')}`,
    removedCsv: `k1,k2\n${removed.map(([a, b]) => `${a},${b}\n`).join('')}`,
    duplicated: new Set([...o.byKey.keys(), ...n.byKey.keys()].filter((k) => (o.byKey.get(k)?.length ?? 0) > 1 || (n.byKey.get(k)?.length ?? 0) > 1)).size,
  };
}

describe('validate agrees with a plain TypeScript comparison', () => {
  it.each([1, 2, 3])('on seeded random versions (seed %i)', async (seed) => {
    const sql = generate(seed, 3000);
    const versions = await writeVersions(sql.old, sql.new);
    const run = await runValidate(versions, validateSettings({keys: KEYS, tolerance: TOLERANCE}));
    const expected = compareInTypeScript(await readRows(versions.old), await readRows(versions.new), [
      {name: 'x', numeric: true},
      {name: 'y', numeric: true},
      {name: 'z', numeric: true},
      {name: 's', numeric: false},
      {name: 'd', numeric: false},
    ]);
    const {json, files} = run;
    expect(json.rows).toEqual(expected.rows);
    expect(json.keys).toEqual(expected.keys);
    expect(json.null_keys).toEqual(expected.null_keys);
    expect(json.compared_rows).toBe(expected.compared_rows);
    expect(json.changed_rows).toBe(expected.changed_rows);
    expect(json.difference_score).toBeCloseTo(expected.difference_score, 12);
    for (const [name, column] of Object.entries(expected.columns)) {
      const actual = json.columns[name];
      expect({name, changed: actual.changed, nulls_old: actual.nulls_old, nulls_new: actual.nulls_new})
        .toEqual({name, changed: column.changed, nulls_old: column.nulls_old, nulls_new: column.nulls_new});
      if (name !== 's' && name !== 'd') {
        // JSON has no Infinity: validation.json writes it as text.
        const written = (value: number) => (value === Infinity ? 'Infinity' : expect.closeTo(value, 9));
        expect({name, max_abs_diff: actual.max_abs_diff, max_rel_diff: actual.max_rel_diff})
          .toEqual({name, max_abs_diff: written(column.max_abs_diff), max_rel_diff: written(column.max_rel_diff)});
      }
    }
    expect(json.schema).toEqual({added: [], removed: [{column: 'gone', type: 'VARCHAR'}], retyped: [{column: 'z', old: 'INTEGER', new: 'DOUBLE'}]});
    expect(files['added_keys.csv']).toBe(expected.addedCsv);
    expect(files['removed_keys.csv']).toBe(expected.removedCsv);
    expect(files['duplicate_keys.csv']!.trimEnd().split('\n').length - 1).toBe(expected.duplicated);
    const changedCells = Object.values(expected.columns).reduce((sum, c) => sum + c.changed, 0);
    expect(files['mismatches.csv']!.trimEnd().split('\n').length - 1).toBe(changedCells);
    // The differences are real: every kind of count is exercised.
    expect(Math.min(expected.keys.added, expected.keys.removed, expected.keys.duplicated_old, expected.keys.duplicated_new)).toBeGreaterThan(0);
    expect(Math.min(expected.null_keys.old, expected.null_keys.new, ...Object.values(expected.columns).map((c) => c.changed))).toBeGreaterThan(0);
  });
});
