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
import {execFileSync, spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import type {DuckDBConnection} from '@duckdb/node-api';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const DATA_DIR = join(BENCH_DIR, 'data');
const KEYS = ['entity_id', 'horizon'];
const PARAMETERS = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8'];
const COLUMNS = ['segment', ...PARAMETERS, 'label', 'as_of'];
// The shipped pipeline's kind of tolerance: exact by default, one parameter with slack.
const TOLERANCE = {abs: 0, rel: 0, columns: {p1: {abs: 0.01}}};
const PYTHON = '/usr/bin/python3';

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

// Deterministic versions: the new one drops 0.5% of the keys, adds 0.5%, duplicates 0.01%,
// nudges p1 on 10% of rows within its tolerance, changes p2 on 1%, nulls p3 on 0.5% and
// relabels 0.1%.
function baseRows(n: number): string {
  const parameters = PARAMETERS.map((p, j) => `round((hash(i, ${j + 1}) % 1000000) / 1000.0, 3) AS ${p}`).join(', ');
  return `SELECT i, (i // 4)::BIGINT AS entity_id, (i % 4)::INTEGER AS horizon,
    ['north', 'south', 'east', 'west', 'central'][1 + (hash(i, 's') % 5)::INTEGER] AS segment, ${parameters},
    'label_' || (hash(i, 'l') % 50)::VARCHAR AS label, DATE '2024-01-01' + (hash(i, 'd') % 365)::INTEGER AS as_of
    FROM range(${n}) t(i)`;
}

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
    await write(`SELECT * EXCLUDE (i) FROM (${baseRows(size)})`, p.old);
    await write(
      `WITH b AS (${baseRows(Math.round(size * 1.005))})
       SELECT entity_id, horizon, segment,
         CASE WHEN hash(i, 'c1') % 10 = 0 THEN p1 + ((hash(i, 'n1') % 200)::INTEGER - 100) / 10000.0 ELSE p1 END AS p1,
         CASE WHEN hash(i, 'c2') % 100 = 0 THEN p2 * 1.5 ELSE p2 END AS p2,
         CASE WHEN hash(i, 'c3') % 200 = 0 THEN NULL ELSE p3 END AS p3,
         p4, p5, p6, p7, p8,
         CASE WHEN hash(i, 'c4') % 1000 = 0 THEN 'relabelled' ELSE label END AS label,
         as_of
       FROM b WHERE hash(i, 'rm') % 200 <> 0
       UNION ALL
       SELECT * EXCLUDE (i) FROM b WHERE i < ${size} AND hash(i, 'dup') % 10000 = 0`,
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
  const p = paths(size);
  const root = mkdtempSync(join(tmpdir(), 'bench-validate-'));
  const outputDir = join(root, 'out');
  mkdirSync(outputDir);
  const started = performance.now();
  const {connection, close} = await engine();
  try {
    const noop = () => undefined;
    const result = await validate.run({
      name: 'validate',
      args: {},
      settings: {
        source: {keys: KEYS, columns: null},
        validation: {tolerance: TOLERANCE, rules: [{check: 'row_count_change', max_pct: 5, severity: 'error'}]},
      },
      inputs: {'extract-old': {'rows.parquet': p.old}, 'extract-new': {'rows.parquet': p.new}},
      upstream: {},
      files: {},
      outputDir,
      output: (name) => join(outputDir, name),
      input: (task) => (task === 'extract-old' ? p.old : p.new),
      projectDir: root,
      tmpDir: root,
      log: {debug: noop, info: noop, warn: noop, error: noop},
      progress: noop,
      signal: new AbortController().signal,
      duckdb: async () => connection,
    });
    const ms = performance.now() - started;
    const json = JSON.parse(readFileSync(join(outputDir, 'validation.json'), 'utf8'));
    if (result === undefined) throw new Error('validate returned nothing');
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
    return {ms, rssMiB: 0, counts};
  } finally {
    close();
    rmSync(root, {recursive: true, force: true});
  }
}

/** The same counts as one hand-written DuckDB query: the practical limit. */
function handWrittenSql(size: number): string {
  const p = paths(size);
  const notNull = KEYS.map((k) => `${k} IS NOT NULL`).join(' AND ');
  const slack = 4 * Number.EPSILON;
  const changed = (c: string) => {
    const tolerance = (TOLERANCE.columns as Record<string, {abs: number}>)[c];
    if (tolerance === undefined) return `o.${c} IS DISTINCT FROM n.${c}`;
    return `(o.${c} IS DISTINCT FROM n.${c} AND NOT coalesce(isfinite(o.${c}) AND isfinite(n.${c}) AND ` +
      `abs(n.${c} - o.${c}) <= ${tolerance.abs} + ${slack} * (abs(o.${c}) + abs(n.${c})), false))`;
  };
  const both = 'o.entity_id IS NOT NULL AND n.entity_id IS NOT NULL';
  return `
    WITH dups AS MATERIALIZED (
      SELECT entity_id, horizon, count(*) - sum(s) AS n_old, sum(s) AS n_new
      FROM (SELECT entity_id, horizon, 0 AS s FROM read_parquet('${p.old}') WHERE ${notNull}
            UNION ALL SELECT entity_id, horizon, 1 FROM read_parquet('${p.new}') WHERE ${notNull})
      GROUP BY ALL HAVING count(*) - sum(s) > 1 OR sum(s) > 1),
    o AS (SELECT t.* FROM read_parquet('${p.old}') t ANTI JOIN dups d USING (entity_id, horizon) WHERE ${notNull}),
    n AS (SELECT t.* FROM read_parquet('${p.new}') t ANTI JOIN dups d USING (entity_id, horizon) WHERE ${notNull})
    SELECT
      count(*) FILTER (WHERE ${both}) + (SELECT count(*) FROM dups WHERE n_old > 0 AND n_new > 0) AS matched,
      count(*) FILTER (WHERE o.entity_id IS NULL) + (SELECT count(*) FROM dups WHERE n_old = 0) AS added,
      count(*) FILTER (WHERE n.entity_id IS NULL) + (SELECT count(*) FROM dups WHERE n_new = 0) AS removed,
      (SELECT count(*) FROM dups WHERE n_old > 1) AS duplicated_old,
      (SELECT count(*) FROM dups WHERE n_new > 1) AS duplicated_new,
      count(*) FILTER (WHERE ${both}) AS compared_rows,
      count(*) FILTER (WHERE ${both} AND (${COLUMNS.map(changed).join(' OR ')})) AS changed_rows,
      ${COLUMNS.map((c) => `count(*) FILTER (WHERE ${both} AND ${changed(c)}) AS changed_${c}`).join(',\n      ')},
      ${PARAMETERS.map((c) => `max(CASE WHEN isfinite(o.${c}) AND isfinite(n.${c}) THEN abs(n.${c} - o.${c}) END) AS max_abs_${c}`).join(', ')},
      ${['old', 'new'].map((v) => `(SELECT ${COLUMNS.map((c) => `count(*) - count(${c})`).join(' + ')} FROM read_parquet('${p[v as 'old' | 'new']}')) AS nulls_${v}`).join(', ')}
    FROM o FULL OUTER JOIN n USING (entity_id, horizon)`;
}

async function runSql(size: number): Promise<Measurement> {
  const started = performance.now();
  const {connection, close} = await engine();
  try {
    const reader = await connection.runAndReadAll(handWrittenSql(size));
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

// What users write by hand: read both versions, drop null and duplicated keys, outer merge,
// compare column by column. pandas here has no Parquet engine (no pyarrow on Debian), so it
// reads the same rows from CSV; load and compare times are reported apart.
const PANDAS_SCRIPT = String.raw`
import json, resource, sys, time
import numpy as np, pandas as pd
old_path, new_path = sys.argv[1], sys.argv[2]
keys = ['entity_id', 'horizon']
params = ['p1','p2','p3','p4','p5','p6','p7','p8']
columns = ['segment'] + params + ['label', 'as_of']
tol = {'p1': 0.01}
t0 = time.perf_counter()
old = pd.read_csv(old_path)
new = pd.read_csv(new_path)
t1 = time.perf_counter()
def prepare(df):
    df = df.dropna(subset=keys)
    counts = df.groupby(keys).size()
    return df, counts
old, c_old = prepare(old)
new, c_new = prepare(new)
dup_old = set(c_old[c_old > 1].index); dup_new = set(c_new[c_new > 1].index)
k_old = set(c_old.index); k_new = set(c_new.index)
dups = dup_old | dup_new
def unique(df):
    idx = pd.MultiIndex.from_frame(df[keys])
    return df[~idx.isin(list(dups))] if dups else df
m = unique(old).merge(unique(new), on=keys, how='outer', suffixes=('_o', '_n'), indicator=True)
both = m[m['_merge'] == 'both']
changed_any = np.zeros(len(both), dtype=bool)
counts = {}
for c in columns:
    a, b = both[c + '_o'], both[c + '_n']
    same = (a == b) | (a.isna() & b.isna())
    if c in tol:
        same = same | ((b - a).abs() <= tol[c] + 4 * np.finfo(float).eps * (a.abs() + b.abs()))
    counts['changed_' + c] = int((~same).sum())
    changed_any |= (~same).to_numpy()
counts.update(matched=len(k_old & k_new), added=len(k_new - k_old), removed=len(k_old - k_new),
              duplicated_old=len(dup_old), duplicated_new=len(dup_new),
              compared_rows=len(both), changed_rows=int(changed_any.sum()))
t2 = time.perf_counter()
print(json.dumps({'load_ms': (t1 - t0) * 1000, 'ms': (t2 - t1) * 1000,
                  'rssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'counts': counts}))
`;

function pandasAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import pandas'], {stdio: 'ignore'}).status === 0;
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

function stats(values: number[]): {median: number; min: number; max: number} {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {median, min: sorted[0]!, max: sorted[sorted.length - 1]!};
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
