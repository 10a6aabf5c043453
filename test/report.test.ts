/**
 * The report task on real validation.json and analysis.json: two small versions are written
 * as Parquet by DuckDB, compared by the real validate and analyze tasks, and reported on.
 * The size bound is checked on a real 1M-row comparison and on an analysis.json with every
 * list at its largest.
 */
import {readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {DuckDBInstance} from '@duckdb/node-api';
import {beforeAll, describe, expect, it} from 'vitest';
import type {Json, UpstreamInfo} from '../src/task-api.js';
import analyze from '../tasks/analyze.js';
import type {AnalysisDocument, NumericAnalysis} from '../tasks/lib/analyze-sql.js';
import {formatNumber} from '../tasks/lib/charts.js';
import {REPORT_LIMITS} from '../tasks/lib/report-html.js';
import report from '../tasks/report.js';
import validate from '../tasks/validate.js';
import {runTaskDirectly} from './support/run-task.js';
import {temporaryFolder} from './support/temp.js';

const NASTY = '<script>alert("x")</script>';
const NASTY_CATEGORY = '<b>bold</b> & "quoted"';
const NASTY_SQL = `"${NASTY.replaceAll('"', '""')}"`;

// 400 entities in two regions. The new version drops ids 0-9 (2.5% removed: an error rule
// fails), adds ids 400-404, shifts the parameter named NASTY in region 'north' only, and
// changes every tenth price. `label` holds an HTML-looking category.
const OLD = `SELECT i AS id, CASE WHEN i % 2 = 0 THEN 'north' ELSE 'south' END AS region,
  i / 400.0 AS ${NASTY_SQL}, (i * 1.5)::DOUBLE AS price,
  CASE WHEN i % 3 = 0 THEN 'plain' WHEN i % 3 = 1 THEN '${NASTY_CATEGORY}' ELSE 'other' END AS label
  FROM range(400) t(i)`;
const NEW = `SELECT i AS id, CASE WHEN i % 2 = 0 THEN 'north' ELSE 'south' END AS region,
  i / 400.0 + CASE WHEN i % 2 = 0 THEN 0.3 ELSE 0 END AS ${NASTY_SQL}, (i * 1.5 + CASE WHEN i % 10 = 0 THEN 2 ELSE 0 END)::DOUBLE AS price,
  CASE WHEN i % 3 = 0 THEN 'plain' WHEN i % 3 = 1 THEN '${NASTY_CATEGORY}' ELSE 'brand new' END AS label
  FROM range(10, 405) t(i)`;

const RULES: Json[] = [
  {check: 'row_count_change', max_pct: 5, severity: 'error'},
  {check: 'removed_keys', max_pct: 1, severity: 'error'},
  {check: 'added_keys', max_pct: 5, severity: 'warn'},
  {check: 'changed_rows', max_pct: 80, severity: 'warn'},
];

const UPSTREAM: Record<string, UpstreamInfo> = {
  'extract-old': {status: 'cached', duration_ms: 1500, reason: null, computed_at: '2024-05-01T09:00:00.000Z', rows: 400, verdict: null, verdict_reasons: []},
  'extract-new': {status: 'ran', duration_ms: 1400, reason: 'source changed', computed_at: '2024-05-01T10:00:00.000Z', rows: 395, verdict: null, verdict_reasons: []},
  validate: {status: 'ran', duration_ms: 2100, reason: 'input extract-new.rows changed', computed_at: '2024-05-01T10:00:02.000Z', rows: 390, verdict: 'fail', verdict_reasons: []},
  analyze: {status: 'ran', duration_ms: 3300, reason: 'input extract-new.rows changed', computed_at: '2024-05-01T10:00:03.000Z', rows: 795, verdict: 'warn', verdict_reasons: []},
};

/** Writes two versions as Parquet and runs the real validate and analyze tasks on them. */
async function compare(oldSql: string, newSql: string, segmentBy: string[] = ['region']) {
  const dir = temporaryFolder('report-fixture-');
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    await connection.run(`COPY (${oldSql}) TO '${join(dir, 'old.parquet')}' (FORMAT parquet)`);
    await connection.run(`COPY (${newSql}) TO '${join(dir, 'new.parquet')}' (FORMAT parquet)`);
    connection.closeSync();
  } finally {
    instance.closeSync();
  }
  const inputs = {'extract-old': {'rows.parquet': join(dir, 'old.parquet')}, 'extract-new': {'rows.parquet': join(dir, 'new.parquet')}};
  const validated = await runTaskDirectly(validate, {
    name: 'validate',
    settings: {source: {keys: ['id'], columns: null}, validation: {tolerance: {abs: 0, rel: 0, columns: {}}, rules: RULES}},
    inputs,
    outputs: ['validation.json', 'mismatches.csv', 'added_keys.csv', 'removed_keys.csv', 'duplicate_keys.csv'],
  });
  const analyzed = await runTaskDirectly(analyze, {
    name: 'analyze',
    settings: {source: {keys: ['id']}, analysis: {segment_by: segmentBy, bins: 10, top_n: 20, psi: {warn: 0.1, fail: 0.25}}},
    inputs,
    outputs: ['analysis.json', 'parameters.csv'],
  });
  return {validation: join(validated.outputDir, 'validation.json'), analysis: join(analyzed.outputDir, 'analysis.json')};
}

/** Runs the report task; `analysis` undefined is `--skip-analysis`. */
async function runReport(files: {validation: string; analysis?: string}, upstream: Record<string, UpstreamInfo> = UPSTREAM) {
  const run = await runTaskDirectly(report, {
    name: 'report',
    args: {old: '0.3615', new: '0.3621'},
    inputs: {validate: {'validation.json': files.validation}, ...(files.analysis ? {analyze: {'analysis.json': files.analysis}} : {})},
    upstream,
    outputs: ['report.html'],
  });
  const page = readFileSync(join(run.outputDir, 'report.html'), 'utf8');
  return {page, text: textOf(page), result: run.result};
}

/** The page's text as a reader sees it: no style, no tags, entities decoded, spaces collapsed. */
function textOf(page: string): string {
  return page
    .replace(/<style[\s\S]*?<\/style>/g, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

/** References to anything outside the page: URLs, and src/href/url() not pointing inside it. */
function externalReferences(page: string): string[] {
  const found: string[] = [];
  for (const m of page.matchAll(/https?:|\/\/[a-z0-9.-]+\.[a-z]{2,}\//gi)) found.push(m[0]);
  for (const tag of page.matchAll(/<[a-z][^>]*>/gi)) {
    for (const attr of tag[0].matchAll(/\s(src|href|srcset|poster|data|action|xlink:href)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)/gi)) {
      const value = attr[2]!.replace(/^["']|["']$/g, '');
      if (!value.startsWith('#')) found.push(attr[0].trim());
    }
  }
  for (const m of page.matchAll(/url\(|@import/gi)) found.push(m[0]);
  return found;
}

let files: {validation: string; analysis: string};
let full: Awaited<ReturnType<typeof runReport>>;
let analysis: AnalysisDocument;

beforeAll(async () => {
  files = await compare(OLD, NEW);
  full = await runReport(files);
  analysis = JSON.parse(readFileSync(files.analysis, 'utf8')) as AnalysisDocument;
}, 60_000);

describe('report.html', () => {
  it('opens with the verdict and the rules that decided it', () => {
    const verdictAt = full.text.indexOf('Verdict: FAIL');
    expect(verdictAt).toBeGreaterThan(-1);
    expect(verdictAt).toBeLessThan(full.text.indexOf('Key counts'));
    expect(full.text).toContain('1 of 4 rules failed (1 error, 0 warnings)');
    // The deciding rule with severity, observed and limit, in the table under the verdict.
    const deciding = full.text.slice(full.text.indexOf('The rules that decided the verdict'), full.text.indexOf('Key counts'));
    expect(deciding).toMatch(/✗ error removed_keys 2\.5% 1% removed_keys: 10 removed keys \(2\.5% of the old version's keys\), above the limit of 1%/);
    expect(deciding).not.toContain('added_keys');
    expect(full.page).toMatch(/<title>FAIL: 0\.3615 → 0\.3621 version comparison<\/title>/);
  });

  it('shows the key counts', () => {
    expect(full.text).toContain('Rows, old → new 400 → 395');
    expect(full.text).toContain('Matched keys 390');
    expect(full.text).toContain('Added keys 5 only in the new version');
    expect(full.text).toContain('Removed keys 10 only in the old version');
    expect(full.text).toContain('Duplicated keys 0 / 0');
  });

  it('lists the columns by number of changes, with nulls and the largest difference', () => {
    const columns = full.text.slice(full.text.indexOf('Compared columns, most changed first'));
    // 130 labels changed ('other' -> 'brand new'), 195 north values moved, 39 prices by 2.
    expect(columns).toMatch(/^Compared columns, most changed first Column Type Changed rows Share of compared Nulls old Nulls new Max abs diff Tolerance <script>alert\("x"\)<\/script> DOUBLE 195 50% 0 0 0\.3 abs 0, rel 0 label VARCHAR 130 33\.33% 0 0 – exact price DOUBLE 39 10% 0 0 2 abs 0, rel 0 region VARCHAR 0 0% /);
  });

  it('draws one chart per numeric parameter, with a text alternative and the drift figures', () => {
    const names = Object.keys(analysis.parameters);
    expect(names.sort()).toEqual([NASTY, 'price'].sort());
    const charts = [...full.page.matchAll(/<svg class="chart"[^>]*aria-labelledby="(chart-\d+)-title \1-desc"[^>]*><title id="\1-title">([^<]*)<\/title><desc id="\1-desc">([^<]*)<\/desc>/g)];
    expect(charts).toHaveLength(names.length);
    expect((full.page.match(/<svg/g) ?? []).length).toBe(names.length);
    for (const name of names) {
      const p = analysis.parameters[name]!;
      const figures = `KS ${formatNumber(p.ks)}, PSI ${formatNumber(p.psi)}, Wasserstein ${formatNumber(p.wasserstein)}`;
      expect(full.text).toContain(`Distribution of ${name}: 0.3615 versus 0.3621`);
      expect(full.text).toContain(`${figures} (${formatNumber(p.wasserstein_norm)} old σ), drift ${p.drift}`);
    }
    // The shifted parameter drifts: the chart of the most drifted comes first.
    expect(charts[0]![2]).toContain(NASTY.replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
    expect(analysis.parameters[NASTY]!.drift).toBe('major');
  });

  it('has a heat map of drift per segment, with the values in text', () => {
    const heat = full.text.slice(full.text.indexOf('PSI per parameter and segment'), full.text.indexOf('Largest movers', full.text.indexOf('PSI per parameter and segment')));
    expect(heat).toMatch(/^PSI per parameter and segment Parameter north south /);
    const north = analysis.parameters[NASTY]!.segments.find((s) => s.segment['region'] === 'north')!;
    expect(north.drift).toBe('major');
    expect(heat).toContain(`${NASTY} ${formatNumber(north.psi, 2)} ▲▲`);
    expect(full.page).toMatch(/<td class="num heat drift-major"/);
  });

  it('lists the largest movers, the categorical changes, the schema and how the run went', () => {
    expect(full.text).toMatch(/Largest movers .*<script>alert\("x"\)<\/script> id Old New Change \d+ [\d.]+ [\d.]+ \+0\.3/);
    expect(full.text).toMatch(/label JS distance [\d.]+ Distinct values: 3 → 3; nulls 0 → 0 1 new: brand new 1 vanished: other/);
    expect(full.text).toContain('No schema changes');
    expect(full.text).toContain('How these results were computed');
    expect(full.text).toContain('3 of 4 upstream tasks ran and 1 was served from the cache (saving about 1.5 s of computing)');
    expect(full.text).toMatch(/extract-old ◆ cached 1\.5 s inputs, settings and code unchanged 2024-05-01 09:00:00 400 –/);
    expect(full.text).toMatch(/validate ● ran 2\.1 s input extract-new\.rows changed 2024-05-01 10:00:02 390 ✗ fail/);
  });

  it('refers to nothing outside itself', () => {
    expect(externalReferences(full.page)).toEqual([]);
    expect(full.page).not.toMatch(/<script|<link|<img|<iframe|<object|<embed/i);
    // Links stay inside the page and each one has a target.
    for (const [, id] of full.page.matchAll(/href="#([^"]+)"/g)) expect(full.page).toContain(`id="${id}"`);
  });

  it('escapes names and values from the data', () => {
    expect(full.page).not.toContain(NASTY);
    expect(full.page).not.toContain('<b>bold</b>');
    expect(full.page).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(full.page).toContain('&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;');
    expect(full.text).toContain(NASTY_CATEGORY);
  });

  it('is accessible: a language, one h1, headed sections, tables with header scopes', () => {
    expect(full.page).toMatch(/^<!DOCTYPE html>\n<html lang="en">/);
    expect((full.page.match(/<h1[ >]/g) ?? []).length).toBe(1);
    const headings = [...full.page.matchAll(/<h([1-6])[ >]/g)].map((m) => Number(m[1]));
    headings.forEach((level, i) => i > 0 && expect(level - headings[i - 1]!).toBeLessThanOrEqual(1));
    for (const [table] of full.page.matchAll(/<table[\s\S]*?<\/table>/g)) {
      expect(table).toMatch(/<th scope="col">/);
      expect(table).not.toMatch(/<th(?! scope="(?:col|row)")[ >]/);
    }
  });

  it('is the same bytes for the same inputs, and gives no verdict of its own', async () => {
    const again = await runReport(files);
    expect(again.page).toBe(full.page);
    expect(again.result).toEqual({details: {bytes: Buffer.byteLength(full.page), analysis: true}});
  });

  it('says so when the analysis was skipped', async () => {
    const upstream: Record<string, UpstreamInfo> = {...UPSTREAM, analyze: {status: 'skipped', duration_ms: 0, reason: 'skipped on request', computed_at: null, rows: null, verdict: null, verdict_reasons: []}};
    const skipped = await runReport({validation: files.validation}, upstream);
    expect(skipped.text).toContain('Analysis was skipped (--skip-analysis)');
    expect(skipped.text).toContain('Verdict: FAIL');
    expect(skipped.text).toContain('analyze ○ skipped – skipped on request');
    expect(skipped.page).not.toContain('<svg');
    expect(skipped.result).toEqual({details: {bytes: Buffer.byteLength(skipped.page), analysis: false}});
    expect(externalReferences(skipped.page)).toEqual([]);
  });

  it('reads a validation.json that lacks optional fields', async () => {
    const dir = temporaryFolder('report-minimal-');
    writeFileSync(join(dir, 'validation.json'), JSON.stringify({rows: {old: 3, new: 3}, rules: [{check: 'row_count_change', severity: 'error', passed: true, observed: 0, limit: 5}], status: 'pass'}));
    writeFileSync(join(dir, 'analysis.json'), JSON.stringify({parameters: {x: {psi: 0.01}}, status: 'pass'}));
    const minimal = await runReport({validation: join(dir, 'validation.json'), analysis: join(dir, 'analysis.json')}, {});
    expect(minimal.text).toContain('Verdict: PASS');
    expect(minimal.text).toContain('All 1 rule passed.');
    expect(minimal.text).toContain('Matched keys n/a');
    expect(minimal.text).toContain('No non-null values to chart');
  });

  it("takes the verdict of another task it reads (a user's gate), with its reasons, and says whose verdict it is", async () => {
    const dir = temporaryFolder('report-gate-');
    const passing = {rows: {old: 3, new: 3}, rules: [{check: 'row_count_change', severity: 'error', passed: true, observed: 0, limit: 5, unit: '%'}], status: 'pass'};
    writeFileSync(join(dir, 'validation.json'), JSON.stringify(passing));
    const info = (verdict: UpstreamInfo['verdict'], reasons: string[] = []): UpstreamInfo => ({status: 'ran', duration_ms: 5, reason: 'no previous run', computed_at: null, rows: null, verdict, verdict_reasons: reasons});
    const gated = await runReport({validation: join(dir, 'validation.json')}, {validate: info('pass'), gate: info('fail', ['custom business check failed'])});
    expect(gated.page).toContain('<title>FAIL: 0.3615 → 0.3621 version comparison</title>');
    expect(gated.text).toContain('Verdict: FAIL All 1 rule passed. Another task this report reads failed its check (below)');
    expect(gated.text).toContain('✗ error gate : custom business check failed');
    expect(gated.text).toContain('The verdict of validate and gate , the tasks this report reads');
    // A warn rule failed as well: the rules do not explain the FAIL, the gate does.
    const warned = {...passing, rules: [...passing.rules, {check: 'changed_rows', severity: 'warn', passed: false, observed: 30, limit: 25, unit: '%', message: 'changed_rows: 30%'}], status: 'warn'};
    writeFileSync(join(dir, 'warned.json'), JSON.stringify(warned));
    const both = await runReport({validation: join(dir, 'warned.json')}, {validate: info('warn'), gate: info('fail', ['custom business check failed'])});
    expect(both.text).toContain('Verdict: FAIL 1 of 2 rules failed (0 errors, 1 warning). Another task this report reads failed its check (below)');
    // Without the gate, the same documents pass.
    const alone = await runReport({validation: join(dir, 'validation.json')}, {validate: info('pass')});
    expect(alone.text).toContain('Verdict: PASS');
    expect(alone.text).toContain('The verdict of validate , the tasks this report reads');
  });

  it('gives an observed value digits enough to differ from its limit, and units to every limit', async () => {
    const dir = temporaryFolder('report-digits-');
    const rule = (check: string, observed: number, limit: number, unit?: string) => ({check, severity: 'error', passed: observed <= limit, observed, limit, ...(unit ? {unit} : {}), message: check});
    const rules = [rule('row_count_change', 5.004, 5, '%'), rule('max_abs_diff', 0.10004, 0.1), rule('added_keys', 7, 5, 'keys'), rule('null_rate_change', 2.5, 2, 'pp')];
    writeFileSync(join(dir, 'validation.json'), JSON.stringify({rows: {old: 100000, new: 105004}, compared_rows: 100000, changed_rows: 99999, rules, status: 'fail'}));
    const page = await runReport({validation: join(dir, 'validation.json')}, {});
    expect(page.text).toContain('row_count_change 5.004% 5% row_count_change');
    expect(page.text).toContain('max_abs_diff 0.10004 0.1 max_abs_diff');
    expect(page.text).toContain('added_keys 7 keys 5 keys added_keys');
    expect(page.text).toContain('null_rate_change 2.5 pp 2 pp null_rate_change');
    // 99,999 of 100,000 rows changed is not 100%.
    expect(page.text).toContain('99.999% of 100,000 compared');
  });

  it('shows an infinite largest difference ("Infinity" in validation.json) as such, in the rules and the columns', async () => {
    const dir = temporaryFolder('report-infinite-');
    const rules = [{check: 'max_abs_diff', severity: 'error', column: 'x', passed: false, observed: 'Infinity', limit: 0.5, message: 'max_abs_diff: largest absolute difference in "x" is Infinity, above the limit of 0.5'}];
    const columns = {
      x: {type: 'DOUBLE', type_old: 'DOUBLE', kind: 'numeric', changed: 2, nulls_old: 0, nulls_new: 0, max_abs_diff: 'Infinity', max_rel_diff: 'Infinity', tolerance: {abs: 0, rel: 0}},
      y: {type: 'DOUBLE', type_old: 'DOUBLE', kind: 'numeric', changed: 1, nulls_old: 0, nulls_new: 1, max_abs_diff: 0, max_rel_diff: 0, tolerance: {abs: 0, rel: 0}},
    };
    writeFileSync(join(dir, 'validation.json'), JSON.stringify({rows: {old: 2, new: 2}, compared_rows: 2, changed_rows: 2, columns, rules, status: 'fail'}));
    const page = await runReport({validation: join(dir, 'validation.json')}, {});
    expect(page.text).toContain('max_abs_diff (x) ∞ 0.5 max_abs_diff');
    // A rule on a column one version lacks has no value at all: n/a, not ∞.
    const missing = [{check: 'max_abs_diff', severity: 'error', column: 'gone', passed: false, observed: null, limit: 0.5, message: 'max_abs_diff: column "gone" is not in the new version'}];
    writeFileSync(join(dir, 'validation.json'), JSON.stringify({rows: {old: 2, new: 2}, compared_rows: 2, changed_rows: 2, columns, rules: missing, status: 'fail'}));
    expect((await runReport({validation: join(dir, 'validation.json')}, {})).text).toContain('max_abs_diff (gone) n/a 0.5');
    expect(page.text).toContain('x DOUBLE 2 100% 0 0 ∞ (a change to or from ±Infinity or NaN, or past the double range)');
    expect(page.text).toContain('y DOUBLE 1 50% 0 1 – (changes to or from null only)');
  });

  it('keeps a NULL segment, a segment named "null" and an empty one apart in the heat map', async () => {
    const region = "CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN 'null' ELSE '' END";
    const segmented = await compare(
      `SELECT i AS id, ${region} AS region, (i % 50)::DOUBLE AS p FROM range(600) t(i)`,
      `SELECT i AS id, ${region} AS region, ((i % 50) + CASE WHEN i % 3 = 0 THEN 1000 ELSE 0 END)::DOUBLE AS p FROM range(600) t(i)`,
    );
    const page = await runReport(segmented);
    const table = page.page.slice(page.page.indexOf('<table class="heatmap">'), page.page.indexOf('</table>', page.page.indexOf('<table class="heatmap">')));
    expect([...table.matchAll(/<th scope="col">([^<]*)<\/th>/g)].map((m) => m[1])).toEqual(['Parameter', '(empty)', '(null)', 'null']);
    const row = table.slice(table.indexOf('<code>p</code>'));
    expect([...row.matchAll(/heat drift-(\w+)/g)].map((m) => m[1])).toEqual(['none', 'major', 'none']);
  });

  it('fails with a clear message when validation.json is not JSON', async () => {
    const dir = temporaryFolder('report-broken-');
    writeFileSync(join(dir, 'validation.json'), '{"rows": ');
    await expect(runReport({validation: join(dir, 'validation.json')})).rejects.toThrow(/Expected validation.json from the validate task to be JSON, but it does not parse/);
  });
});

describe('report size', () => {
  it('stays under 2 MB for a 1M-row comparison', async () => {
    // 1M entities, 7 segments, three numeric parameters (one shifted), a category column with
    // thousands of values; 0.1% of keys removed and added.
    const version = (shift: number, skip: number) => `SELECT i AS id, 'r' || (i % 7) AS region,
      hash(i)::DOUBLE / 18446744073709551615 + CASE WHEN i % 3 = 0 THEN ${shift} ELSE 0 END AS a,
      (hash(i * 3) % 1000)::INTEGER AS b, i % 5000 * 0.5 AS c, 'category-' || (hash(i * 5) % 2000) AS d
      FROM range(1000000) t(i) WHERE i % 1000 <> ${skip}`;
    const big = await compare(version(0, 1), version(0.05, 2));
    const {page, text} = await runReport(big);
    expect(Buffer.byteLength(page)).toBeLessThan(2 * 1024 * 1024);
    expect((page.match(/<svg/g) ?? []).length).toBe(3);
    // 0.1% of keys removed: within the 1% limit; a third of the rows changed, within 50%.
    expect(text).toContain('Matched keys 998,000');
    expect(text).toContain('Verdict: PASS');
  }, 120_000);

  it('stays under 2 MB with every list in analysis.json at its largest', async () => {
    const dir = temporaryFolder('report-large-');
    const long = (prefix: string, i: number) => `${prefix}-${i}-${'x'.repeat(180)}`;
    const segments = Array.from({length: 500}, (_, s) => ({
      segment: {region: long('segment', s)},
      old: {count: 2000, mean: 1, std: 1},
      new: {count: 2000, mean: 1.1, std: 1},
      mean_change: {abs: 0.1, pct: 10},
      ks: 0.05,
      psi: (s % 30) / 100,
      wasserstein_norm: 0.1,
      drift: s % 30 >= 25 ? 'major' : s % 30 >= 10 ? 'moderate' : 'none',
    }));
    const parameter = (i: number): NumericAnalysis => {
      const summary = {count: 1e6, nulls: 10, mean: 0.123456789, std: 1.23456789, min: -4.56789, p05: -1.6449, p25: -0.6745, p50: 0.00012, p75: 0.6745, p95: 1.6449, max: 4.56789};
      return {
        type: 'numeric',
        old: summary,
        new: summary,
        mean_change: {abs: 0.0123456, pct: 1.23456},
        ks: 0.0123456789,
        psi: 0.123456789 + i / 1000,
        psi_bins: {edges: [], old: [], new: []},
        wasserstein: 0.0123456789,
        wasserstein_norm: 0.0123456789,
        drift: 'moderate',
        histogram: {edges: Array.from({length: 31}, (_, j) => -4.56789 + j * 0.30452), old: Array.from({length: 30}, (_, j) => 1000 + j * 37), new: Array.from({length: 30}, (_, j) => 1100 + j * 31)},
        segments: segments as NumericAnalysis['segments'],
        top_movers: Array.from({length: 1000}, (_, m) => ({key: {id: long('entity', m), part: m}, old: 1.23456789, new: 2.3456789, change: 1.11111101, abs_change: 1000 - m})),
      };
    };
    const doc: AnalysisDocument = {
      settings: {segment_by: ['region'], bins: 10, top_n: 1000, psi: {warn: 0.1, fail: 0.25}},
      engine: 'local',
      rows: {old: 1e6, new: 1e6},
      parameters: Object.fromEntries(Array.from({length: 60}, (_, i) => [long('parameter', i), parameter(i)])),
      categorical: Object.fromEntries(
        Array.from({length: 40}, (_, c) => [
          long('category-column', c),
          {
            type: 'categorical',
            old: {count: 1e6, nulls: 0, distinct: 100000},
            new: {count: 1e6, nulls: 0, distinct: 100000},
            js_distance: 0.1,
            categories: Array.from({length: 50}, (_, k) => ({value: long('value', k), old: 20000, new: 19000, old_pct: 2, new_pct: 1.9})),
            new_categories: Array.from({length: 50}, (_, k) => long('new', k)),
            vanished_categories: Array.from({length: 50}, (_, k) => long('gone', k)),
            truncated: true,
          },
        ]),
      ),
      rules: Array.from({length: 20}, (_, r) => ({check: 'drift', severity: 'warn', passed: false, observed: 0.2, limit: 0.1, message: long('drift rule', r)})),
      status: 'warn',
    };
    writeFileSync(join(dir, 'analysis.json'), JSON.stringify(doc));
    const {page} = await runReport({validation: files.validation, analysis: join(dir, 'analysis.json')});
    expect(Buffer.byteLength(page)).toBeLessThan(2 * 1024 * 1024);
    // The caps hold: segments per heat-map row, movers per parameter, categories per column.
    expect(page.match(/<td class="num heat /g)).toHaveLength(60 * REPORT_LIMITS.segments);
    expect(page).toContain(`${REPORT_LIMITS.segments} of 500 segments are shown: those that drifted (major first), then the largest`);
    expect((page.match(/>entity-\d+-x+</g) ?? []).length).toBe(60 * REPORT_LIMITS.movers);
    expect((page.match(/<th scope="row">value-\d+-x+</g) ?? []).length).toBe(40 * REPORT_LIMITS.categories);
  }, 60_000);

  it('shows the segments that drifted in the heat map, however small, before the largest', async () => {
    const dir = temporaryFolder('report-drifted-');
    // 100 segments, the larger the lower their number; only the three smallest drifted.
    const segments = Array.from({length: 100}, (_, s) => ({
      segment: {cell: `c${s}`},
      old: {count: 1000 - s, mean: 1, std: 1},
      new: {count: 1000 - s, mean: s >= 97 ? 2 : 1, std: 1},
      mean_change: {abs: s >= 97 ? 1 : 0, pct: s >= 97 ? 100 : 0},
      ks: s >= 97 ? 0.5 : 0,
      psi: s === 99 ? 0.2 : s >= 97 ? 1.5 : 0,
      wasserstein_norm: 0,
      drift: s === 99 ? 'moderate' : s >= 97 ? 'major' : 'none',
    }));
    const doc = {settings: {segment_by: ['cell'], bins: 10, top_n: 0, psi: {warn: 0.1, fail: 0.25}}, engine: 'local', rows: {old: 1e5, new: 1e5}, parameters: {x: {type: 'numeric', segments}}, categorical: {}, rules: [], status: 'pass'};
    writeFileSync(join(dir, 'analysis.json'), JSON.stringify(doc));
    const {page} = await runReport({validation: files.validation, analysis: join(dir, 'analysis.json')});
    const headers = [...page.slice(page.indexOf('<table class="heatmap">')).matchAll(/<th scope="col">(c\d+)<\/th>/g)].map((m) => m[1]);
    expect(headers).toHaveLength(REPORT_LIMITS.segments);
    // The drifted three, then the largest of the rest (c0 ...), in label order.
    const expected = ['c97', 'c98', 'c99', ...Array.from({length: REPORT_LIMITS.segments - 3}, (_, s) => `c${s}`)];
    expect([...headers].sort()).toEqual([...expected].sort());
  });
});
