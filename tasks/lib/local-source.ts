/**
 * The embedded source: one version's rows from a table of a DuckDB database file, or from
 * Parquet or CSV files, written to Parquet by DuckDB itself (rows never pass through
 * JavaScript, so memory stays within the engine's limit and large versions spill to disk).
 *
 * Resolving the source (which files, which digests) needs no DuckDB, so the freshness probe
 * of a cached run stays cheap; reading the schema and extracting happen in `run`.
 */
import {randomBytes} from 'node:crypto';
import {realpathSync, rmSync, statSync} from 'node:fs';
import {basename, isAbsolute, relative, resolve} from 'node:path';
import type {DuckDBConnection} from '@duckdb/node-api';
import {ConfigurationError, ExecutionError, TransientError} from '../../src/errors.js';
import type {Json} from '../../src/task-api.js';
import {VERSION_PATTERN, VERSION_RULE} from '../../src/util/version.js';
import {expandGlob, isErrno, isGlob} from './glob.js';
import {ensureSampleDatabase, isSampleDatabase, SAMPLE_DATABASE} from './sample-data.js';
import {PARQUET_FORMAT, quoteIdent, quoteString} from './sql.js';

/** What to read, as the settings say it (`source.*` and `duckdb.*`). */
export interface SourceSpec {
  /** `source.table`: the table in the database (ignored for files). */
  table: string;
  /** `source.version_column`. */
  versionColumn: string;
  /** `source.keys`, at least one. */
  keys: string[];
  /** `source.columns`, or null for every column but the version column. */
  columns: string[] | null;
}

/** Where the rows are: a table of a DuckDB file, or a list of Parquet or CSV files. */
export type LocalSource =
  | {kind: 'table'; database: string; display: string; table: string}
  | {kind: 'files'; format: 'parquet' | 'csv'; files: string[]; display: string};

/** The settings the local source reads, already type-checked. */
export interface LocalSettings {
  database: string;
  path: string | string[] | null;
}

/**
 * Finds the source on disk (creating the sample database when it is the default and
 * missing) and checks that every file is there and is a file. No DuckDB involved.
 */
export async function resolveLocalSource(
  settings: LocalSettings,
  spec: SourceSpec,
  projectDir: string,
): Promise<LocalSource> {
  if (settings.path !== null) return resolveFiles(settings.path, projectDir);
  const database = resolve(projectDir, settings.database);
  if (isSampleDatabase(settings.database, projectDir)) await ensureSampleDatabase(database);
  checkFile(database, settings.database, 'duckdb.database', 'a DuckDB database file', {
    hint: `Set duckdb.database to an existing DuckDB file, or remove the setting to use the sample database ${SAMPLE_DATABASE}.`,
  });
  return {kind: 'table', database, display: settings.database, table: spec.table};
}

async function resolveFiles(path: string | string[], projectDir: string): Promise<LocalSource> {
  const patterns = typeof path === 'string' ? [path] : path;
  const display = patterns.join(', ');
  const files: string[] = [];
  for (const pattern of patterns) {
    const absolute = resolve(projectDir, pattern);
    // A file named with a glob character (export[2024].csv) is itself, when it exists.
    if (isGlob(pattern) && !isExistingFile(absolute)) {
      let matched: string[];
      try {
        matched = await expandGlob(absolute);
      } catch (error: unknown) {
        // A folder under the pattern that cannot be listed.
        throw readFailure((error as NodeJS.ErrnoException).path ?? absolute, pattern, error);
      }
      if (matched.length === 0) {
        throw new ConfigurationError(`no file matches duckdb.path "${pattern}" (resolved to ${absolute})`, {
          hint: 'Check the folder and the pattern; * does not cross folders, ** does.',
        });
      }
      files.push(...matched);
    } else {
      checkFile(absolute, pattern, 'duckdb.path', 'a Parquet or CSV file');
      files.push(absolute);
    }
  }
  const formats = new Set(files.map(formatOf));
  if (formats.has(undefined)) {
    const odd = files.find((file) => formatOf(file) === undefined)!;
    throw new ConfigurationError(
      `duckdb.path "${display}" matches ${odd}, which is neither Parquet nor CSV (expected a name ending in .parquet, .pq, .csv, .tsv or .txt, optionally .gz or .zst)`,
    );
  }
  if (formats.size > 1) {
    throw new ConfigurationError(`duckdb.path "${display}" matches both Parquet and CSV files; point it at one format`);
  }
  // A file and a link to it (latest.csv -> v2.csv) are one file: read once.
  const real = new Set<string>();
  const distinct = files.filter((file) => {
    const path = realPath(file);
    if (real.has(path)) return false;
    real.add(path);
    return true;
  });
  return {kind: 'files', format: [...formats][0]!, files: distinct, display};
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function isExistingFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function formatOf(file: string): 'parquet' | 'csv' | undefined {
  const name = basename(file).toLowerCase().replace(/\.(gz|zst)$/, '');
  if (/\.(parquet|pq|parq)$/.test(name)) return 'parquet';
  if (/\.(csv|tsv|txt)$/.test(name)) return 'csv';
  return undefined;
}

function checkFile(absolute: string, configured: string, setting: string, expected: string, options: {hint?: string} = {}): void {
  let stats;
  try {
    stats = statSync(absolute);
  } catch (error: unknown) {
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) {
      throw new ConfigurationError(`${setting} "${configured}" does not exist (resolved to ${absolute})`, options);
    }
    throw readFailure(absolute, configured, error);
  }
  if (!stats.isFile()) {
    throw new ConfigurationError(`${setting} "${configured}" is a ${stats.isDirectory() ? 'directory' : 'special file'}, expected ${expected}`, {
      hint: stats.isDirectory() && setting === 'duckdb.path' ? `To read every file in it, use a glob such as "${configured.replace(/\/$/, '')}/*.parquet".` : undefined,
    });
  }
}

/** An OS error while reading a source file, as the error the user should see. */
export function readFailure(absolute: string, configured: string, error: unknown): ExecutionError {
  if (isErrno(error, 'EACCES') || isErrno(error, 'EPERM')) {
    return new ExecutionError(`cannot read ${configured}: permission denied (${absolute})`, {
      hint: 'Give the user running the pipeline read access to it.',
      cause: error,
    });
  }
  return new ExecutionError(`cannot read ${configured}: ${error instanceof Error ? error.message : String(error)}`, {cause: error});
}

/**
 * JSON that changes exactly when the source's content does: the digest of every file read
 * (and of a DuckDB write-ahead log beside the database, which holds committed rows too).
 * Paths are relative to the project, so moving the project keeps the cache.
 */
export async function probeLocalSource(
  source: LocalSource,
  projectDir: string,
  digestFile: (path: string) => Promise<string>,
): Promise<Json> {
  const digest = async (file: string) => {
    try {
      return await digestFile(file);
    } catch (error: unknown) {
      throw readFailure(file, displayPath(file, projectDir), error);
    }
  };
  switch (source.kind) {
    case 'table': {
      const wal = `${source.database}.wal`;
      let walDigest: string | null = null;
      try {
        if (statSync(wal).isFile()) walDigest = await digest(wal);
      } catch (error: unknown) {
        if (!isErrno(error, 'ENOENT')) throw readFailure(wal, displayPath(wal, projectDir), error);
      }
      return {
        kind: 'table',
        database: displayPath(source.database, projectDir),
        digest: await digest(source.database),
        wal: walDigest,
        table: source.table,
      };
    }
    case 'files': {
      const files: Json[] = [];
      for (const file of source.files) files.push({path: displayPath(file, projectDir), digest: await digest(file)});
      return {kind: 'files', format: source.format, files};
    }
  }
}

function displayPath(file: string, projectDir: string): string {
  const path = relative(projectDir, file);
  return path.startsWith('..') || isAbsolute(path) ? file : path.split('\\').join('/');
}

/** The extraction query as configured, before the source's schema is known (for the probe). */
export function plannedQuery(source: LocalSource, spec: SourceSpec): string {
  const select =
    spec.columns === null
      ? `* EXCLUDE (${quoteIdent(spec.versionColumn, 'duckdb')})`
      : unique([...spec.keys, ...spec.columns]).map((c) => quoteIdent(c, 'duckdb')).join(', ');
  const from = source.kind === 'table' ? quoteIdent(source.table, 'duckdb') : `read_${source.format}(<files>)`;
  return `SELECT ${select} FROM ${from} WHERE ${quoteIdent(spec.versionColumn, 'duckdb')} = $version`;
}

/** A column of the source and its DuckDB type. */
interface Column {
  name: string;
  type: string;
}

/**
 * Writes the rows of `version` to `outputPath` as Parquet and returns how many there were.
 * Rows keep their order in the source (the engine preserves insertion order), so the same
 * source gives the same bytes on every run. Not sorting is what lets extraction stream:
 * measured on 10M rows, sorting by the keys took 1.5x the time and 2.2 GB of memory
 * against 0.8 GB; the comparison joins on the keys and does not need the order.
 */
export async function extractLocal(
  connection: DuckDBConnection,
  source: LocalSource,
  spec: SourceSpec,
  version: string,
  outputPath: string,
): Promise<{rows: number; columns: string[]; versionType: string}> {
  // Each extraction attaches under its own alias: extract-old and extract-new share the
  // run's engine and may attach the same file at the same moment.
  const alias = `source_${randomBytes(6).toString('hex')}`;
  let relation: string;
  let detach = false;
  if (source.kind === 'table') {
    await attach(connection, source, alias);
    detach = true;
    relation = `${quoteIdent(alias, 'duckdb')}.${await findTable(connection, source, alias)}`;
  } else {
    relation = await fileRelation(connection, source);
  }
  try {
    let schema = await describe(connection, relation, source);
    const name = source.kind === 'table' ? source.table : source.display;
    let versionColumn = findColumns(schema, [spec.versionColumn], 'version column', name)[0]!;
    let versionText: string | undefined;
    // Own columns spelt or (CSV) typed otherwise than all the files read together give them.
    let renamed = new Map<string, string>();
    let retyped = new Map<string, string>();
    if (source.kind === 'files' && source.format === 'csv' && versionColumn.type !== 'VARCHAR') {
      // A CSV's versions are the text written in it: "1.10" is another version than "1.1",
      // which DuckDB's type detection would read as the same number.
      const asText = await fileRelation(connection, source, versionColumn.name).catch(() => undefined);
      if (asText !== undefined) {
        relation = asText;
        versionText = versionColumn.name;
        schema = await describe(connection, relation, source);
        versionColumn = findColumns(schema, [spec.versionColumn], 'version column', name)[0]!;
      }
    }
    if (source.kind === 'files') {
      // Files of different columns (one file per version, a column added in the new one) are
      // read together by name; each version takes the columns of its own files only, so that
      // the comparison sees the schema change rather than a column of nulls.
      const own = await versionFiles(connection, source, relation, versionColumn, version);
      if (own.length > 0 && own.length < source.files.length) {
        const together = schema;
        relation = await fileRelation(connection, {...source, files: own}, versionText);
        schema = await describe(connection, relation, source);
        ({schema, renamed, retyped} = asTogether(schema, together, source.format));
      }
    }
    const keys = findColumns(schema, spec.keys, spec.keys.length === 1 ? 'key column' : 'key columns', name);
    // By name whatever its case: DuckDB's names are case-insensitive (a file may say Version).
    const notVersion = (c: Column) => c.name.toLowerCase() !== versionColumn.name.toLowerCase();
    const rest =
      spec.columns === null ? schema.filter(notVersion) : findColumns(schema, spec.columns, 'columns listed in source.columns', name).filter(notVersion);
    const columns = unique([...keys, ...rest].map((c) => c.name));
    const q = (column: string) => quoteIdent(column, 'duckdb');
    // A key or listed column found in another case (DuckDB's names are case-insensitive) is
    // written under the name the settings give it, the name validate and analyze look for.
    const configured = new Map<string, string>();
    for (const name of [...spec.keys, ...(spec.columns ?? [])]) {
      const found = schema.find((c) => c.name.toLowerCase() === name.toLowerCase() && !schema.some((d) => d.name === name));
      if (found !== undefined) configured.set(found.name, name);
    }
    // Parquet has no 128-bit integers (DuckDB would write them as DOUBLEs, merging keys past
    // 2^53): they travel as DECIMAL(38,0), exact up to 38 digits.
    const wide = new Set(schema.filter((c) => WIDE_INTEGER.test(c.type)).map((c) => c.name));
    const typeOf = new Map(schema.map((c) => [c.name, c.type]));
    const projection = columns.map((c) => {
      const read = renamed.get(c) ?? c;
      const typed = retyped.has(c) ? `CAST(${q(read)} AS ${retyped.get(c)!})` : q(read);
      const value = wide.has(c) ? `CAST(${typed} AS DECIMAL(38,0))` : intermediateValue(typed, typeOf.get(c) ?? '');
      const as = configured.get(c) ?? c;
      return value === q(as) ? value : `${value} AS ${q(as)}`;
    });
    const select = `SELECT ${projection.join(', ')} FROM ${relation} WHERE ${versionPredicate(versionColumn)}`;
    const copy = `COPY (${select}) TO ${quoteString(outputPath, 'duckdb')} (${PARQUET_FORMAT})`;
    const prepared = await connection.prepare(copy);
    prepared.bind({version});
    let rows: number;
    try {
      const result = await prepared.runAndReadAll();
      rows = Number(result.getRows()[0]?.[0] ?? 0);
    } catch (error: unknown) {
      if (wide.size > 0 && /out of range|DECIMAL\(38,0\)/i.test(duckdbMessage(error))) {
        throw new ConfigurationError(`${[...wide].map((c) => `"${c}"`).join(', ')} (${wide.size === 1 ? 'a 128-bit integer column' : '128-bit integer columns'}): a value has more than 38 digits, which the Parquet intermediate cannot carry exactly`, {
          hint: 'Leave the column out with source.columns, or read it through a view that casts it (to VARCHAR for an identifier).',
        });
      }
      throw sourceFailure(error, source);
    }
    if (rows === 0) {
      rmSync(outputPath, {force: true});
      const present = await versionsPresent(connection, relation, versionColumn, source);
      // A version stored as, say, "v 1" or a timestamp cannot be asked for: say so, and how.
      const unusable = present.split(', ').filter((v) => v !== 'none' && !v.startsWith('... (') && !VERSION_PATTERN.test(v));
      const also = unusable.length === 0 ? '' : ` Versions such as "${unusable[0]}" cannot be passed (${VERSION_RULE}): read the table through a view that renames them.`;
      throw new ConfigurationError(`version ${version} has no rows in ${name}; versions present: ${present}`, {
        hint: `Pass one of the versions present (--old/--new; old/new in an HTTP request), or check source.version_column.${also}`,
      });
    }
    return {rows, columns: columns.map((c) => configured.get(c) ?? c), versionType: versionColumn.type};
  } finally {
    if (detach) await connection.run(`DETACH ${quoteIdent(alias, 'duckdb')}`);
  }
}

/**
 * A version's own files' columns as all the files read together name and (CSV) type them:
 * spelt as together (`Score` in one file, `score` in another, is one column, as DuckDB's names
 * are case-insensitive), and for CSV, whose columns have only the types DuckDB's sniffer guesses
 * from the rows it reads, typed as together (1 and 2 alone read as BIGINT, beside 1.5 as
 * DOUBLE): a guess or a spelling is no schema change. `renamed` maps a column's name in the
 * schema to its name in the own files; `retyped` to the type it is cast to.
 */
function asTogether(own: Column[], together: readonly Column[], format: 'csv' | 'parquet'): {schema: Column[]; renamed: Map<string, string>; retyped: Map<string, string>} {
  const byName = new Map(together.map((c) => [c.name.toLowerCase(), c]));
  const renamed = new Map<string, string>();
  const retyped = new Map<string, string>();
  const schema = own.map((c) => {
    const common = byName.get(c.name.toLowerCase());
    if (common === undefined) return c;
    if (common.name !== c.name) renamed.set(common.name, c.name);
    if (format === 'csv' && common.type !== c.type) retyped.set(common.name, common.type);
    return {...c, name: common.name, type: format === 'csv' ? common.type : c.type};
  });
  return {schema, renamed, retyped};
}

async function attach(connection: DuckDBConnection, source: Extract<LocalSource, {kind: 'table'}>, alias: string): Promise<void> {
  try {
    await connection.run(`ATTACH ${quoteString(source.database, 'duckdb')} AS ${quoteIdent(alias, 'duckdb')} (READ_ONLY)`);
  } catch (error: unknown) {
    const message = duckdbMessage(error);
    if (message.includes('not a valid DuckDB database file')) {
      throw new ConfigurationError(`duckdb.database "${source.display}" is not a DuckDB database file (${source.database})`, {
        hint: 'To read Parquet or CSV files, set duckdb.path instead.',
      });
    }
    if (/lock/i.test(message)) {
      throw new TransientError(`duckdb.database "${source.display}" is locked by another process: ${message}`, {
        hint: 'Close the program that has the database open for writing, then rerun.',
        cause: error,
      });
    }
    if (/permission denied/i.test(message)) {
      throw new ExecutionError(`cannot read ${source.display}: permission denied (${source.database})`, {
        hint: 'Give the user running the pipeline read access to the file.',
        cause: error,
      });
    }
    throw new ExecutionError(`cannot open duckdb.database "${source.display}": ${message}`, {cause: error});
  }
}

/** The quoted `schema.table` of the configured table; a clear error listing the tables otherwise. */
async function findTable(connection: DuckDBConnection, source: Extract<LocalSource, {kind: 'table'}>, alias: string): Promise<string> {
  const prepared = await connection.prepare(
    `SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = $alias ORDER BY table_schema = 'main' DESC, table_schema, table_name`,
  );
  prepared.bind({alias});
  const tables = (await prepared.runAndReadAll()).getRows().map(([schema, table]) => ({schema: String(schema), table: String(table)}));
  const wanted = source.table;
  const match =
    tables.find((t) => t.table === wanted || `${t.schema}.${t.table}` === wanted) ??
    // DuckDB resolves names case-insensitively; so do we, after an exact match failed.
    tables.find((t) => t.table.toLowerCase() === wanted.toLowerCase() || `${t.schema}.${t.table}`.toLowerCase() === wanted.toLowerCase());
  if (match === undefined) {
    const names = tables.map((t) => (t.schema === 'main' ? t.table : `${t.schema}.${t.table}`));
    throw new ConfigurationError(
      `table ${wanted} does not exist in ${source.display}; tables present: ${names.length > 0 ? names.join(', ') : 'none'}`,
      {hint: 'Set source.table to one of the tables present.'},
    );
  }
  return `${quoteIdent(match.schema, 'duckdb')}.${quoteIdent(match.table, 'duckdb')}`;
}

/** The files as one relation; a CSV's column named `asText` is read as text. */
async function fileRelation(connection: DuckDBConnection, source: Extract<LocalSource, {kind: 'files'}>, asText?: string): Promise<string> {
  const list = `[${source.files.map((f) => quoteString(f, 'duckdb')).join(', ')}]`;
  if (source.format === 'parquet') return `read_parquet(${list}, union_by_name = true)`;
  // A quoted empty field ("") is an empty string; only an empty field is NULL.
  const types = `, allow_quoted_nulls = false${asText === undefined ? '' : `, types = {${quoteString(asText, 'duckdb')}: 'VARCHAR'}`}`;
  const relation = `read_csv(${list}, union_by_name = true${types})`;
  // When no delimiter gives every row the same number of fields, DuckDB's sniffer settles
  // for one column holding whole lines. No real source has a one-column table (it needs a
  // key and a version), so read it again as comma-separated and let the real error show.
  const schema = await describe(connection, relation, source);
  if (schema.length === 1 && source.files.every((f) => !/\.tsv(\.gz|\.zst)?$/i.test(f))) {
    const strict = `read_csv(${list}, union_by_name = true, delim = ','${types})`;
    await describe(connection, strict, source);
    return strict;
  }
  const delimiter = wholeHeader(schema);
  if (delimiter !== undefined) {
    // Among several files, such a file shows as one more column named by its whole header
    // ("id,version,score"), and its rows would be lost without a word (no version). It is
    // read alone with the delimiter, so that its error names it (DuckDB names no file when
    // one of several fails); a column merely named "a,b" is no such file, and stays.
    for (const file of source.files) {
      const one = await describe(connection, `read_csv(${quoteString(file, 'duckdb')})`, source);
      if (one.length === 1) await describe(connection, `read_csv(${quoteString(file, 'duckdb')}, delim = ${quoteString(delimiter, 'duckdb')})`, source);
    }
  }
  return relation;
}

/** The delimiter of a column named by a whole header line (the other columns' names joined), if any. */
function wholeHeader(schema: readonly Column[]): string | undefined {
  const names = new Set(schema.map((c) => c.name.toLowerCase()));
  for (const column of schema) {
    for (const delimiter of [',', ';', '\t', '|']) {
      const parts = column.name.split(delimiter);
      if (parts.length > 1 && parts.every((part) => names.has(part.trim().toLowerCase()))) return delimiter;
    }
  }
  return undefined;
}

/**
 * The files holding the version being extracted, when the files do not all have the same
 * columns (else all of them: nothing to tell apart). The version's value is bound, as in the
 * extraction itself.
 */
async function versionFiles(connection: DuckDBConnection, source: Extract<LocalSource, {kind: 'files'}>, relation: string, versionColumn: Column, version: string): Promise<string[]> {
  if (source.files.length < 2) return source.files;
  const schemas = new Set<string>();
  for (const file of source.files) {
    const columns = await describe(connection, `${source.format === 'parquet' ? 'read_parquet' : 'read_csv'}(${quoteString(file, 'duckdb')})`, source);
    schemas.add(JSON.stringify(columns.map((c) => [c.name, c.type]).sort()));
    if (schemas.size > 1) break;
  }
  if (schemas.size === 1) return source.files;
  const named = relation.replace(/\)$/, ', filename = true)');
  try {
    const prepared = await connection.prepare(`SELECT DISTINCT filename FROM ${named} WHERE ${versionPredicate(versionColumn)}`);
    prepared.bind({version});
    const rows = (await prepared.runAndReadAll()).getRows();
    const holding = new Set(rows.map(([file]) => String(file)));
    return source.files.filter((file) => holding.has(file));
  } catch (error: unknown) {
    throw sourceFailure(error, source);
  }
}

async function describe(connection: DuckDBConnection, relation: string, source: LocalSource): Promise<Column[]> {
  try {
    const result = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${relation}`);
    return result.getRows().map(([name, type]) => ({name: String(name), type: String(type)}));
  } catch (error: unknown) {
    throw sourceFailure(error, source);
  }
}

/** Looks names up in the schema (exactly, then case-insensitively, as DuckDB does). */
function findColumns(schema: readonly Column[], names: readonly string[], what: string, sourceName: string): Column[] {
  const found: Column[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const column = schema.find((c) => c.name === name) ?? schema.find((c) => c.name.toLowerCase() === name.toLowerCase());
    if (column === undefined) missing.push(name);
    else found.push(column);
  }
  if (missing.length > 0) {
    const list = missing.map((m) => `"${m}"`).join(', ');
    const verb = missing.length === 1 ? 'does' : 'do';
    const noun = missing.length === 1 ? what.replace(/columns/, 'column') : what;
    throw new ConfigurationError(
      `${noun} ${list} ${verb} not exist in ${sourceName}; columns present: ${schema.map((c) => c.name).join(', ')}`,
      {hint: 'Fix source.version_column, source.keys or source.columns to name columns that exist.'},
    );
  }
  return found;
}

/** DuckDB's 128-bit integers, which Parquet cannot hold. */
const WIDE_INTEGER = /^U?HUGEINT$/;

/**
 * A value as the intermediate keeps it, where Parquet and the comparison need another form:
 * a UNION as its text (Parquet writes it as a struct without names, which the comparison
 * cannot stage), a MAP with its entries in key order (a map has no order: {a: 1, b: 2} is
 * {b: 2, a: 1}).
 */
function intermediateValue(column: string, type: string): string {
  if (/^UNION\(/i.test(type)) return `CAST(${column} AS VARCHAR)`;
  if (/^MAP\(/i.test(type)) return `map_from_entries(list_sort(map_entries(${column})))`;
  return column;
}

/**
 * How the version given on the command line selects rows. Users store versions as numbers
 * or as text, and a version typed as 0.3610 must find a number stored as 0.361:
 * - a numeric column matches by value (the text is cast to DOUBLE, or to FLOAT for a FLOAT
 *   column so that single-precision values compare at their own precision; an integer
 *   column exactly, so that build numbers past 2^53 stay apart, "3.0" selecting 3); text
 *   that is not a number matches nothing;
 * - a text column matches the exact text (0.3610 does not find '0.361': as text they are
 *   different labels, and "1.10" is not "1.1");
 * - any other type (DATE, ...) matches its text form.
 */
function versionPredicate(column: Column): string {
  const name = quoteIdent(column.name, 'duckdb');
  if (column.type === 'FLOAT') return `${name} = TRY_CAST($version AS FLOAT)`;
  if (/^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT)$/.test(column.type)) {
    const number = 'TRY_CAST($version AS DOUBLE)';
    const integer = `CASE WHEN regexp_full_match($version, '[-+]?[0-9]+') THEN TRY_CAST($version AS HUGEINT) END`;
    return `${name} = coalesce(${integer}, CASE WHEN trunc(${number}) = ${number} THEN TRY_CAST(${number} AS HUGEINT) END)`;
  }
  if (/^(DOUBLE|DECIMAL)/.test(column.type)) {
    return `${name} = TRY_CAST($version AS DOUBLE)`;
  }
  if (column.type === 'VARCHAR') return `${name} = $version`;
  return `CAST(${name} AS VARCHAR) = $version`;
}

/** The distinct versions in the source, in numeric order when they are numbers. */
async function versionsPresent(connection: DuckDBConnection, relation: string, column: Column, source: LocalSource): Promise<string> {
  const name = quoteIdent(column.name, 'duckdb');
  const limit = 20;
  try {
    const result = await connection.runAndReadAll(
      `SELECT CAST(v AS VARCHAR), count(*) OVER () FROM (SELECT DISTINCT ${name} AS v FROM ${relation} WHERE ${name} IS NOT NULL)
       ORDER BY TRY_CAST(CAST(v AS VARCHAR) AS DOUBLE) NULLS LAST, CAST(v AS VARCHAR) LIMIT ${limit}`,
    );
    const rows = result.getRows();
    if (rows.length === 0) return 'none';
    const total = Number(rows[0]![1]);
    const shown = rows.map(([v]) => String(v)).join(', ');
    return total > limit ? `${shown}, ... (${total} in all)` : shown;
  } catch (error: unknown) {
    throw sourceFailure(error, source);
  }
}

/** A DuckDB error while reading the source, as the error the user should see. */
function sourceFailure(error: unknown, source: LocalSource): Error {
  const message = duckdbMessage(error);
  const file = (pattern: RegExp) => {
    const path = pattern.exec(message)?.[1];
    return path === undefined || path === '' ? source.display : displayFor(path, source);
  };
  if (source.kind === 'files' && source.format === 'csv') {
    const line = /CSV Error on Line: (\d+)/.exec(message);
    if (line !== null) {
      const where = file(/file = (.*)/);
      const fields = /Expected Number of Columns: (\d+) Found: (\d+)/.exec(message);
      const detail = fields !== null ? `has ${fields[2]} fields, expected ${fields[1]}` : (message.split('\n')[2] ?? '').trim();
      const encoding = /not utf-8 encoded/i.test(message);
      return new ConfigurationError(`malformed CSV ${where}: line ${line[1]} ${detail}`, {
        hint: encoding
          ? `Convert the file to UTF-8 (from Latin-1: iconv -f latin1 -t utf-8 ${where} > converted.csv), or to Parquet.`
          : 'Fix the file (every row needs the same number of fields as the header), or convert it to Parquet.',
      });
    }
    if (message.includes('Error when sniffing file')) {
      return new ConfigurationError(
        `malformed CSV ${file(/sniffing file "(.*)"/)}: its rows do not have a consistent number of fields, so its columns cannot be detected`,
        {hint: 'Fix the file (every row needs the same number of fields as the header), or convert it to Parquet.'},
      );
    }
  }
  if (source.kind === 'files' && source.format === 'parquet' && /Parquet|magic bytes|too small/i.test(message)) {
    return new ConfigurationError(`${file(/[Ff]ile '(.*?)'/)} is not a readable Parquet file: ${firstLine(message)}`, {
      hint: 'Check that the file is complete and really Parquet.',
    });
  }
  if (/permission denied/i.test(message)) {
    return new ExecutionError(`cannot read ${source.display}: permission denied`, {
      hint: 'Give the user running the pipeline read access to the files.',
      cause: error,
    });
  }
  if (message.startsWith('INTERRUPT') || /interrupted/i.test(message)) return error instanceof Error ? error : new Error(message);
  return new ExecutionError(`reading ${source.display} failed: ${firstLine(message)}`, {cause: error});
}

function displayFor(path: string, source: LocalSource): string {
  if (source.kind === 'files' && source.files.length === 1) return source.display;
  return path;
}

function duckdbMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/^[A-Za-z ]+Error: /, '');
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}
