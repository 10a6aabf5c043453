/**
 * The sample warehouse that lets a fresh clone run with no account: when the default
 * database is missing, it is generated in SQL with three versions of a `model_parameters`
 * table that differ the way real model versions do (described in the README).
 */
import {randomBytes} from 'node:crypto';
import {existsSync, linkSync, mkdirSync, renameSync, rmSync} from 'node:fs';
import {dirname, resolve} from 'node:path';
import {isErrno} from './glob.js';
import {quoteString} from './sql.js';

/** The default `duckdb.database`, relative to the project directory. */
export const SAMPLE_DATABASE = 'data/warehouse.duckdb';
/** The table the sample database holds. */
export const SAMPLE_TABLE = 'model_parameters';
/** The versions the sample holds, oldest first. */
export const SAMPLE_VERSIONS = ['0.3609', '0.3615', '0.3621'] as const;

/** True when `database` (as configured) is the default sample database of `projectDir`. */
export function isSampleDatabase(database: string, projectDir: string): boolean {
  return resolve(projectDir, database) === resolve(projectDir, SAMPLE_DATABASE);
}

// Entities 1..100000 exist from the first version; each later version adds a block of new
// ids and retires a few hundred old ones (chosen by hash, so they are scattered). `u1..u5`
// are per-entity uniforms in [0, 1) (stable across versions); `change_no` and `jitter` are
// drawn per entity *and* version, so each version changes a different subset. Rows come out
// ordered by (version, entity_id) straight from range(), without a sort.
const SAMPLE_SQL = `
CREATE TABLE sample.model_parameters AS
WITH grid AS (
  SELECT r // 100651 AS v, r % 100651 AS entity_id
  FROM range(0, 3 * 100651) t(r)
), draws AS (
  SELECT v, entity_id,
    ${pick(1, 5)} AS region_no,
    ${uniform(2)} AS u1,
    ${uniform(3)} AS u2,
    ${uniform(4)} AS u3,
    ${uniform(5)} AS u4,
    ${uniform(6)} AS u5,
    ${pick(7, 1000, true)} AS change_no,
    ${uniform(8, true)} AS jitter
  FROM grid
  WHERE entity_id >= 1
    AND entity_id <= CASE v WHEN 0 THEN 100000 WHEN 1 THEN 100300 ELSE 100650 END
    AND v < CASE ${pick(9, 400)} WHEN 0 THEN 1 WHEN 1 THEN 2 ELSE 3 END
), scored AS (
  SELECT *,
    round(0.5 + 0.1 * u2 + CASE WHEN change_no < 100 THEN 0.02 * v ELSE 0 END, 4) AS threshold,
    round(least(1, greatest(0, (u1 + u3) / 2
      + (jitter - 0.5) * CASE WHEN change_no BETWEEN 200 AND 239 THEN 0.08 ELSE 0.008 END)), 6) AS score
  FROM draws
)
SELECT
  entity_id,
  CASE v WHEN 0 THEN '0.3609' WHEN 1 THEN '0.3615' ELSE '0.3621' END AS version,
  CASE region_no WHEN 0 THEN 'north' WHEN 1 THEN 'south' WHEN 2 THEN 'east' WHEN 3 THEN 'west' ELSE 'central' END AS region,
  round(0.01 * exp(u1 - 0.5) * CASE WHEN region_no = 2 THEN 1 + 0.15 * v ELSE 1 END, 6) AS learning_rate,
  round(u2 * 0.1, 5) AS l2_penalty,
  round(u3 * 0.5, 3) AS dropout_rate,
  CASE ${pick(10, 3)} WHEN 0 THEN 0.9 WHEN 1 THEN 0.95 ELSE 0.99 END::DOUBLE AS momentum,
  (3 + ${pick(11, 10)})::INTEGER AS max_depth,
  CASE WHEN ${pick(12, 50)} = 0 THEN NULL
    ELSE round(sqrt(-2 * ln(1 - u4)) * cos(2 * pi() * u5), 6) END AS feature_weight,
  threshold,
  CASE WHEN change_no BETWEEN 100 AND 101 THEN NULL ELSE round(u5 - 0.5, 6) END AS calibration_bias,
  score,
  CASE WHEN score >= threshold THEN 'approve' WHEN score >= threshold - 0.2 THEN 'review' ELSE 'decline' END AS label
FROM scored`;

// DuckDB's multi-argument hash(a, b) leaves the high bits of hash(x, 2) and hash(x, 4)
// correlated, so every draw hashes one integer that packs the entity, the version (for
// per-version draws) and the draw number.
function seed(draw: number, perVersion: boolean): string {
  return perVersion ? `hash((entity_id * 4 + v) * 16 + ${draw})` : `hash(entity_id * 16 + ${draw})`;
}
function uniform(draw: number, perVersion = false): string {
  return `(${seed(draw, perVersion)} >> 11)::DOUBLE / 9007199254740992.0`;
}
function pick(draw: number, choices: number, perVersion = false): string {
  return `(${seed(draw, perVersion)} % ${choices})`;
}

const pending = new Map<string, Promise<boolean>>();

/**
 * Creates the sample database at `path` unless it exists; true when this call created it.
 * Safe when several tasks of one process, or several processes, ask at once: each builds
 * its own temp file, and the first to finish publishes it with link(), which never replaces
 * an existing file; the others discard theirs.
 */
export function ensureSampleDatabase(path: string): Promise<boolean> {
  let promise = pending.get(path);
  if (promise === undefined) {
    promise = createSampleDatabase(path).finally(() => pending.delete(path));
    pending.set(path, promise);
  }
  return promise;
}

async function createSampleDatabase(path: string): Promise<boolean> {
  if (existsSync(path)) return false;
  mkdirSync(dirname(path), {recursive: true});
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await generate(temp);
    try {
      linkSync(temp, path);
      return true;
    } catch (error: unknown) {
      if (isErrno(error, 'EEXIST')) return false;
      // Some file systems have no hard links; rename is still atomic, it may just replace
      // a copy that another process published a moment ago (same content).
      if (isErrno(error, 'EPERM') || isErrno(error, 'ENOTSUP') || isErrno(error, 'EXDEV')) {
        renameSync(temp, path);
        return true;
      }
      throw error;
    }
  } finally {
    rmSync(temp, {force: true});
    rmSync(`${temp}.wal`, {force: true});
  }
}

async function generate(file: string): Promise<void> {
  const {DuckDBInstance} = await import('../../src/engines/duckdb-api.js');
  // A private instance: the probe has no engine, and one thread is both faster here (no
  // ordered-merge of parallel inserts) and keeps the row order trivially deterministic.
  const instance = await DuckDBInstance.create(':memory:', {threads: '1', memory_limit: '512MB'});
  try {
    const connection = await instance.connect();
    try {
      await connection.run(`ATTACH ${quoteString(file, 'duckdb')} AS sample`);
      await connection.run(SAMPLE_SQL);
      // DETACH checkpoints, so the file is complete and no .wal is left beside it.
      await connection.run('DETACH sample');
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}
