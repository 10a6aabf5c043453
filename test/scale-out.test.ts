/**
 * Scale-out: the comparison pushed down to BigQuery. The same plan rendered in BigQuery's
 * dialect runs through the real client against the local server (which translates that
 * dialect to DuckDB and executes it), and must give the figures the local comparison gives;
 * every generated statement must parse as BigQuery; an unchanged table costs only metadata.
 */
import {copyFileSync, mkdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {Parser} from 'node-sql-parser';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {ConfigurationError, InterruptedError} from '../src/errors.js';
import analyze from '../tasks/analyze.js';
import extract from '../tasks/extract.js';
import type {AnalysisDocument} from '../tasks/lib/analyze-sql.js';
import {bigQueryBinValuesSql, bigQueryBinsSql, bigQueryCategoriesSql, bigQueryMomentsSql, bigQueryMoversSql, bigQueryQuantilesSql} from '../tasks/lib/analyze-sql.js';
import {bigQueryCountsSql, bigQueryMismatchTableSql, bigQuerySamplesSql, planComparison} from '../tasks/lib/compare-sql.js';
import type {SchemaColumn} from '../tasks/lib/compare-sql.js';
import {ensureSampleDatabase} from '../tasks/lib/sample-data.js';
import type {Json} from '../src/task-api.js';
import {startBigQueryServer} from './support/bigquery-server.js';
import type {BigQueryServer} from './support/bigquery-server.js';
import {Project, REPO} from './support/project.js';
import {runTaskDirectly} from './support/run-task.js';
import {runValidate} from './support/validate-fixtures.js';

// Two versions in one table, keyed by (id, region), with every case the comparison must agree
// on: tolerance edges (0.1 on abs 0.1 is within, 0.1000001 beyond), relative tolerance, NaN
// against NaN (equal) and against a number (changed), null against null (equal) and against
// a value (changed), infinities, a null key, duplicated keys (in one version, in both),
// added and removed keys, a boolean, an integer and a list column (never NULL: BigQuery has no
// NULL arrays).
const CASES = `
CREATE SCHEMA ds;
CREATE TABLE ds.cases (id BIGINT, region VARCHAR, version VARCHAR, score DOUBLE, amount DOUBLE, n BIGINT, label VARCHAR, flag BOOLEAN, tags VARCHAR[]);
INSERT INTO ds.cases VALUES
  (1, 'north', 'v1', 1.0, 100, 1, 'a', true, ['x']),        (1, 'north', 'v2', 1.1, 100, 1, 'a', true, ['x']),
  (1, 'south', 'v1', 1.0, 100, 1, 'a', true, ['x']),        (1, 'south', 'v2', 1.1000001, 100, 1, 'a', true, ['x']),
  (2, 'north', 'v1', 'NaN', 100, 2, 'b', false, []),        (2, 'north', 'v2', 'NaN', 101, 2, 'b', false, []),
  (2, 'south', 'v1', 'NaN', 100, 2, 'b', false, []),        (2, 'south', 'v2', 5, 100.5, 2, 'b', false, []),
  (3, 'north', 'v1', NULL, NULL, NULL, NULL, NULL, []),     (3, 'north', 'v2', NULL, NULL, NULL, NULL, NULL, []),
  (3, 'south', 'v1', NULL, 7, 3, NULL, true, ['y']),        (3, 'south', 'v2', 2, 7, 4, 'c', NULL, ['y', 'z']),
  (4, 'north', 'v1', 'Infinity', 0, 4, 'd', true, []),      (4, 'north', 'v2', 'Infinity', 0.001, 4, 'd', true, []),
  (4, 'south', 'v1', '-Infinity', 0, 4, 'd', true, []),     (4, 'south', 'v2', 'Infinity', 0, 4, 'd', true, []),
  (5, NULL, 'v1', 1, 1, 1, 'e', true, []),                  (5, NULL, 'v2', 1, 1, 1, 'e', true, []),
  (6, 'north', 'v1', 1, 1, 1, 'f', true, []),               (6, 'north', 'v1', 2, 1, 1, 'f', true, []),
  (6, 'north', 'v2', 1, 1, 1, 'f', true, []),
  (7, 'east', 'v1', 1, 1, 1, 'g', true, []),                (7, 'east', 'v1', 1, 1, 1, 'g', true, []),
  (7, 'east', 'v2', 1, 1, 1, 'g', true, []),                (7, 'east', 'v2', 1, 1, 1, 'g', true, []),
  (8, 'west', 'v1', 1, 1, 1, 'h', true, []),
  (9, 'west', 'v2', 1, 1, 1, 'i', true, []),                (10, 'west', 'v2', 1, 1, 1, 'j', true, []),
  (11, 'north', 'v1', 0.5, 200, 11, 'k', true, []),         (11, 'north', 'v2', 0.5, 200, 11, 'k', true, []);
`;

const TOLERANCE = {abs: 0, rel: 0, columns: {score: {abs: 0.1}, amount: {rel: 0.004}}};

// For the analysis: 2,000 keys a version (a few added and removed), three regions, x shifted
// by 5 (of 0..20) in one region only, y scaled by 1% everywhere, a NaN, nulls, m a point mass
// (90% of the old values at 0, which the new version moves to -1: PSI bins of its own), a
// category column and one of hundreds of values (more than analysis.json lists; some only in
// one version).
const PARAMS = `
CREATE TABLE ds.params AS
SELECT i AS id, v AS version, (['north', 'south', 'east'])[i % 3 + 1] AS region,
  CASE WHEN i % 97 = 0 THEN NULL ELSE ((i * 7919) % 2003) / 100.0 + CASE WHEN v = 'v2' AND i % 3 = 1 THEN 5.0 ELSE 0 END END::DOUBLE AS x,
  CASE WHEN v = 'v2' AND i = 50 THEN 'NaN'::DOUBLE WHEN v = 'v2' THEN sqrt(i) * 1.01 ELSE sqrt(i) END AS y,
  CASE WHEN i % 10 = 0 THEN i / 2000.0 WHEN v = 'v2' THEN -1.0 ELSE 0.0 END::DOUBLE AS m,
  (['a', 'b', 'c'])[(i * 13 + CASE WHEN v = 'v2' AND i % 10 = 0 THEN 1 ELSE 0 END) % 3 + 1] AS label,
  CASE WHEN i % 41 = 0 THEN NULL ELSE 't' || (i % 700) || CASE WHEN v = 'v2' AND i % 9 = 0 THEN '-new' ELSE '' END END AS tag
FROM range(2000) t(i), (VALUES ('v1'), ('v2')) vs(v)
WHERE NOT (v = 'v1' AND i >= 1990) AND NOT (v = 'v2' AND i < 5);
-- A key duplicated in each version, with the largest changes of y if their pairs counted.
INSERT INTO ds.params VALUES (1000, 'v2', 'south', 1.0, 1000.0, 0.0, 'a', 't1'), (1500, 'v1', 'north', 2.0, -500.0, 0.0, 'b', 't2');
`;

let server: BigQueryServer;

beforeAll(async () => {
  delete process.env['BIGQUERY_EMULATOR_HOST'];
  server = await startBigQueryServer({project: 'scale-proj'});
  await server.run(CASES);
  await server.run(PARAMS);
});

afterAll(async () => {
  await server?.close();
});

function settings(engine: 'local' | 'bigquery', extra: {validation?: Record<string, Json>; bigquery?: Record<string, Json>; source?: Record<string, Json>} = {}): Record<string, Json> {
  return {
    source: {engine: 'bigquery', table: 'cases', version_column: 'version', keys: ['id', 'region'], columns: null, ...extra.source},
    bigquery: {project_id: 'scale-proj', dataset_id: 'ds', api_endpoint: server.url, retry_max_delay_seconds: 0.01, ...extra.bigquery},
    validation: {engine, max_mismatch_rows: 10_000, tolerance: TOLERANCE, rules: [{check: 'changed_rows', max_pct: 50, severity: 'warn'}], ...extra.validation},
    analysis: {engine},
    performance: {retry_count: 0},
  };
}

/** Extracts both versions and validates them, as the pipeline would, with one engine. */
async function compare(engine: 'local' | 'bigquery', extra: Parameters<typeof settings>[1] = {}, versions: [string, string] = ['v1', 'v2'], signal?: AbortSignal) {
  const all = settings(engine, extra);
  const paths: Record<string, string> = {};
  for (const [side, version] of [['old', versions[0]], ['new', versions[1]]] as const) {
    const run = await runTaskDirectly(extract, {name: `extract-${side}`, args: {version}, settings: all, outputs: ['rows.parquet']});
    paths[side] = join(run.outputDir, 'rows.parquet');
  }
  return runValidate({old: paths['old']!, new: paths['new']!}, all, signal);
}

// The figures both engines must agree on: all of validation.json but where it says how it was computed.
function figures(json: Record<string, unknown>): Record<string, unknown> {
  const {engine: _engine, bytes_processed: _bytes, samples: _samples, ...rest} = json;
  return rest;
}

describe('the comparison pushed down to BigQuery', () => {
  it('gives the same validation.json figures and CSV rows as the local comparison', async () => {
    const local = await compare('local');
    server.resetLog();
    const pushed = await compare('bigquery');

    expect(local.json.engine).toBe('local');
    expect(pushed.json.engine).toBe('bigquery');
    expect(figures(pushed.json)).toEqual(figures(local.json));
    // The figures are the expected ones, not merely equal.
    expect(pushed.json.rows).toEqual({old: 15, new: 15});
    expect(pushed.json.keys).toEqual({matched: 11, added: 2, removed: 1, duplicated_old: 2, duplicated_new: 1});
    expect(pushed.json.null_keys).toEqual({old: 1, new: 1});
    expect(pushed.json.compared_rows).toBe(9);
    expect(pushed.json.changed_rows).toBe(6);
    const changed = Object.fromEntries(Object.entries(pushed.json.columns as Record<string, {changed: number}>).map(([name, c]) => [name, c.changed]));
    // score: 1.1 within 0.1 of 1.0 but 1.1000001 beyond, NaN vs 5, null vs 2, -inf vs inf; amount:
    // 101 and 100.5 beyond 0.4% of 100, 0.001 vs 0 (a relative tolerance of 0 forgives nothing);
    // n, label, flag, tags: the row with nulls.
    expect(changed).toEqual({score: 4, amount: 3, n: 1, label: 1, flag: 1, tags: 1});

    for (const file of ['added_keys.csv', 'removed_keys.csv', 'duplicate_keys.csv']) expect(pushed.files[file]).toBe(local.files[file]);
    // Mismatch rows: the same keys, columns and differences (values are text in both; a list
    // is JSON text in BigQuery, DuckDB's list text locally).
    const cells = (csv: string) => csv.trim().split('\n').map((line) => line.split(',').slice(0, 3).join(','));
    expect(cells(pushed.files['mismatches.csv']!)).toEqual(cells(local.files['mismatches.csv']!));
    expect(pushed.json.samples['mismatches.csv']).toEqual({rows: 11, total: 11, truncated: false});

    // Pushed down, nothing was extracted: two tables.get, two dry runs, two queries.
    expect(server.count('tables.get')).toBe(2);
    expect(server.log.filter((r) => r.route === 'jobs.insert' && r.dryRun)).toHaveLength(2);
    expect(server.queries()).toBe(2);
    expect(pushed.result.details?.['bytes_processed']).toBeGreaterThan(0);
  });

  it('refuses a version with no rows, as the extraction does locally (nothing was extracted to tell)', async () => {
    const error = await compare('bigquery', {}, ['v1', 'v9']).then(
      () => undefined,
      (thrown: unknown) => thrown as Error,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error!.message).toBe('version v9 (--new) has no rows in scale-proj.ds.cases (column version)');
  });

  it.each([
    // Each change exceeds the tolerance of 0.5, but not by enough to survive doubles: 2^53 + 1
    // is 2^53 as a double, and at 4e15 a double's rounding allowance would swallow 4.
    ['integers', 0.5, 4, `SELECT * FROM (VALUES (1, 'v1', 9007199254740992), (1, 'v2', 9007199254740993),
      (2, 'v1', 4000000000000000), (2, 'v2', 4000000000000004), (3, 'v1', 7), (3, 'v2', 7)) t(id, version, x)`],
    // 1e-8 at 12345678 and 50 at 1.2e17 exceed the tolerance of 1e-9; doubles round both away.
    ['NUMERICs', 1e-9, 50, `SELECT id, version, CAST(x AS DECIMAL(38, 9)) AS x FROM (VALUES
      (1, 'v1', '12345678.123456789'), (1, 'v2', '12345678.123456799'),
      (2, 'v1', '123456789012345678'), (2, 'v2', '123456789012345728'), (3, 'v1', '7.5'), (3, 'v2', '7.5')) t(id, version, x)`],
  ] as const)('computes differences of %s exactly, as the local comparison does', async (name, abs, largest, sql) => {
    await server.run(`CREATE TABLE ds.exact_${name} AS ${sql}`);
    const extra = {source: {table: `exact_${name}`, keys: ['id']}, validation: {tolerance: {abs, rel: 0, columns: {}}, rules: []}};
    const [local, pushed] = [await compare('local', extra), await compare('bigquery', extra)];
    expect(pushed.json.engine).toBe('bigquery');
    for (const run of [local, pushed]) {
      expect(run.json.columns.x).toMatchObject({changed: 2, max_abs_diff: largest});
      expect(run.json.changed_rows).toBe(2);
    }
  });

  it('an interruption cancels a pushed-down query in BigQuery at once, rather than waiting for it or leaving it to run', async () => {
    const controller = new AbortController();
    server.resetLog();
    server.slowNext(1, 8000, {route: 'jobs.getQueryResults'});
    const comparing = compare('bigquery', {}, ['v1', 'v2'], controller.signal).then(() => undefined, (thrown: unknown) => thrown);
    // Interrupted while the comparison's query is under way in BigQuery.
    while (server.count('jobs.getQueryResults') === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    const error = await comparing;
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as Error).message).toBe('The BigQuery query was interrupted; its job was cancelled.');
    expect(server.queries()).toBe(1);
    expect(server.cancelled).toEqual([expect.stringMatching(/^pipeline_[0-9a-f]{32}$/)]);
    expect(server.log.filter((r) => r.route === 'jobs.cancel').map((r) => r.path)).toEqual([`/projects/scale-proj/jobs/${server.cancelled[0]}/cancel`]);
  });

  it('an interruption while the job is being created waits for its creation, then cancels it', async () => {
    const {openBigQuery} = await import('../tasks/lib/bigquery-client.js');
    const client = await openBigQuery({projectId: 'scale-proj', location: 'US', apiEndpoint: server.url, retryCount: 0});
    server.resetLog();
    server.slowNext(1, 500, {route: 'jobs.insert'});
    const controller = new AbortController();
    const reading = client.firstPage({sql: 'SELECT 1 AS x', params: {}}, 10, controller.signal).then(() => undefined, (thrown: unknown) => thrown);
    while (server.count('jobs.insert') === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    expect(await reading).toBeInstanceOf(InterruptedError);
    // Cancelled before its creation (not found), the job would have been created afterwards and run: it is cancelled once created.
    expect(server.log.map((r) => [r.route, r.status])).toEqual([
      ['jobs.insert', 200],
      ['jobs.cancel', 404],
      ['jobs.cancel', 200],
    ]);
    expect(server.cancelled).toEqual([expect.stringMatching(/^pipeline_/)]);
  });

  it('states a truncated sample: how many rows are listed of how many', async () => {
    const pushed = await compare('bigquery', {validation: {max_mismatch_rows: 2}});
    expect(pushed.json.samples).toEqual({
      'mismatches.csv': {rows: 2, total: 11, truncated: true},
      'added_keys.csv': {rows: 2, total: 2, truncated: false},
      'removed_keys.csv': {rows: 1, total: 1, truncated: false},
      'duplicate_keys.csv': {rows: 2, total: 2, truncated: false},
    });
    // The first rows in key order, and the full counts still in the figures.
    expect(pushed.files['mismatches.csv']!.trim().split('\n')).toEqual([
      'id,region,column,old_value,new_value,abs_diff,rel_diff',
      '1,south,score,1.0,1.1000001,0.10000009999999993,0.10000009999999993',
      '2,north,amount,100.0,101.0,1.0,0.01',
    ]);
    expect(pushed.json.changed_rows).toBe(6);
  });

  it('writes every mismatch to the table named by validation.mismatch_table, however few the CSV lists', async () => {
    const local = await compare('local');
    server.resetLog();
    const pushed = await compare('bigquery', {validation: {max_mismatch_rows: 2, mismatch_table: 'ds.all_mismatches'}});
    expect(pushed.json.mismatch_table).toEqual({table: 'scale-proj.ds.all_mismatches', rows: 11});
    expect(pushed.json.samples['mismatches.csv']).toEqual({rows: 2, total: 11, truncated: true});
    // Two more requests than without the table: its dry run and its query.
    expect(server.log.filter((r) => r.route === 'jobs.insert' && r.dryRun)).toHaveLength(3);
    expect(server.queries()).toBe(3);
    // Read back through the real client: the same rows as the local mismatches.csv.
    const {openBigQuery, queryAll, decodeScalar} = await import('../tasks/lib/bigquery-client.js');
    const client = await openBigQuery({projectId: 'scale-proj', location: 'US', apiEndpoint: server.url, retryCount: 0});
    const table = await queryAll(client, {sql: 'SELECT * FROM `scale-proj.ds.all_mismatches` ORDER BY id, region, `column`', params: {}});
    expect(table.fields.map((f) => f.name)).toEqual(['id', 'region', 'column', 'old_value', 'new_value', 'abs_diff', 'rel_diff']);
    const rows = table.rows.map((r) => table.fields.slice(0, 3).map((f, i) => decodeScalar(f, r.f[i]?.v) ?? '').join(','));
    const csv = local.files['mismatches.csv']!.trim().split('\n').slice(1).map((line) => line.split(',').slice(0, 3).join(','));
    expect(rows.sort()).toEqual(csv.sort());
  });

  it('a mismatch table BigQuery cannot create is blamed on validation.mismatch_table, not on the columns', async () => {
    const error = await compare('bigquery', {validation: {mismatch_table: 'missing_dataset.all_mismatches'}}).then(
      () => undefined,
      (thrown: unknown) => thrown as ConfigurationError,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error!.message).toBe(
      'Not found while trying to write the mismatches to scale-proj.missing_dataset.all_mismatches from scale-proj.ds.cases: Not found: Dataset scale-proj:missing_dataset',
    );
    expect(error!.hint).toMatch(/^Check validation\.mismatch_table: its dataset must exist/);
  });

  it('refuses a comparison the dry run prices above bigquery.maximum_bytes_billed, before running it', async () => {
    server.resetLog();
    await expect(compare('bigquery', {bigquery: {maximum_bytes_billed: 100}})).rejects.toThrow(/would process .* more than bigquery\.maximum_bytes_billed/);
    expect(server.queries()).toBe(0);
  });
});

/**
 * Extracts both versions of ds.params and analyses them, as the pipeline would, with one
 * engine (the comparison's engine may differ).
 */
async function analysis(engine: 'local' | 'bigquery', bigquery: Record<string, Json> = {}, validationEngine = engine, table = 'params', segmentBy = ['region']) {
  const all: Record<string, Json> = {
    source: {engine: 'bigquery', table, version_column: 'version', keys: ['id'], columns: null},
    bigquery: {project_id: 'scale-proj', dataset_id: 'ds', api_endpoint: server.url, retry_max_delay_seconds: 0.01, ...bigquery},
    validation: {engine: validationEngine},
    analysis: {engine, segment_by: segmentBy, bins: 10, top_n: 5},
    performance: {retry_count: 0},
  };
  const inputs: Record<string, Record<string, string>> = {};
  for (const [side, version] of [['old', 'v1'], ['new', 'v2']] as const) {
    const run = await runTaskDirectly(extract, {name: `extract-${side}`, args: {version}, settings: all, outputs: ['rows.parquet']});
    inputs[`extract-${side}`] = {'rows.parquet': join(run.outputDir, 'rows.parquet')};
  }
  const run = await runTaskDirectly(analyze, {name: 'analyze', settings: all, inputs, outputs: ['analysis.json', 'parameters.csv']});
  return {doc: JSON.parse(readFileSync(join(run.outputDir, 'analysis.json'), 'utf8')) as AnalysisDocument, result: run.result, logs: run.logs};
}

describe('the analysis pushed down to BigQuery', () => {
  it('agrees with the local analysis: exact where it says so, within its stated errors elsewhere', async () => {
    const local = await analysis('local');
    server.resetLog();
    const pushed = await analysis('bigquery');
    expect(local.doc.engine).toBe('local');
    expect(pushed.doc.engine).toBe('bigquery');
    expect(pushed.doc.bigquery?.table).toBe('scale-proj.ds.params');
    expect(pushed.doc.bigquery?.bytes_processed).toBeGreaterThan(0);
    // Nothing extracted: two tables.get, then six dry runs and six queries (the last reads
    // back the values of the KS candidate bins).
    expect(server.count('tables.get')).toBe(2);
    expect(server.log.filter((r) => r.route === 'jobs.insert' && r.dryRun)).toHaveLength(6);
    expect(server.queries()).toBe(6);

    expect(pushed.doc.rows).toEqual({old: 1991, new: 1996});
    expect(pushed.doc.rows).toEqual(local.doc.rows);
    expect(pushed.doc.categorical).toEqual(local.doc.categorical);
    expect(Object.keys(pushed.doc.parameters)).toEqual(['x', 'y', 'm']);
    for (const [name, l] of Object.entries(local.doc.parameters)) {
      const p = pushed.doc.parameters[name]!;
      for (const side of ['old', 'new'] as const) {
        for (const key of ['count', 'nulls', 'min', 'max'] as const) expect(p[side][key]).toBe(l[side][key]);
        expect(p[side].mean).toBeCloseTo(l[side].mean!, 9);
        expect(p[side].std).toBeCloseTo(l[side].std!, 9);
        // Approximate quantiles: within 1% of the range of the exact ones.
        const range = l[side].max! - l[side].min!;
        for (const q of ['p05', 'p25', 'p50', 'p75', 'p95'] as const) expect(Math.abs(p[side][q]! - l[side][q]!)).toBeLessThanOrEqual(range / 100);
      }
      expect(p.mean_change).toEqual(l.mean_change);
      // KS is exact: the bins' figure made exact by the values of its candidate bins.
      expect(p.ks_error).toBe(0);
      expect(p.ks).toBeCloseTo(l.ks!, 12);
      expect(Math.abs(l.wasserstein_norm! - p.wasserstein_norm!)).toBeLessThanOrEqual(p.wasserstein_norm_error! + 1e-12);
      expect(Math.abs(l.psi! - p.psi!)).toBeLessThan(0.02);
      expect(p.drift).toBe(l.drift);
      expect(p.histogram.old.reduce((a, b) => a + b, 0)).toBe(l.old.count);
      expect(p.top_movers).toEqual(l.top_movers);
      expect(l.top_movers.length).toBeGreaterThan(0);
      expect(l.top_movers.filter((m) => [1000, 1500].includes(Number(m.key['id'])))).toEqual([]);
      for (const [i, segment] of l.segments.entries()) {
        const s = p.segments[i]!;
        expect(s.segment).toEqual(segment.segment);
        expect(s.old).toEqual(segment.old);
        expect(s.ks_error).toBe(0);
        expect(s.ks).toBeCloseTo(segment.ks!, 12);
        expect(s.drift).toBe(segment.drift);
      }
    }
    // The figures are the expected ones: x drifted in one region only, y barely.
    const x = pushed.doc.parameters['x']!;
    expect(x.segments.map((s) => [s.segment['region'], s.drift])).toEqual([['east', 'none'], ['north', 'none'], ['south', 'major']]);
    expect(pushed.doc.parameters['y']!.new.count).toBe(1995); // 1996 rows, one NaN
    // The point mass at 0 has the bin [0, 0] to itself in both engines: moved to -1, a major drift.
    for (const doc of [local.doc, pushed.doc]) {
      expect(doc.parameters['m']!.psi_bins.edges.slice(0, 2)).toEqual([-Number.MIN_VALUE, 0]);
      expect(doc.parameters['m']!.drift).toBe('major');
    }
  });

  it('names the same segments as the local analysis: NaN, the infinities and null apart, integers past 2^53 exact', async () => {
    // x moves by 1 in the FLOAT64 segment Infinity only, and in the INT64 segment 2^53 + 1 only.
    await server.run(`CREATE TABLE ds.odd_segments AS SELECT i AS id, v AS version,
      (['0', '1', 'NaN', 'Infinity', NULL])[i % 5 + 1]::DOUBLE AS seg, (9007199254740992 + i % 2)::BIGINT AS big,
      (i % 50)::DOUBLE + CASE WHEN v = 'v2' AND i % 5 = 3 THEN 1 ELSE 0 END + CASE WHEN v = 'v2' AND i % 2 = 1 THEN 7 ELSE 0 END AS x
      FROM range(1000) t(i), (VALUES ('v1'), ('v2')) vs(v)`);
    for (const [column, expected] of [['seg', [0, 1, 'Infinity', 'NaN', null]], ['big', ['9007199254740992', '9007199254740993']]] as const) {
      const [local, pushed] = [await analysis('local', {}, 'local', 'odd_segments', [column]), await analysis('bigquery', {}, 'bigquery', 'odd_segments', [column])];
      for (const doc of [local.doc, pushed.doc]) {
        const segments = doc.parameters['x']!.segments;
        expect(segments.map((s) => s.segment[column]).sort((a, b) => String(a).localeCompare(String(b)))).toEqual([...expected].sort((a, b) => String(a).localeCompare(String(b))));
        expect(segments.map((s) => s.old.count)).toEqual(segments.map(() => 1000 / expected.length));
      }
      expect(pushed.doc.parameters['x']!.segments.map((s) => [s.segment, s.drift])).toEqual(local.doc.parameters['x']!.segments.map((s) => [s.segment, s.drift]));
    }
  });

  it('analyses locally, saying why, when analysis.engine is bigquery but the comparison is not pushed down', async () => {
    const run = await analysis('bigquery', {}, 'local');
    expect(run.doc.engine).toBe('local');
    expect(run.logs.some((line) => line.includes('analysis.engine is bigquery, but the extractions hold the rows'))).toBe(true);
  });

  it('refuses an analysis the dry run prices above bigquery.maximum_bytes_billed, before running it', async () => {
    server.resetLog();
    await expect(analysis('bigquery', {maximum_bytes_billed: 100})).rejects.toThrow(/The analysis on scale-proj\.ds\.params would process .* more than bigquery\.maximum_bytes_billed/);
    expect(server.queries()).toBe(0);
  });
});

describe('the generated BigQuery SQL', () => {
  const schema = (types: Record<string, string>): SchemaColumn[] => Object.entries(types).map(([name, type]) => ({name, type}));
  const table = {path: 'my-project.my_dataset.model parameters', versionColumn: 'version', versionType: 'STRING', columnTypes: {geo: 'GEOGRAPHY'}};
  const plans = [
    planComparison({
      dialect: 'bigquery', sources: {old: 'v1', new: 'v2'}, keys: ['id', 'region'], columns: null, table,
      tolerance: {abs: 0, rel: 0.01, columns: {score: {abs: 0.1}}},
      schemaOld: schema({id: 'BIGINT', region: 'VARCHAR', score: 'DOUBLE', n: 'BIGINT', label: 'VARCHAR', tags: 'VARCHAR[]', geo: 'VARCHAR', 'odd name': 'DATE'}),
      schemaNew: schema({id: 'BIGINT', region: 'VARCHAR', score: 'DECIMAL(38,9)', n: 'DOUBLE', label: 'BIGINT', tags: 'VARCHAR[]', geo: 'VARCHAR', 'odd name': 'DATE'}),
    }),
    // Only keys: nothing to compare but presence.
    planComparison({
      dialect: 'bigquery', sources: {old: '1', new: '2'}, keys: ['id'], columns: null, table: {...table, versionType: 'INT64'},
      tolerance: {abs: 0, rel: 0, columns: {}}, schemaOld: schema({id: 'VARCHAR'}), schemaNew: schema({id: 'BIGINT'}),
    }),
  ];

  it('parses as BigQuery (node-sql-parser), and binds every value as a parameter', () => {
    const parser = new Parser();
    for (const plan of plans) {
      for (const statement of [bigQueryCountsSql(plan), bigQuerySamplesSql(plan, 100), bigQueryMismatchTableSql(plan, 'my-project.qa.all mismatches')]) {
        expect(() => parser.astify(statement.sql, {database: 'bigquery'})).not.toThrow();
        expect(statement.sql).not.toMatch(/'v1'|'v2'/);
        for (const name of statement.sql.match(/@[a-z_0-9]+/g) ?? []) expect(statement.params).toHaveProperty(name.slice(1));
        // Tolerances and the sample cap carry explicit types: 0 must not bind as an INT64.
        for (const name of Object.keys(statement.params).filter((p) => /^(abs|rel)_/.test(p))) expect(statement.types?.[name]).toBe('FLOAT64');
      }
    }
    expect(bigQueryCountsSql(plans[0]!).sql).toContain('FROM `my-project.my_dataset.model parameters` AS t WHERE t.`version` = @old_version');
    expect(bigQueryCountsSql(plans[0]!).sql).toContain('t.`odd name`');
    expect(bigQuerySamplesSql(plans[1]!, 5).types).toMatchObject({old_version: 'INT64', max_rows: 'INT64'});
    expect(bigQueryMismatchTableSql(plans[0]!, 'my-project.qa.all mismatches').sql).toMatch(/^CREATE OR REPLACE TABLE `my-project\.qa\.all mismatches` AS WITH /);
  });

  it('parses as BigQuery for the analysis too, every value bound as a parameter', () => {
    const parser = new Parser();
    const plan = {
      table: {path: 'my-project.my_dataset.model parameters', versionColumn: 'version', versionType: 'STRING'},
      versions: {old: 'v1', new: 'v2'},
      segmentBy: ['region', 'tier'],
      numeric: ['score', 'odd name'],
      categorical: ['label'],
      keys: ['id', 'region'],
    };
    const statements = [
      bigQueryMomentsSql(plan),
      bigQueryQuantilesSql(plan, 10),
      bigQueryBinsSql(plan, [{lo: -1.5, width: 0.01, edges: [0.25, 0.5]}, {lo: 0, width: 0, edges: []}]),
      bigQueryMoversSql(plan, 20),
      bigQueryCategoriesSql(plan, 50),
      bigQueryBinValuesSql(plan, [{lo: -1.5, width: 0.01, edges: []}, {lo: 0, width: 0, edges: []}], new Map([[0, [[3, 5], [9, 9]]]])),
    ];
    for (const statement of statements) {
      expect(() => parser.astify(statement.sql, {database: 'bigquery'})).not.toThrow();
      expect(statement.sql).not.toMatch(/'v1'|'v2'|0\.25|-1\.5/);
      for (const name of statement.sql.match(/@[a-z_0-9]+/g) ?? []) expect(statement.params).toHaveProperty(name.slice(1));
    }
    expect(statements[1]!.sql).toContain('APPROX_QUANTILES(x0, 100) AS q0, APPROX_QUANTILES(x0, 10) AS e0');
    expect(statements[0]!.sql).toContain('FROM `my-project.my_dataset.model parameters` AS t WHERE t.`version` = @old_version');
  });

  // node-sql-parser does not take BigQuery's backslash escapes inside backticks, so names with a
  // backtick are checked here as text instead of through the parser.
  it('escapes a backtick in a column name', () => {
    const plan = planComparison({
      dialect: 'bigquery', sources: {old: 'a', new: 'b'}, keys: ['id'], columns: null, table, tolerance: {abs: 0, rel: 0, columns: {}},
      schemaOld: schema({id: 'BIGINT', 'odd `name`': 'DATE'}), schemaNew: schema({id: 'BIGINT', 'odd `name`': 'DATE'}),
    });
    expect(bigQueryCountsSql(plan).sql).toContain('t.`odd \\`name\\``');
  });

  it('uses the BigQuery forms of NaN, division, lists and geographies', () => {
    const sql = bigQueryCountsSql(plans[0]!).sql;
    expect(sql).toContain('IS_NAN(CAST(o0 AS FLOAT64)) AND IS_NAN(CAST(n0 AS FLOAT64))');
    expect(sql).toContain('IEEE_DIVIDE(');
    expect(sql).toContain('TO_JSON_STRING(t.`tags`)');
    expect(sql).toContain('ST_ASTEXT(t.`geo`)');
    // A retyped exact column compares as text.
    expect(sql).toContain('CAST(t.`label` AS STRING)');
  });
});

describe('pushed down through the CLI', () => {
  let project: Project;
  let local: Project;

  beforeAll(async () => {
    local = new Project({});
    copyFileSync(join(REPO, 'pipeline.yaml'), local.path('pipeline.yaml'));
    mkdirSync(local.path('data'));
    await ensureSampleDatabase(local.path('data/warehouse.duckdb'));
  });

  it('compares the sample versions inside BigQuery like the local run; a rerun of an unchanged table costs two tables.get', async () => {
    const warehouse = await startBigQueryServer({project: 'cli-proj', database: local.path('data/warehouse.duckdb')});
    try {
      project = new Project({
        'settings.yaml': `source: {engine: bigquery}
bigquery: {project_id: cli-proj, dataset_id: main, api_endpoint: "${warehouse.url}", retry_max_delay_seconds: 0.01}
validation: {engine: bigquery}
analysis: {engine: bigquery}
`,
      });
      copyFileSync(join(REPO, 'pipeline.yaml'), project.path('pipeline.yaml'));
      const versions = ['--old', '0.3615', '--new', '0.3621', '--only', 'validate'];
      const embedded = await local.runAsync(versions);
      expect(embedded.code).toBe(0);

      const first = await project.runAsync([...versions, '--config', 'settings.yaml']);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      // No extraction query: metadata, then the dry runs and the comparison's queries.
      expect(warehouse.queries()).toBe(2);
      expect(warehouse.log.filter((r) => r.route === 'jobs.insert' && r.dryRun)).toHaveLength(2);
      const pushed = project.json<Record<string, unknown>>('output/0.3615_vs_0.3621/validation.json');
      const embeddedJson = local.json<Record<string, unknown>>('output/0.3615_vs_0.3621/validation.json');
      expect(pushed['engine']).toBe('bigquery');
      // BigQuery has one integer type: max_depth (INTEGER in the DuckDB file) arrives as INT64.
      const strip = (doc: Record<string, unknown>) => JSON.parse(JSON.stringify(figures(doc), (key, value) => (key.startsWith('type') ? undefined : value)));
      expect(strip(pushed)).toEqual(strip(embeddedJson));
      expect(project.read('output/0.3615_vs_0.3621/removed_keys.csv')).toBe(local.read('output/0.3615_vs_0.3621/removed_keys.csv'));

      warehouse.resetLog();
      const again = await project.runAsync([...versions, '--config', 'settings.yaml']);
      expect(again.code).toBe(0);
      expect(warehouse.log.map((r) => r.route)).toEqual(['tables.get', 'tables.get']);

      // A changed table: the references change, so the comparison runs again, in BigQuery.
      warehouse.touchTable('main', 'model_parameters');
      warehouse.resetLog();
      const changed = await project.runAsync([...versions, '--config', 'settings.yaml']);
      expect(changed.code).toBe(0);
      const tasks = project.json<{tasks: {name: string; status: string}[]}>('output/0.3615_vs_0.3621/summary.json').tasks;
      expect(tasks.find((t) => t.name === 'validate')?.status).toBe('ran');
      expect(warehouse.queries()).toBeGreaterThan(0);
      expect(readFileSync(project.path('output/0.3615_vs_0.3621/validation.json'), 'utf8')).toContain('"engine": "bigquery"');
    } finally {
      await warehouse.close();
    }
  });

  it('runs the whole pipeline with the analysis inside BigQuery too, and the report says which engine computed what', async () => {
    const warehouse = await startBigQueryServer({project: 'cli-proj', database: local.path('data/warehouse.duckdb')});
    try {
      const pushed = new Project({
        'settings.yaml': `source: {engine: bigquery}
bigquery: {project_id: cli-proj, dataset_id: main, api_endpoint: "${warehouse.url}", retry_max_delay_seconds: 0.01}
validation: {engine: bigquery}
analysis: {engine: bigquery}
`,
      });
      copyFileSync(join(REPO, 'pipeline.yaml'), pushed.path('pipeline.yaml'));
      const versions = ['--old', '0.3615', '--new', '0.3621'];
      const embedded = await local.runAsync(versions);
      expect(embedded.code).toBe(0);
      const run = await pushed.runAsync([...versions, '--config', 'settings.yaml']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const out = 'output/0.3615_vs_0.3621';
      const remote = pushed.json<AnalysisDocument>(`${out}/analysis.json`);
      const exact = local.json<AnalysisDocument>(`${out}/analysis.json`);
      expect(remote.engine).toBe('bigquery');
      expect(exact.engine).toBe('local');
      expect(remote.rows).toEqual(exact.rows);
      expect(Object.keys(remote.parameters)).toEqual(Object.keys(exact.parameters));
      for (const [name, p] of Object.entries(remote.parameters)) {
        const e = exact.parameters[name]!;
        expect(p.new.count).toBe(e.new.count);
        expect(p.new.mean).toBeCloseTo(e.new.mean!, 9);
        expect(p.ks).toBeCloseTo(e.ks!, 12);
        expect(p.top_movers).toEqual(e.top_movers);
      }
      const report = pushed.read(`${out}/report.html`);
      expect(report).toContain('Analysis computed by');
      expect(report).toContain('BigQuery, inside the warehouse: quantiles and PSI edges from APPROX_QUANTILES');
      expect(local.read(`${out}/report.html`)).toContain('DuckDB, on the extracted rows (exact quantiles, KS and Wasserstein)');

      // Unchanged table and settings: the rerun costs two tables.get, no query, for both tasks.
      warehouse.resetLog();
      const again = await pushed.runAsync([...versions, '--config', 'settings.yaml']);
      expect(again.code).toBe(0);
      expect(warehouse.log.map((r) => r.route)).toEqual(['tables.get', 'tables.get']);
      const tasks = pushed.json<{tasks: {name: string; status: string}[]}>(`${out}/summary.json`).tasks;
      expect(tasks.filter((t) => t.name === 'validate' || t.name === 'analyze').map((t) => t.status)).toEqual(['cached', 'cached']);
    } finally {
      await warehouse.close();
    }
  });
});
