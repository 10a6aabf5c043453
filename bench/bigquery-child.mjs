/**
 * One measurement of `npm run bench:bigquery`, in its own process so that its peak RSS is its
 * own. Runs the built product (dist/, what `npm run pipeline` runs) with plain Node, so the
 * figure does not include a TypeScript loader:
 *
 *   node bench/bigquery-child.mjs <ceiling|extract> <url> <max-memory> <page rows>
 *
 * Prints {seconds, rows, maxRssMiB} as JSON.
 */
import {mkdirSync, mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const [mode, url, maxMemory, page] = process.argv.slice(2);
const PAGE = Number(page);
const PROJECT = 'bench';

// Validated and completed with the defaults, as the runner hands them to the task.
const {settingsSchema} = await import(join(root, 'dist/src/config/schema.js'));
const settings = settingsSchema.parse({
  source: {engine: 'bigquery', table: 'model_parameters', version_column: 'version', keys: ['entity_id'], columns: null},
  bigquery: {project_id: PROJECT, dataset_id: 'main', api_endpoint: url},
  performance: {retry_count: 3},
  validation: {chunk_size: PAGE},
});

/** The ceiling: the requests extraction makes to read the rows, and nothing else. */
async function pageOnly() {
  const {openBigQuery} = await import(join(root, 'dist/tasks/lib/bigquery-client.js'));
  const source = await openBigQuery({projectId: PROJECT, location: 'US', apiEndpoint: url, retryCount: 3});
  const query = {
    sql: 'SELECT `entity_id`, `region`, `segment`, `score`, `p1`, `p2`, `p3`, `label`, `updated_at` FROM `bench.main.model_parameters` WHERE `version` = @version',
    params: {version: 'v1'},
  };
  let current = await source.firstPage(query, PAGE);
  let rows = current.rows.length;
  while (current.pageToken !== undefined) {
    current = await source.nextPage(current, PAGE);
    rows += current.rows.length;
  }
  return rows;
}

/** One extraction with the run's DuckDB engine bounded as `performance.max_memory` would. */
async function extractOnce() {
  const {extractBigQuery} = await import(join(root, 'dist/tasks/lib/bigquery-extract.js'));
  const {DuckDBEngine} = await import(join(root, 'dist/src/engines/duckdb.js'));
  const dir = mkdtempSync(join(tmpdir(), 'bench-bigquery-'));
  const engine = new DuckDBEngine({memoryLimit: maxMemory, tempDirectory: join(dir, 'spill')});
  const signal = new AbortController().signal;
  mkdirSync(join(dir, 'tmp'));
  const ctx = {
    name: 'extract-new',
    args: {version: 'v1'},
    settings,
    inputs: {},
    files: {},
    outputDir: dir,
    output: (name) => join(dir, name),
    input: () => {
      throw new Error('no inputs');
    },
    projectDir: root,
    tmpDir: join(dir, 'tmp'),
    log: {debug: () => {}, info: () => {}, warn: () => {}, error: () => {}},
    progress: () => {},
    signal,
    duckdb: () => engine.connect(signal),
  };
  try {
    const result = await extractBigQuery(ctx, 'v1', ctx.output('rows.parquet'));
    return result.rows ?? 0;
  } finally {
    engine.close();
    rmSync(dir, {recursive: true, force: true});
  }
}

const start = performance.now();
const rows = mode === 'extract' ? await extractOnce() : await pageOnly();
const seconds = (performance.now() - start) / 1000;
process.stdout.write(`${JSON.stringify({seconds, rows, maxRssMiB: process.resourceUsage().maxRSS / 1024})}\n`);
