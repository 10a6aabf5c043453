/**
 * Extraction from BigQuery: the real @google-cloud/bigquery client against the local server
 * in test/support/bigquery-server.ts (DuckDB behind the BigQuery REST API).
 */
import {readFileSync} from 'node:fs';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import type {DuckDBConnection, DuckDBInstance} from '@duckdb/node-api';
import {ConfigurationError, ExecutionError, InterruptedError} from '../src/errors.js';
import {defineTask} from '../src/task-api.js';
import type {Json, ProbeContext} from '../src/task-api.js';
import {extractBigQuery, probeBigQuery} from '../tasks/lib/bigquery-extract.js';
import {completeSettings} from './support/settings.js';
import {startBigQueryServer} from './support/bigquery-server.js';
import type {BigQueryServer} from './support/bigquery-server.js';
import {runTaskDirectly} from './support/run-task.js';

// Every BigQuery type, with the values that break naive conversions. (BigQuery has no NULL
// arrays: a NULL REPEATED value is [], so the fixture uses [].)
const TYPES_FIXTURE = `
CREATE TABLE ds.types (
  id BIGINT, version VARCHAR, big BIGINT, f DOUBLE, num DECIMAL(38, 9), bignum DECIMAL(38, 20), flag BOOLEAN,
  s VARCHAR, b BLOB, d DATE, dt TIMESTAMP, t TIME, ts TIMESTAMPTZ, j JSON,
  ints BIGINT[], strs VARCHAR[], rec STRUCT(a BIGINT, tags VARCHAR[], inner_rec STRUCT(x DOUBLE)), recs STRUCT(k VARCHAR, v DOUBLE)[]
);
INSERT INTO ds.types VALUES
  (1, 'v1', 9007199254740993, 'NaN', 12345678901234567890.123456789, 1.5, true,
   'line one' || chr(10) || 'line "two"' || chr(31) || ',', '\\xAA\\x00\\xFF'::BLOB, DATE '2024-01-02',
   TIMESTAMP '2024-01-02 03:04:05.123456', TIME '03:04:05.5', TIMESTAMPTZ '2023-11-14 22:13:20.123457+00', '{"a": [1, 2]}',
   [1, 9223372036854775807], ['a', '', NULL], {'a': -9223372036854775808, 'tags': ['x'], 'inner_rec': {'x': 'Infinity'::DOUBLE}},
   [{'k': 'p', 'v': 0.1::DOUBLE}, {'k': NULL::VARCHAR, 'v': '-Infinity'::DOUBLE}]),
  (2, 'v1', -9007199254740993, 'Infinity', -0.000000001, -99999999999999999.5, false,
   '', ''::BLOB, DATE '0001-01-01', TIMESTAMP '9999-12-31 23:59:59.999999', TIME '00:00:00', TIMESTAMPTZ '1970-01-01 00:00:00+00', 'null',
   [], [], NULL, []),
  (3, 'v1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, [], [], {'a': NULL, 'tags': [], 'inner_rec': NULL}, []),
  (4, 'v2', 0, -0.0, 0, 0, true, 'other version', NULL, NULL, NULL, NULL, NULL, NULL, [], [], NULL, []);
`;

// A table shaped like the shipped model_parameters, big enough for many pages.
const PREDS_FIXTURE = `
CREATE TABLE ds.preds AS
SELECT i AS entity_id, v AS version, ['north', 'south', 'east'][1 + i % 3] AS region,
       round(sin(i) * 100, 4)::DOUBLE AS score, i % 7 AS bucket, 'label ' || i AS label
FROM range(1, 2501) r(i), (VALUES ('v1'), ('v2')) vs(v);
CREATE VIEW ds.preds_view AS SELECT * FROM ds.preds;
CREATE TABLE ds.odd (id BIGINT, version VARCHAR, span INTERVAL);
INSERT INTO ds.odd VALUES (1, 'v1', INTERVAL 3 DAY);
CREATE TABLE ds.wide (id BIGINT, version VARCHAR, bignum DECIMAL(38, 20));
INSERT INTO ds.wide VALUES (1, 'v1', 1.12345678901);
`;

let server: BigQueryServer;
let local: DuckDBInstance;
let db: DuckDBConnection;

beforeAll(async () => {
  delete process.env['BIGQUERY_EMULATOR_HOST'];
  server = await startBigQueryServer({project: 'test-proj'});
  const {DuckDBInstance} = await import('@duckdb/node-api');
  local = await DuckDBInstance.create(':memory:');
  db = await local.connect();
  for (const target of [(sql: string) => server.run(sql), async (sql: string) => void (await db.run(sql))]) {
    await target('CREATE SCHEMA ds');
    await target(TYPES_FIXTURE);
    await target(PREDS_FIXTURE);
  }
});

afterAll(async () => {
  db?.closeSync();
  local?.closeSync();
  await server?.close();
});

const extractTask = defineTask({
  run: (ctx) => extractBigQuery(ctx, String(ctx.args['version']), ctx.output('rows.parquet')),
});

interface Overrides {
  source?: Record<string, Json>;
  bigquery?: Record<string, Json>;
  performance?: Record<string, Json>;
  chunkSize?: number;
}

function settings(table: string, overrides: Overrides = {}): Record<string, Json> {
  return {
    source: {engine: 'bigquery', table, version_column: 'version', keys: ['id'], columns: null, ...overrides.source},
    // Retries in milliseconds, not the client's default seconds.
    bigquery: {project_id: 'test-proj', dataset_id: 'ds', api_endpoint: server.url, retry_max_delay_seconds: 0.01, ...overrides.bigquery},
    performance: {retry_count: 3, ...overrides.performance},
    validation: {chunk_size: overrides.chunkSize ?? 100},
  };
}

const predsSource = {keys: ['entity_id']};

async function extract(table: string, version: string, overrides: Overrides = {}, signal?: AbortSignal) {
  const run = await runTaskDirectly(extractTask, {
    args: {version},
    settings: settings(table, overrides),
    outputs: ['rows.parquet'],
    ...(signal === undefined ? {} : {signal}),
  });
  return {...run, parquet: `${run.outputDir}/rows.parquet`};
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the extraction to fail');
}

async function rows(sql: string): Promise<unknown[][]> {
  return (await db.runAndReadAll(sql)).getRowsJson() as unknown[][];
}

function probeContext(table: string, version: string, overrides: Overrides = {}): ProbeContext {
  return {
    name: 'extract-new',
    args: {version},
    settings: completeSettings(settings(table, overrides)),
    projectDir: process.cwd(),
    signal: new AbortController().signal,
    digestFile: () => Promise.reject(new Error('no files here')),
  };
}

describe('extraction through the real client', () => {
  it('round-trips every BigQuery type into Parquet', async () => {
    const {parquet, result} = await extract('types', 'v1');
    expect(result).toMatchObject({rows: 3});
    const columns = await rows(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${parquet}')`);
    expect(Object.fromEntries(columns)).toEqual({
      id: 'BIGINT',
      big: 'BIGINT',
      f: 'DOUBLE',
      num: 'DECIMAL(38,9)',
      bignum: 'DECIMAL(38,9)',
      flag: 'BOOLEAN',
      s: 'VARCHAR',
      b: 'BLOB',
      d: 'DATE',
      dt: 'TIMESTAMP',
      t: 'TIME',
      ts: 'TIMESTAMP WITH TIME ZONE',
      j: 'VARCHAR',
      ints: 'BIGINT[]',
      strs: 'VARCHAR[]',
      rec: 'STRUCT(a BIGINT, tags VARCHAR[], inner_rec STRUCT(x DOUBLE))',
      recs: 'STRUCT(k VARCHAR, v DOUBLE)[]',
    });
    // Same values as the source, both ways (NaN equals NaN in DuckDB's set operations).
    const source = `SELECT * EXCLUDE (version) REPLACE (CAST(j AS VARCHAR) AS j, CAST(bignum AS DECIMAL(38, 9)) AS bignum) FROM ds.types WHERE version = 'v1'`;
    expect(await rows(`(${source}) EXCEPT (SELECT * FROM '${parquet}')`)).toEqual([]);
    expect(await rows(`(SELECT * FROM '${parquet}') EXCEPT (${source})`)).toEqual([]);
    // The values a JavaScript number or a float timestamp would have damaged.
    expect(await rows(`SELECT CAST(big AS VARCHAR), epoch_us(ts), CAST(isnan(f) AS VARCHAR), s, octet_length(b) FROM '${parquet}' WHERE id = 1`)).toEqual([
      ['9007199254740993', '1700000000123457', 'true', 'line one\nline "two"\x1f,', '3'],
    ]);
    expect(await rows(`SELECT s IS NULL, s = '', strs FROM '${parquet}' ORDER BY id`)).toEqual([
      [false, false, ['a', '', null]],
      [false, true, []],
      [true, null, []],
    ]);
  });

  it('pages through many pages, reports progress and gives the same rows as a DuckDB extraction', async () => {
    server.resetLog();
    const {parquet, result, progress} = await extract('preds', 'v2', {source: predsSource, chunkSize: 100});
    expect(result).toMatchObject({rows: 2500});
    expect(server.queries()).toBe(1);
    expect(server.count('jobs.getQueryResults')).toBe(25);
    expect(progress.filter((p) => p.rows !== undefined && p.message === undefined).map((p) => p.rows)).toEqual(
      Array.from({length: 25}, (_, i) => (i + 1) * 100),
    );
    expect(progress.every((p) => p.total === 2500)).toBe(true);
    await db.run(`COPY (SELECT * EXCLUDE (version) FROM ds.preds WHERE version = 'v2' ORDER BY entity_id) TO '${parquet}.duckdb.parquet'`);
    const diff = `(SELECT * FROM '${parquet}') EXCEPT ALL (SELECT * FROM '${parquet}.duckdb.parquet')`;
    expect(await rows(`SELECT count(*) FROM (${diff})`)).toEqual([['0']]);
    expect(await rows(`SELECT count(*), min(entity_id), max(entity_id) FROM '${parquet}'`)).toEqual([['2500', '1', '2500']]);
  });

  it('writes byte-identical Parquet for the same rows, whatever the page size', async () => {
    const a = await extract('preds', 'v1', {source: predsSource, chunkSize: 700});
    const b = await extract('preds', 'v1', {source: predsSource, chunkSize: 10_000});
    expect(readFileSync(a.parquet).equals(readFileSync(b.parquet))).toBe(true);
  });

  it('extracts only the chosen columns, keys first', async () => {
    const {parquet} = await extract('preds', 'v1', {source: {keys: ['entity_id'], columns: ['score']}});
    expect(await rows(`SELECT column_name FROM (DESCRIBE SELECT * FROM '${parquet}')`)).toEqual([['entity_id'], ['score']]);
    // Named in another case: extracted under the configured name, which validate looks for.
    const cased = await extract('preds', 'v1', {source: {keys: ['ENTITY_ID'], columns: ['Score']}});
    expect(await rows(`SELECT column_name FROM (DESCRIBE SELECT * FROM '${cased.parquet}')`)).toEqual([['ENTITY_ID'], ['Score']]);
  });

  it('selects versions held in a DATE or TIMESTAMP column', async () => {
    // The client reads such parameters from `.value`: a plain string went out empty (NULL).
    await server.run(`CREATE TABLE ds.dated AS SELECT i AS id, DATE '2024-01-02' + (i % 2)::INTEGER AS day,
      TIMESTAMP '2024-01-02 10:00:00' + INTERVAL (i % 2) HOUR AS at, i / 2 AS x FROM range(10) t(i)`);
    expect((await extract('dated', '2024-01-03', {source: {version_column: 'day'}})).result).toMatchObject({rows: 5});
    expect((await extract('dated', '2024-01-02 11:00:00', {source: {version_column: 'at'}})).result).toMatchObject({rows: 5});
  });

  it('reports the bytes the dry run estimated, and refuses a query over bigquery.maximum_bytes_billed', async () => {
    server.resetLog();
    const {result} = await extract('preds', 'v1', {source: predsSource});
    // The local server's estimate: 8 bytes x 5 columns x 5000 table rows.
    expect(result).toMatchObject({details: {bytes_processed: 200_000}});
    expect(server.log.map((r) => [r.route, r.dryRun]).slice(0, 4)).toEqual([
      ['tables.get', false],
      ['jobs.insert', true],
      ['jobs.insert', false],
      ['jobs.getQueryResults', false],
    ]);
    server.resetLog();
    const error = await failure(extract('preds', 'v1', {source: predsSource, bigquery: {maximum_bytes_billed: 100_000}}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toMatch(/would process 195\.3 KiB, more than bigquery\.maximum_bytes_billed \(97\.7 KiB\)/);
    expect(server.queries()).toBe(0);
  });
});

describe('queries that take time, and interruptions', () => {
  const until = async (done: () => boolean) => {
    while (!done()) await new Promise((resolve) => setTimeout(resolve, 10));
  };

  it('asks again while BigQuery answers that the query is still running, rather than reading no rows', async () => {
    server.resetLog();
    server.pendingNext(2, {paged: false});
    const {result} = await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    expect(result).toMatchObject({rows: 2500});
    expect(server.queries()).toBe(1);
    // Twice "not complete", then the three pages.
    expect(server.log.filter((r) => r.route === 'jobs.getQueryResults').map((r) => r.injected)).toEqual([true, true, false, false, false]);
  });

  it('an interruption while a later page is read gives it up at once; the job, done, is not cancelled', async () => {
    const {openBigQuery, queryAll} = await import('../tasks/lib/bigquery-client.js');
    const client = await openBigQuery({projectId: 'test-proj', location: 'US', apiEndpoint: server.url, retryCount: 0});
    server.resetLog();
    // Longer than the test may take: only giving the page up ends it.
    server.slowNext(1, 600_000, {route: 'jobs.getQueryResults', paged: true});
    const controller = new AbortController();
    const reading = queryAll(client, {sql: 'SELECT * FROM `test-proj.ds.preds`', params: {}}, controller.signal, 1000).then(() => undefined, (thrown: unknown) => thrown);
    await until(() => server.log.some((r) => r.paged));
    controller.abort();
    const error = await reading;
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as Error).message).toBe('The BigQuery query was interrupted.');
    expect(server.cancelled).toEqual([]);
  });

  it('an interruption during the dry run creates no query job', async () => {
    server.resetLog();
    server.slowNext(1, 600_000, {route: 'jobs.insert', dryRun: true});
    const controller = new AbortController();
    const extracting = extract('preds', 'v1', {source: predsSource}, controller.signal).then(() => undefined, (thrown: unknown) => thrown);
    await until(() => server.count('jobs.insert') > 0);
    controller.abort();
    expect(await extracting).toBeInstanceOf(InterruptedError);
    expect(server.log.filter((r) => r.route === 'jobs.insert' && !r.dryRun)).toEqual([]);
  });

  it.each([
    ['a job', false],
    ['a dry run', true],
  ] as const)('%s failing as it is created reads as BigQuery refusing the query, not as a lost network', async (_, dryRun) => {
    server.resetLog();
    server.failNext(1, 400, {route: 'jobs.insert', dryRun, inJob: true, reason: 'invalidQuery', message: 'Syntax error: Unexpected end of script'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('BigQuery rejected the query on test-proj.ds.preds: Syntax error: Unexpected end of script');
  });
});

describe('transient failures', () => {
  const inserts = () => server.log.filter((r) => r.route === 'jobs.insert' && !r.dryRun);

  it('runs a job that failed for a reason of BigQuery own (backendError) again, under a new job id', async () => {
    server.resetLog();
    server.failNext(1, 500, {route: 'jobs.insert', dryRun: false, inJob: true, reason: 'backendError', message: 'Backend error. Job aborted.'});
    const {result} = await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    expect(result).toMatchObject({rows: 2500});
    const ids = inserts().map((r) => r.jobId);
    expect(ids).toHaveLength(2);
    expect(ids[0]).not.toBe(ids[1]);
    expect(inserts().map((r) => r.injected)).toEqual([true, false]);
  });

  it.each([
    [500, 'backendError', 'Backend error. Job aborted.'],
    // A 400, yet BigQuery's own failure, not a wrong query.
    [400, 'jobInternalError', 'Internal error.'],
  ] as const)('gives up on a job failing with %i %s after performance.retry_count new jobs, saying so truly', async (status, reason, message) => {
    server.resetLog();
    server.failNext(4, status, {route: 'jobs.insert', dryRun: false, inJob: true, reason, message});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error.message).toBe(`BigQuery kept failing while trying to query test-proj.ds.preds: HTTP 500: ${message.replace(/\.$/, '')}. Gave up after 4 attempts (performance.retry_count: 3).`);
    expect(new Set(inserts().map((r) => r.jobId)).size).toBe(4);
  });

  it('runs again a job that failed while running (its results refused with backendError, jobs.get showing the failure), not cancelling it', async () => {
    server.resetLog();
    server.failNext(1, 500, {route: 'jobs.getQueryResults', paged: false, inJob: true, reason: 'backendError', message: 'Backend error. Job aborted.'});
    const {result} = await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    expect(result).toMatchObject({rows: 2500});
    expect(new Set(inserts().map((r) => r.jobId)).size).toBe(2);
    expect(server.count('jobs.get')).toBe(1);
    expect(server.cancelled).toEqual([]);
  });

  it('runs a dry run again when its job fails for a reason of BigQuery own', async () => {
    server.resetLog();
    server.failNext(1, 500, {route: 'jobs.insert', dryRun: true, inJob: true, reason: 'backendError', message: 'Backend error.'});
    const {result} = await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    expect(result).toMatchObject({rows: 2500});
    expect(server.log.filter((r) => r.route === 'jobs.insert' && r.dryRun).map((r) => r.injected)).toEqual([true, false]);
  });

  it('does not run again a job that failed for a reason of the query (invalidQuery)', async () => {
    server.resetLog();
    server.failNext(1, 400, {route: 'jobs.insert', dryRun: false, inJob: true, reason: 'invalidQuery', message: 'Unrecognized name: scor'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(inserts()).toHaveLength(1);
  });

  it('cancels the job of a query given up on without an interruption (its results failing to the end): it may be running, and billing', async () => {
    server.resetLog();
    server.failNext(4, 503, {route: 'jobs.getQueryResults', paged: false});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error.message).toMatch(/HTTP 503: Injected failure 503\. Gave up after 4 attempts/);
    expect(server.cancelled).toEqual([inserts()[0]!.jobId]);
  });

  it('leaves alone the job of a query BigQuery refused (nothing runs)', async () => {
    server.resetLog();
    server.failNext(1, 400, {route: 'jobs.getQueryResults', paged: false, reason: 'invalidQuery', message: 'Division by zero'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(server.count('jobs.cancel')).toBe(0);
  });

  it('pauses between asks about a job not complete yet when the answers come at once, more each time', async () => {
    server.resetLog();
    server.pendingNext(3, {paged: false});
    await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    const asks = server.log.filter((r) => r.route === 'jobs.getQueryResults').map((r) => r.at);
    // 50, 100 and 200 ms at least (a timer never fires early), not ~500 requests a second.
    const gaps = asks.slice(1, 4).map((at, i) => at - asks[i]!);
    expect(gaps.map((gap, i) => gap >= 50 * 2 ** i - 1)).toEqual([true, true, true]);
  });

  it('absorbs a 503 and a dropped connection with retries', async () => {
    server.resetLog();
    server.failNext(1, 503, {route: 'jobs.insert', dryRun: false});
    server.dropNext(1, {route: 'jobs.getQueryResults'});
    const {result} = await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    expect(result).toMatchObject({rows: 2500});
    expect(server.log.filter((r) => r.route === 'jobs.insert' && !r.dryRun).map((r) => r.status)).toEqual([503, 200]);
    expect(server.log.filter((r) => r.route === 'jobs.getQueryResults' && r.injected)).toHaveLength(1);
  });

  it('runs a query once when the answer to creating its job was lost: the retry finds the job and reads it', async () => {
    server.resetLog();
    server.loseNext(1, {route: 'jobs.insert', dryRun: false});
    const {result} = await extract('preds', 'v1', {source: predsSource, chunkSize: 1000});
    expect(result).toMatchObject({rows: 2500});
    // The retry is refused as a duplicate (the job exists), and its results are read.
    expect(server.log.filter((r) => r.route === 'jobs.insert' && !r.dryRun).map((r) => [r.status, r.injected])).toEqual([
      [200, true],
      [409, false],
    ]);
    expect(server.queries()).toBe(1);
  });

  it('gives up after performance.retry_count retries with an ExecutionError naming the table', async () => {
    server.resetLog();
    server.failNext(4, 500, {route: 'jobs.insert', dryRun: false});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error.message).toMatch(/test-proj\.ds\.preds: HTTP 500: Injected failure 500\. Gave up after 4 attempts \(performance\.retry_count: 3\)/);
    expect(server.log.filter((r) => r.route === 'jobs.insert' && !r.dryRun)).toHaveLength(4);
  });

  it('says an exceeded quota was not retried, rather than that it gave up after retries', async () => {
    server.resetLog();
    server.failNext(1, 403, {route: 'tables.get', reason: 'quotaExceeded', message: 'Quota exceeded: too many table reads'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error.message).toMatch(/test-proj\.ds\.preds: the project is over a quota \(HTTP 403: Quota exceeded: too many table reads\)\. Not retried/);
    expect(error.message).not.toMatch(/Gave up/);
    expect((error as ExecutionError).hint).toMatch(/quota/);
    expect(server.count('tables.get')).toBe(1);
  });

  it.each([
    [403, 'responseTooLarge', ExecutionError, 'the result is too large to return', 'source.columns'],
    [403, 'billingNotEnabled', ConfigurationError, 'billing is not enabled for the project test-proj', 'Enable billing'],
    [400, 'bytesBilledLimitExceeded', ConfigurationError, 'it would bill more bytes than the limit set', 'bigquery.maximum_bytes_billed'],
    [400, 'resourcesExceeded', ExecutionError, 'BigQuery ran out of resources', 'Retry later'],
  ] as const)('phrases a %i %s by its reason, not its status', async (status, reason, kind, message, hint) => {
    server.resetLog();
    server.failNext(1, status, {route: 'tables.get', reason, message: `Injected ${reason}`});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(kind);
    expect(error.message).toContain(message);
    expect(error.message).not.toContain('Access denied');
    expect((error as ExecutionError).hint).toContain(hint);
  });

  it('does not retry when performance.retry_count is 0', async () => {
    server.resetLog();
    server.failNext(1, 503, {route: 'tables.get'});
    const error = await failure(extract('preds', 'v1', {source: predsSource, performance: {retry_count: 0}}));
    expect(error).toBeInstanceOf(ExecutionError);
    expect(server.count('tables.get')).toBe(1);
  });
});

describe('clear messages for what a user must fix', () => {
  it('access denied', async () => {
    server.failNext(1, 403, {route: 'tables.get', reason: 'accessDenied', message: 'Access Denied: Table test-proj:ds.preds: Permission bigquery.tables.get denied'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toMatch(/^Access denied while trying to read the table metadata of test-proj\.ds\.preds: Access Denied/);
    expect((error as ConfigurationError).hint).toMatch(/roles\/bigquery\.dataViewer/);
  });

  it('a missing table', async () => {
    const error = await failure(extract('nope', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toMatch(/Not found while trying to read the table metadata of test-proj\.ds\.nope: Not found: Table test-proj:ds\.nope/);
  });

  it('a missing column', async () => {
    const error = await failure(extract('preds', 'v1', {source: {keys: ['entity_id'], columns: ['scroe']}}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(
      'Column "scroe" (source.columns[0]) is not in test-proj.ds.preds; its columns are: entity_id, version, region, score, bucket, label.',
    );
  });

  it('a table id BigQuery refuses (400 on reading its metadata), not called a query', async () => {
    server.failNext(1, 400, {route: 'tables.get', reason: 'invalid', message: 'Invalid table ID "preds-2024".'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('BigQuery rejected the request to read the table metadata of test-proj.ds.preds: Invalid table ID "preds-2024".');
    expect((error as ConfigurationError).hint).toMatch(/bigquery\.table_id/);
  });

  it('an invalid query', async () => {
    server.failNext(1, 400, {route: 'jobs.insert', reason: 'invalidQuery', message: 'Syntax error: Unexpected identifier "ERROR" at [1:8]'});
    const error = await failure(extract('preds', 'v1', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('BigQuery rejected the query on test-proj.ds.preds: Syntax error: Unexpected identifier "ERROR" at [1:8]');
  });

  it('a version with no rows', async () => {
    const error = await failure(extract('preds', 'v9', {source: predsSource}));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('Version "v9" has no rows in test-proj.ds.preds (column version).');
  });

  it('a type the comparison does not support, naming the column', async () => {
    const error = await failure(extract('odd', 'v1'));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('Column span has BigQuery type INTERVAL, which the comparison does not support.');
  });

  it('a BIGNUMERIC value that would lose digits', async () => {
    const error = await failure(extract('wide', 'v1'));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe('Column bignum holds 1.12345678901000000000, which does not fit DECIMAL(38,9) exactly.');
  });

  it('missing credentials say what was tried, without an api_endpoint', async () => {
    const saved = process.env['GOOGLE_APPLICATION_CREDENTIALS'];
    process.env['GOOGLE_APPLICATION_CREDENTIALS'] = '/nonexistent/key.json';
    try {
      const error = await failure(extract('preds', 'v1', {source: predsSource, bigquery: {api_endpoint: null}}));
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).toMatch(/^No Google credentials found for BigQuery\. Tried, in order: GOOGLE_APPLICATION_CREDENTIALS \(\/nonexistent\/key\.json: .*gcloud application-default login.*metadata server/);
      expect((error as ConfigurationError).hint).toMatch(/gcloud auth application-default login/);
    } finally {
      if (saved === undefined) delete process.env['GOOGLE_APPLICATION_CREDENTIALS'];
      else process.env['GOOGLE_APPLICATION_CREDENTIALS'] = saved;
    }
  });

  it('bigquery.api_endpoint wins over BIGQUERY_EMULATOR_HOST', async () => {
    process.env['BIGQUERY_EMULATOR_HOST'] = 'http://127.0.0.1:9';
    try {
      const {result} = await extract('preds', 'v1', {source: predsSource});
      expect(result).toMatchObject({rows: 2500});
    } finally {
      delete process.env['BIGQUERY_EMULATOR_HOST'];
    }
  });
});

describe('the freshness probe', () => {
  it('changes when the table changes, and costs one tables.get', async () => {
    await server.run(`CREATE TABLE ds.live AS SELECT * FROM ds.preds WHERE entity_id <= 10`);
    server.resetLog();
    const first = await probeBigQuery(probeContext('live', 'v1', {source: predsSource}));
    const again = await probeBigQuery(probeContext('live', 'v1', {source: predsSource}));
    expect(again).toEqual(first);
    expect(server.log.map((r) => r.route)).toEqual(['tables.get', 'tables.get']);
    expect(first).toMatchObject({
      engine: 'bigquery',
      table: 'test-proj.ds.live',
      sql: 'SELECT `entity_id`, `region`, `score`, `bucket`, `label` FROM `test-proj.ds.live` WHERE `version` = @version',
      version: 'v1',
      metadata: {numRows: '20', lastModifiedTime: '1700000000000'},
    });

    server.touchTable('ds', 'live');
    const touched = await probeBigQuery(probeContext('live', 'v1', {source: predsSource}));
    expect(touched).not.toEqual(first);

    await server.run(`INSERT INTO ds.live SELECT * FROM ds.preds WHERE entity_id = 11`);
    server.touchTable('ds', 'live');
    const grown = await probeBigQuery(probeContext('live', 'v1', {source: predsSource}));
    expect(grown).toMatchObject({metadata: {numRows: '22'}});
    expect(grown).not.toEqual(touched);

    // Another version, or other columns, are another extraction.
    expect(await probeBigQuery(probeContext('live', 'v2', {source: predsSource}))).not.toEqual(grown);
  });

  it('for a view: always re-extracts by default, or reuses within bigquery.ttl_seconds', async () => {
    const always = [await probeBigQuery(probeContext('preds_view', 'v1', {source: predsSource})), await probeBigQuery(probeContext('preds_view', 'v1', {source: predsSource}))];
    expect(always[0]).not.toEqual(always[1]);
    const ttl = {source: predsSource, bigquery: {freshness: 'ttl', ttl_seconds: 86_400 * 365}};
    expect(await probeBigQuery(probeContext('preds_view', 'v1', ttl))).toEqual(await probeBigQuery(probeContext('preds_view', 'v1', ttl)));
  });

  it('reports a missing table as clearly as the extraction does', async () => {
    const error = await failure(probeBigQuery(probeContext('gone', 'v1', {source: predsSource})));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toMatch(/test-proj\.ds\.gone/);
  });
});
