/**
 * `npm run bench:analyze`: the analyze task on 1M and 10M rows per version (10 numeric
 * parameters, 5 segments). Data is generated deterministically under bench/data/; each size
 * runs 3 times in a child process, printing the median, min and max time and peak RSS.
 */
import {execFileSync} from 'node:child_process';
import {existsSync, mkdirSync} from 'node:fs';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dataDir = join(here, 'data', 'analyze');
const sizes = (process.env['BENCH_SIZES'] ?? '1000000,10000000').split(',').map(Number);
// Repetitions per size (3 by default; 0 only generates the data).
const repetitions = Number(process.env['BENCH_RUNS'] ?? '3');

if (process.argv[2] === '--child') {
  const {default: analyze} = await import('../tasks/analyze.js');
  const {runTaskDirectly} = await import('../test/support/run-task.js');
  const dir = process.argv[3]!;
  const start = performance.now();
  const run = await runTaskDirectly(analyze, {
    settings: {source: {keys: ['entity_id']}, analysis: {segment_by: ['region']}},
    inputs: {'extract-old': {'rows.parquet': join(dir, 'old.parquet')}, 'extract-new': {'rows.parquet': join(dir, 'new.parquet')}},
    outputs: ['analysis.json', 'parameters.csv'],
  });
  // BENCH_TIMING=1 prints the task's per-query times (its debug log) to stderr.
  if (process.env['BENCH_TIMING']) for (const line of run.logs) if (line.includes('took')) console.error(line);
  console.log(JSON.stringify({ms: performance.now() - start, rssMiB: process.resourceUsage().maxRSS / 1024}));
  process.exit(0);
}

async function generate(n: number, dir: string): Promise<void> {
  if (existsSync(join(dir, 'new.parquet'))) return;
  mkdirSync(dir, {recursive: true});
  const {DuckDBInstance} = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:', {preserve_insertion_order: 'true'});
  const conn = await instance.connect();
  // Uniforms from a hash of (row, column, salt): the same bytes on every machine and run.
  const u = (k: number, salt: number) => `((hash(i * 64 + ${k * 4 + salt}) >> 11)::DOUBLE / 9007199254740992.0)`;
  for (const version of ['old', 'new'] as const) {
    const cols: string[] = [];
    for (let k = 1; k <= 10; k++) {
      const z = `sqrt(-2 * ln(1 - ${u(k, 0)})) * cos(2 * pi() * ${u(k, 1)})`;
      let expr = `${k * 10} + ${k} * ${z}`;
      if (version === 'new') {
        expr += ` + 0.01 * ${k} * (${u(k, 2)} - 0.5)`; // small noise everywhere
        if (k === 3) expr += ' + 0.3'; // a global shift
        if (k === 5) expr += ' + CASE WHEN i % 5 = 2 THEN 2.0 ELSE 0 END'; // one segment drifts
      }
      cols.push(`CASE WHEN hash(i * 64 + ${k * 4 + 3}) % 1000 = 0 THEN NULL ELSE ${expr} END AS "p${String(k).padStart(2, '0')}"`);
    }
    const offset = version === 'new' ? Math.floor(n / 200) : 0; // 0.5% keys removed/added
    await conn.run(`COPY (SELECT i AS entity_id, (['north','south','east','west','central'])[i % 5 + 1] AS region,
      (['a','b','c','d'])[(hash(i) % 4)::INTEGER + 1] AS tier, ${cols.join(', ')}
      FROM range(${offset}, ${n + offset}) t(i)) TO '${join(dir, `${version}.parquet`)}' (FORMAT parquet)`);
  }
  conn.closeSync();
  instance.closeSync();
}

for (const n of sizes) {
  const dir = join(dataDir, String(n));
  await generate(n, dir);
  const runs: {ms: number; rssMiB: number}[] = [];
  for (let i = 0; i < repetitions; i++) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', dir], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit']});
    runs.push(JSON.parse(out.trim().split('\n').pop()!) as {ms: number; rssMiB: number});
  }
  if (runs.length === 0) continue;
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  const rss = Math.max(...runs.map((r) => r.rssMiB));
  const s = (x: number) => (x / 1000).toFixed(2);
  console.log(`analyze ${n.toLocaleString('en')} rows/version, ${runs.length} runs: median ${s(ms[Math.floor((ms.length - 1) / 2)]!)} s (min ${s(ms[0]!)}, max ${s(ms[ms.length - 1]!)}), peak RSS ${rss.toFixed(0)} MiB`);
}
