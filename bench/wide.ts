/**
 * bench:wide — a wide table: a cold run (empty cache) of the shipped pipeline over two
 * versions with many numeric columns (300 by default, 20K rows each; deterministic), through
 * the built CLI. Prints the median, min and max of the wall time, each task's time and the
 * peak resident memory.
 *
 *   npm run bench:wide [-- --columns 300 --rows 20000 --runs 3]
 */
import {spawnSync} from 'node:child_process';
import {copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import {stats} from './lib/datasets.js';
import {temporaryFolder} from '../test/support/temp.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'dist', 'cli', 'bin.js');
const {values: options} = parseArgs({options: {columns: {type: 'string', default: '300'}, rows: {type: 'string', default: '20000'}, runs: {type: 'string', default: '3'}}});
const [columns, rows, runs] = [Number(options.columns), Number(options.rows), Number(options.runs)];

/** Both versions in one Parquet file: column f<j> of the new version moves on one row in j + 3. */
async function dataset(): Promise<string> {
  const file = join(REPO, 'bench', 'data', `wide-${columns}x${rows}.parquet`);
  if (existsSync(file)) return file;
  mkdirSync(dirname(file), {recursive: true});
  const values = Array.from({length: columns}, (_, j) => `(i * ${j + 7} % 1000) / 10.0 + CASE WHEN v = 'b' AND i % ${j + 3} = 0 THEN 0.5 ELSE 0 END AS f${j}`);
  const {DuckDBInstance} = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  await db.run(`COPY (SELECT v AS version, i AS id, (['north', 'south', 'east'])[i % 3 + 1] AS region, ${values.join(', ')}
    FROM range(${rows}) t(i), (VALUES ('a'), ('b')) w(v)) TO '${file}.tmp' (FORMAT parquet)`);
  db.closeSync();
  instance.closeSync();
  renameSync(`${file}.tmp`, file);
  return file;
}

function coldRun(file: string): {ms: number; rssMiB: number; tasks: Record<string, number>} {
  const dir = temporaryFolder('bench-wide-');
  copyFileSync(join(REPO, 'pipeline.yaml'), join(dir, 'pipeline.yaml'));
  writeFileSync(join(dir, 'settings.yaml'), JSON.stringify({duckdb: {path: file}, source: {keys: ['id']}, analysis: {segment_by: ['region']}}));
  const started = performance.now();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, CLI, '--old', 'a', '--new', 'b', '--config', 'settings.yaml'], {cwd: dir, encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}});
  const ms = performance.now() - started;
  if (result.status !== 0 && result.status !== 1) throw new Error(`the run failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  const summary = JSON.parse(readFileSync(join(dir, 'output', 'a_vs_b', 'summary.json'), 'utf8')) as {tasks: {name: string; duration_ms: number}[]};
  return {ms, rssMiB: Number(result.stderr.trim().split('\n').pop()) / 1024, tasks: Object.fromEntries(summary.tasks.map((t) => [t.name, t.duration_ms]))};
}

const file = await dataset();
const measured = Array.from({length: runs}, () => coldRun(file));
const seconds = (s: {median: number; min: number; max: number}) => `${(s.median / 1000).toFixed(2)} s (${(s.min / 1000).toFixed(2)}–${(s.max / 1000).toFixed(2)})`;
console.log(`Cold run over ${columns} numeric columns, ${rows.toLocaleString('en')} rows per version, ${runs} runs:`);
console.log(`  wall ${seconds(stats(measured.map((m) => m.ms)))}, peak ${Math.max(...measured.map((m) => m.rssMiB)).toFixed(0)} MiB`);
for (const task of Object.keys(measured[0]!.tasks)) console.log(`    ${task.padEnd(12)} ${seconds(stats(measured.map((m) => m.tasks[task] ?? 0)))}`);
console.log(JSON.stringify({bench: 'wide', columns, rows, runs, wall_ms: stats(measured.map((m) => m.ms)), peak_rss_mib: Math.max(...measured.map((m) => m.rssMiB))}));
