/**
 * The analyze task on small Parquet fixtures built with DuckDB SQL; every figure is checked
 * against a plain TypeScript computation over the same values.
 */
import {readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {DuckDBInstance} from '@duckdb/node-api';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import analyze from '../tasks/analyze.js';
import {CATEGORY_CAP, driftHighlights, meanChange, parseSegmentKey} from '../tasks/lib/analysis-figures.js';
import {MOVERS_FILTERED_PARAMETERS} from '../tasks/lib/analyze-sql.js';
import type {AnalysisDocument, NumericAnalysis} from '../tasks/lib/analyze-sql.js';
import {runTaskDirectly} from './support/run-task.js';
import {categoricalFromCounts, ks, psi, psiReference, quantile, wasserstein} from './support/statistics.js';
import {temporaryFolder} from './support/temp.js';

const N = 2000;
let dir: string;

// old: x = i/N on a fine grid (U(0,1)), y the same grid, z categorical.
// new: x shifted by 0.1 (U(0.1,1.1)), y shifted by 0.5 in region 'a' only, z with a new
// category 'q' and without 'p'; x also has a few nulls in new.
const OLD = `SELECT i AS id, (['a','b','c','d'])[i % 4 + 1] AS region, i / ${N}.0 AS x, (i * 7 % ${N}) / ${N}.0 AS y,
  CASE WHEN i % 10 = 0 THEN 'p' WHEN i % 3 = 0 THEN 'm' ELSE 'n' END AS z FROM range(${N}) t(i)`;
const NEW = `SELECT i AS id, (['a','b','c','d'])[i % 4 + 1] AS region, CASE WHEN i % 500 = 7 THEN NULL ELSE i / ${N}.0 + 0.1 END AS x,
  (i * 7 % ${N}) / ${N}.0 + CASE WHEN i % 4 = 0 THEN 0.5 ELSE 0 END AS y,
  CASE WHEN i % 10 = 0 THEN 'q' WHEN i % 2 = 0 THEN 'm' ELSE 'n' END AS z FROM range(${N}) t(i)`;

// Heavy ties within and across versions (small integers), for the ECDFs' handling of runs.
const TIES_OLD = `SELECT i AS id, (i * 7 % 11)::INTEGER AS t FROM range(600) r(i)`;
const TIES_NEW = `SELECT i AS id, CASE WHEN i % 50 = 3 THEN NULL ELSE (i * 5 % 13)::INTEGER END AS t FROM range(40, 700) r(i)`;

// The same versions times 2^600 (~4e180, an exact scaling): squares of such values overflow a
// DOUBLE, so their sample variance cannot be computed directly.
const HUGE = (sql: string) => `SELECT id, region, x * (2::DOUBLE ** 600) AS x, y * (2::DOUBLE ** 600) AS y, z FROM (${sql})`;
// Centred, then spread over nearly all of the DOUBLE range (times 2^1024, exactly): max - min
// overflows a DOUBLE, which the same values before spreading compare against.
const CENTRED = (sql: string) => `SELECT id, region, x - 0.55 AS x, y - 0.55 AS y, z FROM (${sql})`;
const WIDE = (sql: string) => `SELECT id, region, x * (2::DOUBLE ** 1023) * 2 AS x, y * (2::DOUBLE ** 1023) * 2 AS y, z FROM (${CENTRED(sql)})`;

// Many parameters (past MOVERS_FILTERED_PARAMETERS, where the movers' SQL takes another form):
// q<j> changes by id * (j + 1) / 1000 on the ids with (id + j) % 5 = 0, nowhere else, and
// becomes infinite on id 401 (not a change a mover can have).
const MANY_PARAMETERS = 20;
const PARAMETERS = (changed: boolean) =>
  `SELECT i AS id, ${Array.from({length: MANY_PARAMETERS}, (_, j) => {
    const value = `(i % 37) / 10.0${changed ? ` + CASE WHEN (i + ${j}) % 5 = 0 THEN i * ${j + 1} / 1000.0 ELSE 0 END` : ''}`;
    return `${changed ? `CASE WHEN i = 401 THEN 'infinity'::DOUBLE ELSE ${value} END` : value} AS q${j}`;
  }).join(', ')} FROM range(402) t(i)`;

// A categorical column with more categories than analysis.json lists: hundreds of values,
// many tied, nulls, values only in the new version (born-*, v150..v169) or only in the old.
const LABELS_OLD = `SELECT i AS id, CASE WHEN i % 13 = 0 THEN NULL WHEN i % 5 = 0 THEN 'gone-' || i ELSE 'v' || (i % 150) END AS label FROM range(1000) t(i)`;
const LABELS_NEW = `SELECT i AS id, CASE WHEN i % 11 = 0 THEN NULL WHEN i % 4 = 0 THEN 'born-' || i ELSE 'v' || ((i * 7) % 170) END AS label FROM range(1000) t(i)`;
let labelCounts: Record<string, unknown>[];

// Columns that are not scalars (an embedding, a struct, a map) beside a parameter and a label.
const NESTED = (changed: boolean) =>
  `SELECT i AS id, [i / 10.0, (i % 7) / 3.0${changed ? ' + 1' : ''}] AS emb, {'a': i % 3, 'b': 'x' || (i % 4)} AS meta, MAP {'k': i % 2} AS m, ` +
  `(i % 13) / 2.0${changed ? ' + 0.5' : ''} AS score, (['p', 'q'])[i % 2 + 1] AS label FROM range(300) t(i)`;

// One segment per row, when segmented by `cell`: more segments than an analysis takes.
const MANY = `SELECT i AS id, i AS cell, i / 10.0 AS x FROM range(70000) t(i)`;

// Ids-like numbers of 15 digits, which twelve significant digits would round.
const LARGE = (changed: boolean) => `SELECT i AS id, (123456789012345 + i ${changed ? '+ CASE WHEN i = 7 THEN 3 ELSE 0 END' : ''})::BIGINT AS n FROM range(100) t(i)`;

// Epoch microseconds: values near 1.7e15 spread over 2,000 (their squares near 3e30 leave a
// DOUBLE no digits for the spread), and two values either side of 2^53.
const EPOCH = `SELECT i AS id, (1700000000000000 + (i * 7919) % 2000)::BIGINT AS t FROM range(20000) r(i)`;
// Twelve keys that each moved by exactly 1: a tie for every place among the movers.
const TIED = (changed: boolean) => `SELECT i AS id, i::DOUBLE ${changed ? '+ 1' : ''} AS v FROM range(1, 13) r(i)`;
// The same offsets near 1.7e9 (a unit changed between versions), and both locations as two segments.
const EPOCH_MOVED = `SELECT i AS id, (1700000000 + (i * 7919) % 2000)::BIGINT AS t FROM range(20000) r(i)`;
const EPOCH_MIXED = `SELECT i AS id, i % 2 AS half, (CASE WHEN i % 2 = 0 THEN 1700000000000000 ELSE 1700000000 END + (i * 7919) % 2000)::BIGINT AS t FROM range(20000) r(i)`;
// Values whose squares underflow a DOUBLE (below ~1e-154).
const TINY = `SELECT i AS id, ([1e-300, -1e-300, 3e-300, 0, 2e-300])[i + 1]::DOUBLE AS t FROM range(5) r(i)`;
// A point mass: 90% of the old values at exactly 0, the rest spread over (0, 1); the new version
// moves the mass to -0.5, below everything the old version had. And a parameter constant in
// each version, at another value.
const MASS = (changed: boolean) =>
  `SELECT i AS id, CASE WHEN i % 10 = 0 THEN (i % 997 + 1) / 1000.0 ELSE ${changed ? '-0.5' : '0'} END::DOUBLE AS m, ${changed ? '0.1' : '0.5'}::DOUBLE AS c FROM range(5000) t(i)`;
const NEAR_2_53 = `SELECT i AS id, ([9007199254740990, 9007199254740996])[i + 1]::BIGINT AS t FROM range(2) r(i)`;

// A floating-point segment column holding NaN and infinities besides numbers.
const FLOAT_SEGMENTS = (changed: boolean) =>
  `SELECT i AS id, (['nan', 'inf', '-inf', '1.5'])[i % 4 + 1]::DOUBLE AS tier, i / 10.0 ${changed ? '+ 1' : ''} AS x FROM range(200) t(i)`;

// The largest double as a "missing" sentinel: half the old values, none of the new.
const SENTINEL = (changed: boolean) =>
  `SELECT i AS id, CASE WHEN i < 5 AND ${changed ? 'false' : 'true'} THEN 1.7976931348623157e308 WHEN i < 5 THEN 1 ELSE i - 4 END::DOUBLE AS x FROM range(10) t(i)`;

// Floating-point keys, NaN and infinities among them, each of whose value moves.
const FLOAT_KEYS = (changed: boolean) =>
  `SELECT k::DOUBLE AS id, v${changed ? ' + 1' : ''} AS v FROM (VALUES ('nan', 1.0), ('inf', 2.0), ('-inf', 3.0), ('1.5', 4.0)) t(k, v)`;

// The largest changes are at the largest multiples of 10; keys 990 and 980 occur twice in the
// old version, 970 and 960 twice in the new one.
const DUPLICATED = (changed: boolean) =>
  `SELECT i AS id, i / 1000 ${changed ? '+ CASE WHEN i % 10 = 0 THEN i / 100 ELSE 0 END' : ''} AS y FROM range(1000) t(i)
   UNION ALL SELECT i, ${changed ? '-i' : 'i * 3'} FROM (VALUES ${changed ? '(970), (960)' : '(990), (980)'}) v(i)`;

// Segments of 31, 1,485 and 1,484 rows (their means of a constant differ in the last bit): a
// parameter constant in each version, and one far from zero against its spread (1e9 and
// millionths), the new version moved by 5e-4.
const SEGMENTED_FAR = (changed: boolean) =>
  `SELECT i AS id, CASE WHEN i < 31 THEN 'a' WHEN i < 1516 THEN 'b' ELSE 'c' END AS region, ${changed ? '0.11' : '0.1'}::DOUBLE AS c, ` +
  `(1e9 + ((i * 7919) % 2000) / 1e6 ${changed ? '+ 5e-4' : ''})::DOUBLE AS f FROM range(3000) t(i)`;
// Changes beyond a DOUBLE (1e308 to -1e308, 2e308 each) on keys 0..99, the largest on 43
// (3.4e308) then 44 (2.7e308); keys 100..199 move by 1.
const OVERFLOWING = (changed: boolean) =>
  `SELECT i AS id, CASE WHEN i = 43 THEN 1.7e308 WHEN i = 44 THEN 1.35e308 WHEN i < 100 THEN 1e308 ELSE i END::DOUBLE ${changed ? '* CASE WHEN i < 100 THEN -1 ELSE 1 END + CASE WHEN i < 100 THEN 0 ELSE 1 END' : ''} AS p FROM range(200) t(i)`;
// Subnormal values (below 2.2e-308), whose scale up for squaring is no double.
const SUBNORMAL = `SELECT i AS id, ((i % 7 + 1) * 1e-310)::DOUBLE AS p FROM range(70) t(i)`;

interface Row {id: number; region: string; x: number | null; y: number; z: string}
let oldRows: Row[];
let newRows: Row[];

beforeAll(async () => {
  dir = temporaryFolder('analyze-');
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  for (const [name, sql] of [['old', OLD], ['new', NEW], ['same', OLD], ['ties-old', TIES_OLD], ['ties-new', TIES_NEW], ['many', MANY], ['huge-old', HUGE(OLD)], ['huge-new', HUGE(NEW)], ['centred-old', CENTRED(OLD)], ['centred-new', CENTRED(NEW)], ['wide-old', WIDE(OLD)], ['wide-new', WIDE(NEW)], ['params-old', PARAMETERS(false)], ['params-new', PARAMETERS(true)], ['labels-old', LABELS_OLD], ['labels-new', LABELS_NEW], ['nested-old', NESTED(false)], ['nested-new', NESTED(true)], ['dups-old', DUPLICATED(false)], ['dups-new', DUPLICATED(true)], ['tiers-old', FLOAT_SEGMENTS(false)], ['tiers-new', FLOAT_SEGMENTS(true)], ['large-old', LARGE(false)], ['large-new', LARGE(true)], ['epoch', EPOCH], ['epoch-moved', EPOCH_MOVED], ['epoch-mixed', EPOCH_MIXED], ['near-2-53', NEAR_2_53], ['tiny', TINY], ['tied-old', TIED(false)], ['tied-new', TIED(true)], ['mass-old', MASS(false)], ['mass-new', MASS(true)], ['float-keys-old', FLOAT_KEYS(false)], ['float-keys-new', FLOAT_KEYS(true)], ['sentinel-old', SENTINEL(false)], ['sentinel-new', SENTINEL(true)], ['far-old', SEGMENTED_FAR(false)], ['far-new', SEGMENTED_FAR(true)], ['overflowing-old', OVERFLOWING(false)], ['overflowing-new', OVERFLOWING(true)], ['subnormal', SUBNORMAL]] as const) {
    await conn.run(`COPY (${sql}) TO '${join(dir, `${name}.parquet`)}' (FORMAT parquet)`);
  }
  const read = async (sql: string) => (await conn.runAndReadAll(`${sql} ORDER BY id`)).getRowObjectsJS().map((r) => ({...r, id: Number(r['id'])}) as unknown as Row);
  oldRows = await read(OLD);
  newRows = await read(NEW);
  labelCounts = (await conn.runAndReadAll(`SELECT side, label AS value, count(*) AS n FROM (SELECT 0 AS side, label FROM (${LABELS_OLD}) UNION ALL SELECT 1, label FROM (${LABELS_NEW})) GROUP BY ALL`)).getRowObjectsJS();
  conn.closeSync();
  instance.closeSync();
});

afterAll(() => undefined);

async function run(newFile: string, analysis: Record<string, unknown> = {}, oldFile = 'old') {
  const r = await runTaskDirectly(analyze, {
    settings: {source: {keys: ['id']}, analysis: analysis as never},
    inputs: {'extract-old': {'rows.parquet': join(dir, `${oldFile}.parquet`)}, 'extract-new': {'rows.parquet': join(dir, `${newFile}.parquet`)}},
    outputs: ['analysis.json', 'parameters.csv'],
  });
  const doc = JSON.parse(readFileSync(join(r.outputDir, 'analysis.json'), 'utf8')) as AnalysisDocument;
  return {doc, result: r.result, csv: readFileSync(join(r.outputDir, 'parameters.csv'), 'utf8'), bytes: readFileSync(join(r.outputDir, 'analysis.json'))};
}

// --- Independent, straightforward computations -------------------------------------------
const values = (rows: Row[], c: 'x' | 'y', f: (r: Row) => boolean = () => true) =>
  rows.filter(f).map((r) => r[c]).filter((v): v is number => v !== null).sort((a, b) => a - b);
const mean = (s: number[]) => s.reduce((a, b) => a + b, 0) / s.length;
const std = (s: number[]) => Math.sqrt(s.reduce((a, v) => a + (v - mean(s)) ** 2, 0) / (s.length - 1));

describe('analyze', () => {
  it('finds nothing between identical versions: D = 0, PSI = 0, W1 = 0', async () => {
    const {doc, result} = await run('same');
    for (const name of ['x', 'y']) {
      const p = doc.parameters[name]!;
      expect(p.ks).toBe(0);
      expect(p.psi).toBe(0);
      expect(p.wasserstein).toBe(0);
      expect(p.drift).toBe('none');
      expect(p.old).toEqual(p.new);
      expect(p.top_movers).toEqual([]); // nothing changed, so nothing moved
    }
    expect(doc.categorical['z']!.js_distance).toBe(0);
    expect(result && result.verdict).toBe('pass');
  });

  it('measures a pure shift of a uniform grid: D = 0.1, and every figure matches a direct computation', async () => {
    const {doc, csv} = await run('new');
    const a = values(oldRows, 'x');
    const b = values(newRows, 'x');
    const p = doc.parameters['x']!;
    expect(p.ks).toBeCloseTo(ks(a, b), 10);
    expect(p.ks).toBeCloseTo(0.1, 2);
    expect(p.wasserstein).toBeCloseTo(wasserstein(a, b), 10);
    expect(p.wasserstein_norm).toBeCloseTo(wasserstein(a, b) / std(a), 9);
    expect(p.psi).toBeCloseTo(psi(a, b), 10);
    expect(p.old.count).toBe(a.length);
    expect(p.new.nulls).toBe(N - b.length);
    expect(p.new.mean).toBeCloseTo(mean(b), 10);
    expect(p.new.std).toBeCloseTo(std(b), 10);
    expect(p.mean_change.abs).toBeCloseTo(mean(b) - mean(a), 10);
    for (const [key, q] of [['min', 0], ['p05', 0.05], ['p25', 0.25], ['p50', 0.5], ['p75', 0.75], ['p95', 0.95], ['max', 1]] as const) {
      expect(p.old[key]).toBeCloseTo(quantile(a, q), 10);
      expect(p.new[key]).toBeCloseTo(quantile(b, q), 10);
    }
    expect(p.psi_bins.edges).toHaveLength(9);
    expect(p.histogram.old.reduce((s, c) => s + c, 0)).toBe(a.length);
    expect(p.histogram.new.reduce((s, c) => s + c, 0)).toBe(b.length);
    expect(p.histogram.edges).toHaveLength(31);
    expect(csv.split('\n')[0]).toContain('parameter,old_count,new_count');
    expect(csv).toContain(`x,${a.length},${b.length}`);
  });

  it('measures values too large to square (~4e180) like the same values scaled down', async () => {
    const plain = (await run('new', {segment_by: ['region']})).doc;
    const huge = (await run('huge-new', {segment_by: ['region']}, 'huge-old')).doc;
    const scale = 2 ** 600;
    for (const column of ['x', 'y']) {
      const p = plain.parameters[column]!;
      const h = huge.parameters[column]!;
      // KS, PSI and the normalised Wasserstein distance do not depend on the scale.
      expect([h.ks, h.psi, h.wasserstein_norm, h.drift]).toEqual([p.ks, p.psi, p.wasserstein_norm, p.drift]);
      expect(h.segments.map((g) => [g.ks, g.psi, g.wasserstein_norm])).toEqual(p.segments.map((g) => [g.ks, g.psi, g.wasserstein_norm]));
      for (const version of ['old', 'new'] as const) {
        for (const key of ['mean', 'std', 'min', 'p50', 'max'] as const) {
          expect(h[version][key]! / scale).toBeCloseTo(p[version][key]!, 10);
        }
      }
    }
    // And the plain figures are right (the scaled values' own mean and std, computed directly).
    const a = values(oldRows, 'x');
    expect(huge.parameters['x']!.old.std! / scale).toBeCloseTo(std(a), 10);
    expect(huge.parameters['x']!.old.mean! / scale).toBeCloseTo(mean(a), 10);
  });

  it('measures values spanning nearly the whole DOUBLE range (max - min overflows) like the same values before spreading', async () => {
    const plain = (await run('centred-new', {segment_by: ['region']}, 'centred-old')).doc;
    const wide = (await run('wide-new', {segment_by: ['region']}, 'wide-old')).doc;
    const half = 2 ** 1023; // 2^1024 itself is beyond a DOUBLE
    for (const column of ['x', 'y']) {
      const p = plain.parameters[column]!;
      const w = wide.parameters[column]!;
      expect(Math.max(w.old.max!, w.new.max!) - Math.min(w.old.min!, w.new.min!), 'the span overflows').toBe(Infinity);
      expect([w.ks, w.psi, w.wasserstein_norm, w.drift]).toEqual([p.ks, p.psi, p.wasserstein_norm, p.drift]);
      expect(w.segments.map((g) => [g.ks, g.psi, g.wasserstein_norm])).toEqual(p.segments.map((g) => [g.ks, g.psi, g.wasserstein_norm]));
      // Every figure in values' units is the plain one times 2^1024 (to the 12 digits written).
      const unspread = (v: number | null) => (v === null ? null : v / 2 / half);
      const same = (a: number | null, b: number | null, what: string) => {
        expect(a, what).not.toBeNull();
        expect(unspread(a)!, what).toBeCloseTo(b!, 11);
      };
      for (const version of ['old', 'new'] as const) {
        for (const key of ['min', 'p05', 'p25', 'p50', 'p75', 'p95', 'max'] as const) same(w[version][key], p[version][key], `${column} ${version} ${key}`);
      }
      same(w.wasserstein, p.wasserstein, `${column} wasserstein`);
      expect(w.psi_bins.edges).toHaveLength(p.psi_bins.edges.length);
      w.psi_bins.edges.forEach((edge, j) => same(edge, p.psi_bins.edges[j]!, `${column} PSI edge ${j}`));
      w.histogram.edges.forEach((edge, j) => same(edge, p.histogram.edges[j]!, `${column} chart edge ${j}`));
      // The chart's bin width is computed another way when the span overflows (hi/30 - lo/30):
      // a value of this grid lying on a boundary may fall in the bin beside, nothing else moves.
      for (const version of ['old', 'new'] as const) {
        const [a, b] = [w.histogram[version], p.histogram[version]];
        expect(a.reduce((x, y) => x + y, 0)).toBe(b.reduce((x, y) => x + y, 0));
        expect(Math.max(...a.map((count, j) => Math.abs(count - b[j]!)))).toBeLessThanOrEqual(1);
      }
    }
  });

  it('shows a drift confined to one segment there and nowhere else', async () => {
    const {doc, result} = await run('new');
    const p = doc.parameters['y']!;
    expect(p.segments.map((s) => s.segment['region'])).toEqual(['a', 'b', 'c', 'd']);
    for (const s of p.segments) {
      const inSegment = (r: Row) => r.region === s.segment['region'];
      const a = values(oldRows, 'y', inSegment);
      const b = values(newRows, 'y', inSegment);
      expect(s.ks).toBeCloseTo(ks(a, b), 10);
      expect(s.psi).toBeCloseTo(psi(a, b, 10), 10);
      expect(s.wasserstein_norm).toBeCloseTo(wasserstein(a, b) / std(a), 9);
      if (s.segment['region'] === 'a') {
        expect(s.ks).toBeGreaterThan(0.4);
        expect(s.drift).toBe('major');
      } else {
        expect(s.ks).toBe(0);
        expect(s.drift).toBe('none');
      }
    }
    expect(p.ks).toBeCloseTo(ks(values(oldRows, 'y'), values(newRows, 'y')), 10);
    // The run's verdict says so on the terminal, whatever the rules: y, concentrated in region
    // a, first (the larger PSI there), then x, shifted everywhere alike.
    const two = (v: number | null) => Number(v!.toPrecision(2));
    const x = doc.parameters['x']!;
    expect(x.drift).toBe('major');
    expect(result?.highlights).toEqual([
      `y: ${p.drift} drift (PSI ${two(p.psi)}, KS ${two(p.ks)}), strongest in region=a (PSI ${two(p.segments[0]!.psi)})`,
      `x: major drift (PSI ${two(x.psi)}, KS ${two(x.ks)})`,
    ]);
  });

  it('lists drifted parameters strongest first, names their strongest segment, and keeps to five lines', () => {
    const segment = (region: string, psi: number, drift: string) => ({segment: {region}, psi, drift});
    const parameter = (psi: number, drift: string, ks: number, segments: ReturnType<typeof segment>[] = []) =>
      ({psi, drift, ks, segments}) as unknown as NumericAnalysis;
    const lines = driftHighlights({
      calm: parameter(0.01, 'none', 0.01, [segment('east', 0.02, 'none')]),
      shifted: parameter(0.3, 'major', 0.2, [segment('east', 0.9, 'major'), segment('west', 0.05, 'none')]),
      local: parameter(0.02, 'none', 0.03, [segment('north', 0.12, 'moderate'), segment('south', 0.4, 'major'), segment('east', 0.11, 'moderate')]),
      ...Object.fromEntries(['p1', 'p2', 'p3', 'p4'].map((name, i) => [name, parameter(0.11 + i / 100, 'moderate', 0.05)])),
    });
    expect(lines).toEqual([
      'shifted: major drift (PSI 0.3, KS 0.2), strongest in region=east (PSI 0.9)',
      'local: drift only in region=south (major, PSI 0.4), region=north (moderate, PSI 0.12) and 1 more segment; PSI 0.02 overall',
      'p4: moderate drift (PSI 0.14, KS 0.05)',
      'p3: moderate drift (PSI 0.13, KS 0.05)',
      'p2: moderate drift (PSI 0.12, KS 0.05)',
      'and 1 more drifted parameters (analysis.json)',
    ]);
    expect(driftHighlights({calm: parameter(0.01, 'none', 0.01)})).toEqual([]);
  });

  it('handles runs of tied values, without segments, like a direct computation', async () => {
    const {doc} = await run('ties-new', {segment_by: []}, 'ties-old');
    const a = Array.from({length: 600}, (_, i) => (i * 7) % 11).sort((x, y) => x - y);
    const b = Array.from({length: 660}, (_, j) => j + 40).filter((i) => i % 50 !== 3).map((i) => (i * 5) % 13).sort((x, y) => x - y);
    const p = doc.parameters['t']!;
    expect(p.segments).toEqual([]);
    expect(p.ks).toBeCloseTo(ks(a, b), 10);
    expect(p.wasserstein).toBeCloseTo(wasserstein(a, b), 10);
    expect(p.psi).toBeCloseTo(psi(a, b), 10);
    expect(p.new.nulls).toBe(660 - b.length);
    for (const [key, q] of [['min', 0], ['p05', 0.05], ['p25', 0.25], ['p50', 0.5], ['p75', 0.75], ['p95', 0.95], ['max', 1]] as const) {
      expect(p.old[key]).toBeCloseTo(quantile(a, q), 10);
      expect(p.new[key]).toBeCloseTo(quantile(b, q), 10);
    }
    expect(p.old.std).toBeCloseTo(std(a), 10);
    expect(p.histogram.old.reduce((s, c) => s + c, 0)).toBe(a.length);
    // Bin 0 of the chart holds the minimum (0) and nothing else of these integers on 30 bins over [0, 12].
    expect(p.histogram.old[0]).toBe(a.filter((v) => v === 0).length);
    expect(p.top_movers).toHaveLength(20);
  });

  it('compares category frequencies with the Jensen-Shannon distance', async () => {
    const {doc} = await run('new');
    const c = doc.categorical['z']!;
    const freq = (rows: Row[]) => {
      const m = new Map<string, number>();
      for (const r of rows) m.set(r.z, (m.get(r.z) ?? 0) + 1 / rows.length);
      return m;
    };
    const po = freq(oldRows);
    const pn = freq(newRows);
    let js = 0;
    for (const k of new Set([...po.keys(), ...pn.keys()])) {
      const p = po.get(k) ?? 0;
      const q = pn.get(k) ?? 0;
      const m = (p + q) / 2;
      if (p > 0) js += 0.5 * p * Math.log2(p / m);
      if (q > 0) js += 0.5 * q * Math.log2(q / m);
    }
    expect(c.js_distance).toBeCloseTo(Math.sqrt(js), 10);
    expect(c.new_categories).toEqual(['q']);
    expect(c.vanished_categories).toEqual(['p']);
    expect(c.categories.find((x) => x.value === 'm')).toMatchObject({old: oldRows.filter((r) => r.z === 'm').length, new: newRows.filter((r) => r.z === 'm').length});
  });

  it('sums up a column of many categories inside DuckDB like counting every one of them', async () => {
    const {doc} = await run('labels-new', {segment_by: []}, 'labels-old');
    const c = doc.categorical['label']!;
    // The oracle: every count read back and summed up in JavaScript.
    const expected = categoricalFromCounts(labelCounts, CATEGORY_CAP);
    expect(expected.truncated).toBe(true);
    expect(expected.new_categories).toHaveLength(CATEGORY_CAP);
    expect(expected.vanished_categories).toHaveLength(CATEGORY_CAP);
    const close = (x: number) => Number(x.toPrecision(10));
    const rounded = (a: typeof expected) => ({...a, js_distance: null, categories: a.categories.map((k) => ({...k, old_pct: close(k.old_pct), new_pct: close(k.new_pct)}))});
    expect(rounded(c)).toEqual(rounded(expected));
    expect(c.js_distance).toBeCloseTo(expected.js_distance!, 10);
  });

  it('leaves lists, structs and maps out of the parameters and categories (an embedding is no parameter)', async () => {
    const {doc} = await run('nested-new', {segment_by: []}, 'nested-old');
    expect(Object.keys(doc.parameters)).toEqual(['score']);
    expect(Object.keys(doc.categorical)).toEqual(['label']);
    expect(doc.parameters['score']!.mean_change.abs).toBeCloseTo(0.5, 12);
  });

  it('lists the largest movers per parameter by matched key', async () => {
    const {doc} = await run('new', {top_n: 5});
    const changes = oldRows
      .map((o, i) => ({id: o.id, change: newRows[i]!.y - o.y}))
      .sort((p, q) => Math.abs(q.change) - Math.abs(p.change) || q.id - p.id);
    const movers = doc.parameters['y']!.top_movers;
    expect(movers).toHaveLength(5);
    for (const m of movers) expect(m.abs_change).toBeCloseTo(0.5, 10);
    expect(movers.every((m) => Number(m.key['id']) % 4 === 0)).toBe(true);
    expect(Math.abs(changes[0]!.change)).toBeCloseTo(movers[0]!.abs_change, 10);
    // Exactly the five largest changes, ties going to the larger key (the sampled threshold
    // that prunes the join must not lose any of them).
    const ids = (list: {id: number}[]) => list.map((m) => m.id).sort((a, b) => a - b);
    expect(ids(movers.map((m) => ({id: Number(m.key['id'])})))).toEqual(ids(changes.slice(0, 5)));
  });

  it('lists the same movers with many parameters, where the query takes another form', async () => {
    expect(MANY_PARAMETERS).toBeGreaterThan(MOVERS_FILTERED_PARAMETERS);
    for (const topN of [5, 100]) {
      const {doc} = await run('params-new', {top_n: topN, segment_by: []}, 'params-old');
      for (let j = 0; j < MANY_PARAMETERS; j++) {
        // The changed ids, largest change first (all 80 of them when top_n asks for more).
        const expected = Array.from({length: 401}, (_, i) => i).filter((i) => (i + j) % 5 === 0 && i > 0).sort((a, b) => b - a).slice(0, topN);
        const movers = doc.parameters[`q${j}`]!.top_movers;
        expect(movers.map((m) => Number(m.key['id'])), `q${j} top ${topN}`).toEqual(expected);
        for (const m of movers) expect(m.abs_change).toBeCloseTo((Number(m.key['id']) * (j + 1)) / 1000, 9);
      }
    }
  });

  it('lists only keys whose value changed, even when top_n asks for more', async () => {
    const {doc} = await run('new', {top_n: 10_000});
    const changed = oldRows.flatMap((o, i) => {
      const n = newRows[i]!.y;
      return o.y !== null && n !== null && n !== o.y ? [o.id] : [];
    });
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.length).toBeLessThan(oldRows.length / 2);
    const movers = doc.parameters['y']!.top_movers;
    expect(movers.map((m) => Number(m.key['id'])).sort((a, b) => a - b)).toEqual(changed.sort((a, b) => a - b));
    expect(movers.every((m) => m.abs_change > 0)).toBe(true);
  });

  it('leaves keys duplicated in either version out of the movers, as the validation does', async () => {
    // Their pairs mix rows (990's two old rows against its one new row); with top_n 2 the
    // first list fetched (twice top_n) holds nothing else, and the task asks for more.
    const expected = [950, 940, 930, 920, 910];
    for (const topN of [2, 5]) {
      const {doc} = await run('dups-new', {top_n: topN, segment_by: []}, 'dups-old');
      const movers = doc.parameters['y']!.top_movers;
      expect(movers.map((m) => Number(m.key['id']))).toEqual(expected.slice(0, topN));
      for (const m of movers) expect(m.change).toBeCloseTo(Number(m.key['id']) / 100, 9);
    }
  });

  it('measures values at the largest double (a "missing" sentinel) scaled, like other huge values', async () => {
    const {doc} = await run('sentinel-new', {segment_by: []}, 'sentinel-old');
    const x = doc.parameters['x']!;
    expect(x.old.max).toBe(1.7976931348623157e308);
    expect([x.new.min, x.new.max]).toEqual([1, 5]);
    const a = [...Array<number>(5).fill(1.7976931348623157e308), 1, 2, 3, 4, 5].sort((p, q) => p - q);
    const b = [1, 1, 1, 1, 1, 1, 2, 3, 4, 5];
    expect(x.ks).toBeCloseTo(ks(a, b), 12);
    expect(x.psi).toBeCloseTo(psi(a, b), 10);
    expect(x.drift).toBe('major');
  });

  it('lists movers keyed by NaN or an infinity, naming the key as text as segments are', async () => {
    const {doc} = await run('float-keys-new', {segment_by: []}, 'float-keys-old');
    const keys = doc.parameters['v']!.top_movers.map((m) => m.key['id']);
    expect(keys.sort()).toEqual([1.5, '-Infinity', 'Infinity', 'NaN'].sort());
  });

  it('segments by a floating-point column holding NaN and infinities, naming them as text', async () => {
    const {doc} = await run('tiers-new', {segment_by: ['tier'], top_n: 0}, 'tiers-old');
    const segments = doc.parameters['x']!.segments;
    expect(segments.map((s) => s.segment)).toEqual([{tier: '-Infinity'}, {tier: 1.5}, {tier: 'Infinity'}, {tier: 'NaN'}]);
    for (const s of segments) expect([s.old.count, s.new.count, s.mean_change.abs]).toEqual([50, 50, 1]);
    expect(parseSegmentKey('{"a":NaN,"b":"NaN, or not","c":-Infinity,"d":"say \\"Infinity\\""}')).toEqual({a: 'NaN', b: 'NaN, or not', c: '-Infinity', d: 'say "Infinity"'});
    // Integers past 2^53 keep their digits; other numbers are numbers.
    expect(parseSegmentKey('{"g":9007199254740993,"h":-12,"i":1.5,"j":2e3,"k":"9007199254740993","l":[9007199254740995]}')).toEqual({g: '9007199254740993', h: -12, i: 1.5, j: 2000, k: '9007199254740993', l: ['9007199254740995']});
  });

  it('gives the percentage change of means near the largest double, which 100 x the change would overflow', () => {
    expect(meanChange(1e308, 9.8e307).pct).toBeCloseTo(-2, 9);
    expect(meanChange(-4, -3)).toEqual({abs: 1, pct: 25});
    expect(meanChange(0, 1).pct).toBeNull();
  });

  it('writes the values of the data (extremes, quantiles, movers) with every digit', async () => {
    const {doc} = await run('large-new', {segment_by: []}, 'large-old');
    const n = doc.parameters['n']!;
    expect([n.old.min, n.old.p50, n.old.max]).toEqual([123456789012345, 123456789012394.5, 123456789012444]);
    // The deviation of values far from zero against their spread keeps its digits: exactly,
    // the sample deviation of 0..99 (moments about the data, not about zero).
    const exact = Math.sqrt(Array.from({length: 100}, (_, i) => (i - 49.5) ** 2).reduce((a, b) => a + b) / 99);
    expect(Math.abs(n.old.std! / exact - 1)).toBeLessThan(1e-11);
    expect(n.top_movers).toEqual([{key: {id: 7}, old: 123456789012352, new: 123456789012355, change: 3, abs_change: 3}]);
  });

  it('keeps the digits of a deviation when the values sit far from zero against their spread', async () => {
    // Exact sample deviations, from the offsets (small integers): moments are shift-invariant.
    const deviation = (offsets: number[]) => {
      const mean = offsets.reduce((a, b) => a + b) / offsets.length;
      return Math.sqrt(offsets.reduce((a, b) => a + (b - mean) ** 2, 0) / (offsets.length - 1));
    };
    const epoch = (await run('epoch', {segment_by: []}, 'epoch')).doc.parameters['t']!;
    const exact = deviation(Array.from({length: 20000}, (_, i) => (i * 7919) % 2000));
    expect(Math.abs(epoch.old.std! / exact - 1)).toBeLessThan(1e-10);
    expect(Math.abs(epoch.new.std! / exact - 1)).toBeLessThan(1e-10);
    const near = (await run('near-2-53', {segment_by: []}, 'near-2-53')).doc.parameters['t']!;
    expect(near.old.std).toBeCloseTo(deviation([0, 6]), 10);
    // Values so small that their squares underflow still have a deviation (scaled, exactly).
    const tiny = (await run('tiny', {segment_by: []}, 'tiny')).doc.parameters['t']!;
    expect(Math.abs(tiny.old.std! / (deviation([1, -1, 3, 0, 2]) * 1e-300) - 1)).toBeLessThan(1e-10);
    // A new version a million times nearer zero, and segments at either location, keep theirs.
    const moved = (await run('epoch-moved', {segment_by: []}, 'epoch')).doc.parameters['t']!;
    expect(Math.abs(moved.old.std! / exact - 1)).toBeLessThan(1e-10);
    expect(Math.abs(moved.new.std! / exact - 1)).toBeLessThan(1e-10);
    const mixed = (await run('epoch-mixed', {segment_by: ['half']}, 'epoch-mixed')).doc.parameters['t']!;
    for (const half of [0, 1]) {
      const segment = mixed.segments.find((x) => x.segment['half'] === half)!;
      const offsets = Array.from({length: 20000}, (_, i) => i).filter((i) => i % 2 === half).map((i) => (i * 7919) % 2000);
      expect(Math.abs(segment.old.std! / deviation(offsets) - 1)).toBeLessThan(1e-10);
    }
  });

  it('merges segments without losing digits: a constant has no deviation, values far from zero keep theirs and their mean change', async () => {
    const {doc} = await run('far-new', {segment_by: ['region']}, 'far-old');
    const c = doc.parameters['c']!;
    expect([c.old.mean, c.old.std, c.new.mean, c.new.std]).toEqual([0.1, 0, 0.11, 0]);
    // No deviation to measure the move in: none (Infinity deviations is the alerts' reading).
    expect(c.wasserstein_norm).toBeNull();
    // The stored doubles less 1e9 (exact) are the offsets the figures must keep.
    const offsets = (changed: boolean) => Array.from({length: 3000}, (_, i) => 1e9 + (i * 7919) % 2000 / 1e6 + (changed ? 5e-4 : 0) - 1e9);
    const f = doc.parameters['f']!;
    expect(Math.abs(f.old.std! / std(offsets(false)) - 1)).toBeLessThan(1e-9);
    expect(Math.abs(f.new.std! / std(offsets(true)) - 1)).toBeLessThan(1e-9);
    expect(Math.abs(f.mean_change.abs! / (mean(offsets(true)) - mean(offsets(false))) - 1)).toBeLessThan(1e-6);
  });

  it('lists changes beyond a DOUBLE first, largest first, wherever the sample puts the threshold', async () => {
    const one = (await run('overflowing-new', {segment_by: [], top_n: 1}, 'overflowing-old')).doc.parameters['p']!;
    expect(one.top_movers.map((m) => m.key['id'])).toEqual([43]);
    const three = (await run('overflowing-new', {segment_by: [], top_n: 3}, 'overflowing-old')).doc.parameters['p']!;
    // Ties (2e308 each) keep the largest key, as every tie does.
    expect(three.top_movers.map((m) => m.key['id'])).toEqual([43, 44, 99]);
    expect(three.top_movers[0]).toMatchObject({old: 1.7e308, new: -1.7e308, change: null, abs_change: null});
  });

  it('measures subnormal values (below 2.2e-308), scaled up as far as a DOUBLE goes', async () => {
    const p = (await run('subnormal', {segment_by: []}, 'subnormal')).doc.parameters['p']!;
    const units = Array.from({length: 70}, (_, i) => (i % 7) + 1);
    expect(Math.abs(p.old.std! / (std(units) * 1e-310) - 1)).toBeLessThan(1e-6);
    expect([p.old.min, p.old.max]).toEqual([1e-310, 7e-310]);
  });

  it('orders tied movers by key value (8 before 10), the same on every run', async () => {
    const {doc} = await run('tied-new', {segment_by: [], top_n: 5}, 'tied-old');
    expect(doc.parameters['v']!.top_movers.map((m) => m.key['id'])).toEqual([8, 9, 10, 11, 12]);
  });

  it('lists no movers with top_n: 0', async () => {
    const {doc} = await run('new', {top_n: 0});
    expect(doc.parameters['y']!.top_movers).toEqual([]);
    expect(doc.parameters['y']!.ks).toBeGreaterThan(0);
  });

  it('gives a point mass a PSI bin of its own, so a version moving it reads as drift', async () => {
    const {doc, result} = await run('mass-new', {segment_by: [], rules: [{check: 'drift', column: 'm', max_psi: 0.2, severity: 'error'}]}, 'mass-old');
    const ids = Array.from({length: 5000}, (_, i) => i);
    const spread = (i: number) => (i % 997 + 1) / 1000;
    const a = ids.map((i) => (i % 10 === 0 ? spread(i) : 0));
    const b = ids.map((i) => (i % 10 === 0 ? spread(i) : -0.5));
    const m = doc.parameters['m']!;
    // Nine of the ten deciles are 0: the bins (-inf, 0), [0, 0] and (0, 1 - ...].
    expect(m.psi_bins.edges).toEqual(psiReference(a, 10).edges);
    expect(m.psi_bins.edges.slice(0, 2)).toEqual([-Number.MIN_VALUE, 0]);
    expect(m.psi).toBeCloseTo(psi(a, b), 10);
    expect(m.psi).toBeGreaterThan(5);
    expect(m.drift).toBe('major');
    expect(result && result.verdict).toBe('fail');
    // Constant in each version: old 0.5, new 0.1, nothing in common.
    const c = doc.parameters['c']!;
    expect(c.psi_bins.edges).toEqual(psiReference(Array<number>(5000).fill(0.5), 10).edges);
    expect(c.psi).toBeCloseTo(psi(Array<number>(5000).fill(0.5), Array<number>(5000).fill(0.1)), 10);
    expect([c.ks, c.drift]).toEqual([1, 'major']);
  });

  it('sets the verdict from drift rules', async () => {
    const error = await run('new', {rules: [{check: 'drift', column: 'x', max_psi: 0.05, severity: 'error'}]});
    expect(error.result && error.result.verdict).toBe('fail');
    expect(error.doc.rules[0]).toMatchObject({check: 'drift', severity: 'error', column: 'x', passed: false, limit: 0.05});
    const warn = await run('new', {rules: [{check: 'drift', max_psi: 0.05, severity: 'warn'}]});
    expect(warn.result && warn.result.verdict).toBe('warn');
    // A rule over every parameter names none.
    expect(warn.doc.rules[0]).not.toHaveProperty('column');
    const pass = await run('new', {rules: [{check: 'drift', column: 'x', max_psi: 100, severity: 'error'}]});
    expect(pass.result && pass.result.verdict).toBe('pass');
    expect(pass.doc.status).toBe('pass');
  });

  it('writes identical bytes on a rerun', async () => {
    const first = await run('new');
    const second = await run('new');
    expect(first.bytes.equals(second.bytes)).toBe(true);
  });

  it('names the existing columns when a segment column is missing, and refuses more segments than it takes', async () => {
    await expect(run('new', {segment_by: ['country']})).rejects.toThrow(/analysis\.segment_by names "country".*"id", "region", "x", "y", "z"/);
    await expect(run('many', {segment_by: ['cell']}, 'many')).rejects.toThrow(/analysis\.segment_by \("cell"\) divides the rows into 70,000 segments; an analysis takes at most 65,535\./);
  });
});

describe('the alerts task (the example of a task of your own)', () => {
  it('flags means moved beyond threshold_std old standard deviations, a constant parameter by any move, quoting segments', async () => {
    const place = (old: number, neu: number, std: number | null) => ({old: {mean: old, std}, new: {mean: neu, std}, mean_change: {abs: neu - old, pct: null}, psi: 0.5});
    const analysis = {
      parameters: {
        constant: {...place(1, 1.5, 0), segments: []},
        steady: {...place(1, 1.1, 1), segments: [{segment: {region: 'a,\r\nb'}, ...place(1, 3, 1)}]},
        alone: {...place(2, 2, null), segments: []},
      },
    };
    const dir = temporaryFolder('alerts-');
    writeFileSync(join(dir, 'analysis.json'), JSON.stringify(analysis));
    const {default: alerts} = await import('../tasks/alerts.js');
    const r = await runTaskDirectly(alerts, {args: {threshold_std: 0.25}, inputs: {analyze: {'analysis.json': join(dir, 'analysis.json')}}, outputs: ['alerts.csv']});
    expect(readFileSync(join(r.outputDir, 'alerts.csv'), 'utf8')).toBe(
      'parameter,segment,old_mean,new_mean,change_in_old_std,mean_change_pct,psi\n' +
        'constant,(all),1,1.5,Infinity,,0.5\n' +
        'steady,"region=a,\r\nb",1,3,2,,0.5\n',
    );
    expect(r.result).toMatchObject({rows: 2});
  });
});
