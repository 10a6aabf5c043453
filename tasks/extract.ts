/**
 * extract: one version's rows from the configured source, written to `rows.parquet`.
 * The embedded default reads a DuckDB table or Parquet/CSV files (tasks/lib/local-source.ts);
 * `source.engine: bigquery` delegates to tasks/lib/bigquery-extract.ts. When every consumer of
 * the rows runs inside BigQuery (`validation.engine` and `analysis.engine` both `bigquery`),
 * the table is not scanned: `rows.parquet` holds the columns, no rows, and a reference to them.
 */
import {ConfigurationError, InterruptedError} from '../src/errors.js';
import type {Json, TaskResult} from '../src/task-api.js';
import {defineTask} from '../src/task-api.js';
import type {LocalSettings, SourceSpec} from './lib/local-source.js';
import {extractLocal, plannedQuery, probeLocalSource, resolveLocalSource} from './lib/local-source.js';
import {SAMPLE_DATABASE, SAMPLE_TABLE} from './lib/sample-data.js';

export default defineTask({
  async probe(ctx) {
    const version = versionOf(ctx.args);
    const settings = readSettings(ctx.settings);
    if (settings.engine === 'bigquery') {
      const {probeBigQuery} = await import('./lib/bigquery-extract.js');
      return probeBigQuery(ctx);
    }
    const source = await resolveLocalSource(settings.local, settings.spec, ctx.projectDir);
    return {
      engine: 'duckdb',
      source: await probeLocalSource(source, ctx.projectDir, (path) => ctx.digestFile(path)),
      version,
      // The schema is part of the digested content, so the configured column list and the
      // query as planned identify the output together with it.
      columns: {keys: settings.spec.keys, columns: settings.spec.columns, version_column: settings.spec.versionColumn},
      sql: plannedQuery(source, settings.spec),
    };
  },

  async run(ctx): Promise<TaskResult> {
    const version = versionOf(ctx.args);
    const settings = readSettings(ctx.settings);
    const output = ctx.output('rows.parquet');
    if (settings.engine === 'bigquery') {
      const {extractBigQuery, extractBigQuerySchema} = await import('./lib/bigquery-extract.js');
      return settings.pushedDown ? extractBigQuerySchema(ctx, version, output) : extractBigQuery(ctx, version, output);
    }
    const source = await resolveLocalSource(settings.local, settings.spec, ctx.projectDir);
    ctx.progress({rows: 0, message: `reading ${source.kind === 'table' ? source.table : source.display}`});
    const connection = await ctx.duckdb();
    let extracted;
    try {
      extracted = await extractLocal(connection, source, settings.spec, version, output);
    } catch (error: unknown) {
      if (ctx.signal.aborted) throw new InterruptedError(`extraction of version ${version} was interrupted`, {cause: error});
      throw error;
    }
    ctx.progress({rows: extracted.rows, total: extracted.rows});
    ctx.log.info(`extracted ${extracted.rows} rows of version ${version} (${extracted.columns.length} columns)`);
    return {rows: extracted.rows, details: {version, columns: extracted.columns}};
  },
});

/**
 * The task's settings, type-checked (the runner validated the file; this guards direct use).
 * Read by hand rather than through `taskSettings()`: the probe runs on every cached run, and
 * importing the settings schema (zod) would add ~60 ms to each.
 */
interface ExtractSettings {
  engine: 'duckdb' | 'bigquery';
  /** Whether validate and analyze read the rows in BigQuery, so only the schema is extracted. */
  pushedDown: boolean;
  spec: SourceSpec;
  local: LocalSettings;
}

function readSettings(settings: Readonly<Record<string, Json>>): ExtractSettings {
  const source = object(settings['source'], 'source');
  const duckdb = object(settings['duckdb'], 'duckdb');
  const engine = source['engine'] ?? 'duckdb';
  if (engine !== 'duckdb' && engine !== 'bigquery') {
    throw new ConfigurationError(`source.engine must be "duckdb" or "bigquery", got ${JSON.stringify(engine)}`);
  }
  const keys = stringList(source['keys'] ?? ['entity_id'], 'source.keys');
  if (keys.length === 0) throw new ConfigurationError('source.keys must name at least one key column, got []');
  const columns = source['columns'] ?? null;
  const path = duckdb['path'] ?? null;
  const validationEngine = object(settings['validation'], 'validation')['engine'] ?? 'local';
  const analysisEngine = object(settings['analysis'], 'analysis')['engine'] ?? 'local';
  return {
    engine,
    pushedDown: engine === 'bigquery' && validationEngine === 'bigquery' && analysisEngine === 'bigquery',
    spec: {
      table: string(source['table'] ?? SAMPLE_TABLE, 'source.table'),
      versionColumn: string(source['version_column'] ?? 'version', 'source.version_column'),
      keys,
      columns: columns === null ? null : stringList(columns, 'source.columns'),
    },
    local: {
      database: string(duckdb['database'] ?? SAMPLE_DATABASE, 'duckdb.database'),
      path: path === null ? null : typeof path === 'string' ? string(path, 'duckdb.path') : stringList(path, 'duckdb.path'),
    },
  };
}

function versionOf(args: Readonly<Record<string, Json>>): string {
  const version = args['version'];
  // A number here has already lost its trailing zeros; it still selects numeric versions.
  if (typeof version === 'number' && Number.isFinite(version)) return String(version);
  if (typeof version !== 'string' || version.trim() === '') {
    throw new ConfigurationError(`extract needs a version (with: {version: ...}), got ${JSON.stringify(version ?? null)}`, {
      hint: 'Pass --old and --new, e.g. --old 0.3615 --new 0.3621.',
    });
  }
  return version.trim();
}

function object(value: Json | undefined, name: string): Record<string, Json> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigurationError(`${name} must be a mapping, got ${JSON.stringify(value)}`);
  }
  return value;
}

function string(value: Json, name: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigurationError(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function stringList(value: Json, name: string): string[] {
  if (typeof value === 'string') return [string(value, name)];
  if (!Array.isArray(value)) throw new ConfigurationError(`${name} must be a list of names, got ${JSON.stringify(value)}`);
  return value.map((item, i) => string(item, `${name}[${i}]`));
}
