/**
 * The analysis' figures as pure functions: from moments, shift figures and counts (however
 * an engine computed them) to the entries of analysis.json and parameters.csv, plus the
 * statistics both engines share (PSI, Jensen-Shannon, drift labels, rules).
 */
import type {GroupShift} from './shift.js';
import type {AnalysisRuleResult, CategoricalAnalysis, DriftLabel, Mover, NumericAnalysis, NumericSummary, SegmentShift} from './analyze-sql.js';
import {CHART_BINS} from './analyze-sql.js';
import {plural} from './charts.js';

/** Empty PSI bins are floored at this proportion so the logarithm stays finite. */
export const PSI_FLOOR = 1e-4;
/** At most this many categories are listed per categorical column. */
export const CATEGORY_CAP = 50;
/** The percentiles analysis.json reports per version. */
export const SUMMARY_QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95] as const;

/** The `drift` analysis rule. */
export interface DriftRule {
  check: 'drift';
  column?: string | undefined;
  max_psi: number;
  severity: 'error' | 'warn';
}

/** Moments of one parameter in one version (and segment). */
export interface Moments {
  count: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
}

/** Rows and moments per version: global, and per segment (index sid - 1). */
export interface SideMoments {
  rows: number;
  global: Moments;
  segments: Moments[];
}

/**
 * The power of two nearest below `magnitude` (1 for none): dividing by it is exact, and
 * brings the magnitude into [1, 2), where squares cannot overflow. Never below 2^-1022, whose
 * inverse is still a double (a subnormal magnitude is scaled up by that much).
 */
export function powerOfTwoNear(magnitude: number | null): number {
  if (magnitude === null || !Number.isFinite(magnitude) || magnitude === 0) return 1;
  // log2 of the largest doubles rounds to 1024, whose power of two is no double: 2^1023 then.
  return 2 ** Math.max(-1022, Math.min(1023, Math.floor(Math.log2(Math.abs(magnitude)))));
}

// The global moments are combined from the segments' (Chan et al.'s pairwise update of the
// sum of squared deviations), which saves DuckDB a second pass or a GROUPING SETS. Each
// group's mean is its reference plus its mean deviation from it (statsSql): the update runs
// on those means less the side's first reference, small numbers when the values are far from
// zero (a constant: all zero, so its deviation stays exactly 0), divided by a power of two
// near their magnitude, so that squaring cannot overflow for huge values; the scaling changes
// no digit otherwise. A group whose deviation overflows a DOUBLE leaves the global one
// unknown, not the mean.
export function momentsOf(stats: readonly Record<string, unknown>[], i: number, segmentCount: number): [SideMoments, SideMoments] {
  const side = (k: 0 | 1): SideMoments => {
    const segments: Moments[] = Array.from({length: segmentCount}, () => ({count: 0, mean: null, std: null, min: null, max: null}));
    const groups: {count: number; reference: number; deviation: number; std: number | null}[] = [];
    let rows = 0;
    let min: number | null = null;
    let max: number | null = null;
    for (const r of stats) {
      if (num(r['side']) !== k) continue;
      rows += num(r['rows']) ?? 0;
      const sid = num(r['sid']);
      const reference = num(r[`ref${i}`]) ?? 0;
      const deviation = num(r[`m${i}`]);
      const m: Moments = {count: num(r[`n${i}`]) ?? 0, mean: deviation === null ? null : reference + deviation, std: num(r[`s${i}`]), min: num(r[`lo${i}`]), max: num(r[`hi${i}`])};
      if (sid !== null && sid >= 1 && sid <= segmentCount) segments[sid - 1] = m;
      if (m.count === 0 || deviation === null) continue;
      groups.push({count: m.count, reference, deviation, std: m.std});
      min = min === null || m.min! < min ? m.min : min;
      max = max === null || m.max! > max ? m.max : max;
    }
    const origin = groups[0]?.reference ?? 0;
    const offsets = groups.map((g) => g.reference - origin + g.deviation);
    let magnitude = 0;
    for (const [j, g] of groups.entries()) for (const value of [offsets[j]!, g.std ?? 0]) if (Number.isFinite(value)) magnitude = Math.max(magnitude, Math.abs(value));
    const scale = powerOfTwoNear(magnitude);
    let count = 0;
    let mean = 0;
    let m2 = 0;
    for (const [j, g] of groups.entries()) {
      const n = count + g.count;
      const delta = offsets[j]! / scale - mean;
      m2 += ((g.std ?? 0) / scale) ** 2 * (g.count - 1) + (delta * delta * count * g.count) / n;
      mean += (delta * g.count) / n;
      count = n;
    }
    const std = Math.sqrt(m2 / (count - 1)) * scale;
    const global: Moments = {count, mean: count > 0 ? origin + mean * scale : null, std: count > 1 && Number.isFinite(std) ? std : null, min, max};
    return {rows, global, segments};
  };
  return [side(0), side(1)];
}

// The error bounds of approximate figures (the pushed-down analysis), absent when exact.
export function errors(g: ShiftFigures['groups'][number], std: number | null): {ks_error?: number | null; wasserstein_norm_error?: number | null} {
  if (g.ksError === undefined && g.wassersteinError === undefined) return {};
  return {ks_error: round(g.ksError ?? null), wasserstein_norm_error: round(g.wassersteinError != null && std ? g.wassersteinError / std : null)};
}

/** Chart bins span both versions' range: CHART_BINS equal bins from `lo`. */
export function chartRange(o: SideMoments, n: SideMoments): {lo: number; width: number; hi: number | null} {
  const lo = minOf(o.global.min, n.global.min);
  const hi = maxOf(o.global.max, n.global.max);
  if (lo === null || hi === null || !(hi > lo)) return {lo: lo ?? 0, width: 0, hi};
  // Values near both ends of the DOUBLE range (beyond ~9e307 each way): hi - lo overflows.
  const width = Number.isFinite(hi - lo) ? (hi - lo) / CHART_BINS : hi / CHART_BINS - lo / CHART_BINS;
  return {lo, width, hi};
}

/** Edge j of equal bins from `lo` (lo + j * width), without overflowing where the bins span more than a DOUBLE holds. */
export function binEdge(lo: number, width: number, j: number): number {
  const edge = lo + j * width;
  return Number.isFinite(edge) ? edge : 2 * (lo / 2 + j * (width / 2));
}

/**
 * 1, or 1/2 for a parameter whose values span more than a DOUBLE holds (hi - lo overflows):
 * the sorted walk then reads the values halved (exactly) and its figures are doubled back.
 */
export function walkScale(o: SideMoments, n: SideMoments): number {
  const {lo, hi} = chartRange(o, n);
  return hi !== null && !Number.isFinite(hi - lo) ? 0.5 : 1;
}

/** The shift figures of one parameter, however they were computed. */
export interface ShiftFigures {
  /** Index 0: the whole parameter; s: segment s. With error bounds when approximate. */
  groups: (GroupShift & {ksError?: number | null; wassersteinError?: number | null})[];
  edges: number[];
  chart: {old: number[]; new: number[]};
  /** Summary quantiles (SUMMARY_QUANTILES) per version. */
  quantiles: [Map<number, number | null>, Map<number, number | null>];
}

/** analysis.json's entry for one numeric parameter, from its moments and shift figures. */
export function numericFigures([o, n]: [SideMoments, SideMoments], segmentKeys: readonly string[], thresholds: {warn: number; fail: number}, shift: ShiftFigures): NumericAnalysis {
  const chart = chartRange(o, n);
  const psiOf = (g: GroupShift, nOld: number, nNew: number) => {
    if (nOld === 0 || nNew === 0) return null;
    const pOld = g.psiOld.map((c) => c / nOld);
    const pNew = g.psiNew.map((c) => c / nNew);
    return {value: psi(pOld, pNew), po: pOld, pn: pNew};
  };
  const summary = (m: SideMoments, q: Map<number, number | null>): NumericSummary => ({
    count: m.global.count,
    nulls: m.rows - m.global.count,
    mean: round(m.global.mean),
    std: round(m.global.std),
    min: exact(m.global.min),
    p05: exact(q.get(0.05) ?? null),
    p25: exact(q.get(0.25) ?? null),
    p50: exact(q.get(0.5) ?? null),
    p75: exact(q.get(0.75) ?? null),
    p95: exact(q.get(0.95) ?? null),
    max: exact(m.global.max),
  });
  const chartEdges = Array.from({length: CHART_BINS + 1}, (_, j) => round(binEdge(chart.lo, chart.width, j))!);
  if (chart.hi !== null) chartEdges[CHART_BINS] = round(chart.hi)!;

  const global = shift.groups[0]!;
  const globalPsi = psiOf(global, o.global.count, n.global.count);
  const w1 = global.wasserstein;
  const segmentShifts: SegmentShift[] = [];
  if (segmentKeys.length > 0) {
    for (const [index, key] of segmentKeys.entries()) {
      const so = o.segments[index]!;
      const sn = n.segments[index]!;
      const g = shift.groups[index + 1]!;
      const p = psiOf(g, so.count, sn.count);
      segmentShifts.push({
        segment: parseSegmentKey(key),
        old: {count: so.count, mean: round(so.mean), std: round(so.std)},
        new: {count: sn.count, mean: round(sn.mean), std: round(sn.std)},
        mean_change: meanChange(so.mean, sn.mean),
        ks: round(g.ks),
        ...errors(g, so.std),
        psi: round(p?.value ?? null),
        wasserstein_norm: round(g.wasserstein !== null && so.std ? g.wasserstein / so.std : null),
        drift: driftLabel(p?.value ?? null, thresholds),
      });
    }
  }
  return {
    type: 'numeric',
    old: summary(o, shift.quantiles[0]),
    new: summary(n, shift.quantiles[1]),
    mean_change: meanChange(o.global.mean, n.global.mean),
    ks: round(global.ks),
    ...errors(global, o.global.std),
    psi: round(globalPsi?.value ?? null),
    psi_bins: {edges: shift.edges.map((e) => exact(e)!), old: (globalPsi?.po ?? []).map((x) => round(x)!), new: (globalPsi?.pn ?? []).map((x) => round(x)!)},
    wasserstein: round(w1),
    wasserstein_norm: round(w1 !== null && o.global.std ? w1 / o.global.std : null),
    drift: driftLabel(globalPsi?.value ?? null, thresholds),
    histogram: {edges: chartEdges, old: shift.chart.old, new: shift.chart.new},
    segments: segmentShifts,
    top_movers: [],
  };
}

export function minOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

export function maxOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b);
}

/** What analysis.json says of a categorical column, however it was counted. */
interface CategoricalSummary {
  old: {count: number; nulls: number; distinct: number};
  new: {count: number; nulls: number; distinct: number};
  /** The Jensen-Shannon distance of the non-null frequencies; null when a version has none. */
  distance: number | null;
  /** The most frequent values (by the larger count, then by value), at most CATEGORY_CAP. */
  top: {value: string; old: number; new: number}[];
  added: string[];
  vanished: string[];
  truncated: boolean;
}

function categorical(s: CategoricalSummary): CategoricalAnalysis {
  const pct = (count: number, total: number) => round(total > 0 ? (100 * count) / total : 0)!;
  return {
    type: 'categorical',
    old: s.old,
    new: s.new,
    js_distance: round(s.distance),
    categories: s.top.map((c) => ({value: c.value, old: c.old, new: c.new, old_pct: pct(c.old, s.old.count), new_pct: pct(c.new, s.new.count)})),
    new_categories: s.added,
    vanished_categories: s.vanished,
    truncated: s.truncated,
  };
}

/** The same entry from a totals row and the listed values of `categoriesSql` or `bigQueryCategoriesSql` (counted by the engine). */
export function categoricalFromTotals(totals: Record<string, unknown>, listed: readonly Record<string, unknown>[]): CategoricalAnalysis {
  const count = (name: string) => num(totals[name]) ?? 0;
  const rows = (list: string, by: 'o' | 'n' | 'greater') =>
    listed
      .filter((r) => r['list'] === list)
      .map((r) => ({value: String(r['value']), old: num(r['o'])!, new: num(r['n'])!}))
      .sort((a, b) => {
        const rank = (c: {old: number; new: number}) => (by === 'o' ? c.old : by === 'n' ? c.new : Math.max(c.old, c.new));
        return rank(b) - rank(a) || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0);
      });
  const old = {count: count('old_count'), nulls: count('old_nulls'), distinct: count('old_distinct')};
  const neu = {count: count('new_count'), nulls: count('new_nulls'), distinct: count('new_distinct')};
  return categorical({
    old,
    new: neu,
    distance: old.count > 0 && neu.count > 0 ? Math.sqrt(Math.max(count('divergence'), 0)) : null,
    top: rows('top', 'greater'),
    added: rows('added', 'n').map((c) => c.value),
    vanished: rows('vanished', 'o').map((c) => c.value),
    truncated: count('distinct_count') > CATEGORY_CAP || count('added') > CATEGORY_CAP || count('vanished') > CATEGORY_CAP,
  });
}

/** PSI with empty bins floored at `PSI_FLOOR`. */
export function psi(po: readonly number[], pn: readonly number[]): number {
  let sum = 0;
  for (const [i, a] of po.entries()) {
    const o = Math.max(a, PSI_FLOOR);
    const n = Math.max(pn[i]!, PSI_FLOOR);
    sum += (n - o) * Math.log(n / o);
  }
  return sum;
}

// quantile_cont's interpolation: position h = (n - 1) q between order statistics k and k + 1.
export function rankPair(n: number, q: number): {k: number; k2: number; frac: number} | null {
  if (n <= 0) return null;
  const h = (n - 1) * q;
  const k = Math.floor(h);
  return {k, k2: Math.min(k + 1, n - 1), frac: h - k};
}

export function driftLabel(value: number | null, thresholds: {warn: number; fail: number}): DriftLabel | null {
  if (value === null) return null;
  return value >= thresholds.fail ? 'major' : value >= thresholds.warn ? 'moderate' : 'none';
}

export function meanChange(oldMean: number | null, newMean: number | null): {abs: number | null; pct: number | null} {
  if (oldMean === null || newMean === null) return {abs: null, pct: null};
  // Divided before it is scaled: 100 x a change near the largest double would overflow.
  return {abs: round(newMean - oldMean), pct: round(oldMean !== 0 ? 100 * ((newMean - oldMean) / Math.abs(oldMean)) : null)};
}

export function evaluateRule(rule: DriftRule, parameters: Record<string, NumericAnalysis>): AnalysisRuleResult {
  const columns = rule.column !== undefined ? [rule.column] : Object.keys(parameters);
  let worst: {column: string; psi: number} | null = null;
  for (const c of columns) {
    const value = parameters[c]?.psi ?? null;
    if (value !== null && (worst === null || value > worst.psi)) worst = {column: c, psi: value};
  }
  const passed = worst === null || worst.psi <= rule.max_psi;
  const scope = rule.column !== undefined ? `"${rule.column}"` : 'every parameter';
  const message = passed
    ? `drift: PSI of ${scope} is within ${rule.max_psi}${worst ? ` (max ${worst.psi} for "${worst.column}")` : ''}`
    : `drift: PSI of "${worst!.column}" is ${worst!.psi}, above ${rule.max_psi}`;
  return {check: 'drift', severity: rule.severity, ...(rule.column === undefined ? {} : {column: rule.column}), passed, observed: worst?.psi ?? null, limit: rule.max_psi, message};
}

/** Movers, largest absolute change first (ties by key). */
export function toMovers(items: readonly {key: Record<string, unknown>; old: number; new: number}[]): Mover[] {
  // By the change, those beyond a DOUBLE (infinite, written as null) first, ordered by their halves.
  const change = (m: {old: number; new: number}) => Math.abs(m.new - m.old);
  const half = (m: {old: number; new: number}) => Math.abs(m.new / 2 - m.old / 2);
  return [...items]
    .sort((a, b) => change(b) - change(a) || half(b) - half(a) || compareKeys(a.key, b.key))
    .map((m) => ({
      key: m.key,
      old: exact(m.old)!,
      new: exact(m.new)!,
      change: exact(m.new - m.old)!,
      abs_change: exact(Math.abs(m.new - m.old))!,
    }));
}

/** Keys field by field, numbers by value (8 before 10), text by code unit, nulls first. */
export function compareKeys(a: Record<string, unknown>, b: Record<string, unknown>): number {
  for (const field of Object.keys(a)) {
    const x = a[field];
    const y = b[field];
    if (x === y) continue;
    if (x === null || x === undefined) return -1;
    if (y === null || y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    const p = typeof x === 'string' ? x : JSON.stringify(x);
    const q = typeof y === 'string' ? y : JSON.stringify(y);
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

export const CSV_COLUMNS = ['count', 'nulls', 'mean', 'std', 'min', 'p05', 'p25', 'p50', 'p75', 'p95', 'max'] as const;

export function parametersCsv(parameters: Record<string, NumericAnalysis>): string {
  const header = ['parameter', ...CSV_COLUMNS.flatMap((c) => [`old_${c}`, `new_${c}`]), 'mean_change', 'mean_change_pct', 'ks', 'psi', 'wasserstein_norm', 'drift'];
  const lines = [header.join(',')];
  for (const [name, p] of Object.entries(parameters)) {
    const cells = [csvCell(name), ...CSV_COLUMNS.flatMap((c) => [cell(p.old[c]), cell(p.new[c])]), cell(p.mean_change.abs), cell(p.mean_change.pct), cell(p.ks), cell(p.psi), cell(p.wasserstein_norm), p.drift ?? ''];
    lines.push(cells.join(','));
  }
  return `${lines.join('\n')}\n`;
}

export function cell(value: number | null): string {
  return value === null ? '' : String(value);
}

export function csvCell(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A value of the data as it is (an order statistic, a key's value, a difference of two):
 * computed the same way on every run, so not rounded; -0 becomes 0, non-finite null.
 */
export function exact(value: number | null): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  return value === 0 ? 0 : value;
}

/** Rounds sums and ratios to 12 significant digits so reruns write identical bytes (parallel sums differ in their last bits); -0 becomes 0. */
export function round(value: number | null): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const r = Number(value.toPrecision(12));
  return r === 0 ? 0 : r;
}

export function num(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isNaN(n) ? null : n;
}

/** A segment as `column=value` pairs, e.g. `region=east`. */
export function segmentName(segment: SegmentShift['segment']): string {
  return Object.entries(segment)
    .map(([column, value]) => `${column}=${String(value)}`)
    .join(' ');
}

/** At most this many drift lines go to the terminal; analysis.json has them all. */
const HIGHLIGHT_LINES = 5;

/**
 * One line per parameter that drifted, overall or in some segment, strongest (largest PSI)
 * first: what a reader of the run's verdict should know even when no rule failed. A segment
 * is named when the drift is concentrated there (its PSI at least twice the whole's).
 */
export function driftHighlights(parameters: Readonly<Record<string, NumericAnalysis>>): string[] {
  const drifting = (label: DriftLabel | null): label is 'moderate' | 'major' => label === 'moderate' || label === 'major';
  const figure = (value: number | null) => (value === null ? 'n/a' : Number(value.toPrecision(2)).toString());
  const found: {psi: number; line: string}[] = [];
  for (const [name, p] of Object.entries(parameters)) {
    const segments = p.segments.filter((s) => drifting(s.drift)).sort((a, b) => (b.psi ?? 0) - (a.psi ?? 0));
    const strongest = segments[0];
    if (drifting(p.drift)) {
      const where = strongest !== undefined && (strongest.psi ?? 0) >= 2 * (p.psi ?? 0) ? `, strongest in ${segmentName(strongest.segment)} (PSI ${figure(strongest.psi)})` : '';
      found.push({psi: Math.max(p.psi ?? 0, strongest?.psi ?? 0), line: `${name}: ${p.drift} drift (PSI ${figure(p.psi)}, KS ${figure(p.ks)})${where}`});
    } else if (strongest !== undefined) {
      const shown = segments.slice(0, 2).map((s) => `${segmentName(s.segment)} (${s.drift}, PSI ${figure(s.psi)})`);
      const rest = segments.length - 2;
      const more = rest > 0 ? ` and ${rest} more ${plural(rest, 'segment')}` : '';
      found.push({psi: strongest.psi ?? 0, line: `${name}: drift only in ${shown.join(', ')}${more}; PSI ${figure(p.psi)} overall`});
    }
  }
  found.sort((a, b) => b.psi - a.psi);
  const lines = found.slice(0, HIGHLIGHT_LINES).map((f) => f.line);
  if (found.length > HIGHLIGHT_LINES) lines.push(`and ${found.length - HIGHLIGHT_LINES} more drifted parameters (analysis.json)`);
  return lines;
}

/** A segment key as DuckDB's json_object writes it (see `parseDuckDbJson`). */
export function parseSegmentKey(key: string): SegmentShift['segment'] {
  return parseDuckDbJson(key) as SegmentShift['segment'];
}

/**
 * JSON as DuckDB's to_json and json_object write it: JSON, except that a floating-point
 * value's NaN and infinities come out as bare NaN, Infinity and -Infinity, which are read
 * here as the strings "NaN", "Infinity" and "-Infinity" (JSON has no such numbers), and
 * integers past 2^53 (a BIGINT key or segment) are read as their digits, not rounded.
 */
export function parseDuckDbJson(key: string): unknown {
  let text = '';
  let inString = false;
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (inString) {
      text += c;
      if (c === '\\') text += key[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    const bare = /^-?(?:NaN|Infinity)/.exec(key.slice(i, i + 9));
    if (bare !== null) {
      text += JSON.stringify(bare[0]);
      i += bare[0].length - 1;
      continue;
    }
    // An integer past 2^53 would be rounded to its neighbour: kept as its digits instead.
    const integer = /^-?\d+(?![\d.eE])/.exec(key.slice(i));
    if (integer !== null && !/[\w.]/.test(key[i - 1] ?? '')) {
      text += Number.isSafeInteger(Number(integer[0])) ? integer[0] : JSON.stringify(integer[0]);
      i += integer[0].length - 1;
      continue;
    }
    text += c;
  }
  return JSON.parse(text);
}
