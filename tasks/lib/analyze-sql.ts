/**
 * SQL for the analyze task, kept apart from where it runs: functions from settings and
 * columns to SQL text, no I/O. DuckDB's, over the extracted Parquet files, then (at the end)
 * BigQuery's, for the analysis pushed down into the warehouse.
 *
 * Every figure is exact; DuckDB does the heavy lifting, TypeScript reads what it returns:
 * - one aggregate per run for the summary moments of every parameter, by version and
 *   segment (the global figures are combined from the segments' in TypeScript);
 * - per parameter, both versions' values sorted together (`sortedValuesSql`), which
 *   `ShiftScan` (shift.ts) walks once for KS, Wasserstein, the order statistics behind every
 *   quantile, the PSI and chart bins, for the whole parameter and every segment. Measured at
 *   10M rows a version: the sort and the walk take a third of the two window queries they
 *   replaced (a running count over the whole parameter and one per segment);
 * - the largest movers in one join, skipping changes below a threshold found on a sample.
 * Segments are numbered 1..S by a small integer (`sid`): DuckDB partitions and sorts on a
 * small integer several times faster than on strings.
 */
import type {SqlStatement} from './compare-sql.js';
import {quoteIdent, quoteString} from './sql.js';
import type {SqlDialect} from './sql.js';

/** Bins of the overlaid histogram written for charts. */
export const CHART_BINS = 30;

/** Summary statistics of one parameter in one version. */
export interface NumericSummary {
  count: number;
  nulls: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  p05: number | null;
  p25: number | null;
  p50: number | null;
  p75: number | null;
  p95: number | null;
  max: number | null;
}

/** Drift label from the PSI thresholds (`analysis.psi.warn` / `.fail`). */
export type DriftLabel = 'none' | 'moderate' | 'major';

/** Shift figures of one segment for one parameter. */
export interface SegmentShift {
  /** The segment's values by segment column, e.g. `{region: "east"}`. */
  segment: Record<string, string | number | boolean | null>;
  old: {count: number; mean: number | null; std: number | null};
  new: {count: number; mean: number | null; std: number | null};
  mean_change: {abs: number | null; pct: number | null};
  ks: number | null;
  ks_error?: number | null;
  wasserstein_norm_error?: number | null;
  psi: number | null;
  wasserstein_norm: number | null;
  drift: DriftLabel | null;
}

/** One matched key among the largest absolute changes of a parameter. */
export interface Mover {
  key: Record<string, unknown>;
  old: number;
  new: number;
  change: number;
  abs_change: number;
}

/** Everything analysis.json says about one numeric parameter. */
export interface NumericAnalysis {
  type: 'numeric';
  old: NumericSummary;
  new: NumericSummary;
  mean_change: {abs: number | null; pct: number | null};
  /** Two-sample Kolmogorov-Smirnov statistic D on non-null values (exact; pushed down, see ks_error). */
  ks: number | null;
  /** Pushed down only: D is at most ks + ks_error (0 when the candidate bins were read back). */
  ks_error?: number | null;
  /** Pushed down only: wasserstein_norm is within this of the exact value. */
  wasserstein_norm_error?: number | null;
  /** Population stability index on the old version's quantile bins. */
  psi: number | null;
  /** PSI bins: interior edges (old quantiles; a point mass v gets the bin [v, v], see psiEdges) and proportions per bin. */
  psi_bins: {edges: number[]; old: number[]; new: number[]};
  /** Wasserstein-1 distance, and the same divided by the old standard deviation. */
  wasserstein: number | null;
  wasserstein_norm: number | null;
  drift: DriftLabel | null;
  /** Overlaid histogram for charts: `CHART_BINS + 1` shared edges, counts per version. */
  histogram: {edges: number[]; old: number[]; new: number[]};
  segments: SegmentShift[];
  top_movers: Mover[];
}

/** Category frequencies of a string or boolean column. */
export interface CategoricalAnalysis {
  type: 'categorical';
  old: {count: number; nulls: number; distinct: number};
  new: {count: number; nulls: number; distinct: number};
  /** Jensen-Shannon distance (base 2, so in [0, 1]) between the non-null frequencies. */
  js_distance: number | null;
  /** The most frequent categories (by the larger of old and new counts), capped. */
  categories: {value: string; old: number; new: number; old_pct: number; new_pct: number}[];
  new_categories: string[];
  vanished_categories: string[];
  /** True when a list above was cut at the cap. */
  truncated: boolean;
}

/** One evaluated analysis rule, shaped like validation's rules. */
export interface AnalysisRuleResult {
  check: 'drift';
  severity: 'error' | 'warn';
  /** The parameter the rule checks; absent when it checks every parameter. */
  column?: string;
  passed: boolean;
  observed: number | null;
  limit: number;
  message: string;
}

/** The shape of analysis.json. */
export interface AnalysisDocument {
  settings: {segment_by: string[]; bins: number; top_n: number; psi: {warn: number; fail: number}};
  /** Where the figures were computed: `local` (DuckDB on the extracted rows, exact), or inside BigQuery. */
  engine: 'local' | 'bigquery';
  /** Pushed down: the table, the bytes the queries processed and what is approximate. */
  bigquery?: {table: string; bytes_processed: number; approximate: string};
  rows: {old: number; new: number};
  parameters: Record<string, NumericAnalysis>;
  categorical: Record<string, CategoricalAnalysis>;
  rules: AnalysisRuleResult[];
  status: 'pass' | 'warn' | 'fail';
}

/** Where the two versions' rows are and how to cut them. */
export interface AnalysisSources {
  dialect: SqlDialect;
  oldPath: string;
  newPath: string;
  segmentBy: readonly string[];
}

/** How rows map to segment ids: `hashes[i]` (a hash of the segment columns) is segment `sids[i]`. */
export interface SegmentIds {
  hashes: readonly bigint[];
  sids: readonly number[];
}

function duckdbOnly(dialect: SqlDialect): void {
  if (dialect !== 'duckdb') throw new Error(`analysis SQL is generated for duckdb only, not ${dialect}`);
}

/** A finite number as a DOUBLE literal (exponent form, so DuckDB never reads it as DECIMAL). */
export function doubleLiteral(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
  return `(${value.toExponential()})::DOUBLE`;
}

function intLiteral(value: number | bigint): string {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new TypeError(`not an integer: ${value}`);
  return String(value);
}

function source(s: AnalysisSources, side: 0 | 1): string {
  return `read_parquet(${quoteString(side === 0 ? s.oldPath : s.newPath, s.dialect)})`;
}

// Non-finite values (NaN, +-Infinity) have no place on an ECDF: they count as nulls.
function valueExpr(column: string, s: AnalysisSources): string {
  const c = `CAST(${quoteIdent(column, s.dialect)} AS DOUBLE)`;
  return `CASE WHEN isfinite(${c}) THEN ${c} END`;
}

// Each parameter's finite values as x0, x1, ...
function finiteValues(parameters: readonly string[], s: AnalysisSources): string {
  return parameters.map((p, i) => `${valueExpr(p, s)} AS x${i}`).join(', ');
}

function segmentHash(s: AnalysisSources): string {
  return `hash(${s.segmentBy.map((c) => quoteIdent(c, s.dialect)).join(', ')})`;
}

/** The segment id of a row: 1 when there are no segment columns. */
function sidExpr(s: AnalysisSources, ids: SegmentIds): string {
  if (s.segmentBy.length === 0) return '1';
  const hashes = `[${ids.hashes.map(intLiteral).join(', ')}]::UBIGINT[]`;
  return `CAST(([${ids.sids.map(intLiteral).join(', ')}])[list_position(${hashes}, ${segmentHash(s)})] AS USMALLINT)`;
}

/**
 * The distinct segments of both versions: (h, g), h the hash of the segment columns as each
 * file types them, g the segment as a JSON object (the key written to analysis.json).
 */
export function segmentsSql(s: AnalysisSources): string {
  duckdbOnly(s.dialect);
  const cols = s.segmentBy.map((c) => quoteIdent(c, s.dialect)).join(', ');
  const json = `CAST(json_object(${s.segmentBy.map((c) => `${quoteString(c, s.dialect)}, ${quoteIdent(c, s.dialect)}`).join(', ')}) AS VARCHAR)`;
  const one = (side: 0 | 1) => `SELECT ${segmentHash(s)} AS h, ${json} AS g FROM (SELECT DISTINCT ${cols} FROM ${source(s, side)})`;
  return `SELECT DISTINCT h, g FROM (${one(0)} UNION ALL ${one(1)}) ORDER BY g, h`;
}

/** Rows of each version whose medians per segment are `referencesSql`'s references. */
export const REFERENCE_ROWS = 2048;

/** A typical value of each parameter in one version and segment (`referencesSql`). */
export interface Reference {
  side: 0 | 1;
  sid: number;
  /** Per parameter; 0 for none. */
  values: readonly number[];
}

/**
 * A value typical of each parameter in each version and segment: rows (side, sid, c{i}),
 * c{i} the median of its finite values among the version's first `REFERENCE_ROWS` rows.
 * `statsSql` takes deviations about it, so that values far from zero compared with their
 * spread (epoch microseconds) keep their digits: DuckDB's stddev_samp of 9007199254740990
 * and 9007199254740996 is 4.899, of the same values less the first 4.243, the exact figure.
 */
export function referencesSql(s: AnalysisSources, ids: SegmentIds, parameters: readonly string[]): string {
  duckdbOnly(s.dialect);
  const side = (k: 0 | 1) => `(SELECT ${k} AS side, ${sidExpr(s, ids)} AS sid, ${finiteValues(parameters, s)} FROM ${source(s, k)} LIMIT ${REFERENCE_ROWS})`;
  return `SELECT side, sid, ${parameters.map((_, i) => `median(x${i}) AS c${i}`).join(', ')} FROM (${side(0)} UNION ALL ${side(1)}) GROUP BY side, sid ORDER BY side, sid`;
}

/** The value `statsSql` takes parameter i's mean and deviation about in a group (0 for none). */
export function referenceFor(references: readonly Reference[], i: number, side: number, sid: number): number {
  return references.find((r) => r.side === side && r.sid === sid)?.values[i] ?? 0;
}

/**
 * Summary moments per version (side) and segment (sid): rows, then for parameter i
 * n{i} (non-null count), m{i} (mean), s{i} (sample std), lo{i}, hi{i}. The mean and the
 * deviation are taken about the group's reference (`referenceFor`: zero for a group the
 * first rows did not reach): m{i} is the mean deviation from it, the mean itself the
 * reference plus m{i} (see `momentsOf`), so a constant stays exactly itself with no
 * deviation. With `scales`, the moments are computed over values divided by scales[i] (a
 * power of two: exact), then multiplied back: for values whose squares overflow a DOUBLE
 * (beyond ~1e154), where DuckDB's stddev_samp fails, or underflow it (below ~1e-154).
 */
export function statsSql(s: AnalysisSources, ids: SegmentIds, parameters: readonly string[], scales?: readonly number[], references: readonly Reference[] = []): string {
  duckdbOnly(s.dialect);
  const values = finiteValues(parameters, s);
  const shifted = parameters.map((_, i) => references.some((r) => r.values[i] !== 0));
  const aggs = parameters.map((_, i) => {
    const scale = scales?.[i] ?? 1;
    const moment = (f: string, x: string) => (scale === 1 ? `${f}(${x})` : `${f}(${x} * ${doubleLiteral(1 / scale)}) * ${doubleLiteral(scale)}`);
    const about = shifted[i] ? `y${i}` : `x${i}`;
    return `count(x${i}) AS n${i}, ${moment('avg', about)} AS m${i}, ${moment('stddev_samp', about)} AS s${i}, min(x${i}) AS lo${i}, max(x${i}) AS hi${i}`;
  });
  const side = (k: 0 | 1) => `SELECT ${k} AS side, ${sidExpr(s, ids)} AS sid${values ? `, ${values}` : ''} FROM ${source(s, k)}`;
  let rows = `${side(0)} UNION ALL ${side(1)}`;
  if (shifted.some(Boolean)) {
    const table = references.map((r) => `(${r.side}, ${intLiteral(r.sid)}, ${r.values.map(doubleLiteral).join(', ')})`).join(', ');
    const columns = parameters.map((_, i) => `r${i}`).join(', ');
    const about = parameters.flatMap((_, i) => (shifted[i] ? [`v.x${i} - coalesce(r.r${i}, 0) AS y${i}`] : [])).join(', ');
    rows = `SELECT v.*, ${about} FROM (${rows}) v LEFT JOIN (VALUES ${table}) r(side, sid, ${columns}) ON v.side = r.side AND v.sid = r.sid`;
  }
  return `SELECT side, sid, count(*) AS rows${aggs.length > 0 ? `, ${aggs.join(', ')}` : ''}
FROM (${rows}) GROUP BY side, sid ORDER BY side, sid`;
}

/** The largest magnitude a{i} of each parameter's finite values in both versions: what `statsSql`'s scales come from. */
export function magnitudesSql(s: AnalysisSources, parameters: readonly string[]): string {
  duckdbOnly(s.dialect);
  const side = (k: 0 | 1) => `SELECT ${finiteValues(parameters, s)} FROM ${source(s, k)}`;
  return `SELECT ${parameters.map((_, i) => `max(abs(x${i})) AS a${i}`).join(', ')} FROM (${side(0)} UNION ALL ${side(1)})`;
}

/**
 * Both versions' finite values of one column in ascending order, each with its tag
 * `sid * 2 + side` (UINTEGER): what `ShiftScan` walks to find every shift figure at once.
 * With `scale` (a power of two: exact), the values times it.
 */
export function sortedValuesSql(column: string, s: AnalysisSources, ids: SegmentIds, scale = 1): string {
  duckdbOnly(s.dialect);
  const c = `CAST(${quoteIdent(column, s.dialect)} AS DOUBLE)`;
  const x = scale === 1 ? c : `${c} * ${doubleLiteral(scale)}`;
  const side = (k: 0 | 1) => `SELECT CAST(${sidExpr(s, ids)} * 2 + ${k} AS UINTEGER) AS tag, ${x} AS x FROM ${source(s, k)} WHERE isfinite(${c})`;
  return `SELECT tag, x FROM (${side(0)} UNION ALL ${side(1)}) ORDER BY x`;
}

/** The most segments an analysis takes (segment ids are USMALLINT). */
export const MAX_SEGMENTS = 65_535;

/** One key in this many is joined to find the movers' thresholds (`moverThresholdsSql`). */
export const MOVER_SAMPLE = 64;

/**
 * Up to this many parameters, the movers' aggregates leave rows out with a FILTER clause;
 * beyond, with a NULL argument. DuckDB slices its whole input for each filtered aggregate, a
 * cost that grows with the parameters squared: 8 parameters over 1M rows take 0.33-0.40 s
 * filtered and 0.63-0.70 s with NULLs, 300 over 20K rows 19-21 s filtered and 1.7 s with
 * NULLs (identical results; the two forms cross near 12).
 */
export const MOVERS_FILTERED_PARAMETERS = 12;

/** `aggregate(args)` over the rows where `condition` holds, in the form that is faster for `parameters` parameters. */
function onlyWhere(parameters: number, aggregate: string, args: readonly string[], condition: string): string {
  if (parameters <= MOVERS_FILTERED_PARAMETERS) return `${aggregate}(${args.join(', ')}) FILTER (WHERE ${condition})`;
  // NULL in the value that orders (the last of max's and max_by's first two) leaves the row out.
  const ordering = aggregate === 'max_by' ? 1 : 0;
  return `${aggregate}(${args.map((arg, i) => (i === ordering ? `CASE WHEN ${condition} THEN ${arg} END` : arg)).join(', ')})`;
}

function matchedPairs(s: AnalysisSources, keys: readonly string[], where = ''): string {
  const q = (c: string) => quoteIdent(c, s.dialect);
  const on = keys.map((k) => `o.${q(k)} = n.${q(k)}`).join(' AND ');
  return `FROM ${source(s, 0)} o JOIN ${source(s, 1)} n ON ${on}${where}`;
}

/** A matched key's change of one parameter; only keys whose finite value changed can be movers. */
function change(parameter: string, s: AnalysisSources): {o: string; n: string; d: string; h: string; moved: string} {
  const o = `CAST(o.${quoteIdent(parameter, s.dialect)} AS DOUBLE)`;
  const n = `CAST(n.${quoteIdent(parameter, s.dialect)} AS DOUBLE)`;
  // h orders changes beyond a DOUBLE, whose d are all infinite: half of each is exact.
  return {o, n, d: `abs(${n} - ${o})`, h: `abs(${n} * 0.5 - ${o} * 0.5)`, moved: `isfinite(${o}) AND isfinite(${n}) AND ${o} <> ${n}`};
}

/**
 * A lower bound t{i} on the `topN`-th largest |new - old| of each parameter, from the keys in
 * one hash bucket of `MOVER_SAMPLE` (the top of a subset never exceeds the top of the whole):
 * the full join then builds candidates only for changes at least that large. NULL when the
 * sample holds fewer than `topN` changes.
 */
export function moverThresholdsSql(s: AnalysisSources, keys: readonly string[], parameters: readonly string[], topN: number): string {
  duckdbOnly(s.dialect);
  if (!Number.isInteger(topN) || topN < 1) throw new TypeError(`top_n must be a positive integer, got ${topN}`);
  const bucket = (side: 'o' | 'n') => `hash(${keys.map((k) => `${side}.${quoteIdent(k, s.dialect)}`).join(', ')}) % ${MOVER_SAMPLE} = 0`;
  const cols = parameters.map((p, i) => {
    const c = change(p, s);
    const top = onlyWhere(parameters.length, 'max', [c.d, String(topN)], c.moved);
    return `CASE WHEN len(${top}) = ${topN} THEN list_min(${top}) END AS t${i}`;
  });
  return `SELECT ${cols.join(',\n  ')}\n${matchedPairs(s, keys, ` WHERE ${bucket('o')} AND ${bucket('n')}`)}`;
}

/**
 * The `topN` matched keys with the largest |new - old| per parameter. One join lists the
 * `fetch` largest changes of each (changes below the parameter's threshold, from
 * `moverThresholdsSql` at rank `fetch`, null for none, cannot be among them and are skipped);
 * keys occurring more than once in either version are then left out, as the validation leaves
 * them out (their pairs mix rows), by counting only the listed keys in both files. Per
 * parameter: `m{i}` the movers (JSON), `f{i}` how many changes were listed, `l{i}` how many
 * of them had a key of their own: with fewer than `topN` of those from a list that was cut
 * short (`f{i} = fetch`) or thresholded, the caller asks again for more. Ties are broken by
 * the key (and values), so the list is the same on every run.
 */
export function moversSql(
  s: AnalysisSources,
  keys: readonly string[],
  parameters: readonly string[],
  topN: number,
  fetch: number,
  thresholds: readonly (number | null)[] = [],
): string {
  duckdbOnly(s.dialect);
  if (!Number.isInteger(topN) || topN < 1) throw new TypeError(`top_n must be a positive integer, got ${topN}`);
  if (!Number.isInteger(fetch) || fetch < topN) throw new TypeError(`fetch must be an integer of at least top_n, got ${fetch}`);
  const q = (c: string) => quoteIdent(c, s.dialect);
  const keyFields = keys.map((k, i) => `k${i} := o.${q(k)}`).join(', ');
  const picks = parameters.map((p, i) => {
    const {o, n, d, h, moved} = change(p, s);
    const t = thresholds[i];
    // A sample whose top changes overflow a DOUBLE: only overflowing changes can be movers.
    const above = t === null || t === undefined ? '' : t === Infinity ? ` AND isinf(${d})` : ` AND ${d} >= ${doubleLiteral(t)}`;
    const pick = onlyWhere(
      parameters.length,
      'max_by',
      [`struct_pack(key := struct_pack(${keyFields}), old := ${o}, new := ${n})`, `struct_pack(d := ${d}, h := ${h}, ${keyFields}, old := ${o})`, String(fetch)],
      `${moved}${above}`,
    );
    return `coalesce(${pick}, []) AS m${i}`;
  });
  const all = parameters.length === 1 ? 'm0' : `list_concat(${parameters.map((_, i) => `m${i}`).join(', ')})`;
  const keyColumns = keys.map((_, j) => `k${j}`);
  const occurrences = (side: 0 | 1) =>
    `SELECT ${keyColumns.map((k) => `l.${k}`).join(', ')}, ${side} AS side FROM ${source(s, side)} t ` +
    `JOIN listed l ON ${keys.map((k, j) => `t.${q(k)} = l.k${j}`).join(' AND ')}`;
  const own = (i: number) => `list_filter(c.m${i}, x -> NOT list_contains(r.keys, x.key))`;
  const cols = parameters.map((_, i) => `CAST(to_json(list_slice(${own(i)}, 1, ${topN})) AS VARCHAR) AS m${i}, len(c.m${i}) AS f${i}, len(${own(i)}) AS l${i}`);
  return (
    `WITH candidates AS MATERIALIZED (SELECT ${picks.join(',\n  ')}\n${matchedPairs(s, keys)}),\n` +
    `listed AS (SELECT DISTINCT ${keyColumns.map((k) => `x.key.${k} AS ${k}`).join(', ')} FROM (SELECT unnest(${all}) AS x FROM candidates)),\n` +
    `repeated AS (SELECT coalesce(list(struct_pack(${keyColumns.map((k) => `${k} := ${k}`).join(', ')})), []) AS keys FROM (` +
    `SELECT DISTINCT ${keyColumns.join(', ')} FROM (${occurrences(0)} UNION ALL ${occurrences(1)}) GROUP BY ${keyColumns.join(', ')}, side HAVING count(*) > 1))\n` +
    `SELECT ${cols.join(',\n  ')}\nFROM candidates c, repeated r`
  );
}

/** The temp table of one categorical column's counts: (value, o, n), value NULL counting nulls. */
export const CATEGORIES_TABLE = 'analyze_categories';

/**
 * A categorical column summed up inside DuckDB, so that only what analysis.json lists comes
 * back (a column of distinct ids has as many categories as rows: reading them all took 3 s
 * and as many JavaScript objects per million). Three statements: the counts per value
 * (`CATEGORIES_TABLE`); one row of totals (`old_count`, `new_count`, `old_nulls`,
 * `new_nulls`, `old_distinct`, `new_distinct`, `distinct_count`, `added`, `vanished`, and
 * `divergence`, the Jensen-Shannon divergence of the non-null frequencies in base 2); and the
 * listed values (`list` top, added or vanished; `value`, `o`, `n`): each list's first `cap`
 * by the larger count (the new count for added values, the old for vanished), then by value.
 */
export function categoriesSql(column: string, s: AnalysisSources, cap: number): {counts: string; totals: string; listed: string} {
  duckdbOnly(s.dialect);
  const c = `CAST(${quoteIdent(column, s.dialect)} AS VARCHAR)`;
  const t = CATEGORIES_TABLE;
  const p = 'o / t.oc';
  const q = 'n / t.nc';
  const list = (name: string, where: string, order: string) =>
    `(SELECT '${name}' AS list, value, o, n FROM ${t} WHERE value IS NOT NULL${where} ORDER BY ${order} DESC, value LIMIT ${cap})`;
  return {
    counts:
      `CREATE OR REPLACE TEMP TABLE ${t} AS SELECT value, count(*) FILTER (WHERE side = 0) AS o, count(*) FILTER (WHERE side = 1) AS n FROM (` +
      `SELECT 0 AS side, ${c} AS value FROM ${source(s, 0)} UNION ALL SELECT 1, ${c} FROM ${source(s, 1)}) GROUP BY value`,
    totals:
      `WITH t AS (SELECT coalesce(sum(o), 0) AS oc, coalesce(sum(n), 0) AS nc FROM ${t} WHERE value IS NOT NULL) ` +
      `SELECT any_value(t.oc) AS old_count, any_value(t.nc) AS new_count, ` +
      `coalesce((SELECT o FROM ${t} WHERE value IS NULL), 0) AS old_nulls, coalesce((SELECT n FROM ${t} WHERE value IS NULL), 0) AS new_nulls, ` +
      `count_if(o > 0) AS old_distinct, count_if(n > 0) AS new_distinct, count(*) AS distinct_count, count_if(o = 0) AS added, count_if(n = 0) AS vanished, ` +
      `sum(CASE WHEN o > 0 THEN 0.5 * ${p} * log2(${p} / ((${p} + ${q}) / 2)) ELSE 0 END + ` +
      `CASE WHEN n > 0 THEN 0.5 * ${q} * log2(${q} / ((${p} + ${q}) / 2)) ELSE 0 END) AS divergence ` +
      `FROM ${t} CROSS JOIN t WHERE value IS NOT NULL`,
    listed: `${list('top', '', 'greatest(o, n)')} UNION ALL ${list('added', ' AND o = 0', 'n')} UNION ALL ${list('vanished', ' AND n = 0', 'o')}`,
  };
}

/** The columns and types of a Parquet file. */
export function describeSql(path: string, dialect: SqlDialect): string {
  duckdbOnly(dialect);
  return `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${quoteString(path, dialect)}))`;
}

/** Row count of a Parquet file, from its footer. */
export function rowCountSql(path: string, dialect: SqlDialect): string {
  duckdbOnly(dialect);
  return `SELECT count(*) AS n FROM read_parquet(${quoteString(path, dialect)})`;
}

// --- The analysis pushed down to BigQuery --------------------------------------------------
// Only aggregates come back: moments per version and segment, approximate quantiles
// (APPROX_QUANTILES), counts per fine bin and PSI bin, the values of the few bins that can
// hold the largest KS difference, the largest movers and category counts. KS (made exact)
// and Wasserstein (with an error bound) are computed from those in shift.ts. Each query
// scans the table once: parameters fan out by a cross join with a small list of their indexes.

/** The table the pushed-down analysis reads, and what it reads from it. */
export interface BigQueryAnalysis {
  /** `project.dataset.table`, the version column and the BigQuery type versions bind as. */
  table: {path: string; versionColumn: string; versionType: string};
  versions: {old: string; new: string};
  segmentBy: readonly string[];
  numeric: readonly string[];
  categorical: readonly string[];
  keys: readonly string[];
}

/** Equal fine bins of one parameter, and the PSI edges (the old version's approximate quantiles). */
export interface BigQueryBinning {
  lo: number;
  width: number;
  edges: readonly number[];
}

/** Fine bins per parameter in the pushed-down analysis: a multiple of CHART_BINS, so chart bins are unions of them. */
export const FINE_BINS = 40 * CHART_BINS;

const bq = (name: string) => quoteIdent(name, 'bigquery');

function bigQueryParams(a: BigQueryAnalysis): {params: Record<string, string | number>; types: Record<string, string>} {
  const value = (v: string) => (a.table.versionType === 'FLOAT64' ? Number(v) : v);
  return {
    params: {old_version: value(a.versions.old), new_version: value(a.versions.new)},
    types: {old_version: a.table.versionType, new_version: a.table.versionType},
  };
}

// Both versions' rows, side 0 and 1, with only the columns a query needs: segments g<j>,
// numeric parameters x<i> (FLOAT64, non-finite as NULL), categories c<i> (STRING), keys k<j>.
function bigQueryVersions(a: BigQueryAnalysis, want: {numeric?: boolean; categorical?: boolean; keys?: boolean}): string {
  const columns = [
    ...a.segmentBy.map((c, j) => `t.${bq(c)} AS g${j}`),
    ...(want.numeric ? a.numeric.map((c, i) => {
      const x = `CAST(t.${bq(c)} AS FLOAT64)`;
      return `IF(IS_INF(${x}) OR IS_NAN(${x}), NULL, ${x}) AS x${i}`;
    }) : []),
    ...(want.categorical ? a.categorical.map((c, i) => `CAST(t.${bq(c)} AS STRING) AS c${i}`) : []),
    ...(want.keys ? a.keys.map((c, j) => `t.${bq(c)} AS k${j}`) : []),
  ];
  const side = (k: 0 | 1, param: string) =>
    `SELECT ${k} AS side${columns.map((c) => `, ${c}`).join('')} FROM ${bq(a.table.path)} AS t WHERE t.${bq(a.table.versionColumn)} = @${param}`;
  return `v AS (${side(0, 'old_version')} UNION ALL ${side(1, 'new_version')})`;
}

function indexes(name: string, count: number): string {
  return `${name} AS (${Array.from({length: count}, (_, i) => `SELECT ${i} AS ${name}`).join(' UNION ALL ')})`;
}

function pick(index: string, values: readonly string[]): string {
  return `CASE ${index} ${values.map((v, i) => `WHEN ${i} THEN ${v}`).join(' ')} END`;
}

const segmentColumns = (a: BigQueryAnalysis, prefix = '') => a.segmentBy.map((_, j) => `, ${prefix}g${j}`).join('');

/** Moments per version and segment: side, g<j>, row_count, then n<i>, m<i>, s<i>, lo<i>, hi<i> per parameter. */
export function bigQueryMomentsSql(a: BigQueryAnalysis): SqlStatement {
  const aggs = a.numeric.map((_, i) => `, COUNT(x${i}) AS n${i}, AVG(x${i}) AS m${i}, STDDEV_SAMP(x${i}) AS s${i}, MIN(x${i}) AS lo${i}, MAX(x${i}) AS hi${i}`).join('');
  const groups = `side${segmentColumns(a)}`;
  return {sql: `WITH ${bigQueryVersions(a, {numeric: true})} SELECT ${groups}, COUNT(*) AS row_count${aggs} FROM v GROUP BY ${groups}`, ...bigQueryParams(a)};
}

/** Per version: q<i>, APPROX_QUANTILES(x, 100) (percentiles), and e<i>, APPROX_QUANTILES(x, bins) (the PSI edges). */
export function bigQueryQuantilesSql(a: BigQueryAnalysis, bins: number): SqlStatement {
  if (!Number.isInteger(bins) || bins < 2) throw new TypeError(`bins must be an integer >= 2, got ${bins}`);
  const aggs = a.numeric.map((_, i) => `, APPROX_QUANTILES(x${i}, 100) AS q${i}, APPROX_QUANTILES(x${i}, ${bins}) AS e${i}`).join('');
  return {sql: `WITH ${bigQueryVersions(a, {numeric: true})} SELECT side${aggs} FROM v GROUP BY side`, ...bigQueryParams(a)};
}

/**
 * Counts per parameter p, version, segment, fine bin b (`FINE_BINS` equal bins from `lo`) and
 * PSI bin pb (pb i holds edges[i - 1] < x <= edges[i]): p, side, g<j>, b, pb, c.
 */
export function bigQueryBinsSql(a: BigQueryAnalysis, binnings: readonly BigQueryBinning[]): SqlStatement {
  const statement = bigQueryParams(a);
  const fine = fineBins(binnings, statement);
  const psi = binnings.map((binning, i) => {
    const cases = binning.edges.map((e, j) => {
      statement.params[`e_${i}_${j}`] = e;
      statement.types[`e_${i}_${j}`] = 'FLOAT64';
      return `WHEN x <= CAST(@e_${i}_${j} AS FLOAT64) THEN ${j}`;
    });
    return cases.length === 0 ? '0' : `CASE ${cases.join(' ')} ELSE ${cases.length} END`;
  });
  const groups = `p, side${segmentColumns(a)}`;
  return {
    ...statement,
    sql: `${parameterValues(a)} SELECT ${groups}, ${pick('p', fine)} AS b, ${pick('p', psi)} AS pb, COUNT(*) AS c FROM xs WHERE x IS NOT NULL GROUP BY ${groups}, b, pb`,
  };
}

/**
 * The values in some fine bins (as `bigQueryBinsSql` numbers them), for an exact KS: p, side,
 * g<j>, b, x for each parameter p whose bins fall in `wanted[p]` (runs of bins, inclusive).
 */
export function bigQueryBinValuesSql(a: BigQueryAnalysis, binnings: readonly BigQueryBinning[], wanted: ReadonlyMap<number, readonly (readonly [number, number])[]>): SqlStatement {
  const statement = bigQueryParams(a);
  const fine = fineBins(binnings, statement);
  const conditions = [...wanted].flatMap(([p, runs]) => {
    if (!Number.isInteger(p) || runs.length === 0) return [];
    const inRuns = runs.map(([from, to], r) => {
      statement.params[`r_${p}_${r}_from`] = from;
      statement.params[`r_${p}_${r}_to`] = to;
      statement.types[`r_${p}_${r}_from`] = 'INT64';
      statement.types[`r_${p}_${r}_to`] = 'INT64';
      return `b BETWEEN @r_${p}_${r}_from AND @r_${p}_${r}_to`;
    });
    return [`(p = ${p} AND (${inRuns.join(' OR ')}))`];
  });
  return {
    ...statement,
    sql:
      `${parameterValues(a)}, binned AS (SELECT p, side${segmentColumns(a)}, x, ${pick('p', fine)} AS b FROM xs WHERE x IS NOT NULL) ` +
      `SELECT p, side${segmentColumns(a)}, b, x FROM binned WHERE ${conditions.length > 0 ? conditions.join(' OR ') : 'FALSE'}`,
  };
}

// Each parameter's values as rows (p, side, g<j>, x) of `xs`: one scan, fanned out by a cross join.
function parameterValues(a: BigQueryAnalysis): string {
  const values = a.numeric.map((_, i) => `v.x${i}`);
  return (
    `WITH ${bigQueryVersions(a, {numeric: true})}, ${indexes('p', a.numeric.length)}, ` +
    `xs AS (SELECT p.p, v.side${segmentColumns(a, 'v.')}, ${pick('p.p', values)} AS x FROM v CROSS JOIN p)`
  );
}

// The fine bin of x for each parameter: FINE_BINS equal bins from lo (parameters lo_<i>, w_<i>).
function fineBins(binnings: readonly BigQueryBinning[], statement: {params: Record<string, string | number>; types: Record<string, string>}): string[] {
  return binnings.map((binning, i) => {
    statement.params[`lo_${i}`] = binning.lo;
    statement.params[`w_${i}`] = binning.width;
    statement.types[`lo_${i}`] = 'FLOAT64';
    statement.types[`w_${i}`] = 'FLOAT64';
    return binning.width > 0 ? `LEAST(GREATEST(CAST(FLOOR((x - CAST(@lo_${i} AS FLOAT64)) / CAST(@w_${i} AS FLOAT64)) AS INT64), 0), ${FINE_BINS - 1})` : '0';
  });
}

/**
 * The `topN` matched keys with the largest |new - old| per parameter p: p, k<j>, o, n. Ties
 * are broken as the local analysis breaks them (larger keys, then larger old value, first).
 */
export function bigQueryMoversSql(a: BigQueryAnalysis, topN: number): SqlStatement {
  if (!Number.isInteger(topN) || topN < 1) throw new TypeError(`top_n must be a positive integer, got ${topN}`);
  const statement = bigQueryParams(a);
  statement.params['top_n'] = topN;
  statement.types['top_n'] = 'INT64';
  // Parameters carry explicit casts where their type is not evident from the context.
  const keys = a.keys.map((_, j) => `k${j}`);
  // Keys occurring more than once in a version are left out, as the validation leaves them out.
  const version = (side: 0 | 1) =>
    `SELECT * FROM (SELECT *, COUNT(*) OVER (PARTITION BY ${keys.join(', ')}) AS occurrences FROM v ` +
    `WHERE side = ${side} AND ${keys.map((k) => `${k} IS NOT NULL`).join(' AND ')}) WHERE occurrences = 1`;
  const olds = a.numeric.map((_, i) => `o.x${i}`);
  const news = a.numeric.map((_, i) => `n.x${i}`);
  return {
    ...statement,
    sql:
      `WITH ${bigQueryVersions(a, {numeric: true, keys: true})}, ${indexes('p', a.numeric.length)}, ` +
      `o AS (${version(0)}), n AS (${version(1)}), ` +
      `pairs AS (SELECT p.p${keys.map((k) => `, o.${k}`).join('')}, ${pick('p.p', olds)} AS ov, ${pick('p.p', news)} AS nv ` +
      `FROM o JOIN n ON ${keys.map((k) => `o.${k} = n.${k}`).join(' AND ')} CROSS JOIN p), ` +
      `ranked AS (SELECT p${keys.map((k) => `, ${k}`).join('')}, ov, nv, ROW_NUMBER() OVER (PARTITION BY p ORDER BY ABS(nv - ov) DESC` +
      `${keys.map((k) => `, ${k} DESC`).join('')}, ov DESC) AS rn FROM pairs WHERE ov IS NOT NULL AND nv IS NOT NULL AND ov <> nv) ` +
      `SELECT p${keys.map((k) => `, ${k}`).join('')}, ov AS o, nv AS n FROM ranked WHERE rn <= @top_n`,
  };
}

/**
 * The categorical columns summed up inside BigQuery, like `categoriesSql`, so that a column
 * of ids brings back 50 values a list, not one row per value: rows of (c, list, value, o, n)
 * with list `top`, `added` or `vanished`, and per column c one row with list `totals` and the
 * totals' columns (`TOTALS`).
 */
export function bigQueryCategoriesSql(a: BigQueryAnalysis, cap: number): SqlStatement {
  if (!Number.isInteger(cap) || cap < 0) throw new TypeError(`cap must be a non-negative integer, got ${cap}`);
  const values = a.categorical.map((_, i) => `v.c${i}`);
  const when = (condition: string, then = '1') => `SUM(CASE WHEN ${condition} THEN ${then} ELSE 0 END)`;
  const log2 = (x: string) => `LN(${x}) / LN(2)`;
  const [p, q] = ['IEEE_DIVIDE(counts.o, agg.old_count)', 'IEEE_DIVIDE(counts.n, agg.new_count)'];
  const m = `((${p} + ${q}) / 2)`;
  const listed = (name: string, rank: string, where: string) =>
    `SELECT c, '${name}' AS list, value, o, n${TOTALS.map(() => ', NULL').join('')} FROM ranked WHERE ${where}${rank} <= ${cap}`;
  return {
    ...bigQueryParams(a),
    sql:
      `WITH ${bigQueryVersions(a, {categorical: true})}, ${indexes('c', a.categorical.length)}, ` +
      `cs AS (SELECT c.c, v.side, ${pick('c.c', values)} AS value FROM v CROSS JOIN c), ` +
      `counts AS (SELECT c, value, ${when('side = 0')} AS o, ${when('side = 1')} AS n FROM cs GROUP BY c, value), ` +
      `agg AS (SELECT c, ${when('value IS NOT NULL', 'o')} AS old_count, ${when('value IS NOT NULL', 'n')} AS new_count, ` +
      `${when('value IS NULL', 'o')} AS old_nulls, ${when('value IS NULL', 'n')} AS new_nulls, ` +
      `${when('value IS NOT NULL AND o > 0')} AS old_distinct, ${when('value IS NOT NULL AND n > 0')} AS new_distinct, ` +
      `${when('value IS NOT NULL')} AS distinct_count, ${when('value IS NOT NULL AND o = 0')} AS added, ` +
      `${when('value IS NOT NULL AND n = 0')} AS vanished FROM counts GROUP BY c), ` +
      `div AS (SELECT counts.c, SUM(CASE WHEN counts.o > 0 THEN 0.5 * ${p} * ${log2(`${p} / ${m}`)} ELSE 0 END + ` +
      `CASE WHEN counts.n > 0 THEN 0.5 * ${q} * ${log2(`${q} / ${m}`)} ELSE 0 END) AS divergence ` +
      `FROM counts JOIN agg ON counts.c = agg.c WHERE counts.value IS NOT NULL AND agg.old_count > 0 AND agg.new_count > 0 GROUP BY counts.c), ` +
      `ranked AS (SELECT c, value, o, n, ROW_NUMBER() OVER (PARTITION BY c ORDER BY GREATEST(o, n) DESC, value) AS top_rank, ` +
      `ROW_NUMBER() OVER (PARTITION BY c, o = 0 ORDER BY n DESC, value) AS added_rank, ` +
      `ROW_NUMBER() OVER (PARTITION BY c, n = 0 ORDER BY o DESC, value) AS vanished_rank FROM counts WHERE value IS NOT NULL) ` +
      `SELECT agg.c, 'totals' AS list, CAST(NULL AS STRING) AS value, CAST(NULL AS INT64) AS o, CAST(NULL AS INT64) AS n, ` +
      `${TOTALS.map((t) => (t === 'divergence' ? 'div.divergence' : `agg.${t}`)).join(', ')} FROM agg LEFT JOIN div ON agg.c = div.c ` +
      `UNION ALL ${listed('top', 'top_rank', '')} UNION ALL ${listed('added', 'added_rank', 'o = 0 AND ')} ` +
      `UNION ALL ${listed('vanished', 'vanished_rank', 'n = 0 AND ')}`,
  };
}

/** The totals row's columns (`categoriesSql`'s, and each categorical column's row of `bigQueryCategoriesSql`). */
const TOTALS = ['old_count', 'new_count', 'old_nulls', 'new_nulls', 'old_distinct', 'new_distinct', 'distinct_count', 'added', 'vanished', 'divergence'] as const;
