/**
 * SQL for the analyze task, kept apart from where it runs: functions from settings and
 * columns to SQL text, no I/O. Only the DuckDB dialect is generated today; the BigQuery
 * variant (analysis inside the warehouse) is the planned scale-out.
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
  /** Two-sample Kolmogorov-Smirnov statistic D on non-null values (exact). */
  ks: number | null;
  /** Population stability index on the old version's quantile bins. */
  psi: number | null;
  /** PSI bins: interior edges (old quantiles, deduplicated) and proportions per bin. */
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
  passed: boolean;
  observed: number | null;
  limit: number;
  message: string;
}

/** The shape of analysis.json. */
export interface AnalysisDocument {
  settings: {segment_by: string[]; bins: number; top_n: number; psi: {warn: number; fail: number}};
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

/**
 * Summary moments per version (side) and segment (sid): rows, then for parameter i
 * n{i} (non-null count), m{i} (mean), s{i} (sample std), lo{i}, hi{i}.
 */
export function statsSql(s: AnalysisSources, ids: SegmentIds, parameters: readonly string[]): string {
  duckdbOnly(s.dialect);
  const values = parameters.map((p, i) => `${valueExpr(p, s)} AS x${i}`).join(', ');
  const aggs = parameters.map((_, i) => `count(x${i}) AS n${i}, avg(x${i}) AS m${i}, stddev_samp(x${i}) AS s${i}, min(x${i}) AS lo${i}, max(x${i}) AS hi${i}`);
  const side = (k: 0 | 1) => `SELECT ${k} AS side, ${sidExpr(s, ids)} AS sid${values ? `, ${values}` : ''} FROM ${source(s, k)}`;
  return `SELECT side, sid, count(*) AS rows${aggs.length > 0 ? `, ${aggs.join(', ')}` : ''}
FROM (${side(0)} UNION ALL ${side(1)}) GROUP BY side, sid ORDER BY side, sid`;
}

/**
 * Both versions' finite values of one column in ascending order, each with its tag
 * `sid * 2 + side` (UINTEGER): what `ShiftScan` walks to find every shift figure at once.
 */
export function sortedValuesSql(column: string, s: AnalysisSources, ids: SegmentIds): string {
  duckdbOnly(s.dialect);
  const c = `CAST(${quoteIdent(column, s.dialect)} AS DOUBLE)`;
  const side = (k: 0 | 1) => `SELECT CAST(${sidExpr(s, ids)} * 2 + ${k} AS UINTEGER) AS tag, ${c} AS x FROM ${source(s, k)} WHERE isfinite(${c})`;
  return `SELECT tag, x FROM (${side(0)} UNION ALL ${side(1)}) ORDER BY x`;
}

/** One key in this many is joined to find the movers' thresholds (`moverThresholdsSql`). */
export const MOVER_SAMPLE = 64;

function matchedPairs(s: AnalysisSources, keys: readonly string[], where = ''): string {
  const q = (c: string) => quoteIdent(c, s.dialect);
  const on = keys.map((k) => `o.${q(k)} = n.${q(k)}`).join(' AND ');
  return `FROM ${source(s, 0)} o JOIN ${source(s, 1)} n ON ${on}${where}`;
}

function change(parameter: string, s: AnalysisSources): {o: string; n: string; d: string; finite: string} {
  const o = `CAST(o.${quoteIdent(parameter, s.dialect)} AS DOUBLE)`;
  const n = `CAST(n.${quoteIdent(parameter, s.dialect)} AS DOUBLE)`;
  return {o, n, d: `abs(${n} - ${o})`, finite: `isfinite(${o}) AND isfinite(${n})`};
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
    const top = `max(${c.d}, ${topN}) FILTER (WHERE ${c.finite})`;
    return `CASE WHEN len(${top}) = ${topN} THEN list_min(${top}) END AS t${i}`;
  });
  return `SELECT ${cols.join(',\n  ')}\n${matchedPairs(s, keys, ` WHERE ${bucket('o')} AND ${bucket('n')}`)}`;
}

/**
 * The `topN` matched keys with the largest |new - old| per parameter, in one join; changes
 * below the parameter's threshold (from `moverThresholdsSql`, null for none) cannot be among
 * them and are skipped. Ties are broken by the key (and values), so the list is the same on
 * every run.
 */
export function moversSql(s: AnalysisSources, keys: readonly string[], parameters: readonly string[], topN: number, thresholds: readonly (number | null)[] = []): string {
  duckdbOnly(s.dialect);
  if (!Number.isInteger(topN) || topN < 1) throw new TypeError(`top_n must be a positive integer, got ${topN}`);
  const q = (c: string) => quoteIdent(c, s.dialect);
  const keyFields = keys.map((k, i) => `k${i} := o.${q(k)}`).join(', ');
  const cols = parameters.map((p, i) => {
    const {o, n, d, finite} = change(p, s);
    const t = thresholds[i];
    const above = t === null || t === undefined ? '' : ` AND ${d} >= ${doubleLiteral(t)}`;
    return `CAST(to_json(max_by(struct_pack(key := struct_pack(${keyFields}), old := ${o}, new := ${n}),
    struct_pack(d := ${d}, ${keyFields}, old := ${o}), ${topN})
    FILTER (WHERE ${finite}${above})) AS VARCHAR) AS m${i}`;
  });
  return `SELECT ${cols.join(',\n  ')}\n${matchedPairs(s, keys)}`;
}

/** Category counts of one column in both versions: (side, value, n); value NULL counts nulls. */
export function categoriesSql(column: string, s: AnalysisSources): string {
  duckdbOnly(s.dialect);
  const c = `CAST(${quoteIdent(column, s.dialect)} AS VARCHAR)`;
  return `SELECT side, value, count(*) AS n FROM (
  SELECT 0 AS side, ${c} AS value FROM ${source(s, 0)} UNION ALL SELECT 1, ${c} FROM ${source(s, 1)}
) GROUP BY side, value ORDER BY side, value NULLS FIRST`;
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
