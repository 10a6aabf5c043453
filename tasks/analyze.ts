/**
 * The analyze task (the ParameterAnalyzer): summary statistics, distribution shift (KS,
 * PSI, Wasserstein), per-segment shift, largest movers and category frequencies of the two
 * versions. Two engines, one set of figures: DuckDB over the extracted rows (exact; the
 * sorted walk of `lib/shift.ts`), or BigQuery over the table (pushed down; binned counts
 * with error bounds). The SQL is built in `lib/analyze-sql.ts`, the figures assembled in
 * `lib/analysis-figures.ts`.
 */
import {writeFile} from 'node:fs/promises';
import type {DuckDBConnection} from '@duckdb/node-api';
import {ConfigurationError, ExecutionError, InterruptedError} from '../src/errors.js';
import {defineTask} from '../src/task-api.js';
import type {Json, TaskContext, TaskResult} from '../src/task-api.js';
import {
  CATEGORIES_TABLE,
  CHART_BINS,
  FINE_BINS,
  MAX_SEGMENTS,
  bigQueryBinValuesSql,
  bigQueryBinsSql,
  bigQueryCategoriesSql,
  bigQueryMomentsSql,
  bigQueryMoversSql,
  bigQueryQuantilesSql,
  categoriesSql,
  describeSql,
  magnitudesSql,
  moverThresholdsSql,
  moversSql,
  referenceFor,
  referencesSql,
  rowCountSql,
  segmentsSql,
  sortedValuesSql,
  statsSql,
} from './lib/analyze-sql.js';
import {queryColumns} from './lib/duckdb-columns.js';
import type {ColumnResult} from './lib/duckdb-columns.js';
import {ShiftScan, binnedShift, exactKs, ksCandidates, psiEdges} from './lib/shift.js';
import type {RankPair} from './lib/shift.js';
import {isNumericType} from './lib/compare-sql.js';
import type {SqlStatement} from './lib/compare-sql.js';
import type {BigQueryReference} from './lib/bigquery-extract.js';
import {formatBytes} from '../src/util/units.js';
import type {AnalysisDocument, AnalysisSources, BigQueryAnalysis, CategoricalAnalysis, Mover, NumericAnalysis, Reference, SegmentIds} from './lib/analyze-sql.js';
import {
  CATEGORY_CAP,
  SUMMARY_QUANTILES,
  categoricalFromTotals,
  chartRange,
  driftHighlights,
  evaluateRule,
  momentsOf,
  num,
  numericFigures,
  parametersCsv,
  parseDuckDbJson,
  powerOfTwoNear,
  rankPair,
  toMovers,
  walkScale,
} from './lib/analysis-figures.js';
import type {SideMoments} from './lib/analysis-figures.js';
import {taskSettings} from './lib/settings.js';
import type {Settings} from './lib/settings.js';

/** `analysis.*` settings, and what a pushed-down analysis calls BigQuery with. */
type AnalysisSettings = Settings['analysis'] & {
  bigquery: {maximumBytesBilled: number | null; retryCount: number; retryMaxDelaySeconds: number | undefined};
};

export default defineTask({
  async run(ctx) {
    const {keys, analysis: settings} = readSettings(ctx.settings);
    const sources = {
      dialect: 'duckdb' as const,
      oldPath: ctx.input('extract-old', 'rows.parquet'),
      newPath: ctx.input('extract-new', 'rows.parquet'),
      segmentBy: settings.segment_by,
    };
    const conn = await ctx.duckdb();
    const oldColumns = await describe(conn, sources.oldPath);
    const newColumns = await describe(conn, sources.newPath);
    const missingSegments = settings.segment_by.filter((c) => !oldColumns.has(c) || !newColumns.has(c));
    if (missingSegments.length > 0) {
      throw new ConfigurationError(
        `analysis.segment_by names ${list(missingSegments)}, which ${missingSegments.length === 1 ? 'is' : 'are'} not a column of both versions; the columns are ${list([...oldColumns.keys()])}.`,
        {hint: 'Set analysis.segment_by to existing columns, or to [] for no segments.'},
      );
    }
    const missingKeys = keys.filter((k) => !oldColumns.has(k) || !newColumns.has(k));
    if (missingKeys.length > 0) {
      throw new ConfigurationError(`source.keys names ${list(missingKeys)}, not a column of both versions; the columns are ${list([...oldColumns.keys()])}.`, {
        hint: 'Set source.keys to the columns that identify a row.',
      });
    }
    // Only columns present in both versions are compared; schema drift is validate's finding.
    const shared = [...oldColumns.keys()].filter((c) => newColumns.has(c) && !keys.includes(c));
    // A list of numbers (an embedding) is neither a parameter nor a category: validate compares it whole.
    const numeric = shared.filter((c) => !settings.segment_by.includes(c) && isNumericType(oldColumns.get(c)!) && isNumericType(newColumns.get(c)!));
    const categorical = shared.filter((c) => isCategorical(oldColumns.get(c)!) && isCategorical(newColumns.get(c)!));
    for (const rule of settings.rules) {
      if (rule.column !== undefined && !numeric.includes(rule.column)) {
        throw new ConfigurationError(`analysis.rules: drift rule names column "${rule.column}", which is not a numeric parameter; the numeric parameters are ${list(numeric)}.`);
      }
    }

    // With every engine set to bigquery the extractions are references to the table and the
    // analysis runs there; otherwise DuckDB analyses the extracted rows.
    const {readBigQueryReference} = await import('./lib/bigquery-extract.js');
    const references = [await readBigQueryReference(conn, sources.oldPath), await readBigQueryReference(conn, sources.newPath)] as const;
    const columns = {keys, numeric, categorical};
    if ((references[0] === null) !== (references[1] === null)) {
      throw new ExecutionError('One extraction is a BigQuery reference and the other holds rows; expected both alike.', {
        hint: 'Rerun both extractions (--force), with the same source and engine settings.',
      });
    }
    if (references[0] === null && settings.engine === 'bigquery') {
      ctx.warn(
        'analysis.engine is bigquery, but the extractions hold the rows (the analysis runs inside BigQuery only when source.engine, ' +
          'validation.engine and analysis.engine are all bigquery); analysed locally.',
      );
    }
    const computed =
      references[0] !== null && references[1] !== null
        ? await analyzeInBigQuery(ctx, {old: references[0], new: references[1]}, settings, columns)
        : await analyzeLocally(ctx, conn, sources, settings, columns);
    const {rows, parameters, categories} = computed;

    const rules = settings.rules.map((rule) => evaluateRule(rule, parameters));
    const status = rules.some((r) => !r.passed && r.severity === 'error') ? 'fail' : rules.some((r) => !r.passed) ? 'warn' : 'pass';
    const document: AnalysisDocument = {
      settings: {segment_by: settings.segment_by, bins: settings.bins, top_n: settings.top_n, psi: settings.psi},
      engine: computed.engine,
      ...(computed.bigquery === undefined ? {} : {bigquery: computed.bigquery}),
      rows,
      parameters,
      categorical: categories,
      rules,
      status,
    };
    await writeFile(ctx.output('analysis.json'), `${JSON.stringify(document, null, 2)}\n`);
    await writeFile(ctx.output('parameters.csv'), parametersCsv(parameters));
    const drifted = Object.entries(parameters).filter(([, p]) => p.drift === 'major' || p.drift === 'moderate');
    ctx.log.info(`analyzed ${numeric.length} numeric and ${categorical.length} categorical columns; ${drifted.length} drifted`);
    const result: TaskResult = {
      rows: rows.old + rows.new,
      verdict: status,
      verdictReasons: rules.filter((r) => !r.passed).map((r) => r.message),
      highlights: driftHighlights(parameters),
      details: {
        parameters: numeric.length,
        categorical: categorical.length,
        drifted: drifted.map(([name]) => name) as Json,
        engine: computed.engine,
        ...(computed.bigquery === undefined ? {} : {bytes_processed: computed.bigquery.bytes_processed}),
      },
    };
    return result;
  },
});

/** The analysis of the extracted rows, in DuckDB: exact figures. */
async function analyzeLocally(
  ctx: TaskContext,
  conn: DuckDBConnection,
  sources: AnalysisSources,
  settings: AnalysisSettings,
  {keys, numeric, categorical}: AnalyzedColumns,
): Promise<Computed> {
  const rows = {old: await scalar(conn, rowCountSql(sources.oldPath, 'duckdb')), new: await scalar(conn, rowCountSql(sources.newPath, 'duckdb'))};
  const parameters: Record<string, NumericAnalysis> = {};
  if (numeric.length > 0) {
    ctx.progress({message: 'summary statistics'});
    const segments = await segmentIds(conn, sources);
    // On small versions DuckDB sorts the next parameter's values (on a second connection)
    // while this one's are walked, using cores the short sort leaves idle: 5.6 s -> 4.4 s at
    // 1M rows a version. On large ones the sort alone keeps both cores busy, so prefetching
    // gains nothing, and the sorted values are streamed: a materialised copy (240 MB at 10M
    // rows) would stay in memory until the garbage collector finalises it.
    const prefetch = rows.old + rows.new <= PREFETCH_ROWS;
    // DuckDB produces a streamed result ahead of the reader into this buffer (976 KB by
    // default, which leaves it waiting on every chunk): 3.0 s -> 1.8 s a parameter at 10M.
    if (!prefetch) await conn.run(`SET streaming_buffer_size = '${STREAM_BUFFER}'`);
    const connections = prefetch ? [conn, await ctx.duckdb()] : [conn];
    // Values spanning more than a DOUBLE holds are walked halved (known once the statistics are).
    let scales: number[] = numeric.map(() => 1);
    const sort = (i: number) => {
      const sql = sortedValuesSql(numeric[i]!, sources, segments.ids, scales[i]);
      const result = queryColumns(connections[(i + 1) % connections.length]!, sql, SORTED_COLUMNS, prefetch ? 'materialized' : 'streamed');
      result.catch(() => undefined); // awaited in its turn; an interrupted run may never get there
      return result;
    };
    // Prefetching, the first sort (on the second connection) runs beside the summary statistics.
    let next = prefetch ? sort(0) : undefined;
    const stats = await summaryStatistics(ctx, conn, sources, segments.ids, numeric);
    const moments = numeric.map((_, i) => momentsOf(stats, i, segments.keys.length));
    scales = moments.map((m) => walkScale(...m));
    if (scales[0] !== 1 && next !== undefined) {
      // The prefetched sort read them whole: sort again, halved, once it is done.
      await next.catch(() => undefined);
      next = undefined;
    }
    next ??= sort(0);
    for (const [i, column] of numeric.entries()) {
      checkAborted(ctx);
      ctx.progress({message: `parameter ${column} (${i + 1}/${numeric.length})`});
      const start = performance.now();
      const sorted = await next;
      if (prefetch && i + 1 < numeric.length) next = sort(i + 1);
      parameters[column] = await analyzeNumeric(sorted, ctx, sources, settings, segments.keys, moments[i]!, scales[i]!);
      if (!prefetch && i + 1 < numeric.length) next = sort(i + 1);
      ctx.log.debug(`${column}: sort and walk took ${Math.round(performance.now() - start)} ms`);
    }
  }
  if (numeric.length > 0 && keys.length > 0 && settings.top_n > 0) {
    checkAborted(ctx);
    ctx.progress({message: 'largest movers'});
    const movers = await largestMovers(conn, ctx, sources, keys, numeric, settings.top_n);
    for (const [i, column] of numeric.entries()) parameters[column]!.top_movers = parseMovers(movers[`m${i}`], keys);
  }
  const categories: Record<string, CategoricalAnalysis> = {};
  for (const column of categorical) {
    checkAborted(ctx);
    const sql = categoriesSql(column, sources, CATEGORY_CAP);
    const start = performance.now();
    await conn.run(sql.counts);
    const [totals] = await rowsOf(conn, sql.totals);
    categories[column] = categoricalFromTotals(totals ?? {}, await rowsOf(conn, sql.listed));
    ctx.log.debug(`${column}: categories took ${Math.round(performance.now() - start)} ms`);
  }
  if (categorical.length > 0) await conn.run(`DROP TABLE IF EXISTS ${CATEGORIES_TABLE}`);
  return {engine: 'local', rows, parameters, categories};
}

/**
 * The largest movers of every parameter, keys duplicated in either version left out: twice
 * `top_n` changes are listed per parameter, and when duplicated keys leave fewer than `top_n`
 * of a list that may hold more, four times as many are listed, without the sampled threshold.
 */
async function largestMovers(conn: DuckDBConnection, ctx: TaskContext, sources: AnalysisSources, keys: string[], numeric: string[], topN: number): Promise<Record<string, unknown>> {
  let fetch = 2 * topN;
  const sampled = (await rowsOf(conn, moverThresholdsSql(sources, keys, numeric, fetch), {log: ctx.log, label: 'movers: thresholds from a sample'}))[0] ?? {};
  let thresholds: (number | null)[] = numeric.map((_, i) => num(sampled[`t${i}`]));
  for (;;) {
    const row = (await rowsOf(conn, moversSql(sources, keys, numeric, topN, fetch, thresholds), {log: ctx.log, label: 'largest movers'}))[0] ?? {};
    const short = numeric.some((_, i) => num(row[`l${i}`])! < topN && (num(row[`f${i}`]) === fetch || thresholds[i] !== null));
    if (!short) return row;
    checkAborted(ctx);
    fetch *= 4;
    thresholds = numeric.map(() => null);
  }
}

/**
 * The summary moments (`statsSql`). DuckDB's stddev_samp fails when squares overflow a DOUBLE
 * (values beyond ~1e154), and is 0 when they underflow (below ~1e-154): then each parameter is
 * measured scaled by a power of two near its largest magnitude, which changes no digit of the
 * figures.
 */
async function summaryStatistics(ctx: TaskContext, conn: DuckDBConnection, sources: AnalysisSources, ids: SegmentIds, numeric: readonly string[]): Promise<Record<string, unknown>[]> {
  const timing = {log: ctx.log, label: 'summary statistics'};
  // Deviations about a typical value of each version and segment; none past 1e150, where x - c could overflow.
  const shifts: Reference[] = (numeric.length === 0 ? [] : await rowsOf(conn, referencesSql(sources, ids, numeric))).map((row) => ({
    side: Number(row['side']) as 0 | 1,
    sid: Number(row['sid']),
    values: numeric.map((_, i) => {
      const c = num(row[`c${i}`]);
      return c !== null && Math.abs(c) <= 1e150 ? c : 0;
    }),
  }));
  const scaled = async (why: string) => {
    ctx.log.info(`values ${why}; summary statistics computed over scaled values`);
    const magnitudes = (await rowsOf(conn, magnitudesSql(sources, numeric)))[0] ?? {};
    return rowsOf(conn, statsSql(sources, ids, numeric, numeric.map((_, i) => powerOfTwoNear(num(magnitudes[`a${i}`]))), shifts), timing);
  };
  // Each group's reference beside its moments, for momentsOf (ref{i}).
  const withReferences = (rows: Record<string, unknown>[]) =>
    rows.map((row) => ({...row, ...Object.fromEntries(numeric.map((_, i) => [`ref${i}`, referenceFor(shifts, i, Number(row['side']), Number(row['sid']))]))}));
  let rows: Record<string, unknown>[];
  try {
    rows = await rowsOf(conn, statsSql(sources, ids, numeric, undefined, shifts), timing);
  } catch (error: unknown) {
    if (!/out of range/i.test(error instanceof Error ? error.message : String(error))) throw error;
    return withReferences(await scaled('too large to square in a DOUBLE'));
  }
  // Squares of values below ~1e-154 underflow to zero: a deviation of 0 among values that differ.
  const underflow = rows.some((row) => numeric.some((_, i) => num(row[`s${i}`]) === 0 && num(row[`lo${i}`]) !== num(row[`hi${i}`])));
  return withReferences(underflow ? await scaled('too small to square in a DOUBLE') : rows);
}

/**
 * The analysis inside BigQuery, when every engine is bigquery and the extractions are
 * references to the table: up to six queries, priced by dry runs first and refused above
 * `bigquery.maximum_bytes_billed`. Row counts, moments, PSI counts (given the edges), category
 * counts and movers are exact; quantiles and the PSI edges come from APPROX_QUANTILES;
 * Wasserstein from FINE_BINS equal bins per parameter, with a bound on its error; KS from the
 * bins, made exact by reading back the values of the few bins that can hold it.
 */
async function analyzeInBigQuery(
  ctx: TaskContext,
  references: {old: BigQueryReference; new: BigQueryReference},
  settings: AnalysisSettings,
  {keys, numeric, categorical}: AnalyzedColumns,
): Promise<Computed> {
  const {queryAll, decodeScalar} = await import('./lib/bigquery-client.js');
  const {callBigQuery, openPushedDown, referenceSettings} = await import('./lib/bigquery-extract.js');
  const path = (r: BigQueryReference) => `${r.project_id}.${r.dataset_id}.${r.table_id}`;
  const table = path(references.new);
  if (path(references.old) !== table) throw new ExecutionError(`The two versions point at different BigQuery tables (${path(references.old)}, ${table}); expected one table.`);
  const plan: BigQueryAnalysis = {
    table: {path: table, versionColumn: references.new.version_column, versionType: references.new.version_type},
    versions: {old: references.old.version, new: references.new.version},
    segmentBy: settings.segment_by,
    numeric,
    categorical,
    keys,
  };
  const remote = referenceSettings(references.new, {...settings.bigquery, keys});
  const {bigquery, query} = await openPushedDown(remote);
  const remoteRows = async (what: string, statement: SqlStatement) => {
    const result = await callBigQuery(remote, what, () => queryAll(bigquery, query(statement), ctx.signal));
    return result.rows.map((wire) => Object.fromEntries(result.fields.map((f, i) => {
      const value = wire.f[i]?.v;
      // REPEATED values (APPROX_QUANTILES) arrive as [{v}, ...].
      return [f.name, f.mode === 'REPEATED' ? ((value ?? []) as {v: unknown}[]).map((item) => decodeScalar(f, item.v)) : decodeScalar(f, value)];
    })));
  };

  // The cost of the bins queries does not depend on their bins: price them with placeholders.
  // Reading back the values of the KS candidate bins runs only when there are any.
  const placeholder = numeric.map(() => ({lo: 0, width: 1, edges: []}));
  const statements = [
    bigQueryMomentsSql(plan),
    ...(numeric.length > 0
      ? [bigQueryQuantilesSql(plan, settings.bins), bigQueryBinsSql(plan, placeholder), bigQueryBinValuesSql(plan, placeholder, new Map([[0, [[0, 0]]]]))]
      : []),
    ...(numeric.length > 0 && keys.length > 0 && settings.top_n > 0 ? [bigQueryMoversSql(plan, settings.top_n)] : []),
    ...(categorical.length > 0 ? [bigQueryCategoriesSql(plan, CATEGORY_CAP)] : []),
  ];
  ctx.progress({message: 'estimating the BigQuery cost (dry run)'});
  let bytes = 0;
  for (const statement of statements) bytes += await callBigQuery(remote, 'estimate (dry run) the analysis on', () => bigquery.dryRun(query(statement), ctx.signal), ctx.signal);
  ctx.log.info(`BigQuery dry run: the analysis on ${table} will process at most ${formatBytes(bytes)} in ${statements.length} queries.`);
  if (remote.maximumBytesBilled !== undefined && bytes > remote.maximumBytesBilled) {
    throw new ConfigurationError(`The analysis on ${table} would process ${formatBytes(bytes)}, more than bigquery.maximum_bytes_billed (${formatBytes(remote.maximumBytesBilled)}).`, {
      hint: 'Raise bigquery.maximum_bytes_billed, analyse locally (analysis.engine: local), or run with --skip-analysis.',
    });
  }

  ctx.progress({message: 'moments in BigQuery'});
  const moments = await remoteRows('compute the moments on', bigQueryMomentsSql(plan));
  // Named as the local analysis names them: NaN and the infinities as text (JSON has no such numbers).
  const segmentValue = (value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : (value ?? null));
  const segmentOf = (row: Record<string, unknown>) => JSON.stringify(Object.fromEntries(settings.segment_by.map((c, j) => [c, segmentValue(row[`g${j}`])])));
  // Listed in the local analysis' order: by the text DuckDB's json_object gives the key.
  const duckDbText = (key: string) => key.replace(/"(-?Infinity|NaN|-?\d{16,})"/g, '$1');
  const inLocalOrder = (a: string, b: string) => (duckDbText(a) < duckDbText(b) ? -1 : duckDbText(a) > duckDbText(b) ? 1 : 0);
  const segmentKeys = settings.segment_by.length === 0 ? [''] : checkSegments([...new Set(moments.map(segmentOf))].sort(inLocalOrder), settings.segment_by);
  const sid = (row: Record<string, unknown>) => (settings.segment_by.length === 0 ? 1 : segmentKeys.indexOf(segmentOf(row)) + 1);
  const stats = moments.map((r) => ({...r, sid: sid(r), rows: r['row_count']}));
  const rows = {old: 0, new: 0};
  for (const r of moments) rows[num(r['side']) === 0 ? 'old' : 'new'] += num(r['row_count']) ?? 0;

  const parameters: Record<string, NumericAnalysis> = {};
  if (numeric.length > 0) {
    ctx.progress({message: 'quantiles in BigQuery'});
    const quantiles = await remoteRows('compute the quantiles on', bigQueryQuantilesSql(plan, settings.bins));
    const sideQuantiles = (k: 0 | 1, name: string) => ((quantiles.find((r) => num(r['side']) === k)?.[name] ?? []) as (number | null)[]).map(num);
    const sideMoments = numeric.map((_, i) => momentsOf(stats, i, segmentKeys.length));
    const binnings = numeric.map((_, i) => {
      const {lo, hi} = chartRange(...sideMoments[i]!);
      const edges = sideQuantiles(0, `e${i}`).slice(1, -1).filter((e): e is number => e !== null);
      return {lo, width: hi !== null && hi > lo ? (hi - lo) / FINE_BINS : 0, edges: psiEdges([...edges].sort((a, b) => a - b))};
    });
    ctx.progress({message: 'binned counts in BigQuery'});
    const binned = await remoteRows('count the bins on', bigQueryBinsSql(plan, binnings));
    const groups = segmentKeys.length + 1;
    // Counts per parameter, version, group (0: all, s: segment s) and fine bin, and per PSI bin.
    const counts = numeric.map((_, i) => {
      const fine = [0, 1].map(() => Array.from({length: groups}, () => new Float64Array(FINE_BINS)));
      const psiCounts = [0, 1].map(() => Array.from({length: groups}, () => new Array<number>(binnings[i]!.edges.length + 1).fill(0)));
      for (const r of binned) {
        if (num(r['p']) !== i) continue;
        const side = num(r['side'])!;
        const c = num(r['c'])!;
        for (const g of [0, sid(r)]) {
          fine[side]![g]![num(r['b'])!]! += c;
          psiCounts[side]![g]![num(r['pb'])!]! += c;
        }
      }
      return {fine, psiCounts};
    });
    const exact = await exactKsFromBins(counts.map((c) => c.fine));
    for (const [i, column] of numeric.entries()) {
      const {edges, width} = binnings[i]!;
      const {fine, psiCounts} = counts[i]!;
      const shiftGroups = Array.from({length: groups}, (_, g) => {
        const b = binnedShift(fine[0]![g]!, fine[1]![g]!, width);
        const ks = exact.get(i)?.[g];
        return {
          ks: ks === undefined ? b.ks : ks,
          ksError: ks === undefined ? b.ksError : b.ksError === null ? null : 0,
          wasserstein: b.wasserstein,
          wassersteinError: b.wassersteinError,
          psiOld: psiCounts[0]![g]!,
          psiNew: psiCounts[1]![g]!,
        };
      });
      const chart = (side: 0 | 1) => Array.from({length: CHART_BINS}, (_, j) => fine[side]![0]!.subarray(j * (FINE_BINS / CHART_BINS), (j + 1) * (FINE_BINS / CHART_BINS)).reduce((a, b) => a + b, 0));
      const summary = (k: 0 | 1) => {
        const q = sideQuantiles(k, `q${i}`);
        return new Map(SUMMARY_QUANTILES.map((p) => [p, q[Math.round(p * 100)] ?? null]));
      };
      parameters[column] = numericFigures(sideMoments[i]!, settings.segment_by.length > 0 ? segmentKeys : [], settings.psi, {
        groups: shiftGroups,
        edges,
        chart: {old: chart(0), new: chart(1)},
        quantiles: [summary(0), summary(1)],
      });
    }

    // KS made exact: the values of the bins that could hold a larger difference than the
    // boundaries show (usually a few around the largest one), read back within a budget;
    // parameters whose candidates exceed it keep the bound. By parameter, the exact KS of
    // each group.
    async function exactKsFromBins(fine: Float64Array[][][]): Promise<Map<number, (number | null)[]>> {
      const candidates = new Map<number, number[][]>();
      const wanted = new Map<number, [number, number][]>();
      let budget = EXACT_KS_VALUES;
      for (const [i, sides] of fine.entries()) {
        const perGroup = Array.from({length: groups}, (_, g) => ksCandidates(sides[0]![g]!, sides[1]![g]!));
        const bins = [...new Set(perGroup.flat())].sort((a, b) => a - b);
        const values = bins.reduce((sum, b) => sum + sides[0]![0]![b]! + sides[1]![0]![b]!, 0);
        if (values > budget) {
          ctx.log.info(`${numeric[i]}: KS from bins with its error bound (an exact figure needs ${values} values read back, more than the ${budget} left)`);
          continue;
        }
        budget -= values;
        candidates.set(i, perGroup);
        if (bins.length > 0) wanted.set(i, runsOf(bins));
      }
      const read = new Map<string, {old: number[]; new: number[]}>();
      if (wanted.size > 0) {
        ctx.progress({message: 'values of the KS candidate bins from BigQuery'});
        for (const r of await remoteRows('read the KS candidate bins of', bigQueryBinValuesSql(plan, binnings, wanted))) {
          for (const g of [0, sid(r)]) {
            const key = `${num(r['p'])}:${g}:${num(r['b'])}`;
            const entry = read.get(key) ?? {old: [], new: []};
            (num(r['side']) === 0 ? entry.old : entry.new).push(num(r['x'])!);
            read.set(key, entry);
          }
        }
      }
      const exact = new Map<number, (number | null)[]>();
      for (const [i, perGroup] of candidates) {
        exact.set(i, perGroup.map((bins, g) => exactKs(fine[i]![0]![g]!, fine[i]![1]![g]!, bins, (b) => read.get(`${i}:${g}:${b}`) ?? {old: [], new: []})));
      }
      return exact;
    }
    if (keys.length > 0 && settings.top_n > 0) {
      ctx.progress({message: 'largest movers in BigQuery'});
      const movers = await remoteRows('find the largest movers on', bigQueryMoversSql(plan, settings.top_n));
      for (const [i, column] of numeric.entries()) {
        parameters[column]!.top_movers = toMovers(
          movers.filter((r) => num(r['p']) === i).map((r) => ({key: Object.fromEntries(keys.map((k, j) => [k, r[`k${j}`]])), old: num(r['o'])!, new: num(r['n'])!})),
        );
      }
    }
  }
  const categories: Record<string, CategoricalAnalysis> = {};
  if (categorical.length > 0) {
    ctx.progress({message: 'category counts in BigQuery'});
    const rows = await remoteRows('count the categories on', bigQueryCategoriesSql(plan, CATEGORY_CAP));
    for (const [i, column] of categorical.entries()) {
      const mine = rows.filter((r) => num(r['c']) === i);
      categories[column] = categoricalFromTotals(mine.find((r) => r['list'] === 'totals') ?? {}, mine.filter((r) => r['list'] !== 'totals'));
    }
  }
  ctx.log.info(`BigQuery processed ${formatBytes(bytes)} for the analysis.`);
  return {
    engine: 'bigquery',
    bigquery: {
      table,
      bytes_processed: bytes,
      approximate:
        `quantiles and PSI edges from APPROX_QUANTILES; Wasserstein from ${FINE_BINS} equal bins per parameter (within ` +
        'wasserstein_norm_error); KS exact from the bins and the values of the few bins that can hold it (ks_error 0; a ' +
        'bound when those values exceed the read-back budget); counts, moments and movers exact',
    },
    rows,
    parameters,
    categories,
  };
}

/** The columns the analysis reads. */
interface AnalyzedColumns {
  keys: string[];
  numeric: string[];
  categorical: string[];
}

/** What either engine computed. */
interface Computed {
  engine: 'local' | 'bigquery';
  bigquery?: AnalysisDocument['bigquery'];
  rows: {old: number; new: number};
  parameters: Record<string, NumericAnalysis>;
  categories: Record<string, CategoricalAnalysis>;
}

/** The segments: their keys (JSON, sorted; segment id = index + 1) and the hash-to-id map. */
interface Segments {
  keys: string[];
  ids: SegmentIds;
}

async function segmentIds(conn: DuckDBConnection, s: AnalysisSources): Promise<Segments> {
  if (s.segmentBy.length === 0) return {keys: [''], ids: {hashes: [], sids: []}};
  const rows = await rowsOf(conn, segmentsSql(s));
  const keys = checkSegments([...new Set(rows.map((r) => String(r['g'])))].sort(), s.segmentBy);
  const byHash = new Map<string, string>();
  for (const r of rows) {
    const h = String(r['h']);
    // Two distinct segments with one 64-bit hash would merge silently: refuse instead.
    if (byHash.has(h) && byHash.get(h) !== r['g']) throw new Error(`segments ${byHash.get(h)} and ${String(r['g'])} share a hash; cannot tell them apart`);
    byHash.set(h, String(r['g']));
  }
  const hashes = [...byHash.keys()].map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return {keys, ids: {hashes, sids: hashes.map((h) => keys.indexOf(byHash.get(String(h))!) + 1)}};
}

/** The segments found, unless there are more than an analysis takes. */
function checkSegments(keys: string[], segmentBy: readonly string[]): string[] {
  if (keys.length <= MAX_SEGMENTS) return keys;
  throw new ConfigurationError(
    `analysis.segment_by (${list(segmentBy)}) divides the rows into ${keys.length.toLocaleString('en')} segments; an analysis takes at most ${MAX_SEGMENTS.toLocaleString('en')}.`,
    {hint: 'Segment by columns with fewer distinct values (a region, a tier: not an id), or set analysis.segment_by to [].'},
  );
}

/** Pushed down, at most this many values are read back from BigQuery to make KS exact. */
const EXACT_KS_VALUES = 2_000_000;

/** Sorted bin numbers as inclusive runs: [1, 2, 3, 7] -> [[1, 3], [7, 7]]. */
function runsOf(bins: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const b of bins) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === b - 1) last[1] = b;
    else runs.push([b, b]);
  }
  return runs;
}

/** How far ahead of the walk DuckDB may produce a streamed sorted result. */
const STREAM_BUFFER = '64MB';

/** Up to this many rows (both versions) the next parameter is sorted while one is walked, and results are materialised. */
const PREFETCH_ROWS = 4_000_000;

/** Both versions' values of one parameter in ascending order, with their segment-and-side tags. */
const SORTED_COLUMNS = ['uint32', 'double'] as const;

async function analyzeNumeric(
  sorted: ColumnResult<typeof SORTED_COLUMNS>,
  ctx: TaskContext,
  s: AnalysisSources,
  settings: AnalysisSettings,
  segmentKeys: readonly string[],
  [o, n]: [SideMoments, SideMoments],
  scale: number,
): Promise<NumericAnalysis> {
  // quantile_cont's order statistics: 1-based ranks k and k2, and the fraction between them.
  const pairs = (count: number, qs: readonly number[]): RankPair[] =>
    count === 0 ? [] : qs.map((q) => {
      const p = rankPair(count, q)!;
      return {k: p.k + 1, k2: p.k2 + 1, frac: p.frac};
    });
  const summaryOld = pairs(o.global.count, SUMMARY_QUANTILES);
  const summaryNew = pairs(n.global.count, SUMMARY_QUANTILES);
  // The walk sees the values times `scale` (1, or 1/2 for values spanning more than a DOUBLE
  // holds); what it finds in values' units is divided back.
  const range = chartRange(o, n);
  const chart = {lo: range.lo * scale, width: range.width * scale, bins: CHART_BINS};
  const scan = new ShiftScan({
    segments: segmentKeys.length,
    oldCounts: [o.global.count, ...o.segments.map((m) => m.count)],
    newCounts: [n.global.count, ...n.segments.map((m) => m.count)],
    oldRanks: summaryOld.flatMap((p) => [p.k, p.k2]),
    newRanks: summaryNew.flatMap((p) => [p.k, p.k2]),
    psiQuantiles: pairs(o.global.count, Array.from({length: settings.bins - 1}, (_, i) => (i + 1) / settings.bins)),
    chart,
  });
  await sorted.forEachChunk((size, [tags, values]) => scan.add(tags, values, size), ctx.signal);
  checkAborted(ctx);
  const shift = scan.finish();

  const quantiles = (found: Map<number, number>, ps: readonly RankPair[]) =>
    new Map(SUMMARY_QUANTILES.map((q, i) => {
      const p = ps[i];
      if (p === undefined) return [q, null];
      const a = found.get(p.k)!;
      return [q, (a + p.frac * (found.get(p.k2)! - a)) / scale];
    }));
  return numericFigures([o, n], s.segmentBy.length > 0 ? segmentKeys : [], settings.psi, {
    groups: scale === 1 ? shift.groups : shift.groups.map((g) => ({...g, wasserstein: g.wasserstein === null ? null : g.wasserstein / scale})),
    edges: shift.edges.map((edge) => edge / scale),
    chart: {old: shift.chartOld, new: shift.chartNew},
    quantiles: [quantiles(shift.oldOrder, summaryOld), quantiles(shift.newOrder, summaryNew)],
  });
}

function parseMovers(value: unknown, keys: readonly string[]): Mover[] {
  if (typeof value !== 'string') return [];
  // A floating-point key may be NaN or infinite: named as text, as segments are.
  const items = parseDuckDbJson(value) as {key: Record<string, unknown>; old: number; new: number}[] | null;
  return toMovers((items ?? []).map((m) => ({key: Object.fromEntries(keys.map((k, i) => [k, m.key[`k${i}`]])), old: m.old, new: m.new})));
}

async function rowsOf(conn: DuckDBConnection, sql: string, timing?: {log: TaskContext['log']; label: string}): Promise<Record<string, unknown>[]> {
  const start = performance.now();
  const reader = await conn.runAndReadAll(sql);
  const rows = reader.getRowObjectsJson() as Record<string, unknown>[];
  // Per-query times in the debug log: where the time of a slow analysis goes.
  timing?.log.debug(`${timing.label} took ${Math.round(performance.now() - start)} ms`);
  return rows;
}

async function scalar(conn: DuckDBConnection, sql: string): Promise<number> {
  const row = (await rowsOf(conn, sql))[0];
  return num(row ? Object.values(row)[0] : null) ?? 0;
}

async function describe(conn: DuckDBConnection, path: string): Promise<Map<string, string>> {
  const rows = await rowsOf(conn, describeSql(path, 'duckdb'));
  return new Map(rows.map((r) => [String(r['column_name']), String(r['column_type'])]));
}

function isCategorical(type: string): boolean {
  return type === 'VARCHAR' || type === 'BOOLEAN';
}

function checkAborted(ctx: TaskContext): void {
  if (ctx.signal.aborted) throw new InterruptedError('analysis interrupted');
}

function list(names: readonly string[]): string {
  return names.length === 0 ? '(none)' : names.map((n) => `"${n}"`).join(', ');
}

/** The settings analyze reads: `analysis.*`, and what a pushed-down analysis calls BigQuery with. */
function readSettings(settings: Readonly<Record<string, Json>>): {keys: string[]; analysis: AnalysisSettings} {
  const all = taskSettings(settings);
  const {analysis} = all;
  return {
    keys: all.source.keys,
    // Each setting read by name (not spread): one the task does not declare is an error naming it.
    analysis: {
      engine: analysis.engine,
      segment_by: analysis.segment_by,
      bins: analysis.bins,
      top_n: analysis.top_n,
      psi: analysis.psi,
      rules: analysis.rules,
      bigquery: {
        maximumBytesBilled: all.bigquery.maximum_bytes_billed,
        retryCount: all.performance.retry_count,
        retryMaxDelaySeconds: all.bigquery.retry_max_delay_seconds ?? undefined,
      },
    },
  };
}

