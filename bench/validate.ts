/**
 * `npm run bench:validate`: the validate task on two versions of 1M and 10M rows, next to a
 * hand-written single DuckDB query computing the same counts (the practical limit) and, when
 * python3 has pandas, the merge-based comparison users write by hand.
 *
 * Every measurement runs in a fresh child process, so its peak RSS is its own. Methods are
 * interleaved run by run, so a noisy neighbour slows them alike.
 *
 *   node --import tsx bench/validate.ts [--sizes 1000000,10000000] [--runs 3] [--pandas-runs 3]
 *                                       [--memory 1536MB] [--threads N] [--no-pandas]
 */
import {execFileSync} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import type {DuckDBConnection} from '@duckdb/node-api';
import {COLUMNS, handWrittenSql, KEYS, newVersionSql, oldVersionSql, PANDAS_SCRIPT, pandasAvailable, PYTHON, stats, TOLERANCE} from './lib/datasets.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const DATA_DIR = join(BENCH_DIR, 'data');
const {values: options} = parseArgs({
  options: {
    sizes: {type: 'string', default: '1000000,10000000'},
    runs: {type: 'string', default: '3'},
    'pandas-runs': {type: 'string', default: '3'},
    memory: {type: 'string', default: '1536MB'},
    threads: {type: 'string'},
    'no-pandas': {type: 'boolean', default: false},
    child: {type: 'string'},
    size: {type: 'string'},
  },
});

/** What one child measured. */
interface Measurement {
  ms: number;
  rssMiB: number;
  counts: Record<string, number>;
}

const paths = (size: number) => ({
  old: join(DATA_DIR, `old-${size}.parquet`),
  new: join(DATA_DIR, `new-${size}.parquet`),
  oldCsv: join(DATA_DIR, `old-${size}.csv`),
  newCsv: join(DATA_DIR, `new-${size}.csv`),
});

async function engine(): Promise<{connection: DuckDBConnection; close(): void}> {
  const {DuckDBEngine} = await import('../src/engines/duckdb.js');
  const spill = mkdtempSync(join(tmpdir(), 'bench-validate-spill-'));
  const e = new DuckDBEngine({
    memoryLimit: options.memory,
    tempDirectory: spill,
    ...(options.threads === undefined ? {} : {threads: Number(options.threads)}),
  });
  const connection = await e.connect();
  return {connection, close: () => (e.close(), rmSync(spill, {recursive: true, force: true}))};
}

// ---- data ------------------------------------------------------------------------------

async function ensureData(size: number): Promise<void> {
  const p = paths(size);
  if (existsSync(p.old) && existsSync(p.new)) return;
  mkdirSync(DATA_DIR, {recursive: true});
  console.log(`generating ${size} rows per version in ${DATA_DIR} ...`);
  const {connection, close} = await engine();
  try {
    const write = async (sql: string, target: string) => {
      await connection.run(`COPY (${sql}) TO '${target}.tmp' (FORMAT parquet)`);
      renameSync(`${target}.tmp`, target);
    };
    await write(oldVersionSql(size), p.old);
    await write(newVersionSql(size),
      p.new,
    );
  } finally {
    close();
  }
}

async function ensureCsv(size: number): Promise<void> {
  const p = paths(size);
  if (existsSync(p.oldCsv) && existsSync(p.newCsv)) return;
  const {connection, close} = await engine();
  try {
    for (const [from, to] of [[p.old, p.oldCsv], [p.new, p.newCsv]] as const) {
      await connection.run(`COPY (SELECT * FROM read_parquet('${from}')) TO '${to}.tmp' (FORMAT csv, HEADER)`);
      renameSync(`${to}.tmp`, to);
    }
  } finally {
    close();
  }
}

// ---- the three methods (each runs in a child) ------------------------------------------

async function runTask(size: number): Promise<Measurement> {
  const {default: validate} = await import('../tasks/validate.js');
  const {runTaskDirectly} = await import('../test/support/run-task.js');
  const p = paths(size);
  const run = await runTaskDirectly(validate, {
    name: 'validate',
    settings: {
      source: {keys: KEYS, columns: null},
      validation: {tolerance: TOLERANCE, rules: [{check: 'row_count_change', max_pct: 5, severity: 'error'}]},
    },
    inputs: {'extract-old': {'rows.parquet': p.old}, 'extract-new': {'rows.parquet': p.new}},
    outputs: ['validation.json', 'mismatches.csv', 'added_keys.csv', 'removed_keys.csv', 'duplicate_keys.csv'],
    engine: {memoryLimit: options.memory, ...(options.threads === undefined ? {} : {threads: Number(options.threads)})},
  });
  try {
    if (run.result === undefined) throw new Error('validate returned nothing');
    const json = JSON.parse(readFileSync(join(run.outputDir, 'validation.json'), 'utf8'));
    const counts: Record<string, number> = {
      matched: json.keys.matched,
      added: json.keys.added,
      removed: json.keys.removed,
      duplicated_old: json.keys.duplicated_old,
      duplicated_new: json.keys.duplicated_new,
      compared_rows: json.compared_rows,
      changed_rows: json.changed_rows,
    };
    for (const c of COLUMNS) counts[`changed_${c}`] = json.columns[c].changed;
    return {ms: run.taskMs, rssMiB: 0, counts};
  } finally {
    rmSync(dirname(run.outputDir), {recursive: true, force: true});
  }
}

async function runSql(size: number): Promise<Measurement> {
  const started = performance.now();
  const {connection, close} = await engine();
  try {
    const reader = await connection.runAndReadAll(handWrittenSql(`read_parquet('${paths(size).old}')`, `read_parquet('${paths(size).new}')`));
    const ms = performance.now() - started;
    const row = reader.getRowObjects()[0] ?? {};
    const counts: Record<string, number> = {};
    for (const name of ['matched', 'added', 'removed', 'duplicated_old', 'duplicated_new', 'compared_rows', 'changed_rows', ...COLUMNS.map((c) => `changed_${c}`)]) {
      counts[name] = Number(row[name]);
    }
    return {ms, rssMiB: 0, counts};
  } finally {
    close();
  }
}

// ---- driver ------------------------------------------------------------------------------

function child(method: 'task' | 'sql', size: number): Measurement {
  const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', method, '--size', String(size),
    '--memory', options.memory, ...(options.threads === undefined ? [] : ['--threads', options.threads])], {encoding: 'utf8', maxBuffer: 1 << 24});
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Measurement;
}

function pandas(size: number): Measurement & {load_ms: number} {
  const p = paths(size);
  const out = execFileSync(PYTHON, ['-c', PANDAS_SCRIPT, p.oldCsv, p.newCsv], {encoding: 'utf8', maxBuffer: 1 << 24});
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Measurement & {load_ms: number};
}

function line(label: string, runs: Measurement[], note = ''): string {
  const t = stats(runs.map((r) => r.ms / 1000));
  const rss = Math.max(...runs.map((r) => r.rssMiB));
  return `  ${label.padEnd(22)} median ${t.median.toFixed(2).padStart(7)} s   min ${t.min.toFixed(2).padStart(7)} s   max ${t.max.toFixed(2).padStart(7)} s   peak RSS ${rss.toFixed(0).padStart(5)} MiB${note}`;
}

function disagreements(a: Record<string, number>, b: Record<string, number>): string[] {
  return Object.keys(a).filter((k) => a[k] !== b[k]).map((k) => `${k}: ${a[k]} vs ${b[k]}`);
}

async function main(): Promise<void> {
  if (options.child !== undefined) {
    const size = Number(options.size);
    const m = options.child === 'task' ? await runTask(size) : await runSql(size);
    m.rssMiB = process.resourceUsage().maxRSS / 1024;
    console.log(JSON.stringify(m));
    return;
  }
  const sizes = options.sizes.split(',').map(Number);
  const runs = Number(options.runs);
  const withPandas = !options['no-pandas'] && pandasAvailable();
  console.log(`validate benchmark: ${KEYS.length} key columns + ${COLUMNS.length} compared columns, ` +
    `DuckDB memory_limit ${options.memory}, threads ${options.threads ?? 'all'}, ${runs} runs each`);
  if (!withPandas) console.log(`  (pandas comparison skipped: ${options['no-pandas'] ? '--no-pandas' : `${PYTHON} cannot import pandas`})`);
  for (const size of sizes) {
    await ensureData(size);
    const task: Measurement[] = [];
    const sql: Measurement[] = [];
    for (let i = 0; i < runs; i++) {
      task.push(child('task', size));
      sql.push(child('sql', size));
    }
    console.log(`\n${size.toLocaleString('en')} rows per version (${resolve(paths(size).old)})`);
    const ratio = stats(task.map((r) => r.ms)).median / stats(sql.map((r) => r.ms)).median;
    console.log(line('validate task', task, `   ${ratio.toFixed(2)}x hand-written SQL (target <= 1.5x)`));
    console.log(line('hand-written SQL', sql));
    const differ = disagreements(task[0]!.counts, sql[0]!.counts);
    console.log(`  counts agree with the hand-written SQL: ${differ.length === 0 ? 'yes' : `NO (${differ.join(', ')})`}`);
    if (withPandas) {
      await ensureCsv(size);
      const pandasRuns: (Measurement & {load_ms: number})[] = [];
      for (let i = 0; i < Number(options['pandas-runs']); i++) pandasRuns.push(pandas(size));
      const load = stats(pandasRuns.map((r) => r.load_ms / 1000));
      console.log(line('pandas merge', pandasRuns, `   (+ ${load.median.toFixed(2)} s reading CSV, not counted)`));
      const pd = disagreements(task[0]!.counts, pandasRuns[0]!.counts);
      console.log(`  counts agree with pandas: ${pd.length === 0 ? 'yes' : `NO (${pd.join(', ')})`}`);
    }
  }
}

await main();
