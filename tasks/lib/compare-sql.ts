/**
 * The comparison of two versions as SQL, generated from a plan and never run here: the
 * validate task runs it in DuckDB over Parquet, or, pushed down, the same plan rendered for
 * BigQuery (bigQueryCountsSql, bigQuerySamplesSql at the end) so that only aggregates and
 * bounded samples come back.
 *
 * The shape of the work, chosen so that 10M-row versions stay fast and bounded:
 * 1. `profile` (one per version): row count, null keys, nulls per column. Cheap, DuckDB
 *    answers most of it from Parquet statistics.
 * 2. `duplicates`: one GROUP BY over the keys of both versions together, keeping only keys
 *    that occur more than once in either; the result is small.
 * 3. `candidates`: one FULL OUTER JOIN of keys and a hash of each row's compared values
 *    (duplicated keys anti-joined away first, so every remaining key is unique per side),
 *    keeping keys in one version only or whose hashes differ.
 * 4. `diff`: the full rows of the candidates only (a semi-join against that small table),
 *    joined and compared exactly, keeping added, removed and matched rows with any raw
 *    difference. Identical rows, usually the vast majority, are never stored: they are
 *    counted by subtraction.
 * 5. `counts` and the CSV exports read only the small temp tables.
 */
import {ConfigurationError} from '../../src/errors.js';
import {quoteIdent, type SqlDialect} from './sql.js';

/** A column as a version's schema reports it (DuckDB type names). */
export interface SchemaColumn {
  name: string;
  type: string;
}

/** `validation.tolerance`: a default absolute and relative tolerance, and per-column overrides. */
export interface ToleranceSettings {
  abs: number;
  rel: number;
  columns: Record<string, {abs?: number; rel?: number}>;
}

/** How one column present in both versions is compared. */
export interface ComparedColumn {
  name: string;
  typeOld: string;
  typeNew: string;
  /** `numeric` compares under tolerance; `exact` compares values (as text when retyped). */
  kind: 'numeric' | 'exact';
  /** The effective tolerance of a numeric column; null for exact columns. */
  tolerance: {abs: number; rel: number} | null;
}

/** A key column, and whether its values are compared as text (types differ across versions). */
export interface KeyColumn {
  name: string;
  /** Typed differently in the versions, and not both numbers: matched as text. */
  asText: boolean;
  /** Typed differently in the versions. */
  retyped: boolean;
}

/** Columns added, removed and retyped between the versions. */
export interface SchemaDiff {
  added: {column: string; type: string}[];
  removed: {column: string; type: string}[];
  retyped: {column: string; old: string; new: string}[];
}

/**
 * Where each version's rows are read from: two Parquet paths (DuckDB), or, in BigQuery, the
 * two version values that filter `ComparePlan.table`.
 */
export interface CompareSources {
  old: string;
  new: string;
}

/** A BigQuery table holding every version, told apart by its version column. */
export interface VersionedTable {
  /** `project.dataset.table`, quoted as one path. */
  path: string;
  versionColumn: string;
  /** The BigQuery type the version values are bound as (STRING, INT64, FLOAT64, NUMERIC, DATE, ...). */
  versionType: string;
  /** BigQuery types by column, for the types the compared schema maps to text (JSON, GEOGRAPHY). */
  columnTypes: Readonly<Record<string, string>>;
}

/** Everything SQL generation needs: pure data from the settings and the two schemas. */
export interface ComparePlan {
  dialect: SqlDialect;
  sources: CompareSources;
  keys: KeyColumn[];
  columns: ComparedColumn[];
  schema: SchemaDiff;
  /** The source table of the BigQuery dialect; null in DuckDB. */
  table: VersionedTable | null;
}

/** One statement and the values bound to its `$name` (DuckDB) or `@name` (BigQuery) parameters. */
export interface SqlStatement {
  sql: string;
  params: Record<string, string | number>;
  /** BigQuery parameter types, for values whose JavaScript type does not say (INT64 vs FLOAT64). */
  types?: Record<string, string>;
}

/** Temp tables the comparison creates on its connection (dropped by `cleanupSql`). */
export const DUPLICATES_TABLE = 'validate_duplicates';
export const CANDIDATES_TABLE = 'validate_candidates';
export const DIFF_TABLE = 'validate_diff';

// A difference that lands exactly on a decimal tolerance (1.1 - 1.0 against 0.1) must not
// count as a change, yet binary doubles make it 0.10000000000000009. When a column has a
// tolerance, forgive the rounding of decimal values into doubles: half a unit in the last
// place of each operand (what rounding a decimal into a double may cost it; integers and
// decimals are exact) and two of the tolerance (its own rounding, and its arithmetic's). No
// more: at 1.7e15, where a unit in the last place is 0.25, a change of 1 exceeds a tolerance
// of 0.5 (0.75 may be 0.5 rounded, an eighth each way). Each term is scaled apart, so that the slack of values near the DOUBLE
// limit does not overflow to infinity and forgive everything.
const OPERAND_SLACK = Number.EPSILON / 2;
const TOLERANCE_SLACK = 2 * Number.EPSILON;

/** Integer types whose difference DuckDB computes exactly as a HUGEINT (a DOUBLE loses digits past 2^53). */
const EXACT_INTEGER_TYPE = /^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)$/;

const NUMERIC_TYPE =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\))$/;

/** Whether a DuckDB type compares numerically (under tolerance). */
export function isNumericType(type: string): boolean {
  return NUMERIC_TYPE.test(type.toUpperCase());
}

/** The settings the plan is made from. */
export interface PlanOptions {
  dialect: SqlDialect;
  sources: CompareSources;
  keys: readonly string[];
  /** `source.columns`: null compares every common column. */
  columns: readonly string[] | null;
  tolerance: ToleranceSettings;
  schemaOld: readonly SchemaColumn[];
  schemaNew: readonly SchemaColumn[];
  /** Required by the BigQuery dialect. */
  table?: VersionedTable;
}

/**
 * Decides what is compared and how: keys must exist in both versions; every other selected
 * column present in both is compared (numerically when both types are numbers); the rest is
 * schema drift.
 */
export function planComparison(options: PlanOptions): ComparePlan {
  const {keys, schemaOld, schemaNew} = options;
  if (keys.length === 0) {
    throw new ConfigurationError('Expected "source.keys" to name at least one key column, got an empty list.');
  }
  const oldTypes = new Map(schemaOld.map((c) => [c.name, c.type]));
  const newTypes = new Map(schemaNew.map((c) => [c.name, c.type]));
  const keyColumns: KeyColumn[] = keys.map((name, index) => {
    const typeOld = oldTypes.get(name);
    const typeNew = newTypes.get(name);
    if (typeOld === undefined || typeNew === undefined) {
      const where = typeOld === undefined && typeNew === undefined ? 'either version' : typeOld === undefined ? 'the old version' : 'the new version';
      throw new ConfigurationError(
        `Key column "${name}" (source.keys[${index}]) is not in ${where}. ` +
          `Columns found: ${[...new Set([...oldTypes.keys(), ...newTypes.keys()])].join(', ') || '(none)'}.`,
        {hint: 'Set source.keys to the columns that identify a row in both versions.'},
      );
    }
    return {name, asText: typeOld !== typeNew && !(isNumericType(typeOld) && isNumericType(typeNew)), retyped: typeOld !== typeNew};
  });

  const keySet = new Set(keys);
  const selected = options.columns === null ? null : new Set(options.columns);
  if (selected !== null) {
    const unknown = [...selected].filter((c) => !oldTypes.has(c) && !newTypes.has(c));
    if (unknown.length > 0) {
      throw new ConfigurationError(
        `source.columns names ${unknown.map((c) => `"${c}"`).join(', ')}, which is in neither version.`,
        {hint: `Columns found: ${[...new Set([...oldTypes.keys(), ...newTypes.keys()])].join(', ')}.`},
      );
    }
  }
  const wanted = (name: string) => !keySet.has(name) && (selected === null || selected.has(name));

  // A key retyped is schema drift too (INTEGER to VARCHAR, BIGINT to DOUBLE), though compared as keys.
  const schema: SchemaDiff = {added: [], removed: [], retyped: keys.flatMap((name) => (oldTypes.get(name) !== newTypes.get(name) ? [{column: name, old: oldTypes.get(name)!, new: newTypes.get(name)!}] : []))};
  const columns: ComparedColumn[] = [];
  for (const {name, type} of schemaOld) {
    if (!wanted(name)) continue;
    const typeNew = newTypes.get(name);
    if (typeNew === undefined) {
      schema.removed.push({column: name, type});
      continue;
    }
    if (typeNew !== type) schema.retyped.push({column: name, old: type, new: typeNew});
    const numeric = isNumericType(type) && isNumericType(typeNew);
    columns.push({
      name,
      typeOld: type,
      typeNew,
      kind: numeric ? 'numeric' : 'exact',
      tolerance: numeric ? toleranceFor(name, options.tolerance) : null,
    });
  }
  for (const {name, type} of schemaNew) {
    if (wanted(name) && !oldTypes.has(name)) schema.added.push({column: name, type});
  }
  if (options.dialect === 'bigquery' && options.table === undefined) throw new TypeError('the BigQuery plan needs its source table');
  return {dialect: options.dialect, sources: options.sources, keys: keyColumns, columns, schema, table: options.table ?? null};
}

function toleranceFor(name: string, tolerance: ToleranceSettings): {abs: number; rel: number} {
  const override = tolerance.columns[name] ?? {};
  return {abs: override.abs ?? tolerance.abs, rel: override.rel ?? tolerance.rel};
}

/** Reads a version's column names and types. */
export function describeSql(plan: Pick<ComparePlan, 'dialect'>, side: keyof CompareSources, path: string): SqlStatement {
  duckdbOnly(plan.dialect);
  return {sql: `DESCRIBE SELECT * FROM read_parquet($${side})`, params: {[side]: path}};
}

/**
 * One row for a version: `row_count`, `nulls_key_<j>` per key column and `nulls_<i>` per
 * compared column, over all its rows. DuckDB answers it from Parquet statistics alone.
 */
export function profileSql(plan: ComparePlan, side: keyof CompareSources): SqlStatement {
  const q = ident(plan);
  const keys = plan.keys.map((k, j) => `, count(*) - count(${q(k.name)}) AS nulls_key_${j}`).join('');
  const nulls = plan.columns.map((c, i) => `, count(*) - count(${q(c.name)}) AS nulls_${i}`).join('');
  return {
    sql: `SELECT count(*) AS row_count${keys}${nulls} FROM ${source(plan, side)}`,
    params: {[side]: plan.sources[side]},
  };
}

/**
 * `null_keys`: rows with any key column null. Needs a scan, so it is only worth running when
 * the profile found nulls in a key and there is more than one key column.
 */
export function nullKeysSql(plan: ComparePlan, side: keyof CompareSources): SqlStatement {
  const q = ident(plan);
  const anyNull = plan.keys.map((k) => `${q(k.name)} IS NULL`).join(' OR ');
  return {
    sql: `SELECT count(*) AS null_keys FROM ${source(plan, side)} WHERE ${anyNull}`,
    params: {[side]: plan.sources[side]},
  };
}

/**
 * Rows (both versions) per part of the duplicate-key aggregate (`duplicatesSql`). Its hash
 * table holds every distinct key: at 10M rows a version, 1.4 GiB in one part (the peak of a
 * whole run), 0.6 GiB in four, at the same speed.
 */
export const DUPLICATES_PART_ROWS = 5_000_000;

/**
 * Creates the table of keys occurring more than once in either version, with both counts:
 * one statement per part, each counting the keys whose hash falls in its part. A key lands
 * in the same part in both versions (a key typed differently in each is hashed as text or
 * as a DOUBLE, alike for equal keys), so each part's counts are whole.
 */
export function duplicatesSql(plan: ComparePlan, parts = 1): SqlStatement[] {
  if (!Number.isSafeInteger(parts) || parts < 1) throw new RangeError(`parts must be a positive integer, got ${parts}`);
  const keys = keyAliases(plan);
  return Array.from({length: parts}, (_, part) => {
    const inPart = parts === 1 ? '' : ` AND ${keyHash(plan, 't')} % ${parts} = ${part}`;
    const side = (s: keyof CompareSources, tag: number) =>
      `SELECT ${keyProjection(plan, 't')}, ${tag} AS s FROM ${source(plan, s)} AS t WHERE ${keysNotNull(plan, 't')}${inPart}`;
    const select =
      `SELECT ${keys}, CAST(count(*) - sum(s) AS BIGINT) AS n_old, CAST(sum(s) AS BIGINT) AS n_new ` +
      `FROM (${side('old', 0)} UNION ALL ${side('new', 1)}) AS u ` +
      `GROUP BY ${keys} HAVING count(*) - sum(s) > 1 OR sum(s) > 1`;
    return {
      sql: part === 0 ? `CREATE OR REPLACE TEMP TABLE ${DUPLICATES_TABLE} AS ${select}` : `INSERT INTO ${DUPLICATES_TABLE} ${select}`,
      params: {...plan.sources},
    };
  });
}

/**
 * Creates the table of candidate keys: present in one version only, or whose row hash differs
 * between the versions. Joining keys and one hash instead of whole rows keeps the join's
 * hash table a fraction of the size (at 10M rows: half the time, a third less memory).
 * A false positive (1 against 1.0 after a retype) costs nothing, as the diff compares
 * values exactly; a false negative needs two different rows with equal 64-bit hashes:
 * DuckDB's hash of a single 8-byte number is a bijection, so a row differing from another
 * value in one numeric column always gets a new hash, and nested values are hashed as text
 * (see hashedValue). What is left is chance, about 2^-64 a changed row (a NULL against the
 * one value of a type that hashes like NULL, say).
 */
export function candidatesSql(plan: ComparePlan): SqlStatement {
  const values = plan.columns.map((c) => hashedValue(plan, c));
  const hash = values.length > 0 ? `hash(${values.join(', ')})` : 'CAST(0 AS UBIGINT)';
  const side = (s: keyof CompareSources) =>
    `SELECT s.* FROM (SELECT ${keyProjection(plan, 't')}, ${hash} AS h FROM ${source(plan, s)} AS t ` +
    `WHERE ${keysNotNull(plan, 't')}) AS s ANTI JOIN ${DUPLICATES_TABLE} AS d ON ${keysEqual(plan, 's', 'd')}`;
  const keys = plan.keys.map((_, j) => `coalesce(o.k${j}, n.k${j}) AS k${j}`).join(', ');
  return {
    sql:
      `CREATE OR REPLACE TEMP TABLE ${CANDIDATES_TABLE} AS SELECT ${keys} ` +
      `FROM (${side('old')}) AS o FULL OUTER JOIN (${side('new')}) AS n ON ${keysEqual(plan, 'o', 'n')} ` +
      `WHERE o.h IS NULL OR n.h IS NULL OR o.h <> n.h`,
    params: {...plan.sources},
  };
}

/**
 * Creates the table of rows that are not identical in both versions, from the candidates:
 * `k<j>` keys, `in_old`, `in_new`, and `o<i>`/`n<i>` the values of compared column i.
 */
export function diffSql(plan: ComparePlan): SqlStatement {
  const side = (s: keyof CompareSources, prefix: 'o' | 'n') => {
    const values = plan.columns.map((c, i) => `, ${valueExpr(plan, c)} AS ${prefix}${i}`).join('');
    return (
      `SELECT s.* FROM (SELECT ${keyProjection(plan, 't')}${values}, true AS present ` +
      `FROM ${source(plan, s)} AS t WHERE ${keysNotNull(plan, 't')}) AS s ` +
      `SEMI JOIN ${CANDIDATES_TABLE} AS c ON ${keysEqual(plan, 's', 'c')}`
    );
  };
  const keys = plan.keys.map((_, j) => `coalesce(o.k${j}, n.k${j}) AS k${j}`).join(', ');
  const values = plan.columns.map((_, i) => `, o.o${i}, n.n${i}`).join('');
  const differs = plan.columns.map((_, i) => ` OR o.o${i} IS DISTINCT FROM n.n${i}`).join('');
  return {
    sql:
      `CREATE OR REPLACE TEMP TABLE ${DIFF_TABLE} AS ` +
      `SELECT ${keys}, o.present IS NOT NULL AS in_old, n.present IS NOT NULL AS in_new${values} ` +
      `FROM (${side('old', 'o')}) AS o FULL OUTER JOIN (${side('new', 'n')}) AS n ON ${keysEqual(plan, 'o', 'n')} ` +
      `WHERE o.present IS NULL OR n.present IS NULL${differs}`,
    params: {...plan.sources},
  };
}

/** Columns counted per statement by `countsSql`: one statement of 900 aggregates took 7 s over 17K rows, batches of 50 0.5 s. */
export const COUNTS_BATCH_COLUMNS = 50;

/**
 * Counts over the two temp tables, as statements of one row each whose columns together are:
 * duplicates (`dup_*`), the diff table's `added`, `removed`, `compared` (matched rows with
 * some raw difference), `changed_rows`, and per column `changed_<i>`, `max_abs_<i>`,
 * `max_rel_<i>`. Conditional aggregates are written as `count_if` and CASE, not FILTER
 * clauses, which DuckDB evaluates one by one (5x slower with hundreds of columns), and wide
 * comparisons are counted `COUNTS_BATCH_COLUMNS` columns at a time.
 */
export function countsSql(plan: ComparePlan): SqlStatement[] {
  // Each column's tolerance parameters apart, so that a statement binds only those it names.
  const params = plan.columns.map(() => ({}) as Record<string, number>);
  const changed = plan.columns.map((c, i) => changedExpr(c, i, params[i]!));
  const paramsOf = (start: number, end: number) => Object.assign({}, ...params.slice(start, end)) as Record<string, number>;
  const both = 'in_old AND in_new';
  const dup = (where: string) => `(SELECT count(*) FROM ${DUPLICATES_TABLE} WHERE ${where})`;
  const dupRows = (column: string) => `(SELECT coalesce(sum(${column}), 0) FROM ${DUPLICATES_TABLE})`;
  const totals: SqlStatement = {
    sql:
      `SELECT ${dup('n_old > 1')} AS dup_old, ${dup('n_new > 1')} AS dup_new, ` +
      `${dup('n_old > 0 AND n_new > 0')} AS dup_matched, ${dup('n_new = 0')} AS dup_removed, ` +
      `${dup('n_old = 0')} AS dup_added, ${dupRows('n_old')} AS dup_rows_old, ${dupRows('n_new')} AS dup_rows_new, ` +
      `${countIf('in_new AND NOT in_old')} AS added, ${countIf('in_old AND NOT in_new')} AS removed, ` +
      `${countIf(both)} AS compared, ` +
      `${countIf(`${both} AND (${changed.length > 0 ? changed.join(' OR ') : 'false'})`)} AS changed_rows FROM ${DIFF_TABLE}`,
    params: paramsOf(0, changed.length),
  };
  const perColumn = plan.columns.map((c, i) => {
    const diffs = c.kind === 'numeric'
      ? `coalesce(max(${absDiffExpr(c, i)}), 0) AS max_abs_${i}, coalesce(max(${relDiffExpr(c, i)}), 0) AS max_rel_${i}`
      : `CAST(NULL AS DOUBLE) AS max_abs_${i}, CAST(NULL AS DOUBLE) AS max_rel_${i}`;
    return `${countIf(changed[i]!)} AS changed_${i}, ${diffs}`;
  });
  const batches: SqlStatement[] = [];
  for (let start = 0; start < perColumn.length; start += COUNTS_BATCH_COLUMNS) {
    const end = Math.min(start + COUNTS_BATCH_COLUMNS, perColumn.length);
    batches.push({
      sql: `SELECT ${perColumn.slice(start, end).join(', ')} FROM ${DIFF_TABLE} WHERE ${both}`,
      params: paramsOf(start, end),
    });
  }
  return [totals, ...batches];
}

/** Rows where `condition` holds; 0, not null, over no rows. */
const countIf = (condition: string) => `coalesce(count_if(${condition}), 0)`;

/** The slot of the values already turned into text (a key no DuckDB type name can take). */
const TEXT_SLOT = 'text';

/**
 * `mismatches.csv`: one row per changed cell of a compared row, ordered by keys then column.
 *
 * The cells are sorted with their values as typed and turned into text after the sort (the
 * subquery's order is kept by a SELECT over it): sorting them as text took 12.3 s and 2.3 GB
 * for 16M changed cells (2M rows of 8 numbers, all changed), typed 8.7 s and 1.5 GB. The
 * typed values travel in one column per type and side (`old_0`, `new_0`, ...), since a
 * UNION ALL would otherwise widen an integer to a double and change its text; columns
 * compared as values (text, dates, lists) are text from the start.
 */
export function mismatchesCopySql(plan: ComparePlan, target: string): SqlStatement {
  const q = ident(plan);
  const params: Record<string, string | number> = {target};
  const keys = keyAliases(plan);
  const slots = {old: new Map<string, string>(), new: new Map<string, string>()};
  const slotOf = (side: 'old' | 'new', type: string | null) => {
    const key = type ?? TEXT_SLOT;
    const known = slots[side].get(key);
    if (known !== undefined) return known;
    const name = type === null ? `${side}_text` : `${side}_${slots[side].size}`;
    slots[side].set(key, name);
    return name;
  };
  const cells = plan.columns.map((c, i) => {
    params[`column_${i}`] = c.name;
    const numeric = c.kind === 'numeric';
    return {
      i,
      old: {slot: slotOf('old', numeric ? c.typeOld : null), value: numeric ? `o${i}` : `CAST(o${i} AS VARCHAR)`},
      new: {slot: slotOf('new', numeric ? c.typeNew : null), value: numeric ? `n${i}` : `CAST(n${i} AS VARCHAR)`},
      diffs: `${numeric ? absDiffExpr(c, i) : 'CAST(NULL AS DOUBLE)'} AS abs_diff, ${numeric ? relDiffExpr(c, i) : 'CAST(NULL AS DOUBLE)'} AS rel_diff`,
      where: `in_old AND in_new AND ${changedExpr(c, i, params)}`,
    };
  });
  const allSlots = [...slots.old.values(), ...slots.new.values()];
  const parts = cells.map(({i, old, new: next, diffs, where}) => {
    const values = allSlots.map((slot) => `${slot === old.slot ? old.value : slot === next.slot ? next.value : 'NULL'} AS ${slot}`);
    return `SELECT ${keys}, ${i} AS column_index, CAST($column_${i} AS VARCHAR) AS column_name, ${values.join(', ')}, ${diffs} FROM ${DIFF_TABLE} WHERE ${where}`;
  });
  const text = (side: 'old' | 'new') => {
    const names = [...slots[side]].map(([type, slot]) => (type === TEXT_SLOT ? `src.${slot}` : `CAST(src.${slot} AS VARCHAR)`));
    return names.length === 0 ? 'CAST(NULL AS VARCHAR)' : names.length === 1 ? names[0]! : `coalesce(${names.join(', ')})`;
  };
  if (parts.length === 0) {
    parts.push(`SELECT ${keys}, 0 AS column_index, CAST(NULL AS VARCHAR) AS column_name, CAST(NULL AS DOUBLE) AS abs_diff, CAST(NULL AS DOUBLE) AS rel_diff FROM ${DIFF_TABLE} WHERE false`);
  }
  return {
    sql:
      `COPY (SELECT ${namedKeys(plan)}, src.column_name AS ${q('column')}, ${text('old')} AS old_value, ${text('new')} AS new_value, src.abs_diff, src.rel_diff ` +
      `FROM (SELECT * FROM (${parts.join(' UNION ALL ')}) AS src ORDER BY ${sourceKeys(plan)}, src.column_index) AS src) TO $target ${csvOptions}`,
    params,
  };
}

/** `added_keys.csv` or `removed_keys.csv`: distinct keys present in only one version, ordered. */
export function keysCopySql(plan: ComparePlan, which: 'added' | 'removed', target: string): SqlStatement {
  const keys = keyAliases(plan);
  const [diffWhere, dupWhere] = which === 'added' ? ['in_new AND NOT in_old', 'n_old = 0'] : ['in_old AND NOT in_new', 'n_new = 0'];
  return {
    sql:
      `COPY (SELECT ${namedKeys(plan)} FROM (SELECT ${keys} FROM ${DIFF_TABLE} WHERE ${diffWhere} ` +
      `UNION ALL SELECT ${keys} FROM ${DUPLICATES_TABLE} WHERE ${dupWhere}) AS src ORDER BY ${sourceKeys(plan)}) TO $target ${csvOptions}`,
    params: {target},
  };
}

/** `duplicate_keys.csv`: keys occurring more than once in either version, with both counts. */
export function duplicatesCopySql(plan: ComparePlan, target: string): SqlStatement {
  return {
    sql:
      `COPY (SELECT ${namedKeys(plan)}, src.n_old AS count_old, src.n_new AS count_new FROM ${DUPLICATES_TABLE} AS src ` +
      `ORDER BY ${sourceKeys(plan)}) TO $target ${csvOptions}`,
    params: {target},
  };
}

/** Drops the temp tables. */
export function cleanupSql(): SqlStatement[] {
  return [DIFF_TABLE, CANDIDATES_TABLE, DUPLICATES_TABLE].map((table) => ({sql: `DROP TABLE IF EXISTS ${table}`, params: {}}));
}

const csvOptions = '(FORMAT csv, HEADER true, DELIMITER \',\')';

// Column i differs when the raw values differ and, for numbers with a tolerance, the
// difference is beyond it. NaN equals NaN and null equals null (IS DISTINCT FROM says so
// in DuckDB); a non-finite value against anything else is a change.
function changedExpr(column: ComparedColumn, i: number, params: Record<string, string | number>): string {
  const distinct = `o${i} IS DISTINCT FROM n${i}`;
  const tolerance = column.tolerance;
  if (tolerance === null || (tolerance.abs === 0 && tolerance.rel === 0)) return `(${distinct})`;
  params[`abs_${i}`] = tolerance.abs;
  params[`rel_${i}`] = tolerance.rel;
  const o = `CAST(o${i} AS DOUBLE)`;
  const n = `CAST(n${i} AS DOUBLE)`;
  const limit = `(CAST($abs_${i} AS DOUBLE) + CAST($rel_${i} AS DOUBLE) * abs(${o}))`;
  const within = `isfinite(${o}) AND isfinite(${n}) AND ${difference(column, i)} <= ${toleranceBound(column, o, n, limit)}`;
  return `(${distinct} AND NOT coalesce(${within}, false))`;
}

/**
 * The largest |new - old| a column's tolerance (`limit`, the SQL of `abs + rel * |old|`)
 * allows, with the rounding of OPERAND_SLACK and TOLERANCE_SLACK forgiven: the same SQL in both dialects.
 */
function toleranceBound(column: ComparedColumn, o: string, n: string, limit: string): string {
  // Exact operands are subtracted exactly: only the difference is rounded, not the operands.
  const exact = exactIntegers(column) || commonDecimalScale(column) !== undefined;
  const operands = exact ? '' : `${OPERAND_SLACK} * abs(${o}) + ${OPERAND_SLACK} * abs(${n}) + `;
  return `${limit} + ${operands}${TOLERANCE_SLACK} * ${limit}`;
}

function exactIntegers(column: ComparedColumn): boolean {
  return EXACT_INTEGER_TYPE.test(column.typeOld) && EXACT_INTEGER_TYPE.test(column.typeNew);
}

const DECIMAL_TYPE = /^DECIMAL\((\d+),\s*(\d+)\)$/i;

/**
 * When both versions hold DECIMALs that one DECIMAL(38, s) holds without loss: that scale s,
 * in which their difference is taken exactly (a DOUBLE keeps 15-17 digits: 123456789012345678
 * against ...728 would differ by 48, and a change of 1e-8 at 1e7 would vanish in the rounding).
 */
function commonDecimalScale(column: ComparedColumn): number | undefined {
  const [a, b] = [DECIMAL_TYPE.exec(column.typeOld), DECIMAL_TYPE.exec(column.typeNew)];
  if (a === null || b === null) return undefined;
  const scale = Math.max(Number(a[2]), Number(b[2]));
  const digits = Math.max(Number(a[1]) - Number(a[2]), Number(b[1]) - Number(b[2]));
  return digits + scale <= 38 ? scale : undefined;
}

// |new - old| as a DOUBLE: computed exactly for integers (2^53 + 1 against 2^53 is 1, not 0)
// and DECIMALs (but past what DECIMAL(38, s) holds, where the DOUBLEs' difference is as
// good), and infinite when the difference of two finite doubles exceeds the DOUBLE range.
function difference(column: ComparedColumn, i: number): string {
  const doubles = `abs(CAST(n${i} AS DOUBLE) - CAST(o${i} AS DOUBLE))`;
  if (exactIntegers(column)) return `CAST(abs(CAST(n${i} AS HUGEINT) - CAST(o${i} AS HUGEINT)) AS DOUBLE)`;
  const scale = commonDecimalScale(column);
  if (scale === undefined) return doubles;
  const decimal = `DECIMAL(38, ${scale})`;
  return `CASE WHEN ${doubles} < 1e${37 - scale} THEN CAST(abs(CAST(n${i} AS ${decimal}) - CAST(o${i} AS ${decimal})) AS DOUBLE) ELSE ${doubles} END`;
}

// A change to or from a non-finite value (±Infinity, NaN) has an infinite difference, which
// no limit allows (NaN against NaN, like two nulls, is no change).
const nonFiniteChange = (i: number) => `o${i} IS DISTINCT FROM n${i} AND o${i} IS NOT NULL AND n${i} IS NOT NULL`;

function absDiffExpr(column: ComparedColumn, i: number): string {
  const o = `CAST(o${i} AS DOUBLE)`;
  const n = `CAST(n${i} AS DOUBLE)`;
  return `CASE WHEN isfinite(${o}) AND isfinite(${n}) THEN ${difference(column, i)} WHEN ${nonFiniteChange(i)} THEN CAST('Infinity' AS DOUBLE) END`;
}

// Relative to the old value; undefined (null) when the old value is zero.
function relDiffExpr(column: ComparedColumn, i: number): string {
  const o = `CAST(o${i} AS DOUBLE)`;
  const n = `CAST(n${i} AS DOUBLE)`;
  return `CASE WHEN isfinite(${o}) AND isfinite(${n}) THEN (CASE WHEN ${o} <> 0 THEN ${difference(column, i)} / abs(${o}) END) WHEN ${nonFiniteChange(i)} THEN CAST('Infinity' AS DOUBLE) END`;
}

function source(plan: ComparePlan, side: keyof CompareSources): string {
  duckdbOnly(plan.dialect);
  return `read_parquet($${side})`;
}

function keyExpr(plan: ComparePlan, key: KeyColumn, alias: string): string {
  const column = `${alias}.${quoteIdent(key.name, plan.dialect)}`;
  return key.asText ? `CAST(${column} AS VARCHAR)` : column;
}

// A compared column's value as both versions are compared: as text when an exact column was
// retyped (VARCHAR '1' against INTEGER 1), as stored otherwise.
function valueExpr(plan: ComparePlan, column: ComparedColumn): string {
  const value = `t.${quoteIdent(column.name, plan.dialect)}`;
  return column.kind === 'exact' && column.typeOld !== column.typeNew ? `CAST(${value} AS VARCHAR)` : value;
}

// Lists, structs, maps and unions are hashed as their text: DuckDB's hash of them gives equal
// hashes to different values ([0] and [0, 0]; NULL, [] and [NULL]; a struct of NULLs and NULL).
const NESTED_DUCKDB_TYPE = /\[\d*\]$|^(STRUCT|MAP|UNION)\(/i;

/** A compared column's value as the candidates' row hash takes it (see NESTED_DUCKDB_TYPE). */
function hashedValue(plan: ComparePlan, column: ComparedColumn): string {
  const value = valueExpr(plan, column);
  const nested = NESTED_DUCKDB_TYPE.test(column.typeOld) || NESTED_DUCKDB_TYPE.test(column.typeNew);
  return nested && !value.startsWith('CAST(') ? `CAST(${value} AS VARCHAR)` : value;
}

function keysEqual(plan: ComparePlan, left: string, right: string): string {
  return plan.keys.map((_, j) => `${left}.k${j} = ${right}.k${j}`).join(' AND ');
}

// A hash of a row's key that is equal for equal keys across the versions: a key numeric in
// both but typed differently (DOUBLE and BIGINT, say) is hashed as a DOUBLE, since DuckDB's
// hash depends on the type.
function keyHash(plan: ComparePlan, alias: string): string {
  const columns = plan.keys.map((k) => (k.retyped && !k.asText ? `CAST(${alias}.${quoteIdent(k.name, plan.dialect)} AS DOUBLE)` : keyExpr(plan, k, alias)));
  return `hash(${columns.join(', ')})`;
}

function keyProjection(plan: ComparePlan, alias: string): string {
  return plan.keys.map((k, j) => `${keyExpr(plan, k, alias)} AS k${j}`).join(', ');
}

function keysNotNull(plan: ComparePlan, alias: string): string {
  return plan.keys.map((k) => `${alias}.${quoteIdent(k.name, plan.dialect)} IS NOT NULL`).join(' AND ');
}

function keyAliases(plan: ComparePlan): string {
  return plan.keys.map((_, j) => `k${j}`).join(', ');
}

// The CSVs name their columns after the user's keys, which may themselves be called `k0`
// or `n_old`: every reference to an internal column past that point is qualified (`src.`),
// so it can never resolve to an output alias instead.
function namedKeys(plan: ComparePlan): string {
  return plan.keys.map((k, j) => `src.k${j} AS ${quoteIdent(k.name, plan.dialect)}`).join(', ');
}

function sourceKeys(plan: ComparePlan): string {
  return plan.keys.map((_, j) => `src.k${j}`).join(', ');
}

function ident(plan: Pick<ComparePlan, 'dialect'>): (name: string) => string {
  return (name) => quoteIdent(name, plan.dialect);
}

// ---------------------------------------------------------------------------------------
// BigQuery: the same plan as self-contained queries over one table filtered by version.
// No temp tables live between statements, so each query restates the comparison as CTEs
// and returns only aggregates or bounded samples; the warehouse does the joins.

/**
 * The comparison's figures in one BigQuery query: per version `o_`/`n_` + `row_count`,
 * `null_keys`, `nulls_<i>`; then the names `countsSql` returns (`dup_*`, `added`, `removed`,
 * `compared`, `changed_rows`, `changed_<i>`, `max_abs_<i>`, `max_rel_<i>`), where `compared`
 * counts every matched unique key, identical rows included.
 */
export function bigQueryCountsSql(plan: ComparePlan): SqlStatement {
  const {params, types} = bigQueryParams(plan);
  const changed = plan.columns.map((c, i) => bigQueryChangedExpr(c, i, params, types));
  const both = 'in_old AND in_new';
  const anyNullKey = plan.keys.map((_, j) => `k${j} IS NULL`).join(' OR ');
  const profile = (cte: string, prefix: string) =>
    `SELECT COUNT(*) AS ${prefix}_row_count, COUNTIF(${anyNullKey}) AS ${prefix}_null_keys` +
    plan.columns.map((_, i) => `, COUNTIF(v${i} IS NULL) AS ${prefix}_nulls_${i}`).join('') +
    ` FROM ${cte}`;
  const duplicates =
    'SELECT COUNTIF(n_old > 1) AS dup_old, COUNTIF(n_new > 1) AS dup_new, COUNTIF(n_old > 0 AND n_new > 0) AS dup_matched, ' +
    'COUNTIF(n_new = 0) AS dup_removed, COUNTIF(n_old = 0) AS dup_added, ' +
    'COALESCE(SUM(n_old), 0) AS dup_rows_old, COALESCE(SUM(n_new), 0) AS dup_rows_new FROM dup';
  const perColumn = plan.columns.map((c, i) => {
    const diffs =
      c.kind === 'numeric'
        ? `, COALESCE(MAX(IF(${both}, ${bigQueryAbsDiff(c, i)}, NULL)), 0) AS max_abs_${i}` +
          `, COALESCE(MAX(IF(${both}, ${bigQueryRelDiff(c, i)}, NULL)), 0) AS max_rel_${i}`
        : `, CAST(NULL AS FLOAT64) AS max_abs_${i}, CAST(NULL AS FLOAT64) AS max_rel_${i}`;
    return `, COUNTIF(${both} AND ${changed[i]}) AS changed_${i}${diffs}`;
  });
  const joined =
    `SELECT COUNTIF(in_new AND NOT in_old) AS added, COUNTIF(in_old AND NOT in_new) AS removed, COUNTIF(${both}) AS compared, ` +
    `COUNTIF(${both} AND (${changed.length > 0 ? changed.join(' OR ') : 'FALSE'})) AS changed_rows${perColumn.join('')} FROM j`;
  return {
    sql:
      `${bigQueryCtes(plan)} SELECT po.*, pn.*, dd.*, jj.* FROM (${profile('src_o', 'o')}) AS po ` +
      `CROSS JOIN (${profile('src_n', 'n')}) AS pn CROSS JOIN (${duplicates}) AS dd CROSS JOIN (${joined}) AS jj`,
    params,
    types,
  };
}

/** The kinds of sample rows `bigQuerySamplesSql` returns. */
export type SampleKind = 'mismatch' | 'added' | 'removed' | 'duplicate';

/**
 * Bounded samples of everything the CSVs list, in one query: rows of `kind` (see SampleKind),
 * `k<j>`, `column_index`, `column_name`, `old_value`, `new_value` (as text), `abs_diff`,
 * `rel_diff`, `count_old`, `count_new`; at most `@max_rows` of each kind, the first in key
 * order (then column order), so a truncated sample is the same on every run.
 */
export function bigQuerySamplesSql(plan: ComparePlan, maxRows: number): SqlStatement {
  const {params, types} = bigQueryParams(plan);
  params['max_rows'] = maxRows;
  types['max_rows'] = 'INT64';
  const keys = keyAliases(plan);
  const noValues =
    'CAST(NULL AS INT64) AS column_index, CAST(NULL AS STRING) AS column_name, CAST(NULL AS STRING) AS old_value, ' +
    'CAST(NULL AS STRING) AS new_value, CAST(NULL AS FLOAT64) AS abs_diff, CAST(NULL AS FLOAT64) AS rel_diff';
  const noCounts = 'CAST(NULL AS INT64) AS count_old, CAST(NULL AS INT64) AS count_new';
  const parts = bigQueryMismatches(plan, params, types, noCounts);
  parts.push(
    `SELECT 'added' AS kind, ${keys}, ${noValues}, ${noCounts} FROM j WHERE in_new AND NOT in_old`,
    `SELECT 'added' AS kind, ${keys}, ${noValues}, ${noCounts} FROM dup WHERE n_old = 0`,
    `SELECT 'removed' AS kind, ${keys}, ${noValues}, ${noCounts} FROM j WHERE in_old AND NOT in_new`,
    `SELECT 'removed' AS kind, ${keys}, ${noValues}, ${noCounts} FROM dup WHERE n_new = 0`,
    `SELECT 'duplicate' AS kind, ${keys}, ${noValues}, n_old AS count_old, n_new AS count_new FROM dup`,
  );
  const columns = `kind, ${keys}, column_index, column_name, old_value, new_value, abs_diff, rel_diff, count_old, count_new`;
  return {
    sql:
      `${bigQueryCtes(plan)}, samples AS (${parts.join(' UNION ALL ')}) ` +
      `SELECT ${columns} FROM (SELECT ${columns}, ROW_NUMBER() OVER (PARTITION BY kind ORDER BY ${keys}, column_index) AS rn ` +
      `FROM samples) AS ranked WHERE rn <= @max_rows`,
    params,
    types,
  };
}

/**
 * Every mismatch of the comparison, as rows of `bigQuerySamplesSql`'s shape (kind 'mismatch'),
 * one SELECT per compared column.
 */
function bigQueryMismatches(plan: ComparePlan, params: Record<string, string | number>, types: Record<string, string>, noCounts: string): string[] {
  const keys = keyAliases(plan);
  return plan.columns.map((c, i) => {
    params[`column_${i}`] = c.name;
    const numeric = c.kind === 'numeric';
    return (
      `SELECT 'mismatch' AS kind, ${keys}, ${i} AS column_index, CAST(@column_${i} AS STRING) AS column_name, ` +
      `${bigQueryText(plan, c, 'old', `o${i}`)} AS old_value, ${bigQueryText(plan, c, 'new', `n${i}`)} AS new_value, ` +
      `${numeric ? bigQueryAbsDiff(c, i) : 'CAST(NULL AS FLOAT64)'} AS abs_diff, ${numeric ? bigQueryRelDiff(c, i) : 'CAST(NULL AS FLOAT64)'} AS rel_diff, ` +
      `${noCounts} FROM j WHERE in_old AND in_new AND ${bigQueryChangedExpr(c, i, params, types)}`
    );
  });
}

/**
 * Every mismatch written to the BigQuery table `destination` (`project.dataset.table`),
 * replaced: the key columns under their names, then column, old_value, new_value, abs_diff,
 * rel_diff, as mismatches.csv has them, unbounded.
 */
export function bigQueryMismatchTableSql(plan: ComparePlan, destination: string): SqlStatement {
  const {params, types} = bigQueryParams(plan);
  const noCounts = 'CAST(NULL AS INT64) AS count_old, CAST(NULL AS INT64) AS count_new';
  const keys = plan.keys.map((k, j) => `k${j} AS ${quoteIdent(k.name, 'bigquery')}`).join(', ');
  const parts = bigQueryMismatches(plan, params, types, noCounts);
  const rows =
    parts.length > 0
      ? parts.join(' UNION ALL ')
      : `SELECT ${keyAliases(plan)}, CAST(NULL AS STRING) AS column_name, CAST(NULL AS STRING) AS old_value, CAST(NULL AS STRING) AS new_value, ` +
        'CAST(NULL AS FLOAT64) AS abs_diff, CAST(NULL AS FLOAT64) AS rel_diff FROM j WHERE FALSE';
  return {
    sql:
      `CREATE OR REPLACE TABLE ${quoteIdent(destination, 'bigquery')} AS ${bigQueryCtes(plan)}, mismatches AS (${rows}) ` +
      `SELECT ${keys}, column_name AS \`column\`, old_value, new_value, abs_diff, rel_diff FROM mismatches`,
    params,
    types,
  };
}

// The version values and the tolerances, typed: a tolerance of 1 must bind as FLOAT64.
function bigQueryParams(plan: ComparePlan): {params: Record<string, string | number>; types: Record<string, string>} {
  const table = bigQueryTable(plan);
  const params: Record<string, string | number> = {old_version: versionValue(plan.sources.old, table), new_version: versionValue(plan.sources.new, table)};
  const types: Record<string, string> = {old_version: table.versionType, new_version: table.versionType};
  return {params, types};
}

function versionValue(version: string, table: VersionedTable): string | number {
  return table.versionType === 'FLOAT64' ? Number(version) : version;
}

/**
 * The shared CTEs: `src_o`/`src_n` (each version's keys `k<j>` and compared values `v<i>`),
 * `dup` (keys occurring more than once in either, with both counts), `o`/`n` (the rows with
 * unique, non-null keys) and `j` (their full outer join on the keys: `in_old`, `in_new`,
 * `o<i>`, `n<i>`).
 */
function bigQueryCtes(plan: ComparePlan): string {
  const table = bigQueryTable(plan);
  const keyColumns = plan.keys.map((k, j) => `${bigQueryKeyExpr(k)} AS k${j}`).join(', ');
  const values = plan.columns.map((c, i) => `, ${bigQueryValueExpr(plan, c)} AS v${i}`).join('');
  const side = (param: string) =>
    `SELECT ${keyColumns}${values} FROM ${quoteIdent(table.path, 'bigquery')} AS t ` +
    `WHERE t.${quoteIdent(table.versionColumn, 'bigquery')} = @${param}`;
  const keys = keyAliases(plan);
  const notNull = (alias: string) => plan.keys.map((_, j) => `${alias}.k${j} IS NOT NULL`).join(' AND ');
  const equal = (a: string, b: string) => plan.keys.map((_, j) => `${a}.k${j} = ${b}.k${j}`).join(' AND ');
  const unique = (cte: string) =>
    `SELECT s.*, TRUE AS present FROM ${cte} AS s LEFT JOIN dup AS d ON ${equal('s', 'd')} WHERE ${notNull('s')} AND d.n_old IS NULL`;
  const joinedKeys = plan.keys.map((_, j) => `COALESCE(o.k${j}, n.k${j}) AS k${j}`).join(', ');
  const joinedValues = plan.columns.map((_, i) => `, o.v${i} AS o${i}, n.v${i} AS n${i}`).join('');
  return (
    `WITH src_o AS (${side('old_version')}), src_n AS (${side('new_version')}), ` +
    `dup AS (SELECT ${keys}, COUNTIF(sd = 0) AS n_old, COUNTIF(sd = 1) AS n_new FROM (` +
    `SELECT ${keys}, 0 AS sd FROM src_o AS s WHERE ${notNull('s')} UNION ALL SELECT ${keys}, 1 AS sd FROM src_n AS s WHERE ${notNull('s')}` +
    `) AS keyed GROUP BY ${keys} HAVING COUNTIF(sd = 0) > 1 OR COUNTIF(sd = 1) > 1), ` +
    `o AS (${unique('src_o')}), n AS (${unique('src_n')}), ` +
    `j AS (SELECT ${joinedKeys}, o.present IS NOT NULL AS in_old, n.present IS NOT NULL AS in_new${joinedValues} ` +
    `FROM o FULL OUTER JOIN n ON ${equal('o', 'n')})`
  );
}

function bigQueryTable(plan: ComparePlan): VersionedTable {
  if (plan.dialect !== 'bigquery' || plan.table === null) throw new Error('a BigQuery query needs a BigQuery plan with its table');
  return plan.table;
}

function bigQueryKeyExpr(key: KeyColumn): string {
  const column = `t.${quoteIdent(key.name, 'bigquery')}`;
  return key.asText ? `CAST(${column} AS STRING)` : column;
}

const NESTED_TYPE = /\[\]$|^(STRUCT|MAP|UNION)\(/i;

// BigQuery cannot compare arrays, JSON or geographies with `=`: those are compared as their
// canonical text; a retyped exact column as text, as in DuckDB.
function bigQueryValueExpr(plan: ComparePlan, column: ComparedColumn): string {
  const value = `t.${quoteIdent(column.name, 'bigquery')}`;
  const remote = bigQueryTable(plan).columnTypes[column.name];
  if (remote === 'GEOGRAPHY') return `ST_ASTEXT(${value})`;
  if (remote === 'JSON' || NESTED_TYPE.test(column.typeOld) || NESTED_TYPE.test(column.typeNew)) {
    return `IF(${value} IS NULL, NULL, TO_JSON_STRING(${value}))`;
  }
  return column.kind === 'exact' && column.typeOld !== column.typeNew ? `CAST(${value} AS STRING)` : value;
}

// A compared value as text for the mismatch sample (bytes as base64: they need not be UTF-8).
function bigQueryText(plan: ComparePlan, column: ComparedColumn, side: 'old' | 'new', expr: string): string {
  const type = side === 'old' ? column.typeOld : column.typeNew;
  if (bigQueryValueExpr(plan, column) !== `t.${quoteIdent(column.name, 'bigquery')}`) return expr;
  return type.toUpperCase() === 'BLOB' ? `TO_BASE64(${expr})` : `CAST(${expr} AS STRING)`;
}

const FLOAT_TYPE = /^(FLOAT|DOUBLE|REAL)$/i;

// As changedExpr: NaN equals NaN and null equals null; a non-finite value against anything
// else is a change; numbers within `abs + rel * |old|` (plus rounding slack) are unchanged.
function bigQueryChangedExpr(column: ComparedColumn, i: number, params: Record<string, string | number>, types: Record<string, string>): string {
  const o = `CAST(o${i} AS FLOAT64)`;
  const n = `CAST(n${i} AS FLOAT64)`;
  const distinct = bigQueryDistinct(column, i);
  const tolerance = column.tolerance;
  if (tolerance === null || (tolerance.abs === 0 && tolerance.rel === 0)) return `(${distinct})`;
  params[`abs_${i}`] = tolerance.abs;
  params[`rel_${i}`] = tolerance.rel;
  types[`abs_${i}`] = 'FLOAT64';
  types[`rel_${i}`] = 'FLOAT64';
  const limit = `(CAST(@abs_${i} AS FLOAT64) + CAST(@rel_${i} AS FLOAT64) * ABS(${o}))`;
  const within = `${finite(o)} AND ${finite(n)} AND ${bigQueryDifference(column, i)} <= ${toleranceBound(column, o, n, limit)}`;
  return `(${distinct} AND NOT COALESCE(${within}, FALSE))`;
}

// |new - old| as a FLOAT64, computed exactly for integers (as NUMERIC, which holds any INT64), as in `difference`.
// DECIMALs (NUMERIC and BIGNUMERIC) exactly too, as BIGNUMERIC, which holds any NUMERIC difference.
function bigQueryDifference(column: ComparedColumn, i: number): string {
  if (exactIntegers(column)) return `CAST(ABS(CAST(n${i} AS NUMERIC) - CAST(o${i} AS NUMERIC)) AS FLOAT64)`;
  const doubles = `ABS(CAST(n${i} AS FLOAT64) - CAST(o${i} AS FLOAT64))`;
  // Past BIGNUMERIC's range (~5.7e38) the difference of the doubles is as good.
  if (commonDecimalScale(column) !== undefined) return `COALESCE(CAST(ABS(SAFE_SUBTRACT(CAST(n${i} AS BIGNUMERIC), CAST(o${i} AS BIGNUMERIC))) AS FLOAT64), ${doubles})`;
  return doubles;
}

function finite(x: string): string {
  return `NOT IS_INF(${x}) AND NOT IS_NAN(${x})`;
}

// `IS DISTINCT FROM` spelled out: node-sql-parser's BigQuery grammar (the test's check) lacks
// it. Values differ, or exactly one is null; NaN equals NaN.
function bigQueryDistinct(column: ComparedColumn, i: number): string {
  const distinct = `COALESCE(o${i} <> n${i}, (o${i} IS NULL) <> (n${i} IS NULL))`;
  if (column.kind !== 'numeric' || !(FLOAT_TYPE.test(column.typeOld) || FLOAT_TYPE.test(column.typeNew))) return distinct;
  return `${distinct} AND NOT COALESCE(IS_NAN(CAST(o${i} AS FLOAT64)) AND IS_NAN(CAST(n${i} AS FLOAT64)), FALSE)`;
}

// As nonFiniteChange: a change to or from a non-finite value has an infinite difference.
function bigQueryNonFinite(column: ComparedColumn, i: number): string {
  return `IF(${bigQueryDistinct(column, i)} AND o${i} IS NOT NULL AND n${i} IS NOT NULL, CAST('inf' AS FLOAT64), NULL)`;
}

function bigQueryAbsDiff(column: ComparedColumn, i: number): string {
  const o = `CAST(o${i} AS FLOAT64)`;
  const n = `CAST(n${i} AS FLOAT64)`;
  return `IF(${finite(o)} AND ${finite(n)}, ${bigQueryDifference(column, i)}, ${bigQueryNonFinite(column, i)})`;
}

// IEEE_DIVIDE never raises, even if the planner evaluates the division before the guard.
function bigQueryRelDiff(column: ComparedColumn, i: number): string {
  const o = `CAST(o${i} AS FLOAT64)`;
  const n = `CAST(n${i} AS FLOAT64)`;
  return `IF(${finite(o)} AND ${finite(n)}, IF(${o} <> 0, IEEE_DIVIDE(${bigQueryDifference(column, i)}, ABS(${o})), NULL), ${bigQueryNonFinite(column, i)})`;
}

/** The DuckDB table validate stages the BigQuery samples in (the rows of `bigQuerySamplesSql`). */
export const SAMPLES_TABLE = 'validate_samples';

/** An empty samples table, for when no sample was worth a query. */
export function emptySamplesSql(plan: ComparePlan): SqlStatement {
  const keys = plan.keys.map((_, j) => `, CAST(NULL AS VARCHAR) AS k${j}`).join('');
  return {
    sql:
      `CREATE OR REPLACE TEMP TABLE ${SAMPLES_TABLE} AS SELECT CAST(NULL AS VARCHAR) AS kind${keys}, CAST(NULL AS BIGINT) AS column_index, ` +
      'CAST(NULL AS VARCHAR) AS column_name, CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value, ' +
      'CAST(NULL AS DOUBLE) AS abs_diff, CAST(NULL AS DOUBLE) AS rel_diff, CAST(NULL AS BIGINT) AS count_old, CAST(NULL AS BIGINT) AS count_new WHERE false',
    params: {},
  };
}

/**
 * One CSV from the staged BigQuery samples, in the same shape and order as the DuckDB
 * comparison writes it: `mismatches.csv`, `added_keys.csv`, `removed_keys.csv` or
 * `duplicate_keys.csv`.
 */
export function samplesCopySql(plan: ComparePlan, kind: SampleKind, target: string): SqlStatement {
  const q = ident({dialect: 'duckdb'});
  const named = plan.keys.map((k, j) => `src.k${j} AS ${q(k.name)}`).join(', ');
  const order = sourceKeys(plan);
  const select =
    kind === 'mismatch'
      ? `${named}, src.column_name AS ${q('column')}, src.old_value, src.new_value, src.abs_diff, src.rel_diff`
      : kind === 'duplicate'
        ? `${named}, src.count_old, src.count_new`
        : named;
  return {
    sql:
      `COPY (SELECT ${select} FROM ${SAMPLES_TABLE} AS src WHERE src.kind = $kind ` +
      `ORDER BY ${order}${kind === 'mismatch' ? ', src.column_index' : ''}) TO $target ${csvOptions}`,
    params: {kind, target},
  };
}

// The DuckDB statements use temp tables and Parquet files; BigQuery gets its own
// self-contained queries (bigQueryCountsSql, bigQuerySamplesSql) over the same plan.
function duckdbOnly(dialect: SqlDialect): void {
  if (dialect !== 'duckdb') throw new Error(`this statement is DuckDB's; BigQuery uses bigQueryCountsSql and bigQuerySamplesSql`);
}
