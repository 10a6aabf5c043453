/**
 * The comparative validator: compares the two extracted versions (keys, columns under
 * tolerance, schema), evaluates `validation.rules` and writes validation.json and the CSVs
 * of mismatches, added, removed and duplicated keys. The work is SQL from compare-sql.ts
 * run in DuckDB; the CSVs are written by DuckDB itself, so no row passes through JavaScript.
 */
import {writeFile} from 'node:fs/promises';
import type {DuckDBConnection} from '@duckdb/node-api';
import {ConfigurationError, ExecutionError, InterruptedError} from '../src/errors.js';
import {defineTask} from '../src/task-api.js';
import type {Json, TaskContext} from '../src/task-api.js';
import {
  candidatesSql,
  cleanupSql,
  countsSql,
  describeSql,
  diffSql,
  duplicatesCopySql,
  duplicatesSql,
  keysCopySql,
  mismatchesCopySql,
  nullKeysSql,
  planComparison,
  profileSql,
} from './lib/compare-sql.js';
import type {ComparePlan, SchemaColumn, SqlStatement, ToleranceSettings} from './lib/compare-sql.js';
import {evaluateRules, overallStatus, parseRules} from './lib/rules.js';
import type {ColumnCounts, ComparisonCounts} from './lib/rules.js';

/** Per-column results in validation.json. */
interface ColumnReport extends ColumnCounts {
  type: string;
  type_old: string;
  null_rate_old: number;
  null_rate_new: number;
  max_rel_diff: number | null;
  tolerance: {abs: number; rel: number} | null;
}

export default defineTask({
  async run(ctx) {
    const settings = readSettings(ctx.settings);
    const rules = parseRules(settings.rules);
    const sources = {old: ctx.input('extract-old', 'rows.parquet'), new: ctx.input('extract-new', 'rows.parquet')};
    const connection = await ctx.duckdb();
    const sql = new Runner(connection, ctx);

    ctx.progress({message: 'reading schemas'});
    const [schemaOld, schemaNew] = [await sql.schema('old', sources.old), await sql.schema('new', sources.new)];
    const plan = planComparison({
      dialect: 'duckdb',
      sources,
      keys: settings.keys,
      columns: settings.columns,
      tolerance: settings.tolerance,
      schemaOld,
      schemaNew,
    });

    const numeric = new Set(plan.columns.filter((c) => c.kind === 'numeric').map((c) => c.name));
    for (const name of Object.keys(settings.tolerance.columns)) {
      if (!numeric.has(name)) ctx.log.warn(`validation.tolerance.columns.${name} applies to no numeric column present in both versions`);
    }

    try {
      const [profileOld, profileNew] = [await profile(sql, plan, 'old'), await profile(sql, plan, 'new')];
      const total = num(profileOld['row_count']) + num(profileNew['row_count']);
      ctx.progress({message: 'finding duplicate keys', rows: 0, total});
      await sql.run(duplicatesSql(plan));
      ctx.progress({message: 'joining versions', rows: 0, total});
      await sql.run(candidatesSql(plan));
      ctx.progress({message: 'comparing changed rows', rows: 0, total});
      await sql.run(diffSql(plan));
      ctx.progress({message: 'counting differences', rows: total, total});
      const counts = await sql.row(countsSql(plan));
      const report = buildReport(plan, settings.tolerance, profileOld, profileNew, counts);
      // Before the CSVs: a rule naming an unknown column should stop the task without more work.
      const results = evaluateRules(rules, report);
      const status = overallStatus(results);

      ctx.progress({message: 'writing CSVs', rows: total, total});
      await sql.run(mismatchesCopySql(plan, ctx.output('mismatches.csv')));
      await sql.run(keysCopySql(plan, 'added', ctx.output('added_keys.csv')));
      await sql.run(keysCopySql(plan, 'removed', ctx.output('removed_keys.csv')));
      await sql.run(duplicatesCopySql(plan, ctx.output('duplicate_keys.csv')));

      const validation = {...report, rules: results, status};
      await writeFile(ctx.output('validation.json'), `${JSON.stringify(validation, null, 2)}\n`);

      const failed = results.filter((r) => !r.passed);
      for (const r of failed) ctx.log[r.severity === 'error' ? 'error' : 'warn'](r.message);
      ctx.log.info(
        `compared ${report.compared_rows} rows: ${report.changed_rows} changed, ${report.keys.added} keys added, ` +
          `${report.keys.removed} removed; status ${status}`,
      );
      return {
        rows: report.compared_rows,
        verdict: status,
        verdictReasons: failed.map((r) => `[${r.severity}] ${r.message}`),
        details: {
          matched: report.keys.matched,
          added: report.keys.added,
          removed: report.keys.removed,
          changed_rows: report.changed_rows,
          difference_score: report.difference_score,
        },
      };
    } finally {
      for (const statement of cleanupSql()) await sql.run(statement).catch(() => undefined);
    }
  },
});

// The profile of a version, with `null_keys` added: known from the statistics when there is
// one key column or no key column has nulls, counted by a scan otherwise.
async function profile(sql: Runner, plan: ComparePlan, side: 'old' | 'new'): Promise<Row> {
  const row = await sql.row(profileSql(plan, side));
  const keyNulls = plan.keys.map((_, j) => num(row[`nulls_key_${j}`]));
  let nullKeys = keyNulls[0] ?? 0;
  if (keyNulls.length > 1) {
    nullKeys = keyNulls.every((n) => n === 0) ? 0 : num((await sql.row(nullKeysSql(plan, side)))['null_keys']);
  }
  return {...row, null_keys: nullKeys};
}

/** The settings validate reads, with the defaults of DESIGN.md when absent. */
interface ValidateSettings {
  keys: string[];
  columns: string[] | null;
  tolerance: ToleranceSettings;
  rules: unknown;
}

function readSettings(settings: Readonly<Record<string, Json>>): ValidateSettings {
  const source = asObject(settings['source']);
  const validation = asObject(settings['validation']);
  const keys = source['keys'] ?? ['entity_id'];
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) {
    throw new ConfigurationError(`Expected "source.keys" to be a list of column names, got ${JSON.stringify(keys)}.`);
  }
  const columns = source['columns'] ?? null;
  if (columns !== null && (!Array.isArray(columns) || !columns.every((k) => typeof k === 'string'))) {
    throw new ConfigurationError(`Expected "source.columns" to be null or a list of column names, got ${JSON.stringify(columns)}.`);
  }
  return {
    keys: keys as string[],
    columns: columns as string[] | null,
    tolerance: readTolerance(validation['tolerance'] ?? {}),
    rules: validation['rules'] ?? [],
  };
}

function readTolerance(value: Json): ToleranceSettings {
  const t = asObject(value);
  const problems: string[] = [];
  const number = (v: Json | undefined, at: string, fallback: number | undefined) => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      problems.push(`Expected "${at}" to be a number >= 0, got ${JSON.stringify(v)}.`);
      return fallback;
    }
    return v;
  };
  const tolerance: ToleranceSettings = {
    abs: number(t['abs'], 'validation.tolerance.abs', 0) ?? 0,
    rel: number(t['rel'], 'validation.tolerance.rel', 0) ?? 0,
    columns: {},
  };
  for (const [name, override] of Object.entries(asObject(t['columns'] ?? {}))) {
    const o = asObject(override);
    const abs = number(o['abs'], `validation.tolerance.columns.${name}.abs`, undefined);
    const rel = number(o['rel'], `validation.tolerance.columns.${name}.rel`, undefined);
    tolerance.columns[name] = {...(abs === undefined ? {} : {abs}), ...(rel === undefined ? {} : {rel})};
  }
  if (problems.length > 0) throw new ConfigurationError(problems.join('\n'));
  return tolerance;
}

function asObject(value: Json | undefined): Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};
}

type Row = Record<string, unknown>;

/** The whole of validation.json but the rules and the status, in its fixed key order. */
type Report = ComparisonCounts & {
  null_keys: {old: number; new: number};
  difference_score: number;
  columns: Record<string, ColumnReport>;
  tolerance: ToleranceSettings;
};

// Identical matched rows never reach the diff table; they are what remains of each
// version's rows once null keys, duplicated keys and the diff table's rows are taken away.
function buildReport(plan: ComparePlan, tolerance: ToleranceSettings, old: Row, neu: Row, c: Row): Report {
  const rows = {old: num(old['row_count']), new: num(neu['row_count'])};
  const nullKeys = {old: num(old['null_keys']), new: num(neu['null_keys'])};
  const uniqueOld = rows.old - nullKeys.old - num(c['dup_rows_old']);
  const uniqueNew = rows.new - nullKeys.new - num(c['dup_rows_new']);
  const removed = num(c['removed']);
  const added = num(c['added']);
  const identical = uniqueOld - removed - num(c['compared']);
  if (identical < 0 || identical !== uniqueNew - added - num(c['compared'])) {
    throw new ExecutionError(
      `The comparison's counts do not add up (old: ${uniqueOld} unique rows, new: ${uniqueNew}, identical: ${identical}).`,
      {hint: 'This is a bug in the validate task; please report it with the two Parquet files.'},
    );
  }
  const compared = identical + num(c['compared']);
  const changed = num(c['changed_rows']);
  const columns: Record<string, ColumnReport> = {};
  plan.columns.forEach((column, i) => {
    const nullsOld = num(old[`nulls_${i}`]);
    const nullsNew = num(neu[`nulls_${i}`]);
    columns[column.name] = {
      type: column.typeNew,
      type_old: column.typeOld,
      kind: column.kind,
      changed: num(c[`changed_${i}`]),
      nulls_old: nullsOld,
      nulls_new: nullsNew,
      null_rate_old: rows.old === 0 ? 0 : nullsOld / rows.old,
      null_rate_new: rows.new === 0 ? 0 : nullsNew / rows.new,
      max_abs_diff: nullable(c[`max_abs_${i}`]),
      max_rel_diff: nullable(c[`max_rel_${i}`]),
      tolerance: column.tolerance,
    };
  });
  const largest = Math.max(rows.old, rows.new);
  return {
    rows,
    keys: {
      matched: compared + num(c['dup_matched']),
      added: added + num(c['dup_added']),
      removed: removed + num(c['dup_removed']),
      duplicated_old: num(c['dup_old']),
      duplicated_new: num(c['dup_new']),
    },
    null_keys: nullKeys,
    compared_rows: compared,
    changed_rows: changed,
    difference_score: largest === 0 ? 0 : 1 - (compared - changed) / largest,
    columns,
    schema: plan.schema,
    tolerance,
  };
}

function num(value: unknown): number {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'number') return value;
  throw new ExecutionError(`Expected a number from DuckDB, got ${String(value)}.`);
}

function nullable(value: unknown): number | null {
  return value === null || value === undefined ? null : num(value);
}

/** Runs statements on the task's connection, turning engine errors into the product's. */
class Runner {
  readonly #connection: DuckDBConnection;
  readonly #ctx: TaskContext;

  constructor(connection: DuckDBConnection, ctx: TaskContext) {
    this.#connection = connection;
    this.#ctx = ctx;
  }

  async schema(side: 'old' | 'new', path: string): Promise<SchemaColumn[]> {
    const rows = await this.#rows(describeSql({dialect: 'duckdb'}, side, path));
    return rows.map((r) => ({name: String(r['column_name']), type: String(r['column_type'])}));
  }

  async row(statement: SqlStatement): Promise<Row> {
    const [row] = await this.#rows(statement);
    if (row === undefined) throw new ExecutionError('Expected one row of counts from DuckDB, got none.');
    return row;
  }

  async run(statement: SqlStatement): Promise<void> {
    await this.#rows(statement);
  }

  async #rows(statement: SqlStatement): Promise<Row[]> {
    const started = performance.now();
    try {
      const reader = await this.#connection.runAndReadAll(statement.sql, statement.params);
      this.#ctx.log.debug(`${Math.round(performance.now() - started)} ms: ${statement.sql}`);
      return reader.getRowObjects() as Row[];
    } catch (error: unknown) {
      if (this.#ctx.signal.aborted) throw new InterruptedError('validate was interrupted', {cause: error});
      const message = error instanceof Error ? error.message : String(error);
      throw new ExecutionError(`DuckDB could not compare the versions: ${message}`, {cause: error, task: this.#ctx.name});
    }
  }
}
