/**
 * The declarative rules of `validation.rules`, evaluated over the comparison's counts.
 * Pure: counts in, one result per rule out; the overall status is the worst failed severity.
 */
import {ConfigurationError} from '../../src/errors.js';
import type {Verdict} from '../../src/task-api.js';
import {isNumericType} from './compare-sql.js';
import type {SchemaDiff} from './compare-sql.js';

/** How bad a failed rule is: `error` fails the run (exit 1), `warn` only warns. */
export type Severity = 'error' | 'warn';

/** One rule of `validation.rules`, tagged by `check`. */
export type Rule =
  | {check: 'row_count_change'; severity: Severity; max_pct: number}
  | {check: 'added_keys' | 'removed_keys'; severity: Severity; max?: number; max_pct?: number}
  | {check: 'duplicate_keys'; severity: Severity; max: number}
  | {check: 'changed_rows'; severity: Severity; max_pct: number; column?: string}
  | {check: 'null_rate_change'; severity: Severity; max_pp: number; column?: string}
  | {check: 'schema_unchanged'; severity: Severity}
  | {check: 'max_abs_diff'; severity: Severity; column: string; max: number};

/** What a rule found, as written to validation.json. */
export interface RuleResult {
  check: Rule['check'];
  severity: Severity;
  column?: string;
  passed: boolean;
  observed: number | Record<string, number> | null;
  limit: number | Record<string, number>;
  /** What a plain-number observed and limit count in (absent for a value of the column, and for the two-limit form). */
  unit?: RuleUnit;
  message: string;
}

/** `%` of rows or keys, percentage points, or a number of keys or columns. */
export type RuleUnit = '%' | 'pp' | 'keys' | 'columns';

/** The per-column counts rules read. */
export interface ColumnCounts {
  kind: 'numeric' | 'exact';
  changed: number;
  nulls_old: number;
  nulls_new: number;
  max_abs_diff: number | null;
}

/** One column of validation.json: the counts the rules read, and what a reader needs besides. */
export interface ValidationColumn extends ColumnCounts {
  type: string;
  type_old: string;
  null_rate_old: number;
  null_rate_new: number;
  max_rel_diff: number | null;
  tolerance: {abs: number; rel: number} | null;
}

/** The comparison's counts, as the rules see them. */
export interface ComparisonCounts {
  rows: {old: number; new: number};
  keys: {matched: number; added: number; removed: number; duplicated_old: number; duplicated_new: number};
  compared_rows: number;
  changed_rows: number;
  columns: Record<string, ColumnCounts>;
  schema: SchemaDiff;
}

/**
 * Evaluates each rule. A rule naming a column that is in neither version is a configuration
 * error; one naming a column only one version has fails (that is drift, not a typo).
 */
export function evaluateRules(rules: readonly Rule[], counts: ComparisonCounts, at = 'validation.rules'): RuleResult[] {
  return rules.map((rule, index) => evaluate(rule, counts, `${at}[${index}]`));
}

/** `fail` if an error rule failed, `warn` if a warn rule failed, else `pass`. */
export function overallStatus(results: readonly RuleResult[]): Verdict {
  if (results.some((r) => !r.passed && r.severity === 'error')) return 'fail';
  if (results.some((r) => !r.passed && r.severity === 'warn')) return 'warn';
  return 'pass';
}

/** `part` as a percentage of `whole`; 0 of nothing is 0%, something out of nothing 100%. */
export function percent(part: number, whole: number): number {
  if (whole === 0) return part === 0 ? 0 : 100;
  return (part / whole) * 100;
}

function evaluate(rule: Rule, counts: ComparisonCounts, where: string): RuleResult {
  const {check, severity} = rule;
  const verdict = (passed: boolean) => (passed ? 'within' : 'above');
  switch (rule.check) {
    case 'row_count_change': {
      const observed = percent(Math.abs(counts.rows.new - counts.rows.old), counts.rows.old);
      const passed = observed <= rule.max_pct;
      return {check, severity, passed, observed, limit: rule.max_pct, unit: '%',
        message: `row_count_change: row count changed by ${pct(observed)} (${counts.rows.old} -> ${counts.rows.new}), ${verdict(passed)} the limit of ${pct(rule.max_pct)}`};
    }
    case 'added_keys':
    case 'removed_keys': {
      const count = rule.check === 'added_keys' ? counts.keys.added : counts.keys.removed;
      const observedPct = percent(count, counts.keys.matched + counts.keys.removed);
      const countOk = rule.max === undefined || count <= rule.max;
      const pctOk = rule.max_pct === undefined || observedPct <= rule.max_pct;
      const passed = countOk && pctOk;
      const what = `${count} ${rule.check === 'added_keys' ? 'added' : 'removed'} keys (${pct(observedPct)} of the old version's keys)`;
      // A failure names the limits exceeded; a pass, every limit it is within.
      const limits = [rule.max === undefined || (!passed && countOk) ? null : `${rule.max} keys`, rule.max_pct === undefined || (!passed && pctOk) ? null : pct(rule.max_pct)]
        .filter((x) => x !== null).join(' and ');
      let observed: RuleResult['observed'];
      let unit: RuleUnit | undefined;
      let limit: RuleResult['limit'];
      if (rule.max !== undefined && rule.max_pct !== undefined) {
        observed = {count, pct: observedPct};
        limit = {max: rule.max, max_pct: rule.max_pct};
      } else if (rule.max !== undefined) {
        observed = count;
        limit = rule.max;
        unit = 'keys';
      } else {
        observed = observedPct;
        limit = rule.max_pct ?? 0;
        unit = '%';
      }
      return {check, severity, passed, observed, limit, ...(unit === undefined ? {} : {unit}), message: `${check}: ${what}, ${verdict(passed)} the limit of ${limits}`};
    }
    case 'duplicate_keys': {
      const observed = counts.keys.duplicated_old + counts.keys.duplicated_new;
      const passed = observed <= rule.max;
      return {check, severity, passed, observed, limit: rule.max, unit: 'keys',
        message: `duplicate_keys: ${observed} duplicated keys (${counts.keys.duplicated_old} in the old version, ${counts.keys.duplicated_new} in the new), ${verdict(passed)} the limit of ${rule.max}`};
    }
    case 'changed_rows': {
      let changed = counts.changed_rows;
      let subject = 'rows';
      if (rule.column !== undefined) {
        const column = compared(counts, rule.column, where);
        if (typeof column === 'string') return missingColumn(rule, rule.max_pct, column, '%');
        changed = column.changed;
        subject = `rows in column "${rule.column}"`;
      }
      const observed = percent(changed, counts.compared_rows);
      const passed = observed <= rule.max_pct;
      return {check, severity, ...columnField(rule.column), passed, observed, limit: rule.max_pct, unit: '%',
        message: `changed_rows: ${changed} of ${counts.compared_rows} compared ${subject} changed (${pct(observed)}), ${verdict(passed)} the limit of ${pct(rule.max_pct)}`};
    }
    case 'null_rate_change': {
      let names = Object.keys(counts.columns);
      if (rule.column !== undefined) {
        const column = compared(counts, rule.column, where);
        if (typeof column === 'string') return missingColumn(rule, rule.max_pp, column, 'pp');
        names = [rule.column];
      }
      let observed = 0;
      let worst: string | null = null;
      for (const name of names) {
        const c = counts.columns[name];
        if (c === undefined) continue;
        const change = Math.abs(percent(c.nulls_new, counts.rows.new) - percent(c.nulls_old, counts.rows.old));
        if (worst === null || change > observed) {
          observed = change;
          worst = name;
        }
      }
      const passed = observed <= rule.max_pp;
      const what = worst === null ? 'no compared columns' : `null rate of "${worst}" changed by ${round(observed)} percentage points`;
      return {check, severity, ...columnField(rule.column), passed, observed, limit: rule.max_pp, unit: 'pp',
        message: `null_rate_change: ${what}, ${verdict(passed)} the limit of ${rule.max_pp}`};
    }
    case 'schema_unchanged': {
      const {added, removed, retyped} = counts.schema;
      const observed = added.length + removed.length + retyped.length;
      const passed = observed === 0;
      const parts = [
        ...added.map((c) => `added "${c.column}" (${c.type})`),
        ...removed.map((c) => `removed "${c.column}" (${c.type})`),
        ...retyped.map((c) => `retyped "${c.column}" (${c.old} -> ${c.new})`),
      ];
      return {check, severity, passed, observed, limit: 0, unit: 'columns',
        message: passed ? 'schema_unchanged: both versions have the same columns and types' : `schema_unchanged: ${parts.join(', ')}`};
    }
    case 'max_abs_diff': {
      const column = compared(counts, rule.column, where);
      if (typeof column === 'string') return missingColumn(rule, rule.max, column);
      // Numeric in one version only (DECIMAL to VARCHAR): drift the rule fails on, not a typo.
      const retyped = counts.schema.retyped.find((c) => c.column === rule.column);
      if (column.kind !== 'numeric' && retyped !== undefined && (isNumericType(retyped.old) || isNumericType(retyped.new))) {
        return missingColumn(rule, rule.max, `column "${rule.column}" is ${retyped.old} in the old version and ${retyped.new} in the new one`);
      }
      if (column.kind !== 'numeric' || column.max_abs_diff === null) {
        throw new ConfigurationError(`${where}.column: max_abs_diff needs a numeric column, but "${rule.column}" is not numeric in both versions.`, {
          hint: 'Use changed_rows with a column for non-numeric columns.',
        });
      }
      const observed = column.max_abs_diff;
      const passed = observed <= rule.max;
      return {check, severity, column: rule.column, passed, observed, limit: rule.max,
        message: `max_abs_diff: largest absolute difference in "${rule.column}" is ${observed}, ${verdict(passed)} the limit of ${rule.max}`};
    }
  }
}

// A column rules may name: compared in both versions (its counts), only in one (a message
// for a failed rule), or in neither (a configuration error: most likely a typo).
function compared(counts: ComparisonCounts, name: string, where: string): ColumnCounts | string {
  const column = counts.columns[name];
  if (column !== undefined) return column;
  if (counts.schema.removed.some((c) => c.column === name)) return `column "${name}" is only in the old version`;
  if (counts.schema.added.some((c) => c.column === name)) return `column "${name}" is only in the new version`;
  throw new ConfigurationError(`${where}.column: "${name}" is not a compared column of either version.`, {
    hint: `Compared columns: ${Object.keys(counts.columns).join(', ') || '(none)'}.`,
  });
}

function missingColumn(rule: Rule & {column?: string}, limit: number, reason: string, unit?: RuleUnit): RuleResult {
  return {check: rule.check, severity: rule.severity, ...columnField(rule.column), passed: false, observed: null, limit, ...(unit === undefined ? {} : {unit}),
    message: `${rule.check}: ${reason}, so it cannot be compared`};
}

function columnField(column: string | undefined): {column?: string} {
  return column === undefined ? {} : {column};
}

function pct(value: number): string {
  return `${round(value)}%`;
}

function round(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}
