/**
 * Extraction throughput and memory: one version of 1M and of 10M rows (12 columns) from a
 * DuckDB file to Parquet, through the extract task with the run's DuckDB engine. Each
 * measurement runs in a child process so that its peak resident memory is its own.
 *
 *   npm run bench:extract                 # both sizes, 3 runs each
 *   node --import tsx bench/extract.ts --sizes 1 --runs 5 --memory 4GB
 */
import {execFileSync} from 'node:child_process';
import {existsSync, mkdirSync, renameSync, rmSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, 'data');

const {values} = parseArgs({
  options: {
    sizes: {type: 'string', default: '1,10'},
    runs: {type: 'string', default: '3'},
    memory: {type: 'string', default: '4GB'},
    child: {type: 'string'},
  },
});

if (values.child !== undefined) await child(values.child, values.memory);
else await main();

async function main(): Promise<void> {
  const sizes = values.sizes.split(',').map(Number);
  const runs = Number(values.runs);
  console.log(`extract bench: ${runs} runs per size, DuckDB memory limit ${values.memory}, ${process.arch}, node ${process.version}`);
  for (const millions of sizes) {
    const database = await ensureData(millions);
    const samples: {seconds: number; rows: number; rssMiB: number}[] = [];
    for (let i = 0; i < runs; i++) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', database, '--memory', values.memory], {
        encoding: 'utf8',
      });
      samples.push(JSON.parse(out.trim().split('\n').at(-1)!));
    }
    const rates = samples.map((s) => s.rows / s.seconds);
    const rss = samples.map((s) => s.rssMiB);
    console.log(
      `${String(millions).padStart(3)}M rows/version: ${fmt(median(rates))} rows/s (min ${fmt(Math.min(...rates))}, max ${fmt(Math.max(...rates))}), ` +
        `${median(samples.map((s) => s.seconds)).toFixed(2)} s, peak RSS median ${median(rss).toFixed(0)} MiB (max ${Math.max(...rss).toFixed(0)} MiB)`,
    );
  }
}

/** One extraction of version 2 in this process; prints {seconds, rows, rssMiB}. */
async function child(database: string, memoryLimit: string): Promise<void> {
  const {default: extract} = await import('../tasks/extract.js');
  const {runTaskDirectly} = await import('../test/support/run-task.js');
  // The run's engine is shared by all its tasks, so its start-up is not the extraction's.
  const run = await runTaskDirectly(extract, {
    name: 'extract-new',
    args: {version: '2'},
    settings: {
      source: {engine: 'duckdb', table: 'model_parameters', version_column: 'version', keys: ['entity_id'], columns: null},
      duckdb: {database, path: null},
    },
    outputs: ['rows.parquet'],
    projectDir: here,
    engine: {memoryLimit, started: true},
  });
  rmSync(dirname(run.outputDir), {recursive: true, force: true});
  const rows = run.result && typeof run.result === 'object' ? (run.result.rows ?? 0) : 0;
  console.log(JSON.stringify({seconds: run.taskMs / 1000, rows, rssMiB: process.resourceUsage().maxRSS / 1024}));
}

/** bench/data/extract-<n>m.duckdb: versions 1 and 2, n million rows each, 12 columns. */
async function ensureData(millions: number): Promise<string> {
  const path = join(dataDir, `extract-${millions}m.duckdb`);
  if (existsSync(path)) return path;
  mkdirSync(dataDir, {recursive: true});
  const {DuckDBInstance} = await import('@duckdb/node-api');
  const temp = `${path}.tmp-${process.pid}`;
  rmSync(temp, {force: true});
  const started = performance.now();
  const instance = await DuckDBInstance.create(':memory:', {memory_limit: '2GB', preserve_insertion_order: 'true'});
  const connection = await instance.connect();
  const n = millions * 1_000_000;
  const u = (k: number) => `((hash(i * 16 + ${k}) >> 11)::DOUBLE / 9007199254740992.0)`;
  const params = Array.from({length: 8}, (_, k) => `round(${u(k + 1)} * ${k + 1} + v * 0.001, 6) AS p${k + 1}`).join(', ');
  await connection.run(`ATTACH '${temp}' AS bench`);
  // Rows are stored in a scrambled key order, as a warehouse would hold them.
  await connection.run(`CREATE TABLE bench.model_parameters AS
    SELECT (hash(i) % ${n * 4}) AS entity_id, v AS version,
      CASE hash(i * 16 + 9) % 5 WHEN 0 THEN 'north' WHEN 1 THEN 'south' WHEN 2 THEN 'east' WHEN 3 THEN 'west' ELSE 'central' END AS region,
      ${params}, CASE WHEN hash(i * 16 + 10) % 3 = 0 THEN 'approve' ELSE 'review' END AS label
    FROM range(${n}) t(i), (VALUES (1), (2)) vs(v)`);
  await connection.run('DETACH bench');
  connection.closeSync();
  instance.closeSync();
  renameSync(temp, path);
  console.log(`generated ${path} (${millions}M rows x 2 versions) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return path;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function fmt(rate: number): string {
  return rate >= 1e6 ? `${(rate / 1e6).toFixed(2)}M` : `${(rate / 1e3).toFixed(0)}k`;
}
