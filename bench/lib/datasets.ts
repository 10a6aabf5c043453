/**
 * The benchmark data sets and the peers, shared by bench/validate.ts and bench/all.ts:
 * deterministic versions (composite key, a segment, 8 numeric parameters, a label, a date),
 * the hand-written single DuckDB query that computes the validation counts, and the pandas
 * comparison users write by hand.
 */
import {spawnSync} from 'node:child_process';

export const KEYS = ['entity_id', 'horizon'];
export const PARAMETERS = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8'];
export const COLUMNS = ['segment', ...PARAMETERS, 'label', 'as_of'];
// The shipped pipeline's kind of tolerance: exact by default, one parameter with slack.
export const TOLERANCE = {abs: 0, rel: 0, columns: {p1: {abs: 0.01}}};
export const PYTHON = '/usr/bin/python3';

// Deterministic versions: the new one drops 0.5% of the keys, adds 0.5%, duplicates 0.01%,
// nudges p1 on 10% of rows within its tolerance, changes p2 on 1%, nulls p3 on 0.5% and
// relabels 0.1%.
export function baseRows(n: number): string {
  const parameters = PARAMETERS.map((p, j) => `round((hash(i, ${j + 1}) % 1000000) / 1000.0, 3) AS ${p}`).join(', ');
  return `SELECT i, (i // 4)::BIGINT AS entity_id, (i % 4)::INTEGER AS horizon,
    ['north', 'south', 'east', 'west', 'central'][1 + (hash(i, 's') % 5)::INTEGER] AS segment, ${parameters},
    'label_' || (hash(i, 'l') % 50)::VARCHAR AS label, DATE '2024-01-01' + (hash(i, 'd') % 365)::INTEGER AS as_of
    FROM range(${n}) t(i)`;
}


/** The new version: base rows with deterministic changes (see baseRows). */
export function newVersionSql(size: number): string {
  return `WITH b AS (${baseRows(Math.round(size * 1.005))})
       SELECT entity_id, horizon, segment,
         CASE WHEN hash(i, 'c1') % 10 = 0 THEN p1 + ((hash(i, 'n1') % 200)::INTEGER - 100) / 10000.0 ELSE p1 END AS p1,
         CASE WHEN hash(i, 'c2') % 100 = 0 THEN p2 * 1.5 ELSE p2 END AS p2,
         CASE WHEN hash(i, 'c3') % 200 = 0 THEN NULL ELSE p3 END AS p3,
         p4, p5, p6, p7, p8,
         CASE WHEN hash(i, 'c4') % 1000 = 0 THEN 'relabelled' ELSE label END AS label,
         as_of
       FROM b WHERE hash(i, 'rm') % 200 <> 0
       UNION ALL
       SELECT * EXCLUDE (i) FROM b WHERE i < ${size} AND hash(i, 'dup') % 10000 = 0`;
}

/** The old version. */
export function oldVersionSql(size: number): string {
  return `SELECT * EXCLUDE (i) FROM (${baseRows(size)})`;
}

/** The same counts as one hand-written DuckDB query: the practical limit. */
export function handWrittenSql(oldRelation: string, newRelation: string): string {
  const notNull = KEYS.map((k) => `${k} IS NOT NULL`).join(' AND ');
  const slack = 2 * Number.EPSILON;
  const changed = (c: string) => {
    const tolerance = (TOLERANCE.columns as Record<string, {abs: number}>)[c];
    if (tolerance === undefined) return `o.${c} IS DISTINCT FROM n.${c}`;
    return `(o.${c} IS DISTINCT FROM n.${c} AND NOT coalesce(isfinite(o.${c}) AND isfinite(n.${c}) AND ` +
      `abs(n.${c} - o.${c}) <= ${tolerance.abs} * (1 + ${slack}) + ${slack} * abs(o.${c}) + ${slack} * abs(n.${c}), false))`;
  };
  const both = 'o.entity_id IS NOT NULL AND n.entity_id IS NOT NULL';
  return `
    WITH dups AS MATERIALIZED (
      SELECT entity_id, horizon, count(*) - sum(s) AS n_old, sum(s) AS n_new
      FROM (SELECT entity_id, horizon, 0 AS s FROM ${oldRelation} WHERE ${notNull}
            UNION ALL SELECT entity_id, horizon, 1 FROM ${newRelation} WHERE ${notNull})
      GROUP BY ALL HAVING count(*) - sum(s) > 1 OR sum(s) > 1),
    o AS (SELECT t.* FROM ${oldRelation} t ANTI JOIN dups d USING (entity_id, horizon) WHERE ${notNull}),
    n AS (SELECT t.* FROM ${newRelation} t ANTI JOIN dups d USING (entity_id, horizon) WHERE ${notNull})
    SELECT
      count(*) FILTER (WHERE ${both}) + (SELECT count(*) FROM dups WHERE n_old > 0 AND n_new > 0) AS matched,
      count(*) FILTER (WHERE o.entity_id IS NULL) + (SELECT count(*) FROM dups WHERE n_old = 0) AS added,
      count(*) FILTER (WHERE n.entity_id IS NULL) + (SELECT count(*) FROM dups WHERE n_new = 0) AS removed,
      (SELECT count(*) FROM dups WHERE n_old > 1) AS duplicated_old,
      (SELECT count(*) FROM dups WHERE n_new > 1) AS duplicated_new,
      count(*) FILTER (WHERE ${both}) AS compared_rows,
      count(*) FILTER (WHERE ${both} AND (${COLUMNS.map(changed).join(' OR ')})) AS changed_rows,
      ${COLUMNS.map((c) => `count(*) FILTER (WHERE ${both} AND ${changed(c)}) AS changed_${c}`).join(',\n      ')},
      ${PARAMETERS.map((c) => `max(CASE WHEN isfinite(o.${c}) AND isfinite(n.${c}) THEN abs(n.${c} - o.${c}) END) AS max_abs_${c}`).join(', ')},
      ${['old', 'new'].map((v) => `(SELECT ${COLUMNS.map((c) => `count(*) - count(${c})`).join(' + ')} FROM ${v === 'old' ? oldRelation : newRelation}) AS nulls_${v}`).join(', ')}
    FROM o FULL OUTER JOIN n USING (entity_id, horizon)`;
}

// What users write by hand: read both versions, drop null and duplicated keys, outer merge,
// compare column by column. pandas here has no Parquet engine (no pyarrow on Debian), so it
// reads the same rows from CSV; load and compare times are reported apart.
export const PANDAS_SCRIPT = String.raw`
import json, resource, sys, time
import numpy as np, pandas as pd
old_path, new_path = sys.argv[1], sys.argv[2]
keys = ['entity_id', 'horizon']
params = ['p1','p2','p3','p4','p5','p6','p7','p8']
columns = ['segment'] + params + ['label', 'as_of']
tol = {'p1': 0.01}
t0 = time.perf_counter()
old = pd.read_csv(old_path)
new = pd.read_csv(new_path)
t1 = time.perf_counter()
def prepare(df):
    df = df.dropna(subset=keys)
    counts = df.groupby(keys).size()
    return df, counts
old, c_old = prepare(old)
new, c_new = prepare(new)
dup_old = set(c_old[c_old > 1].index); dup_new = set(c_new[c_new > 1].index)
k_old = set(c_old.index); k_new = set(c_new.index)
dups = dup_old | dup_new
def unique(df):
    idx = pd.MultiIndex.from_frame(df[keys])
    return df[~idx.isin(list(dups))] if dups else df
m = unique(old).merge(unique(new), on=keys, how='outer', suffixes=('_o', '_n'), indicator=True)
both = m[m['_merge'] == 'both']
changed_any = np.zeros(len(both), dtype=bool)
counts = {}
for c in columns:
    a, b = both[c + '_o'], both[c + '_n']
    same = (a == b) | (a.isna() & b.isna())
    if c in tol:
        eps = 2 * np.finfo(float).eps
        same = same | ((b - a).abs() <= tol[c] * (1 + eps) + eps * a.abs() + eps * b.abs())
    counts['changed_' + c] = int((~same).sum())
    changed_any |= (~same).to_numpy()
counts.update(matched=len(k_old & k_new), added=len(k_new - k_old), removed=len(k_old - k_new),
              duplicated_old=len(dup_old), duplicated_new=len(dup_new),
              compared_rows=len(both), changed_rows=int(changed_any.sum()))
t2 = time.perf_counter()
print(json.dumps({'load_ms': (t1 - t0) * 1000, 'ms': (t2 - t1) * 1000,
                  'rssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'counts': counts}))
`;

export function pandasAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import pandas'], {stdio: 'ignore'}).status === 0;
}

export function stats(values: number[]): {median: number; min: number; max: number} {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {median, min: sorted[0]!, max: sorted[sorted.length - 1]!};
}

