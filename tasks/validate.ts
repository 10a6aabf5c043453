/**
 * The comparative validator: compares the two extracted versions (keys, columns under
 * tolerance, schema), evaluates `validation.rules` and writes validation.json and the CSVs
 * of mismatches, added, removed and duplicated keys. The work is SQL from compare-sql.ts
 * run in DuckDB; the CSVs are written by DuckDB itself, so no row passes through JavaScript.
 *
 * Pushed down (the extractions are schema-only references to a BigQuery table, see
 * bigquery-extract.ts), the same plan runs as BigQuery queries: one for every figure, one
 * for bounded samples of the CSVs' rows (`validation.max_mismatch_rows` of each kind), after
 * a dry run of both that `bigquery.maximum_bytes_billed` caps.
 */
import {writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import type {DuckDBConnection} from '@duckdb/node-api';
import {ConfigurationError, ExecutionError, InterruptedError} from '../src/errors.js';
import {defineTask} from '../src/task-api.js';
import type {Json, TaskContext} from '../src/task-api.js';
import {didYouMean} from '../src/util/suggest.js';
import {formatBytes} from '../src/util/units.js';
import {
  bigQueryCountsSql,
  bigQueryMismatchTableSql,
  bigQuerySamplesSql,
  candidatesSql,
  cleanupSql,
  countsSql,
  describeSql,
  diffSql,
  duplicatesCopySql,
  DUPLICATES_PART_ROWS,
  duplicatesSql,
  emptySamplesSql,
  keysCopySql,
  mismatchesCopySql,
  nullKeysSql,
  planComparison,
  profileSql,
  samplesCopySql,
  SAMPLES_TABLE,
} from './lib/compare-sql.js';
import type {ComparePlan, SampleKind, SchemaColumn, SqlStatement, ToleranceSettings} from './lib/compare-sql.js';
import type {BigQueryReference} from './lib/bigquery-extract.js';
import {formatInteger, plural} from './lib/charts.js';
import {documentJson} from './lib/document-json.js';
import {evaluateRules, overallStatus} from './lib/rules.js';
import {taskSettings} from './lib/settings.js';
import type {ComparisonCounts, Rule, ValidationColumn} from './lib/rules.js';


export default defineTask({
  async run(ctx) {
    const settings = readSettings(ctx.settings);
    const rules = settings.rules;
    const sources = {old: ctx.input('extract-old', 'rows.parquet'), new: ctx.input('extract-new', 'rows.parquet')};
    const connection = await ctx.duckdb();
    const sql = new Runner(connection, ctx);

    ctx.progress({message: 'reading schemas'});
    const [schemaOld, schemaNew] = [await sql.schema('old', sources.old), await sql.schema('new', sources.new)];
    const remote = await references(connection, sources, settings, ctx);
    const plan = planComparison({
      dialect: remote === null ? 'duckdb' : 'bigquery',
      sources: remote === null ? sources : {old: remote.old.version, new: remote.new.version},
      keys: settings.keys,
      columns: settings.columns,
      tolerance: settings.tolerance,
      schemaOld,
      schemaNew,
      ...(remote === null ? {} : {table: versionedTable(remote.new)}),
    });

    const numeric = new Set(plan.columns.filter((c) => c.kind === 'numeric').map((c) => c.name));
    for (const name of Object.keys(settings.tolerance.columns)) {
      if (!numeric.has(name)) ctx.warn(`validation.tolerance.columns.${name} applies to no numeric column present in both versions.${didYouMean(name, numeric)}`);
    }

    if (remote !== null) return compareInBigQuery(ctx, sql, plan, remote.new, settings, rules);
    if (settings.mismatchTable !== null) {
      ctx.warn(`validation.mismatch_table (${settings.mismatchTable}) is written only when the comparison runs in BigQuery; here mismatches.csv lists every mismatch.`);
    }
    try {
      const [profileOld, profileNew] = [await profile(sql, plan, 'old'), await profile(sql, plan, 'new')];
      const total = num(profileOld['row_count']) + num(profileNew['row_count']);
      const duplicates = duplicatesSql(plan, Math.max(1, Math.ceil(total / DUPLICATES_PART_ROWS)));
      for (const [i, statement] of duplicates.entries()) {
        ctx.progress({message: duplicates.length === 1 ? 'finding duplicate keys' : `finding duplicate keys (part ${i + 1} of ${duplicates.length})`, rows: 0, total});
        await sql.run(statement);
      }
      ctx.progress({message: 'joining versions', rows: 0, total});
      await sql.run(candidatesSql(plan));
      ctx.progress({message: 'comparing changed rows', rows: 0, total});
      await sql.run(diffSql(plan));
      ctx.progress({message: 'counting differences', rows: total, total});
      let counts: Row = {};
      for (const statement of countsSql(plan)) counts = {...counts, ...(await sql.row(statement))};
      const report = buildReport(plan, settings.tolerance, profileOld, profileNew, counts);
      // Before the CSVs: a rule naming an unknown column should stop the task without more work.
      const results = evaluateRules(rules, report);
      const status = overallStatus(results);

      ctx.progress({message: 'writing CSVs', rows: total, total});
      await sql.run(mismatchesCopySql(plan, ctx.output('mismatches.csv')));
      await sql.run(keysCopySql(plan, 'added', ctx.output('added_keys.csv')));
      await sql.run(keysCopySql(plan, 'removed', ctx.output('removed_keys.csv')));
      await sql.run(duplicatesCopySql(plan, ctx.output('duplicate_keys.csv')));

      const validation = {...report, rules: results, status, engine: 'local'};
      await writeFile(ctx.output('validation.json'), documentJson(validation));
      return finish(ctx, report, results, status, {engine: 'local'});
    } finally {
      for (const statement of cleanupSql()) await sql.run(statement).catch(() => undefined);
    }
  },
});

// Logs the outcome and makes the task's result.
function finish(ctx: TaskContext, report: Report, results: ReturnType<typeof evaluateRules>, status: string, extra: Record<string, Json>) {
  const failed = results.filter((r) => !r.passed);
  for (const r of failed) ctx.log[r.severity === 'error' ? 'error' : 'warn'](r.message);
  ctx.log.info(
    `compared ${report.compared_rows} rows: ${report.changed_rows} changed, ${report.keys.added} keys added, ` +
      `${report.keys.removed} removed; status ${status}`,
  );
  return {
    rows: report.compared_rows,
    verdict: status as 'pass' | 'warn' | 'fail',
    verdictReasons: failed.map((r) => `[${r.severity}] ${r.message}`),
    highlights: [whatChanged(report)],
    details: {
      matched: report.keys.matched,
      added: report.keys.added,
      removed: report.keys.removed,
      changed_rows: report.changed_rows,
      difference_score: report.difference_score,
      ...extra,
    },
  };
}

/** One line of what changed, for under the run's verdict: rows, the columns most changed, keys. */
export function whatChanged(report: Pick<Report, 'compared_rows' | 'changed_rows' | 'keys' | 'columns'>): string {
  const count = formatInteger;
  const keys = `${count(report.keys.added)} ${plural(report.keys.added, 'key')} added, ${count(report.keys.removed)} removed`;
  if (report.compared_rows === 0) {
    // Matched keys are compared unless duplicated in a version (then listed, not compared).
    const none = report.keys.matched === 0 ? 'no key is in both versions' : `every key in both versions is duplicated in one of them (${count(report.keys.matched)})`;
    return `${none}, nothing to compare; ${keys}`;
  }
  const share = Number(((100 * report.changed_rows) / report.compared_rows).toPrecision(3));
  const columns = Object.entries(report.columns)
    .filter(([, column]) => column.changed > 0)
    .sort(([a, x], [b, y]) => y.changed - x.changed || (a < b ? -1 : 1));
  const most = columns.slice(0, 3).map(([name, column]) => `${name} (${count(column.changed)})`);
  const more = columns.length > 3 ? ` and ${columns.length - 3} more ${plural(columns.length - 3, 'column')}` : '';
  const where = most.length === 0 ? '' : `, most in ${most.join(', ')}${more}`;
  return `${count(report.changed_rows)} of ${count(report.compared_rows)} compared rows changed (${share}%)${where}; ${keys}`;
}

/**
 * The BigQuery references of the two extractions, when both are schema-only (pushed down);
 * null when both hold rows. `validation.engine: bigquery` without references runs locally,
 * with a warning saying why.
 */
async function references(
  connection: DuckDBConnection,
  sources: {old: string; new: string},
  settings: ValidateSettings,
  ctx: TaskContext,
): Promise<{old: BigQueryReference; new: BigQueryReference} | null> {
  const {readBigQueryReference} = await import('./lib/bigquery-extract.js');
  const [old, neu] = [await readBigQueryReference(connection, sources.old), await readBigQueryReference(connection, sources.new)];
  if (old === null && neu === null) {
    if (settings.engine === 'bigquery') {
      ctx.warn(
        'validation.engine is bigquery, but the extractions hold the rows (the comparison runs inside BigQuery only when ' +
          'source.engine, validation.engine and analysis.engine are all bigquery); compared locally.',
      );
    }
    return null;
  }
  if (old === null || neu === null) {
    throw new ExecutionError('One extraction is a BigQuery reference and the other holds rows; expected both alike.', {
      hint: 'Rerun both extractions (--force), with the same source and engine settings.',
    });
  }
  const table = (r: BigQueryReference) => `${r.project_id}.${r.dataset_id}.${r.table_id}`;
  if (table(old) !== table(neu) || old.version_column !== neu.version_column || old.api_endpoint !== neu.api_endpoint) {
    throw new ExecutionError(`The two versions point at different BigQuery tables (${table(old)}, ${table(neu)}); expected one table.`);
  }
  return {old, new: neu};
}

function versionedTable(reference: BigQueryReference) {
  return {
    path: `${reference.project_id}.${reference.dataset_id}.${reference.table_id}`,
    versionColumn: reference.version_column,
    versionType: reference.version_type,
    columnTypes: reference.column_types,
  };
}

/** What each CSV lists when pushed down: its sample kind and the total it samples. */
const SAMPLE_FILES: {kind: SampleKind; file: string}[] = [
  {kind: 'mismatch', file: 'mismatches.csv'},
  {kind: 'added', file: 'added_keys.csv'},
  {kind: 'removed', file: 'removed_keys.csv'},
  {kind: 'duplicate', file: 'duplicate_keys.csv'},
];

/**
 * The comparison inside BigQuery: a dry run of both queries (refused above the byte cap),
 * the figures, then the samples when there is anything to list; the CSVs are written by
 * DuckDB from the staged samples.
 */
async function compareInBigQuery(
  ctx: TaskContext,
  sql: Runner,
  plan: ComparePlan,
  reference: BigQueryReference,
  settings: ValidateSettings,
  rules: readonly Rule[],
) {
  const {queryAll, decodeScalar} = await import('./lib/bigquery-client.js');
  const {callBigQuery, openPushedDown, referenceSettings, RowEncoder, stagedRowsSql, WRITE_MISMATCHES} = await import('./lib/bigquery-extract.js');
  const table = `${reference.project_id}.${reference.dataset_id}.${reference.table_id}`;
  const errorSettings = referenceSettings(reference, settings);
  const cap = errorSettings.maximumBytesBilled;
  const {bigquery, query} = await openPushedDown(errorSettings);
  const figuresSql = bigQueryCountsSql(plan);
  const samplesSql = bigQuerySamplesSql(plan, settings.maxMismatchRows);
  // `dataset.table` is in the table's project.
  const mismatchTable = settings.mismatchTable === null ? null : settings.mismatchTable.split('.').length === 2 ? `${reference.project_id}.${settings.mismatchTable}` : settings.mismatchTable;
  const mismatchTableSql = mismatchTable === null ? null : bigQueryMismatchTableSql(plan, mismatchTable);

  ctx.progress({message: 'estimating the BigQuery cost (dry run)'});
  const figuresBytes = await callBigQuery(errorSettings, 'estimate (dry run) the comparison on', () => bigquery.dryRun(query(figuresSql), ctx.signal), ctx.signal);
  const samplesBytes = await callBigQuery(errorSettings, 'estimate (dry run) the samples on', () => bigquery.dryRun(query(samplesSql), ctx.signal), ctx.signal);
  const tableBytes = mismatchTableSql === null ? 0 : await callBigQuery(errorSettings, 'estimate (dry run) the mismatch table from', () => bigquery.dryRun(query(mismatchTableSql), ctx.signal), ctx.signal);
  const estimate = figuresBytes + samplesBytes + tableBytes;
  ctx.log.info(
    `BigQuery dry run: the comparison on ${table} will process at most ${formatBytes(estimate)} ` +
      `(${formatBytes(figuresBytes)} for the figures, ${formatBytes(samplesBytes)} for the samples, run only when there are differences` +
      `${mismatchTable === null ? '' : `, ${formatBytes(tableBytes)} for ${mismatchTable}`}).`,
  );
  if (cap !== undefined && estimate > cap) {
    throw new ConfigurationError(
      `The comparison on ${table} would process ${formatBytes(estimate)}, more than bigquery.maximum_bytes_billed (${formatBytes(cap)}).`,
      {hint: 'Raise bigquery.maximum_bytes_billed, narrow source.columns, or compare locally (validation.engine: local).'},
    );
  }

  ctx.progress({message: 'comparing in BigQuery'});
  const figures = await callBigQuery(errorSettings, 'compare the versions in', () => queryAll(bigquery, query(figuresSql), ctx.signal));
  const [wire] = figures.rows;
  if (wire === undefined) throw new ExecutionError(`Expected one row of figures from BigQuery, got none.`, {task: ctx.name});
  const row: Row = Object.fromEntries(figures.fields.map((f, i) => [f.name, decodeScalar(f, wire.f[i]?.v)]));
  const side = (prefix: 'o_' | 'n_') =>
    Object.fromEntries(Object.entries(row).filter(([name]) => name.startsWith(prefix)).map(([name, value]) => [name.slice(2), value]));
  const profileOld = side('o_');
  const profileNew = side('n_');
  // Nothing was extracted to tell an unknown version: the comparison's counts are the first look.
  for (const [which, profile, version] of [['--old', profileOld, plan.sources.old], ['--new', profileNew, plan.sources.new]] as const) {
    if (num(profile['row_count']) === 0) {
      throw new ConfigurationError(`version ${version} (${which}) has no rows in ${table} (column ${reference.version_column})`, {
        hint: 'Pass a version present in the table (--old/--new; old/new in an HTTP request), or check source.version_column.',
      });
    }
  }
  const report = buildReport(plan, settings.tolerance, profileOld, profileNew, row);
  const results = evaluateRules(rules, report);
  const status = overallStatus(results);

  const totals: Record<SampleKind, number> = {
    mismatch: Object.values(report.columns).reduce((sum, c) => sum + c.changed, 0),
    added: report.keys.added,
    removed: report.keys.removed,
    duplicate: num(row['dup_matched']) + num(row['dup_added']) + num(row['dup_removed']),
  };
  let bytes = figuresBytes;
  if (Object.values(totals).some((n) => n > 0) && settings.maxMismatchRows > 0) {
    ctx.progress({message: 'reading samples from BigQuery'});
    const samples = await callBigQuery(errorSettings, 'read the samples of', () => queryAll(bigquery, query(samplesSql), ctx.signal));
    bytes += samplesBytes;
    const staging = join(ctx.tmpDir, 'bigquery-samples.txt');
    await writeFile(staging, new RowEncoder(samples.fields).encode(samples.rows));
    await sql.run({sql: `CREATE OR REPLACE TEMP TABLE ${SAMPLES_TABLE} AS ${stagedRowsSql(samples.fields, staging)}`, params: {}});
  } else {
    await sql.run(emptySamplesSql(plan));
  }

  const sampled: Record<string, Json> = {};
  try {
    ctx.progress({message: 'writing CSVs'});
    for (const {kind, file} of SAMPLE_FILES) {
      await sql.run(samplesCopySql(plan, kind, ctx.output(file)));
      const rows = Math.min(totals[kind], settings.maxMismatchRows);
      sampled[file] = {rows, total: totals[kind], truncated: rows < totals[kind]};
      if (rows < totals[kind]) {
        ctx.log.warn(`${file} lists the first ${rows} of ${totals[kind]} rows (validation.max_mismatch_rows: ${settings.maxMismatchRows}).`);
      }
    }
  } finally {
    await sql.run({sql: `DROP TABLE IF EXISTS ${SAMPLES_TABLE}`, params: {}}).catch(() => undefined);
  }
  let written: {table: string; rows: number} | undefined;
  if (mismatchTableSql !== null && mismatchTable !== null) {
    ctx.progress({message: `writing every mismatch to ${mismatchTable}`});
    await callBigQuery(errorSettings, `${WRITE_MISMATCHES} ${mismatchTable} from`, () => queryAll(bigquery, query(mismatchTableSql), ctx.signal));
    bytes += tableBytes;
    written = {table: mismatchTable, rows: totals.mismatch};
    ctx.log.info(`Wrote ${totals.mismatch} mismatches to the BigQuery table ${mismatchTable}.`);
  }
  const validation = {...report, rules: results, status, engine: 'bigquery', bytes_processed: bytes, samples: sampled, ...(written === undefined ? {} : {mismatch_table: written})};
  await writeFile(ctx.output('validation.json'), documentJson(validation));
  ctx.log.info(`BigQuery processed ${formatBytes(bytes)} for the comparison.`);
  return finish(ctx, report, results, status, {engine: 'bigquery', bytes_processed: bytes, table});
}

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

/** The settings validate reads. */
interface ValidateSettings {
  keys: string[];
  columns: string[] | null;
  tolerance: ToleranceSettings;
  rules: Rule[];
  engine: 'local' | 'bigquery';
  maxMismatchRows: number;
  /** `validation.mismatch_table`: pushed down, every mismatch also goes to this BigQuery table. */
  mismatchTable: string | null;
  /** `bigquery.maximum_bytes_billed`: the cap on each pushed-down query (null: none). */
  maximumBytesBilled: number | null;
  retryCount: number;
  retryMaxDelaySeconds: number | undefined;
}

function readSettings(settings: Readonly<Record<string, Json>>): ValidateSettings {
  const {source, validation, bigquery, performance} = taskSettings(settings);
  return {
    keys: source.keys,
    columns: source.columns,
    tolerance: validation.tolerance,
    rules: validation.rules,
    engine: validation.engine,
    maxMismatchRows: validation.max_mismatch_rows,
    mismatchTable: validation.mismatch_table,
    maximumBytesBilled: bigquery.maximum_bytes_billed,
    retryCount: performance.retry_count,
    retryMaxDelaySeconds: bigquery.retry_max_delay_seconds ?? undefined,
  };
}

type Row = Record<string, unknown>;

/** The whole of validation.json but the rules and the status, in its fixed key order. */
type Report = ComparisonCounts & {
  null_keys: {old: number; new: number};
  difference_score: number;
  columns: Record<string, ValidationColumn>;
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
  const columns: Record<string, ValidationColumn> = {};
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
