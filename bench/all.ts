/**
 * `npm run bench`: where the product stands against the alternatives, on this machine.
 *
 * For 1M and 10M rows per version (composite key, a segment, 8 numeric parameters, a label, a
 * date; deterministic, generated into a DuckDB warehouse under bench/data/), it measures:
 *   1. a cold run of the whole pipeline through `npm run pipeline` (empty cache), and each task's
 *      share; and a cold run of what the peers compute, the validation (`--skip-analysis`);
 *   2. a no-op rerun (everything cached) through `npm run pipeline` and through the built CLI;
 *   3. a tweak rerun (one validation tolerance changed): which tasks ran, and the wall time;
 *   4. peers on the same data: one hand-written DuckDB query computing the same validation
 *      counts (the practical limit), plus the time to read the source once; and the pandas
 *      merge users write by hand, when python3 has pandas;
 *   5. the peak resident memory of each run.
 * Every figure is the median of several runs, with min and max. Results go to BENCHMARKS.md
 * (whose hand-written part, below NOTES_MARKER, is kept) and bench/results/<date>-<hh>-<mm>.json.
 *
 *   npm run bench [-- --sizes 1000000,10000000 --runs 3 --large-runs 2 --noop-runs 10 --no-pandas]
 * (`--large-runs`: repetitions for sizes above 2M rows, where one cold run takes minutes.)
 */
import {execFileSync, spawnSync} from 'node:child_process';
import {copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs';
import {cpus, totalmem} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import {COLUMNS, handWrittenSql, KEYS, newVersionSql, oldVersionSql, PANDAS_SCRIPT, pandasAvailable, PYTHON, stats, TOLERANCE} from './lib/datasets.js';
import {temporaryFolder} from '../test/support/temp.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = join(REPO, 'bench', 'data');
const CLI = join(REPO, 'dist', 'cli', 'bin.js');

const {values: options} = parseArgs({
  options: {
    sizes: {type: 'string', default: '1000000,10000000'},
    runs: {type: 'string', default: '3'},
    'large-runs': {type: 'string', default: '2'},
    'noop-runs': {type: 'string', default: '10'},
    'no-pandas': {type: 'boolean', default: false},
  },
});
const sizes = options.sizes.split(',').map(Number);
const runs = Number(options.runs);

// Node reads the certificates NODE_EXTRA_CA_CERTS names at every start-up, before any of our
// code runs (~40 ms for the 220 KB bundle this machine's environment points it at): no-op
// reruns are also measured without it, as Node starts on a machine that does not set it.
const CA_VARIABLE = 'NODE_EXTRA_CA_CERTS';
const BARE_ENV: NodeJS.ProcessEnv | null = process.env[CA_VARIABLE] === undefined ? null : Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== CA_VARIABLE));

type Stats = {median: number; min: number; max: number};

/** Runs a command; returns wall time (ms), peak RSS (MiB, of the process tree) and its output. */
function measure(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): {ms: number; rssMiB: number; stdout: string; code: number | null} {
  const started = performance.now();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], {cwd, encoding: 'utf8', env: {...env, NO_COLOR: '1'}, maxBuffer: 1 << 26});
  const ms = performance.now() - started;
  const lines = result.stderr.trim().split('\n');
  return {ms, rssMiB: Number(lines[lines.length - 1]) / 1024, stdout: result.stdout, code: result.status};
}

/** The warehouse for one size: table model_parameters with versions v1 (old) and v2 (new). */
async function warehouse(size: number): Promise<{database: string; oldParquet: string; newParquet: string; oldCsv: string; newCsv: string}> {
  const base = join(DATA, `pipeline-${size}`);
  const files = {database: `${base}.duckdb`, oldParquet: `${base}-old.parquet`, newParquet: `${base}-new.parquet`, oldCsv: `${base}-old.csv`, newCsv: `${base}-new.csv`};
  if (Object.values(files).every(existsSync)) return files;
  mkdirSync(DATA, {recursive: true});
  console.log(`generating ${size.toLocaleString('en')} rows per version in ${DATA} ...`);
  const {DuckDBInstance} = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:', {memory_limit: '2GiB', temp_directory: join(DATA, 'spill')});
  const db = await instance.connect();
  try {
    for (const [sql, parquet, csv] of [[oldVersionSql(size), files.oldParquet, files.oldCsv], [newVersionSql(size), files.newParquet, files.newCsv]] as const) {
      await db.run(`COPY (${sql}) TO '${parquet}.tmp' (FORMAT parquet)`);
      renameSync(`${parquet}.tmp`, parquet);
      await db.run(`COPY (SELECT * FROM read_parquet('${parquet}')) TO '${csv}.tmp' (FORMAT csv, HEADER)`);
      renameSync(`${csv}.tmp`, csv);
    }
    rmSync(`${files.database}.tmp`, {force: true});
    await db.run(`ATTACH '${files.database}.tmp' AS w`);
    await db.run(`CREATE TABLE w.model_parameters AS
      SELECT 'v1' AS version, * FROM read_parquet('${files.oldParquet}')
      UNION ALL BY NAME SELECT 'v2' AS version, * FROM read_parquet('${files.newParquet}')`);
    await db.run('DETACH w');
    renameSync(`${files.database}.tmp`, files.database);
  } finally {
    db.closeSync();
    instance.closeSync();
  }
  return files;
}

/** A project running the shipped pipeline over the warehouse. */
function project(database: string): string {
  const dir = temporaryFolder('bench-pipeline-');
  copyFileSync(join(REPO, 'pipeline.yaml'), join(dir, 'pipeline.yaml'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({type: 'module', scripts: {pipeline: `node ${CLI}`}}));
  writeFileSync(
    join(dir, 'settings.yaml'),
    JSON.stringify({
      source: {keys: KEYS},
      duckdb: {database},
      validation: {tolerance: TOLERANCE},
      analysis: {segment_by: ['segment']},
    }),
  );
  return dir;
}

const ARGS = ['--old', 'v1', '--new', 'v2', '--config', 'settings.yaml'];
const npmRun = (extra: string[] = []) => ['run', '--silent', 'pipeline', '--', ...ARGS, ...extra];

interface TaskLine {
  name: string;
  status: string;
  duration_ms: number;
}

function summaryOf(dir: string): {tasks: TaskLine[]; status: string} {
  return JSON.parse(readFileSync(join(dir, 'output', 'v1_vs_v2', 'summary.json'), 'utf8')) as {tasks: TaskLine[]; status: string};
}

/** The same counts as the validate task, with one query over the source (read once), in a child. */
function handWritten(database: string, files: {oldParquet: string; newParquet: string}): {sqlMs: number; readMs: number; rssMiB: number} {
  const script = `
    import {DuckDBInstance} from '@duckdb/node-api';
    const instance = await DuckDBInstance.create(':memory:');
    const db = await instance.connect();
    await db.run("ATTACH '${database}' AS w (READ_ONLY)");
    let t = performance.now();
    await db.run("COPY (SELECT * EXCLUDE (version) FROM w.model_parameters WHERE version = 'v1') TO '${files.oldParquet}.read' (FORMAT parquet)");
    await db.run("COPY (SELECT * EXCLUDE (version) FROM w.model_parameters WHERE version = 'v2') TO '${files.newParquet}.read' (FORMAT parquet)");
    const readMs = performance.now() - t;
    t = performance.now();
    await db.runAndReadAll(${JSON.stringify(handWrittenSql(`read_parquet('${files.oldParquet}.read')`, `read_parquet('${files.newParquet}.read')`))});
    const sqlMs = performance.now() - t;
    console.log(JSON.stringify({readMs, sqlMs, rssMiB: process.resourceUsage().maxRSS / 1024}));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {cwd: REPO, encoding: 'utf8'});
  rmSync(`${files.oldParquet}.read`, {force: true});
  rmSync(`${files.newParquet}.read`, {force: true});
  return JSON.parse(out.trim().split('\n').pop()!) as {sqlMs: number; readMs: number; rssMiB: number};
}

function pandas(files: {oldCsv: string; newCsv: string}): {ms: number; loadMs: number; rssMiB: number} {
  const out = execFileSync(PYTHON, ['-c', PANDAS_SCRIPT, files.oldCsv, files.newCsv], {encoding: 'utf8', maxBuffer: 1 << 24});
  const result = JSON.parse(out.trim().split('\n').pop()!) as {ms: number; load_ms: number; rssMiB: number};
  return {ms: result.ms, loadMs: result.load_ms, rssMiB: result.rssMiB};
}

const seconds = (s: Stats) => `${(s.median / 1000).toFixed(2)} s (${(s.min / 1000).toFixed(2)}–${(s.max / 1000).toFixed(2)})`;
const millis = (s: Stats) => `${s.median.toFixed(0)} ms (${s.min.toFixed(0)}–${s.max.toFixed(0)})`;

async function benchSize(size: number) {
  const runs = size > 2_000_000 ? Number(options['large-runs']) : Number(options.runs);
  const files = await warehouse(size);
  const cold: {ms: number; rssMiB: number; tasks: TaskLine[]}[] = [];
  let dir = '';
  for (let i = 0; i < runs; i++) {
    dir = project(files.database);
    const run = measure('npm', npmRun(), dir);
    if (run.code !== 0 && run.code !== 1) throw new Error(`cold run failed (exit ${run.code}):\n${run.stdout}`);
    cold.push({ms: run.ms, rssMiB: run.rssMiB, tasks: summaryOf(dir).tasks});
    console.log(`  cold run ${i + 1}/${runs}: ${(run.ms / 1000).toFixed(2)} s, peak ${run.rssMiB.toFixed(0)} MiB`);
  }
  // The like-for-like run: the peers compute the validation counts, not the analysis.
  const validationOnly: {ms: number; rssMiB: number}[] = [];
  for (let i = 0; i < runs; i++) {
    const run = measure('npm', npmRun(['--skip-analysis']), project(files.database));
    if (run.code !== 0 && run.code !== 1) throw new Error(`cold run --skip-analysis failed (exit ${run.code}):\n${run.stdout}`);
    validationOnly.push(run);
    console.log(`  cold run --skip-analysis ${i + 1}/${runs}: ${(run.ms / 1000).toFixed(2)} s, peak ${run.rssMiB.toFixed(0)} MiB`);
  }
  const shares = Object.fromEntries(
    cold[0]!.tasks.map((task) => [task.name, stats(cold.map((run) => run.tasks.find((t) => t.name === task.name)?.duration_ms ?? 0))]),
  );

  const noopRuns = Number(options['noop-runs']);
  measure(process.execPath, [CLI, ...ARGS], dir);
  const noopDirect = stats(Array.from({length: noopRuns}, () => measure(process.execPath, [CLI, ...ARGS], dir).ms));
  const noopNpm = stats(Array.from({length: noopRuns}, () => measure('npm', npmRun(), dir).ms));
  const noopBare =
    BARE_ENV === null
      ? null
      : {
          direct: stats(Array.from({length: noopRuns}, () => measure(process.execPath, [CLI, ...ARGS], dir, BARE_ENV).ms)),
          npm: stats(Array.from({length: noopRuns}, () => measure('npm', npmRun(), dir, BARE_ENV).ms)),
        };

  const tweak: {ms: number; ran: string[]}[] = [];
  for (let i = 0; i < runs; i++) {
    const run = measure('npm', npmRun(['--set', `validation.tolerance.abs=${(i + 1) / 1000}`]), dir);
    tweak.push({ms: run.ms, ran: summaryOf(dir).tasks.filter((task) => task.status === 'ran').map((task) => task.name)});
  }

  const peers = Array.from({length: runs}, () => handWritten(files.database, files));
  const withPandas = !options['no-pandas'] && pandasAvailable();
  const pandasRuns = withPandas ? Array.from({length: runs}, () => pandas(files)) : [];

  return {
    size,
    runs,
    cold: {wall: stats(cold.map((run) => run.ms)), peakRssMiB: Math.max(...cold.map((run) => run.rssMiB)), tasks: shares},
    validationOnly: {wall: stats(validationOnly.map((run) => run.ms)), peakRssMiB: Math.max(...validationOnly.map((run) => run.rssMiB))},
    noop: {direct: noopDirect, npm: noopNpm, withoutExtraCaCerts: noopBare},
    tweak: {wall: stats(tweak.map((run) => run.ms)), ran: tweak[0]!.ran},
    handWritten: {sql: stats(peers.map((p) => p.sqlMs)), readOnce: stats(peers.map((p) => p.readMs)), peakRssMiB: Math.max(...peers.map((p) => p.rssMiB))},
    pandas:
      pandasRuns.length === 0
        ? null
        : {compare: stats(pandasRuns.map((p) => p.ms)), load: stats(pandasRuns.map((p) => p.loadMs)), peakRssMiB: Math.max(...pandasRuns.map((p) => p.rssMiB)), runs: pandasRuns.length},
  };
}

async function main(): Promise<void> {
  const machine = {cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version};
  const date = new Date().toISOString();
  console.log(`bench: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}, ${runs} runs per figure`);
  const noopRuns = Number(options['noop-runs']);
  const nodeStart = {
    asConfigured: stats(Array.from({length: noopRuns}, () => measure(process.execPath, ['-e', '0'], REPO).ms)),
    withoutExtraCaCerts: BARE_ENV === null ? null : stats(Array.from({length: noopRuns}, () => measure(process.execPath, ['-e', '0'], REPO, BARE_ENV).ms)),
  };
  console.log(`node -e 0: ${millis(nodeStart.asConfigured)}${nodeStart.withoutExtraCaCerts === null ? '' : `; without ${CA_VARIABLE} ${millis(nodeStart.withoutExtraCaCerts)}`}`);
  const results = [];
  for (const size of sizes) {
    console.log(`\n${size.toLocaleString('en')} rows per version (${size > 2_000_000 ? options['large-runs'] : runs} runs per figure)`);
    const result = await benchSize(size);
    results.push(result);
    console.log(`  cold run (npm run pipeline):   ${seconds(result.cold.wall)}, peak ${result.cold.peakRssMiB.toFixed(0)} MiB`);
    for (const [task, s] of Object.entries(result.cold.tasks)) console.log(`    ${task.padEnd(12)} ${seconds(s)}`);
    console.log(`  cold run, --skip-analysis:     ${seconds(result.validationOnly.wall)}, peak ${result.validationOnly.peakRssMiB.toFixed(0)} MiB`);
    for (const line of ratios(result)) console.log(`    ${line}`);
    console.log(`  no-op rerun, built CLI:        ${millis(result.noop.direct)}   (target < 150 ms)`);
    console.log(`  no-op rerun, npm run pipeline: ${millis(result.noop.npm)}   (target < 400 ms)`);
    const bare = result.noop.withoutExtraCaCerts;
    if (bare !== null) console.log(`  the same without ${CA_VARIABLE}:  ${millis(bare.direct)} built CLI, ${millis(bare.npm)} npm run pipeline`);
    console.log(`  tweak rerun:                   ${seconds(result.tweak.wall)}, ran: ${result.tweak.ran.join(', ')}`);
    console.log(`  hand-written DuckDB query:     ${seconds(result.handWritten.sql)} + reading the source once ${seconds(result.handWritten.readOnce)}`);
    if (result.pandas !== null) console.log(`  pandas merge:                  ${seconds(result.pandas.compare)} + reading CSV ${seconds(result.pandas.load)}, peak ${result.pandas.peakRssMiB.toFixed(0)} MiB`);
  }
  mkdirSync(join(REPO, 'bench', 'results'), {recursive: true});
  const record = {date, command: `npm run bench -- --sizes ${options.sizes} --runs ${runs} --large-runs ${options['large-runs']}`, machine, nodeStart, columns: {keys: KEYS, compared: COLUMNS}, results};
  writeFileSync(join(REPO, 'bench', 'results', `${date.slice(0, 16).replace(/[T:]/g, '-')}.json`), JSON.stringify(record, null, 2) + '\n');
  writeFileSync(join(REPO, 'BENCHMARKS.md'), `${markdown(record)}\n${NOTES_MARKER}${keptNotes()}`);
  console.log('\nWrote BENCHMARKS.md and bench/results/.');
}

function markdown(record: {
  date: string;
  command: string;
  machine: {cores: number; cpu: string; memoryGiB: number; node: string};
  nodeStart: {asConfigured: Stats; withoutExtraCaCerts: Stats | null};
  results: Awaited<ReturnType<typeof benchSize>>[];
}): string {
  const lines = [
    '# Benchmarks',
    '',
    `Measured ${record.date.slice(0, 16).replace('T', ' ')} UTC on ${record.machine.cores} cores (${record.machine.cpu}), ${record.machine.memoryGiB} GiB, Node ${record.machine.node}, with \`${record.command}\`.`,
    'Each figure is the median of the runs, with min–max. Data: two versions of a table with a composite key (2 columns), a segment, 8 numeric parameters, a label and a date, generated deterministically (`bench/lib/datasets.ts`).',
    '',
    '| rows per version (runs) | cold run (`npm run pipeline`) | peak memory | cold run, validation only (`--skip-analysis`) | no-op rerun, built CLI | no-op rerun, `npm run pipeline` | tweak rerun (tolerance) | hand-written DuckDB query + reading the source once | pandas merge + reading CSV |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of record.results) {
    lines.push(
      `| ${r.size.toLocaleString('en')} (${r.runs}) | ${seconds(r.cold.wall)} | ${r.cold.peakRssMiB.toFixed(0)} MiB | ${seconds(r.validationOnly.wall)}, ${r.validationOnly.peakRssMiB.toFixed(0)} MiB | ${millis(r.noop.direct)} | ${millis(r.noop.npm)} | ${seconds(r.tweak.wall)}, ran ${r.tweak.ran.join(', ')} | ${seconds(r.handWritten.sql)} + ${seconds(r.handWritten.readOnce)} | ${r.pandas === null ? 'not measured (no pandas)' : `${seconds(r.pandas.compare)} + ${seconds(r.pandas.load)} (${r.pandas.peakRssMiB.toFixed(0)} MiB)`} |`,
    );
  }
  lines.push('', 'Ratios of the medians (targets: cold run within 1.5x of the hand-written query plus reading the source, at least 3x faster than pandas with its reading):', '');
  for (const r of record.results) lines.push(`- ${r.size.toLocaleString('en')} rows: ${ratios(r).join('; ')}`);
  const {asConfigured, withoutExtraCaCerts} = record.nodeStart;
  lines.push('', `No-op reruns against Node's own start-up (targets: under 150 ms through the built CLI, under 400 ms through \`npm run pipeline\`): \`node -e 0\` takes ${millis(asConfigured)} here.`);
  if (withoutExtraCaCerts !== null) {
    lines.push(
      `This machine's environment sets \`${CA_VARIABLE}\`, which every Node process reads at start-up; without it \`node -e 0\` takes ${millis(withoutExtraCaCerts)}, and the no-op reruns:`,
      '',
    );
    for (const r of record.results) {
      const bare = r.noop.withoutExtraCaCerts;
      if (bare !== null) lines.push(`- ${r.size.toLocaleString('en')} rows: built CLI ${millis(bare.direct)}, \`npm run pipeline\` ${millis(bare.npm)}`);
    }
  }
  lines.push('', '## Where a cold run spends its time', '', '| rows per version | ' + Object.keys(record.results[0]!.cold.tasks).join(' | ') + ' |', '|---|' + Object.keys(record.results[0]!.cold.tasks).map(() => '---').join('|') + '|');
  for (const r of record.results) lines.push(`| ${r.size.toLocaleString('en')} | ${Object.values(r.cold.tasks).map(seconds).join(' | ')} |`);
  lines.push('');
  return lines.join('\n');
}

/** The cold runs against the peers, as the targets put them. */
function ratios(r: Awaited<ReturnType<typeof benchSize>>): string[] {
  const peer = r.handWritten.sql.median + r.handWritten.readOnce.median;
  const pandasTotal = r.pandas === null ? null : r.pandas.compare.median + r.pandas.load.median;
  return [
    ['full cold run', r.cold.wall.median],
    ['validation only', r.validationOnly.wall.median],
  ].map(([label, ms]) => {
    const ours = ms as number;
    const vsPandas = pandasTotal === null ? '' : `, ${(pandasTotal / ours).toFixed(1)}x faster than pandas`;
    return `${label as string} ${(ours / peer).toFixed(2)}x the hand-written query plus reading${vsPandas}`;
  });
}

/** BENCHMARKS.md below this line is written by hand (what the figures mean) and kept by `npm run bench`. */
const NOTES_MARKER = '<!-- Hand-written notes below: npm run bench keeps them. -->';

function keptNotes(): string {
  const path = join(REPO, 'BENCHMARKS.md');
  if (!existsSync(path)) return '';
  const text = readFileSync(path, 'utf8');
  const at = text.indexOf(NOTES_MARKER);
  return at === -1 ? '' : text.slice(at + NOTES_MARKER.length);
}

await main();
