/**
 * extract: one version's rows from the configured source, written to `rows.parquet`.
 * The embedded default reads a DuckDB table or Parquet/CSV files (tasks/lib/local-source.ts);
 * `source.engine: bigquery` delegates to tasks/lib/bigquery-extract.ts. When every consumer of
 * the rows runs inside BigQuery (`validation.engine` and `analysis.engine` both `bigquery`),
 * the table is not scanned: `rows.parquet` holds the columns, no rows, and a reference to them.
 */
import {ConfigurationError, ExecutionError, InterruptedError} from '../src/errors.js';
import type {Json, TaskContext, TaskResult} from '../src/task-api.js';
import {canonicalJson} from '../src/util/hash.js';
import {isRecord} from '../src/util/json-path.js';
import {defineTask} from '../src/task-api.js';
import type {LocalSettings, LocalSource, SourceSpec} from './lib/local-source.js';
import {extractLocal, plannedQuery, probeLocalSource, resolveLocalSource} from './lib/local-source.js';
import {taskSettings} from './lib/settings.js';

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
    await checkUnchanged(ctx, source, version);
    // A numeric version column holds numbers: "1.10" selects the rows of 1.1, which another
    // version written "1.1" would select too.
    const selected = numericVersion(version, extracted.versionType);
    if (selected !== undefined && selected !== version) {
      ctx.warn(`source.version_column "${settings.spec.versionColumn}" holds numbers (${extracted.versionType}): version "${version}" selects the rows of ${selected}, as "${selected}" would.`);
    }
    ctx.progress({rows: extracted.rows, total: extracted.rows});
    ctx.log.info(`extracted ${extracted.rows} rows of version ${version} (${extracted.columns.length} columns)`);
    return {rows: extracted.rows, details: {version, columns: extracted.columns}};
  },
});

/**
 * Refuses rows read from a source that changed since the fingerprint probed it (a file still
 * being copied or exported): they would be kept as the rows of the content it probed, and
 * served for it later (that content put back by a checkout, say). Probed again once read.
 */
async function checkUnchanged(ctx: TaskContext, source: LocalSource, version: string): Promise<void> {
  const probed = isRecord(ctx.probe) ? ctx.probe['source'] : undefined;
  if (probed === undefined) return; // run without the runner's fingerprint (a benchmark)
  const now = await probeLocalSource(source, ctx.projectDir, (path) => ctx.digestFile(path));
  if (canonicalJson(now) === canonicalJson(probed)) return;
  throw new ExecutionError(`The source changed while version ${version} was read from it (${changedParts(probed, now)}): what was read may mix old and new content, so it is not kept.`, {
    hint: 'Rerun once the source has stopped changing (a file still being copied or exported, say).',
  });
}

/** Which files of a probed source differ between two probes, for a message. */
function changedParts(before: Json, after: Json): string {
  const files = (probe: Json) => new Map(isRecord(probe) && Array.isArray(probe['files']) ? probe['files'].map((f) => [String((f as Record<string, Json>)['path']), canonicalJson(f)] as const) : []);
  const [a, b] = [files(before), files(after)];
  const changed = [...new Set([...a.keys(), ...b.keys()])].filter((path) => a.get(path) !== b.get(path));
  if (changed.length === 0) return isRecord(before) && typeof before['database'] === 'string' ? before['database'] : 'its content';
  return changed.length <= 3 ? changed.join(', ') : `${changed.slice(0, 3).join(', ')} and ${changed.length - 3} more files`;
}

/** What the task reads of its settings. */
interface ExtractSettings {
  engine: 'duckdb' | 'bigquery';
  /** Whether validate and analyze read the rows in BigQuery, so only the schema is extracted. */
  pushedDown: boolean;
  spec: SourceSpec;
  local: LocalSettings;
}

function readSettings(settings: Readonly<Record<string, Json>>): ExtractSettings {
  const {source, duckdb, validation, analysis} = taskSettings(settings);
  return {
    engine: source.engine,
    pushedDown: source.engine === 'bigquery' && validation.engine === 'bigquery' && analysis.engine === 'bigquery',
    spec: {table: source.table, versionColumn: source.version_column, keys: source.keys, columns: source.columns},
    local: {database: duckdb.database, path: duckdb.path},
  };
}

/**
 * The number a version selects in a numeric version column, as text; undefined for a text
 * column or a version that is no number. Integers are taken exactly (past 2^53 too).
 */
function numericVersion(version: string, type: string): string | undefined {
  if (/CHAR|STRING|TEXT/i.test(type)) return undefined;
  if (/INT/i.test(type) && /^[-+]?\d+$/.test(version)) return BigInt(version).toString();
  const number = Number(version);
  return Number.isFinite(number) ? String(number) : undefined;
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
