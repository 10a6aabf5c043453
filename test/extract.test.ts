/**
 * The extract task against real files: the sample warehouse, DuckDB tables, Parquet globs
 * and CSV, the freshness probe, and every bad input by its exact message.
 */
import {spawnSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {DuckDBInstance} from '@duckdb/node-api';
import type {DuckDBConnection} from '@duckdb/node-api';
import {afterAll, beforeAll, describe, expect, test} from 'vitest';
import {ConfigurationError, ExecutionError} from '../src/errors.js';
import type {Json, ProbeContext} from '../src/task-api.js';
import extract from '../tasks/extract.js';
import {expandGlob} from '../tasks/lib/glob.js';
import {ensureSampleDatabase} from '../tasks/lib/sample-data.js';
import {quoteIdent, quoteString} from '../tasks/lib/sql.js';
import {runTaskDirectly} from './support/run-task.js';
import {completeSettings} from './support/settings.js';
import {temporaryFolder} from './support/temp.js';

let instance: DuckDBInstance;
let db: DuckDBConnection;

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  db = await instance.connect();
});
afterAll(() => {
  db.closeSync();
  instance.closeSync();
});

function tempProject(): string {
  return temporaryFolder('extract-test-');
}

/** Runs `sql` against a new DuckDB database file at `path` (the fixture's source). */
async function writeDatabase(path: string, sql: string): Promise<void> {
  mkdirSync(dirname(path), {recursive: true});
  await db.run(`ATTACH ${quoteString(path, 'duckdb')} AS fixture`);
  try {
    await db.run('USE fixture');
    await db.run(sql);
  } finally {
    await db.run('USE memory');
    await db.run('DETACH fixture');
  }
}

async function copyTo(path: string, query: string, format: 'parquet' | 'csv'): Promise<void> {
  mkdirSync(dirname(path), {recursive: true});
  await db.run(`COPY (${query}) TO ${quoteString(path, 'duckdb')} (FORMAT ${format})`);
}

/** The rows of a Parquet output (in file order, or ordered by `orderBy`), with the column names. */
async function readParquet(path: string, orderBy: string[] = []): Promise<{columns: string[]; rows: Json[][]}> {
  const order = orderBy.length === 0 ? '' : ` ORDER BY ${orderBy.map((column) => `TRY_CAST(${quoteIdent(column, 'duckdb')} AS INTEGER), ${quoteIdent(column, 'duckdb')}`).join(', ')}`;
  const result = await db.runAndReadAll(`SELECT * FROM read_parquet(${quoteString(path, 'duckdb')})${order}`);
  return {columns: result.columnNames(), rows: result.getRowsJson() as Json[][]};
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The task's settings as the runner would hand them: validated, with every default. */
function settings(overrides: {source?: Record<string, Json>; duckdb?: Record<string, Json>} = {}): Record<string, Json> {
  return completeSettings({
    source: {engine: 'duckdb', table: 'model_parameters', version_column: 'version', keys: ['entity_id'], columns: null, ...overrides.source},
    duckdb: {database: 'data/warehouse.duckdb', path: null, ...overrides.duckdb},
  });
}

async function run(projectDir: string, version: string, taskSettings: Record<string, Json> = settings(), probed?: Json) {
  const direct = await runTaskDirectly(extract, {
    name: 'extract-new',
    args: {version},
    settings: taskSettings,
    outputs: ['rows.parquet'],
    projectDir,
    ...(probed === undefined ? {} : {probe: probed}),
  });
  return {...direct, output: join(direct.outputDir, 'rows.parquet')};
}

/** Calls the probe as the runner would, with a real content digest. */
function probe(projectDir: string, version: string, taskSettings: Record<string, Json> = settings()): Promise<Json> {
  const ctx: ProbeContext = {
    name: 'extract-new',
    args: {version},
    settings: completeSettings(taskSettings),
    projectDir,
    signal: new AbortController().signal,
    digestFile: async (path) => sha256(path),
  };
  return extract.probe!(ctx);
}

/** The error a promise rejects with (fails the test when it resolves). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error: unknown) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error('expected a failure, but it succeeded');
}

describe('the sample warehouse', () => {
  const project = tempProject();

  test('is created on first use and extracts 0.3615 sorted by key', async () => {
    const {result, output, progress} = await run(project, '0.3615');
    expect(existsSync(join(project, 'data/warehouse.duckdb'))).toBe(true);
    expect(readdirSync(join(project, 'data'))).toEqual(['warehouse.duckdb']);
    expect(result).toMatchObject({rows: 100_020});
    expect(progress.at(-1)).toMatchObject({rows: 100_020});
    const summary = await db.runAndReadAll(
      `SELECT count(*), count(DISTINCT entity_id), bool_and(entity_id > lag) FROM (SELECT entity_id, lag(entity_id, 1, -1) OVER () AS lag FROM read_parquet(${quoteString(output, 'duckdb')}))`,
    );
    expect(summary.getRowsJson()).toEqual([['100020', '100020', true]]);
    const {columns} = await readParquet(output);
    expect(columns).toEqual([
      'entity_id', 'region', 'learning_rate', 'l2_penalty', 'dropout_rate', 'momentum', 'max_depth',
      'feature_weight', 'threshold', 'calibration_bias', 'score', 'label',
    ]);
  });

  test('holds three versions with a few hundred keys added and removed between 0.3615 and 0.3621', async () => {
    const database = quoteString(join(project, 'data/warehouse.duckdb'), 'duckdb');
    await db.run(`ATTACH ${database} AS sample (READ_ONLY)`);
    try {
      const versions = await db.runAndReadAll('SELECT version, count(*) FROM sample.model_parameters GROUP BY ALL ORDER BY 1');
      expect(versions.getRowsJson()).toEqual([['0.3609', '100000'], ['0.3615', '100020'], ['0.3621', '100134']]);
      const diff = await db.runAndReadAll(`
        WITH o AS (FROM sample.model_parameters WHERE version = '0.3615'), n AS (FROM sample.model_parameters WHERE version = '0.3621')
        SELECT count(*) FILTER (o.entity_id IS NULL), count(*) FILTER (n.entity_id IS NULL),
          count(*) FILTER (abs(o.score - n.score) > 0.01), count(*) FILTER (o.score <> n.score AND abs(o.score - n.score) <= 0.01),
          count(DISTINCT o.region) FILTER (o.learning_rate <> n.learning_rate)
        FROM o FULL JOIN n USING (entity_id)`);
      const [added, removed, beyond, within, driftingRegions] = diff.getRowsJson()[0]!.map(Number);
      expect({added, removed, driftingRegions}).toEqual({added: 349, removed: 235, driftingRegions: 1});
      expect(beyond).toBeGreaterThan(1000);
      expect(within).toBeGreaterThan(50_000);
    } finally {
      await db.run('DETACH sample');
    }
  });

  test('extraction is byte-identical from one run to the next', async () => {
    const first = await run(project, '0.3621');
    const second = await run(project, '0.3621');
    expect(sha256(second.output)).toBe(sha256(first.output));
  });

  test('concurrent creators publish one complete file and leave no temp files', async () => {
    const fresh = tempProject();
    // Two spellings of one path are two creators (the in-process memo does not merge them).
    const created = await Promise.all([
      ensureSampleDatabase(join(fresh, 'data/warehouse.duckdb')),
      ensureSampleDatabase(`${fresh}/data/../data/warehouse.duckdb`),
    ]);
    expect(created.filter(Boolean)).toHaveLength(1);
    expect(readdirSync(join(fresh, 'data'))).toEqual(['warehouse.duckdb']);
    const {result} = await run(fresh, '0.3609');
    expect(result).toMatchObject({rows: 100_000});
  });

  test('a version with no rows names the versions present', async () => {
    const error = await failure(run(project, '0.9999'));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('version 0.9999 has no rows in model_parameters; versions present: 0.3609, 0.3615, 0.3621');
  });
});

describe('a table in a DuckDB database', () => {
  const project = tempProject();
  const special = {key: 'Entity ID', segment: 'Région', quoted: 'say "hi"', capital: 'Score'};

  beforeAll(async () => {
    const q = (name: string) => quoteIdent(name, 'duckdb');
    await writeDatabase(
      join(project, 'wh.duckdb'),
      `CREATE TABLE "Model Runs" AS
       SELECT i % 50 AS ${q(special.key)}, CASE WHEN i < 50 THEN 'nord' ELSE 'süd' END AS ${q(special.segment)},
         v AS "Version", (i * 0.5 + v)::DOUBLE AS ${q(special.capital)}, 'x' || i AS ${q(special.quoted)}
       FROM range(100) t(i), (VALUES (1), (2)) vs(v)
       ORDER BY random()`,
    );
  });

  const tableSettings = () =>
    settings({
      source: {table: 'Model Runs', version_column: 'Version', keys: [special.key, special.segment]},
      duckdb: {database: 'wh.duckdb'},
    });

  test('reads composite keys and special column names', async () => {
    const {result, output} = await run(project, '2', tableSettings());
    expect(result).toMatchObject({rows: 100});
    const {columns, rows} = await readParquet(output, [special.key, special.segment]);
    expect(columns).toEqual([special.key, special.segment, special.capital, special.quoted]);
    expect(rows.slice(0, 3)).toEqual([
      ['0', 'nord', 2, 'x0'],
      ['0', 'süd', 27, 'x50'],
      ['1', 'nord', 2.5, 'x1'],
    ]);
  });

  test('warns that a numeric version column reads "1.0" as 1, which "1" selects too', async () => {
    const warnings = async (version: string) => (await run(project, version, tableSettings())).logs.filter((line) => line.startsWith('WARNING'));
    expect(await warnings('2')).toEqual([]);
    expect(await warnings('2.0')).toEqual(['WARNING source.version_column "Version" holds numbers (INTEGER): version "2.0" selects the rows of 2, as "2" would.']);
    expect(await warnings('+2')).toEqual(['WARNING source.version_column "Version" holds numbers (INTEGER): version "+2" selects the rows of 2, as "2" would.']);
    // An integer past 2^53 is selected exactly: nothing to warn of.
    const dir = tempProject();
    await writeDatabase(join(dir, 'big.duckdb'), `CREATE TABLE model_parameters AS SELECT 1 AS entity_id, 9007199254740993::BIGINT AS version`);
    const big = await run(dir, '9007199254740993', settings({duckdb: {database: 'big.duckdb'}}));
    expect(big.result).toMatchObject({rows: 1});
    expect(big.logs.filter((line) => line.startsWith('WARNING'))).toEqual([]);
  });

  test('says when the versions present cannot be passed as versions, and what to do', async () => {
    const dir = tempProject();
    await writeDatabase(join(dir, 'spaced.duckdb'), `CREATE TABLE model_parameters AS SELECT 1 AS entity_id, v AS version FROM (VALUES ('v 1'), ('v 2')) t(v)`);
    const error = await failure(run(dir, 'v1', settings({duckdb: {database: 'spaced.duckdb'}})));
    expect(error.message).toBe('version v1 has no rows in model_parameters; versions present: v 1, v 2');
    expect((error as ConfigurationError).hint).toContain(
      'Versions such as "v 1" cannot be passed (a version is letters, digits, ".", "_" and "-" (at most 64), such as 0.3615): read the table through a view that renames them.',
    );
  });

  test('keeps a UNION as its text and a MAP in key order (the same map, however its entries came)', async () => {
    const dir = tempProject();
    await writeDatabase(
      join(dir, 'nested.duckdb'),
      `CREATE TABLE model_parameters (entity_id INTEGER, version VARCHAR, u UNION(num INTEGER, str VARCHAR), m MAP(VARCHAR, INTEGER));
       INSERT INTO model_parameters VALUES (1, 'a', 7, MAP {'b': 2, 'a': 1}), (2, 'a', 'seven', NULL), (1, 'b', 8, MAP {'a': 1, 'b': 2})`,
    );
    const options = settings({duckdb: {database: 'nested.duckdb'}});
    const [older, newer] = [await run(dir, 'a', options), await run(dir, 'b', options)];
    const types = await db.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${quoteString(older.output, 'duckdb')}))`);
    expect(types.getRowsJson()).toEqual([['entity_id', 'INTEGER'], ['u', 'VARCHAR'], ['m', 'MAP(VARCHAR, INTEGER)']]);
    const rows = async (path: string) => (await db.runAndReadAll(`SELECT entity_id, u, CAST(m AS VARCHAR) FROM read_parquet(${quoteString(path, 'duckdb')}) ORDER BY entity_id`)).getRowsJson();
    expect(await rows(older.output)).toEqual([[1, '7', '{a=1, b=2}'], [2, 'seven', null]]);
    expect(await rows(newer.output)).toEqual([[1, '8', '{a=1, b=2}']]);
  });

  test('source.columns restricts the columns, keys first', async () => {
    const {output} = await run(project, '1', settings({...tableSettings(), source: {...(tableSettings()['source'] as Record<string, Json>), columns: [special.quoted]}}));
    expect((await readParquet(output)).columns).toEqual([special.key, special.segment, special.quoted]);
  });

  test('a number given for an integer version column matches by value', async () => {
    const {result} = await run(project, '1.0', tableSettings());
    expect(result).toMatchObject({rows: 100});
    const error = await failure(run(project, '1.5', tableSettings()));
    expect(error.message).toMatch(/^version 1\.5 has no rows in Model Runs; versions present: 1, 2/);
  });

  test('carries 128-bit integers exactly (as DECIMAL(38,0): Parquet has none), and says when one does not fit', async () => {
    const wide = tempProject();
    await writeDatabase(join(wide, 'wide.duckdb'), `CREATE TABLE runs AS SELECT * FROM (VALUES
      ('v1', '18446744073709551617'::HUGEINT, '99999999999999999999999999999999999999'::UHUGEINT),
      ('v1', '18446744073709551618'::HUGEINT, 1::UHUGEINT),
      ('v2', 1::HUGEINT, '170141183460469231731687303715884105727'::UHUGEINT)) t(version, id, h)`);
    const config = settings({source: {table: 'runs', version_column: 'version', keys: ['id']}, duckdb: {database: 'wide.duckdb'}});
    const {output} = await run(wide, 'v1', config);
    const types = await db.runAndReadAll(`SELECT column_type FROM (DESCRIBE SELECT * FROM read_parquet(${quoteString(output, 'duckdb')}))`);
    expect(types.getRows().map(([type]) => type)).toEqual(['DECIMAL(38,0)', 'DECIMAL(38,0)']);
    expect((await readParquet(output, ['id'])).rows.map((row) => row.map(String))).toEqual([
      ['18446744073709551617', '99999999999999999999999999999999999999'],
      ['18446744073709551618', '1'],
    ]);
    const error = await failure(run(wide, 'v2', config));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('"id", "h" (128-bit integer columns): a value has more than 38 digits, which the Parquet intermediate cannot carry exactly');
  });

  test('integer versions past 2^53 (build numbers) select exactly their rows', async () => {
    const big = tempProject();
    await writeDatabase(join(big, 'big.duckdb'), `CREATE TABLE runs AS SELECT 20240115093012345::BIGINT AS version, i AS id, i::DOUBLE AS x FROM range(10) t(i)
      UNION ALL SELECT 20240115093012346::BIGINT, i, 2 * i FROM range(7) t(i)`);
    const config = settings({source: {table: 'runs', version_column: 'version', keys: ['id']}, duckdb: {database: 'big.duckdb'}});
    expect((await run(big, '20240115093012345', config)).result).toMatchObject({rows: 10});
    expect((await run(big, '20240115093012346', config)).result).toMatchObject({rows: 7});
  });

  test('a missing table names the tables present', async () => {
    const error = await failure(run(project, '1', settings({...tableSettings(), source: {table: 'runs', version_column: 'Version', keys: [special.key]}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('table runs does not exist in wh.duckdb; tables present: Model Runs');
  });

  test('a missing key column names the columns present', async () => {
    const error = await failure(run(project, '1', settings({source: {table: 'Model Runs', version_column: 'Version', keys: ['entity_id', special.segment]}, duckdb: {database: 'wh.duckdb'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('key column "entity_id" does not exist in Model Runs; columns present: Entity ID, Région, Version, Score, say "hi"');
  });

  test('a missing version column names the columns present', async () => {
    const error = await failure(run(project, '1', settings({source: {table: 'Model Runs', version_column: 'release', keys: [special.key]}, duckdb: {database: 'wh.duckdb'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('version column "release" does not exist in Model Runs; columns present: Entity ID, Région, Version, Score, say "hi"');
  });

  test('a missing database file says where it looked', async () => {
    const error = await failure(probe(project, '1', settings({duckdb: {database: 'nowhere.duckdb'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(`duckdb.database "nowhere.duckdb" does not exist (resolved to ${join(project, 'nowhere.duckdb')})`);
  });

  test('a file that is not a DuckDB database is refused', async () => {
    writeFileSync(join(project, 'notes.duckdb'), 'not a database\n');
    const error = await failure(run(project, '1', settings({duckdb: {database: 'notes.duckdb'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(`duckdb.database "notes.duckdb" is not a DuckDB database file (${join(project, 'notes.duckdb')})`);
  });

  test('a directory where the database should be is refused', async () => {
    mkdirSync(join(project, 'folder.duckdb'));
    const error = await failure(run(project, '1', settings({duckdb: {database: 'folder.duckdb'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('duckdb.database "folder.duckdb" is a directory, expected a DuckDB database file');
  });
});

describe('duplicated keys', () => {
  const project = tempProject();
  const rows = `SELECT * FROM (VALUES (2, 1, 'z'), (1, 1, 'b'), (1, 1, 'a'), (1, 1, 'c')) t(id, version, x)`;

  test('in a table keep their order in the source', async () => {
    await writeDatabase(join(project, 'dup.duckdb'), `CREATE TABLE t AS ${rows}`);
    const first = await run(project, '1', settings({source: {table: 't', keys: ['id']}, duckdb: {database: 'dup.duckdb'}}));
    expect((await readParquet(first.output)).rows).toEqual([[2, 'z'], [1, 'b'], [1, 'a'], [1, 'c']]);
  });

  test('in Parquet files keep their order in the files', async () => {
    await copyTo(join(project, 'dup-1.parquet'), rows, 'parquet');
    await copyTo(join(project, 'dup-2.parquet'), `SELECT 1 AS id, 1 AS version, 'first' AS x`, 'parquet');
    const {output} = await run(project, '1', settings({source: {keys: ['id']}, duckdb: {path: 'dup-*.parquet'}}));
    expect((await readParquet(output)).rows).toEqual([[2, 'z'], [1, 'b'], [1, 'a'], [1, 'c'], [1, 'first']]);
  });

  test('in CSV keep their order in the file', async () => {
    await copyTo(join(project, 'dup.csv'), rows, 'csv');
    const {output} = await run(project, '1', settings({source: {keys: ['id']}, duckdb: {path: 'dup.csv'}}));
    expect((await readParquet(output)).rows).toEqual([['2', 'z'], ['1', 'b'], ['1', 'a'], ['1', 'c']]);
  });
});

describe('Parquet files', () => {
  const project = tempProject();

  beforeAll(async () => {
    // Two shards in nested folders; the version is a DOUBLE, as many writers store it.
    for (const shard of [0, 1]) {
      await copyTo(
        join(project, `lake/part=${shard}/rows.parquet`),
        `SELECT i AS entity_id, v AS version, hash(i, v) % 1000 AS weight FROM range(${shard * 500}, ${shard * 500 + 500}) t(i), (VALUES (0.361), (0.3615)) vs(v) ORDER BY random()`,
        'parquet',
      );
    }
  });

  test('one file per version, of different columns: each version has the columns of its own files', async () => {
    for (const format of ['parquet', 'csv'] as const) {
      await copyTo(join(project, `versions/v1.${format}`), `SELECT 'v1' AS version, i AS id, i::INTEGER AS a, 'g' || i AS gone FROM range(3) t(i)`, format);
      await copyTo(join(project, `versions/v2.${format}`), `SELECT 'v2' AS version, i AS id, (i + 0.5)::DOUBLE AS a, i::INTEGER AS fresh FROM range(3) t(i)`, format);
      const config = settings({source: {keys: ['id']}, duckdb: {path: `versions/*.${format}`}});
      const columnsOf = async (version: string) => {
        const {output} = await run(project, version, config);
        const types = await db.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${quoteString(output, 'duckdb')}))`);
        return types.getRows().map(([name, type]) => `${String(name)} ${String(type)}`);
      };
      const integer = format === 'csv' ? 'BIGINT' : 'INTEGER'; // as the CSV sniffer types whole numbers
      // A CSV column has no type of its own, only the sniffer's guess: the one all the files
      // give it together (DOUBLE, for 0, 1, 2 beside 0.5), so a guess is no retype.
      expect(await columnsOf('v1'), format).toEqual(['id BIGINT', `a ${format === 'csv' ? 'DOUBLE' : integer}`, 'gone VARCHAR']);
      expect(await columnsOf('v2'), format).toEqual(['id BIGINT', 'a DOUBLE', `fresh ${integer}`]);
    }
  });

  test('a CSV field quoted empty ("") is an empty string, an empty field NULL', async () => {
    writeFileSync(join(project, 'quoted.csv'), 'id,version,label\n1,v1,""\n2,v1,\n3,v1,x\n');
    const {output} = await run(project, 'v1', settings({source: {keys: ['id']}, duckdb: {path: 'quoted.csv'}}));
    expect((await readParquet(output, ['id'])).rows.map((row) => row[1])).toEqual(['', null, 'x']);
  });

  test('one file per version, the version and a column spelt in another case: one column each, as DuckDB names are', async () => {
    for (const format of ['parquet', 'csv'] as const) {
      await copyTo(join(project, `spelt/v1.${format}`), `SELECT 'v1' AS version, i AS id, i / 2 AS Score FROM range(3) t(i)`, format);
      await copyTo(join(project, `spelt/v2.${format}`), `SELECT 'v2' AS "Version", i AS id, i / 4 AS score FROM range(3) t(i)`, format);
      const config = settings({source: {keys: ['id']}, duckdb: {path: `spelt/*.${format}`}});
      for (const version of ['v1', 'v2']) expect((await readParquet((await run(project, version, config)).output)).columns, `${format} ${version}`).toEqual(['id', 'Score']);
    }
  });

  test('a key or listed column named in another case is written under the name the settings give it', async () => {
    await copyTo(join(project, 'cased/rows.parquet'), `SELECT 'v1' AS version, i AS entity_id, i / 2 AS Score, 'x' AS other FROM range(3) t(i)`, 'parquet');
    const {output, result} = await run(project, 'v1', settings({source: {keys: ['ENTITY_ID'], columns: ['score']}, duckdb: {path: 'cased/rows.parquet'}}));
    expect((await readParquet(output)).columns).toEqual(['ENTITY_ID', 'score']);
    expect(result).toMatchObject({details: {columns: ['ENTITY_ID', 'score']}});
  });

  test('a ** glob reads every shard, and 0.3610 finds versions stored as the number 0.361', async () => {
    const {result, output} = await run(project, '0.3610', settings({duckdb: {path: 'lake/**/*.parquet'}}));
    expect(result).toMatchObject({rows: 1000});
    const {columns, rows} = await readParquet(output);
    // Hive-style folder names (part=0) become a column, as DuckDB reads them.
    expect(columns).toEqual(['entity_id', 'weight', 'part']);
    expect(rows.map((row) => Number(row[0])).sort((a, b) => a - b)).toEqual([...Array(1000).keys()]);
  });

  test('the glob matches what DuckDB would match', async () => {
    const pattern = join(project, 'lake/**/*.parquet');
    const duckdb = await db.runAndReadAll(`SELECT file FROM glob(${quoteString(pattern, 'duckdb')}) ORDER BY file`);
    expect(await expandGlob(pattern)).toEqual(duckdb.getRowsJson().map(([file]) => file));
    expect(await expandGlob(join(project, 'lake/part=[1]/*.parq?et'))).toEqual([join(project, 'lake/part=1/rows.parquet')]);
  });

  test('a glob that matches nothing says where it looked', async () => {
    const error = await failure(run(project, '0.361', settings({duckdb: {path: 'lake/*.parquet'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(`no file matches duckdb.path "lake/*.parquet" (resolved to ${join(project, 'lake/*.parquet')})`);
  });

  test('a corrupt Parquet file is reported as such', async () => {
    writeFileSync(join(project, 'broken.parquet'), 'PAR1 this is not parquet');
    const error = await failure(run(project, '0.361', settings({duckdb: {path: 'broken.parquet'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(`broken.parquet is not a readable Parquet file: No magic bytes found at end of file '${join(project, 'broken.parquet')}'`);
  });
});

describe('CSV files', () => {
  const project = tempProject();

  test('reads a CSV file with auto-detected types', async () => {
    writeFileSync(join(project, 'rows.csv'), 'id,version,score,label\n3,0.3615,0.5,a\n1,0.3615,,b\n2,0.3621,0.7,c\n1,0.3621,0.25,\n');
    const {result, output} = await run(project, '0.3621', settings({source: {keys: ['id']}, duckdb: {path: 'rows.csv'}}));
    expect(result).toMatchObject({rows: 2});
    expect(await readParquet(output)).toEqual({columns: ['id', 'score', 'label'], rows: [['2', 0.7, 'c'], ['1', 0.25, null]]});
  });

  test('takes its versions as the text written: "1.10" is not "1.1"', async () => {
    writeFileSync(join(project, 'versions.csv'), 'id,version,score\n1,1.1,0.5\n2,1.1,0.6\n1,1.10,0.7\n');
    const options = settings({source: {keys: ['id']}, duckdb: {path: 'versions.csv'}});
    expect(await readParquet((await run(project, '1.1', options)).output)).toEqual({columns: ['id', 'score'], rows: [['1', 0.5], ['2', 0.6]]});
    const newer = await run(project, '1.10', options);
    expect(await readParquet(newer.output)).toEqual({columns: ['id', 'score'], rows: [['1', 0.7]]});
    expect(newer.logs.filter((line) => line.startsWith('WARNING'))).toEqual([]);
  });

  test('a row with too many fields is a malformed CSV', async () => {
    writeFileSync(join(project, 'bad.csv'), 'id,version,score\n1,0.3615,0.5\n2,0.3615,0.7,9\n3,0.3615,0.1\n');
    const error = await failure(run(project, '0.3615', settings({source: {keys: ['id']}, duckdb: {path: 'bad.csv'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('malformed CSV bad.csv: its rows do not have a consistent number of fields, so its columns cannot be detected');
  });

  test('a malformed file among several is named and refused, its rows never dropped unseen', async () => {
    mkdirSync(join(project, 'many'), {recursive: true});
    writeFileSync(join(project, 'many', 'a.csv'), 'id,version,score\n1,1,0.5\n2,1,0.6\n');
    writeFileSync(join(project, 'many', 'b.csv'), 'id,version,score\n1,2,0.5\n2,2,0.7\n');
    writeFileSync(join(project, 'many', 'c.csv'), 'id,version,score\n6,2,0.5\n7,2\n');
    const error = await failure(run(project, '2', settings({source: {keys: ['id']}, duckdb: {path: 'many/*.csv'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(`malformed CSV ${join(project, 'many', 'c.csv')}: its rows do not have a consistent number of fields, so its columns cannot be detected`);
  });

  test('a column merely named like a header ("a,b") is no malformed file: semicolon files with it are read', async () => {
    mkdirSync(join(project, 'semi'), {recursive: true});
    writeFileSync(join(project, 'semi', 'a.csv'), 'id;version;score;"id,score"\n1;1;0.5;x\n2;1;0.6;y\n');
    writeFileSync(join(project, 'semi', 'b.csv'), 'id;version;score;"id,score"\n1;2;0.5;x\n');
    const {result} = await run(project, '1', settings({source: {keys: ['id']}, duckdb: {path: 'semi/*.csv'}}));
    expect(result).toMatchObject({rows: 2});
  });

  test('a file not in UTF-8 is reported as such, with how to convert it', async () => {
    writeFileSync(join(project, 'latin.csv'), Buffer.from('id,version,label\n1,1,caf\xe9\n2,1,ok\n', 'latin1'));
    const error = await failure(run(project, '1', settings({source: {keys: ['id']}, duckdb: {path: 'latin.csv'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toMatch(/^malformed CSV latin\.csv: line 2 .*not utf-8 encoded/);
    expect((error as ConfigurationError).hint).toBe('Convert the file to UTF-8 (from Latin-1: iconv -f latin1 -t utf-8 latin.csv > converted.csv), or to Parquet.');
  });

  test('a bad row beyond what the sniffer samples is reported with its line', async () => {
    const good = Array.from({length: 25_000}, (_, i) => `${i},0.3615,${i / 2}`).join('\n');
    writeFileSync(join(project, 'late.csv'), `id,version,score\n${good}\n25000,0.3615,1,2\n`);
    const error = await failure(run(project, '0.3615', settings({source: {keys: ['id']}, duckdb: {path: 'late.csv'}})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('malformed CSV late.csv: line 25002 has 4 fields, expected 3');
  });

  test('a file that cannot be read for lack of permission', async () => {
    const file = join(project, 'secret.csv');
    writeFileSync(file, 'id,version\n1,1\n');
    chmodSync(file, 0o000);
    chmodSync(project, 0o755);
    const message = probeAsUnprivilegedUser(project, settings({source: {keys: ['id']}, duckdb: {path: 'secret.csv'}}));
    expect(message).toBe(`ExecutionError: cannot read secret.csv: permission denied (${file})`);
    // A folder under a glob that cannot be listed: said so, not a crash.
    const locked = join(project, 'shards', 'locked');
    mkdirSync(locked, {recursive: true});
    writeFileSync(join(project, 'shards', 'a.csv'), 'id,version\n1,1\n');
    chmodSync(join(project, 'shards'), 0o755);
    chmodSync(locked, 0o000);
    expect(probeAsUnprivilegedUser(project, settings({source: {keys: ['id']}, duckdb: {path: 'shards/**/*.csv'}}))).toBe(
      `ExecutionError: cannot read shards/**/*.csv: permission denied (${locked})`,
    );
  });

  test('a file and a link to it, both matched, are read once', async () => {
    mkdirSync(join(project, 'linked'), {recursive: true});
    writeFileSync(join(project, 'linked', 'v2.csv'), 'id,version,score\n1,v2,0.5\n2,v2,0.7\n');
    symlinkSync('v2.csv', join(project, 'linked', 'latest.csv'));
    expect((await run(project, 'v2', settings({source: {keys: ['id']}, duckdb: {path: 'linked/*.csv'}}))).result).toMatchObject({rows: 2});
  });

  test('a file named with a glob character, named as it is', async () => {
    writeFileSync(join(project, 'export[2024].csv'), 'id,version,score\n1,v1,0.5\n');
    expect((await run(project, 'v1', settings({source: {keys: ['id']}, duckdb: {path: 'export[2024].csv'}}))).result).toMatchObject({rows: 1});
  });
});

describe('the freshness probe', () => {
  test('changes with the content, not with the modification time', async () => {
    const project = tempProject();
    const file = join(project, 'rows.csv');
    writeFileSync(file, 'id,version,score\n1,1,0.5\n');
    const csv = settings({source: {keys: ['id']}, duckdb: {path: '*.csv'}});
    const before = await probe(project, '1', csv);
    expect(before).toMatchObject({
      engine: 'duckdb',
      version: '1',
      source: {kind: 'files', format: 'csv', files: [{path: 'rows.csv', digest: sha256(file)}]},
      sql: 'SELECT * EXCLUDE ("version") FROM read_csv(<files>) WHERE "version" = $version',
    });
    utimesSync(file, new Date('2030-01-01'), new Date('2030-01-01'));
    expect(await probe(project, '1', csv)).toEqual(before);
    writeFileSync(file, 'id,version,score\n1,1,0.6\n');
    expect(await probe(project, '1', csv)).not.toEqual(before);
    writeFileSync(join(project, 'more.csv'), 'id,version,score\n2,1,0.1\n');
    expect(await probe(project, '1', csv)).toMatchObject({source: {files: [{path: 'more.csv'}, {path: 'rows.csv'}]}});
  });

  test('of a database covers the file and its write-ahead log, and names the version', async () => {
    const project = tempProject();
    await writeDatabase(join(project, 'wh.duckdb'), 'CREATE TABLE t AS SELECT 1 AS id, 1 AS version');
    const table = settings({source: {table: 't', keys: ['id']}, duckdb: {database: 'wh.duckdb'}});
    const before = await probe(project, '1', table);
    expect(before).toMatchObject({source: {kind: 'table', database: 'wh.duckdb', wal: null, table: 't'}, version: '1'});
    expect(await probe(project, '2', table)).toMatchObject({version: '2'});
    writeFileSync(join(project, 'wh.duckdb.wal'), 'pending');
    expect(await probe(project, '1', table)).not.toEqual(before);
  });

  test('refuses rows read from a source that changed since it was probed (a file still being written)', async () => {
    const project = tempProject();
    writeFileSync(join(project, 'rows.csv'), 'id,version,score\n1,1,0.5\n');
    writeFileSync(join(project, 'other.csv'), 'id,version,score\n2,1,0.5\n');
    const csv = settings({source: {keys: ['id']}, duckdb: {path: '*.csv'}});
    const probed = await probe(project, '1', csv);
    // Unchanged since the probe: kept.
    expect((await run(project, '1', csv, probed)).result).toMatchObject({rows: 2});
    writeFileSync(join(project, 'rows.csv'), 'id,version,score\n1,1,0.6\n');
    const error = await failure(run(project, '1', csv, probed));
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error.message).toBe('The source changed while version 1 was read from it (rows.csv): what was read may mix old and new content, so it is not kept.');
    // A database too.
    await writeDatabase(join(project, 'wh.duckdb'), 'CREATE TABLE t AS SELECT 1 AS id, 1 AS version');
    const table = settings({source: {table: 't', keys: ['id']}, duckdb: {database: 'wh.duckdb'}});
    const before = await probe(project, '1', table);
    await writeDatabase(join(project, 'wh.duckdb'), 'INSERT INTO t VALUES (2, 1)');
    expect((await failure(run(project, '1', table, before))).message).toMatch(/^The source changed while version 1 was read from it \(wh\.duckdb\)/);
  });

  test('creates the sample database when it is missing', async () => {
    const project = tempProject();
    const result = await probe(project, '0.3615');
    expect(existsSync(join(project, 'data/warehouse.duckdb'))).toBe(true);
    expect(result).toMatchObject({source: {kind: 'table', database: 'data/warehouse.duckdb', table: 'model_parameters'}});
  });
});

/**
 * Tests run as root, which reads any file whatever its mode; a child process that drops to
 * the `nobody` user meets the permission check for real.
 */
function probeAsUnprivilegedUser(projectDir: string, taskSettings: Record<string, Json>): string {
  const script = `
    import extract from ${JSON.stringify(fileURLToPath(new URL('../tasks/extract.ts', import.meta.url)))};
    import {createHash} from 'node:crypto';
    import {readFileSync} from 'node:fs';
    try {
      await extract.probe({name: 'x', args: {version: '1'}, settings: ${JSON.stringify(completeSettings(taskSettings))}, projectDir: ${JSON.stringify(projectDir)},
        signal: new AbortController().signal, digestFile: async (p) => createHash('sha256').update(readFileSync(p)).digest('hex')});
      console.log('no error');
    } catch (error) {
      console.log(error.name + ': ' + error.message);
    }`;
  const root = process.getuid?.() === 0;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
    env: {...process.env, HOME: tmpdir()},
    ...(root ? {uid: 65534, gid: 65534} : {}),
  });
  if (child.status !== 0) throw new Error(`probe child failed: ${child.stderr}`);
  return child.stdout.trim();
}

// Keep ExecutionError imported for the type of the permission failure named above.
void ExecutionError;
