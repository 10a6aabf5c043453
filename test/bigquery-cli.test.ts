/**
 * `source.engine: bigquery` end to end through the CLI, with the real client against the
 * local BigQuery server: the same comparison as the embedded source, and a table that is
 * never scanned twice while it is unchanged.
 */
import {copyFileSync, mkdirSync} from 'node:fs';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {ensureSampleDatabase} from '../tasks/lib/sample-data.js';
import type {BigQueryServer} from './support/bigquery-server.js';
import {startBigQueryServer} from './support/bigquery-server.js';
import {Project, REPO} from './support/project.js';

let server: BigQueryServer;
let local: Project;
let remote: Project;

beforeAll(async () => {
  local = new Project({});
  copyFileSync(join(REPO, 'pipeline.yaml'), local.path('pipeline.yaml'));
  mkdirSync(local.path('data'));
  await ensureSampleDatabase(local.path('data/warehouse.duckdb'));
  server = await startBigQueryServer({project: 'local-proj', database: local.path('data/warehouse.duckdb')});
  remote = new Project({
    'settings.yaml': `source: {engine: bigquery}
bigquery: {project_id: local-proj, dataset_id: main, api_endpoint: "${server.url}", retry_max_delay_seconds: 0.01}
`,
  });
  copyFileSync(join(REPO, 'pipeline.yaml'), remote.path('pipeline.yaml'));
});

afterAll(async () => {
  await server?.close();
});

const VERSIONS = ['--old', '0.3615', '--new', '0.3621'];

describe('BigQuery source through the CLI', () => {
  it('gives the same validation.json as the embedded source', async () => {
    const embedded = await local.runAsync([...VERSIONS, '--only', 'validate']);
    expect(embedded.code).toBe(0);
    const result = await remote.runAsync([...VERSIONS, '--config', 'settings.yaml', '--only', 'validate']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const a = local.json<Record<string, unknown>>('output/0.3615_vs_0.3621/validation.json');
    const b = remote.json<Record<string, unknown>>('output/0.3615_vs_0.3621/validation.json');
    // BigQuery has one integer type: max_depth (INTEGER in the DuckDB file) arrives as INT64.
    const types = (doc: Record<string, unknown>) => Object.fromEntries(Object.entries(doc['columns'] as Record<string, {type: string}>).map(([name, column]) => [name, column.type]));
    expect(types(b)).toEqual({...types(a), max_depth: 'BIGINT'});
    const strip = (doc: Record<string, unknown>) => JSON.parse(JSON.stringify(doc, (key, value) => (key.startsWith('type') ? undefined : value)));
    expect(strip(b)).toEqual(strip(a));
  });

  it('an unchanged table costs one metadata request; a changed one is extracted again', async () => {
    server.resetLog();
    const again = await remote.runAsync([...VERSIONS, '--config', 'settings.yaml', '--only', 'validate']);
    expect(again.code).toBe(0);
    expect(server.log.map((request) => request.route)).toEqual(['tables.get', 'tables.get']);
    const summary = remote.json<{tasks: {name: string; status: string}[]}>('output/0.3615_vs_0.3621/summary.json');
    expect(summary.tasks.map((task) => task.status)).toEqual(['cached', 'cached', 'cached']);

    server.touchTable('main', 'model_parameters');
    server.resetLog();
    const changed = await remote.runAsync([...VERSIONS, '--config', 'settings.yaml', '--only', 'validate']);
    expect(changed.code).toBe(0);
    expect(server.queries()).toBe(2);
    const reasons = remote.json<{tasks: {name: string; status: string; reason: string | null}[]}>('output/0.3615_vs_0.3621/summary.json').tasks;
    expect(reasons[0]).toMatchObject({name: 'extract-old', status: 'ran'});
    expect(reasons[0]!.reason).toMatch(/^source /);
    // Same rows: the comparison downstream is served from the cache.
    expect(reasons[2]).toMatchObject({name: 'validate', status: 'cached'});
  });

  it('retry and billing settings change how it reads, not what: nothing is extracted again', async () => {
    server.resetLog();
    const tuned = ['--set', 'bigquery.retry_max_delay_seconds=0.02', '--set', 'bigquery.maximum_bytes_billed=1000000000', '--set', 'bigquery.ttl_seconds=600'];
    const result = await remote.runAsync([...VERSIONS, '--config', 'settings.yaml', '--only', 'validate', ...tuned]);
    expect(result.code).toBe(0);
    expect(server.queries()).toBe(0);
    const summary = remote.json<{tasks: {name: string; status: string}[]}>('output/0.3615_vs_0.3621/summary.json');
    expect(summary.tasks.map((task) => task.status)).toEqual(['cached', 'cached', 'cached']);
    // And --skip-extraction still finds the extraction to reuse.
    const reused = await remote.runAsync([...VERSIONS, '--config', 'settings.yaml', '--only', 'validate', '--skip-extraction', ...tuned]);
    expect(reused.code).toBe(0);
  });

  it('--skip-extraction does not touch BigQuery at all', async () => {
    server.resetLog();
    const result = await remote.runAsync([...VERSIONS, '--config', 'settings.yaml', '--only', 'validate', '--skip-extraction']);
    expect(result.code).toBe(0);
    expect(server.log).toEqual([]);
  });

  it('an access denial is a clear message, and nothing is cached', async () => {
    server.failNext(2, 403, {reason: 'accessDenied', message: 'Access Denied: Table local-proj:main.model_parameters: User does not have permission'});
    const result = await remote.runAsync(['--old', '0.3609', '--new', '0.3615', '--config', 'settings.yaml', '--only', 'validate', '--force']);
    expect(result.code).toBeGreaterThanOrEqual(2);
    expect(result.stdout).toMatch(/extract-(old|new) failed: .*Access Denied/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
