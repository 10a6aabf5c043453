/**
 * `GET /versions`: the versions present in the configured source with their row counts,
 * read with a private, read-only DuckDB instance (so a run's engine is never disturbed).
 */
import type {DuckDBConnection} from '@duckdb/node-api';
import {ConfigurationError, ExecutionError, ValidationError} from '../errors.js';
import type {ValidationRunner} from '../runner.js';

/** The versions of the source, oldest first when they are numbers. */
export interface VersionList {
  engine: 'duckdb';
  source: string;
  version_column: string;
  versions: {version: string; rows: number}[];
}

/** The source cannot be listed by this server (BigQuery): answered with 501. */
export class NotImplementedError extends ValidationError {}

export async function listVersions(runner: ValidationRunner): Promise<VersionList> {
  const pipeline = await runner.load();
  const {source: sourceSettings, duckdb} = pipeline.settings;
  if (sourceSettings.engine === 'bigquery') {
    throw new NotImplementedError('Listing versions is not implemented for source.engine bigquery (it would bill a scan of the table).', {
      hint: 'Query the table in BigQuery (SELECT version, COUNT(*) FROM ... GROUP BY version).',
    });
  }
  // The server reads the source the way the extract task does (and creates the sample
  // database when it is the default and missing).
  const {resolveLocalSource} = await import('../../tasks/lib/local-source.js');
  const {quoteIdent, quoteString} = await import('../../tasks/lib/sql.js');
  const spec = {table: sourceSettings.table, versionColumn: sourceSettings.version_column, keys: sourceSettings.keys, columns: sourceSettings.columns};
  const source = await resolveLocalSource({database: duckdb.database, path: duckdb.path}, spec, pipeline.projectDir);

  const {DuckDBInstance} = await import('../engines/duckdb-api.js');
  const instance = await DuckDBInstance.create(':memory:', {threads: '2', memory_limit: '512MB'});
  const connection = await instance.connect();
  try {
    let relation: string;
    if (source.kind === 'table') {
      await connection.run(`ATTACH ${quoteString(source.database, 'duckdb')} AS source (READ_ONLY)`);
      relation = await findTable(connection, source.table, source.display, quoteIdent);
    } else {
      const list = `[${source.files.map((file) => quoteString(file, 'duckdb')).join(', ')}]`;
      relation = `read_${source.format}(${list}, union_by_name = true)`;
    }
    const column = quoteIdent(spec.versionColumn, 'duckdb');
    let rows;
    try {
      const result = await connection.runAndReadAll(
        `SELECT v, n FROM (SELECT CAST(${column} AS VARCHAR) AS v, count(*) AS n FROM ${relation} WHERE ${column} IS NOT NULL GROUP BY 1)
         ORDER BY TRY_CAST(v AS DOUBLE) NULLS LAST, v`,
      );
      rows = result.getRows();
    } catch (error) {
      throw new ExecutionError(`cannot read the versions in column ${spec.versionColumn}: ${(error as Error).message.split('\n')[0]}`, {
        hint: 'Check source.version_column and the source.',
      });
    }
    return {
      engine: 'duckdb',
      source: source.kind === 'table' ? `${source.display} table ${source.table}` : source.display,
      version_column: spec.versionColumn,
      versions: rows.map(([version, rows]) => ({version: String(version), rows: Number(rows)})),
    };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** The quoted `source.schema.table` for `table` (a name or schema.name, as extraction accepts). */
async function findTable(
  connection: DuckDBConnection,
  table: string,
  display: string,
  quoteIdent: (name: string, dialect: 'duckdb') => string,
): Promise<string> {
  const rows = (
    await connection.runAndReadAll(
      `SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'source' ORDER BY table_schema = 'main' DESC, table_schema, table_name`,
    )
  ).getRows().map(([schema, name]) => ({schema: String(schema), name: String(name)}));
  const matches = (same: (a: string, b: string) => boolean) => rows.find((row) => same(row.name, table) || same(`${row.schema}.${row.name}`, table));
  const found = matches((a, b) => a === b) ?? matches((a, b) => a.toLowerCase() === b.toLowerCase());
  if (found === undefined) {
    throw new ConfigurationError(`table ${table} does not exist in ${display}; tables present: ${rows.map((row) => row.name).join(', ') || 'none'}`, {
      hint: 'Set source.table to one of the tables present.',
    });
  }
  return `source.${quoteIdent(found.schema, 'duckdb')}.${quoteIdent(found.name, 'duckdb')}`;
}
