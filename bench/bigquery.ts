/**
 * BigQuery extraction throughput: 1M rows from the local BigQuery server (a separate
 * process) through the real client into Parquet, next to the ceiling: the same client
 * paging the same result with the same requests, writing nothing. Each measurement runs the
 * built product in a child process (bigquery-child.mjs) so its peak RSS is its own. Prints
 * medians of 3 (min, max).
 *
 *   npm run bench:bigquery            (or: node --import tsx bench/bigquery.ts [--rows N])
 */
import {spawn, spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, statSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const ROWS = Number(argument('rows') ?? 1_000_000);
const RUNS = 3;
const PAGE = 10_000;
const PROJECT = 'bench';
// DuckDB's share of the peak follows its memory limit (performance.max_memory); the sort spills beyond it.
const MAX_MEMORY = argument('max-memory') ?? '256MB';

function argument(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface Measurement {
  seconds: number;
  rows: number;
  maxRssMiB: number;
}

async function generate(database: string): Promise<void> {
  if (existsSync(database)) return;
  mkdirSync(dirname(database), {recursive: true});
  const {DuckDBInstance} = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(database);
  const connection = await instance.connect();
  // Deterministic: every value is a function of the row number.
  await connection.run(`
    CREATE TABLE model_parameters AS
    SELECT i AS entity_id, 'v1' AS version,
           ['north', 'south', 'east', 'west'][1 + i % 4] AS region, 'segment_' || (i % 37) AS segment,
           round(sin(i) * 100, 6)::DOUBLE AS score, (i % 1000) / 7.0 AS p1, cos(i)::DOUBLE AS p2, (i * 31) % 1009 AS p3,
           'entity label ' || i AS label, make_timestamptz(1700000000000000 + i * 1000003) AS updated_at
    FROM range(1, ${ROWS + 1}) r(i)`);
  connection.closeSync();
  instance.closeSync();
}

async function startServer(database: string): Promise<{url: string; stop(): void}> {
  const server = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/support/bigquery-server.ts'), '--database', database, '--port', '0', '--project', PROJECT], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once('exit', (code) => reject(new Error(`the local BigQuery server exited (${code})`)));
  });
  return {url, stop: () => void server.kill('SIGTERM')};
}

function measure(mode: string, url: string): Measurement {
  const run = spawnSync(process.execPath, [join(here, 'bigquery-child.mjs'), mode, url, MAX_MEMORY, String(PAGE)], {
    cwd: root,
    encoding: 'utf8',
    env: {...process.env, BIGQUERY_EMULATOR_HOST: undefined},
  });
  if (run.status !== 0) throw new Error(`${mode} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Measurement;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const database = join(root, 'bench/data', `bigquery-${ROWS}.duckdb`);
  await generate(database);
  console.log(`BigQuery extraction: ${ROWS.toLocaleString('en')} rows x 9 columns, pages of ${PAGE}, DuckDB memory_limit ${MAX_MEMORY}, local server (${(statSync(database).size / 2 ** 20).toFixed(0)} MiB DuckDB)`);
  const server = await startServer(database);
  try {
    measure('ceiling', server.url); // warm-up: the file cache, tsx's compile cache
    const results: Record<string, Measurement[]> = {ceiling: [], extract: []};
    for (let i = 0; i < RUNS; i++) {
      for (const mode of ['ceiling', 'extract'] as const) results[mode]!.push(measure(mode, server.url));
    }
    const summary: Record<string, number> = {};
    for (const [mode, runs] of Object.entries(results)) {
      if (runs.some((r) => r.rows !== ROWS)) throw new Error(`${mode} read ${runs.map((r) => r.rows).join(', ')} rows, expected ${ROWS}`);
      const rates = runs.map((r) => r.rows / r.seconds);
      summary[mode] = median(rates);
      const label = mode === 'ceiling' ? 'client paging, no writing (ceiling)' : 'extract to Parquet';
      console.log(
        `${label.padEnd(38)} ${Math.round(median(rates)).toLocaleString('en').padStart(9)} rows/s ` +
          `(min ${Math.round(Math.min(...rates)).toLocaleString('en')}, max ${Math.round(Math.max(...rates)).toLocaleString('en')}), ` +
          `peak RSS ${Math.round(median(runs.map((r) => r.maxRssMiB)))} MiB (max ${Math.round(Math.max(...runs.map((r) => r.maxRssMiB)))})`,
      );
    }
    const ratio = summary['extract']! / summary['ceiling']!;
    const peak = Math.max(...results['extract']!.map((r) => r.maxRssMiB));
    console.log(`extract / ceiling: ${(ratio * 100).toFixed(0)}% (target >= 70%); peak RSS ${Math.round(peak)} MiB (target < 500)`);
  } finally {
    server.stop();
  }
}

await main();
