/**
 * The report in a real browser: headless Chromium (Debian's `chromium`; CI installs it in
 * .ci/run) opens report.html from disk, as a reviewer would from a file share. The page must
 * load nothing else, log no error, and render the verdict; the screenshot is kept under
 * test/artifacts/ for a human to look at.
 */
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {DuckDBInstance} from '@duckdb/node-api';
import {beforeAll, describe, expect, it} from 'vitest';
import analyze from '../tasks/analyze.js';
import report from '../tasks/report.js';
import validate from '../tasks/validate.js';
import {findChromium, inspectPage} from './support/chromium.js';
import type {PageReport} from './support/chromium.js';
import {runTaskDirectly} from './support/run-task.js';
import {temporaryFolder} from './support/temp.js';

const ARTIFACTS = join(import.meta.dirname, 'artifacts');

// 300 entities; the new version removes 6 (2%: the error rule below fails), adds 3, and
// moves `score` up by 0.2 in the 'east' segment.
const version = (range: string, shift: number) => `SELECT i AS id, (['east','west','north'])[i % 3 + 1] AS region,
  (i % 97) / 97.0 + CASE WHEN i % 3 = 0 THEN ${shift} ELSE 0 END AS score, (i % 10)::INTEGER AS depth,
  CASE WHEN i % 4 = 0 THEN 'a' ELSE '<b>&"tier"' END AS tier FROM ${range} t(i)`;

async function buildReport(): Promise<string> {
  const dir = temporaryFolder('report-browser-');
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    await connection.run(`COPY (${version('range(300)', 0)}) TO '${join(dir, 'old.parquet')}' (FORMAT parquet)`);
    await connection.run(`COPY (${version('range(6, 303)', 0.2)}) TO '${join(dir, 'new.parquet')}' (FORMAT parquet)`);
    connection.closeSync();
  } finally {
    instance.closeSync();
  }
  const inputs = {'extract-old': {'rows.parquet': join(dir, 'old.parquet')}, 'extract-new': {'rows.parquet': join(dir, 'new.parquet')}};
  const validated = await runTaskDirectly(validate, {
    settings: {source: {keys: ['id'], columns: null}, validation: {tolerance: {abs: 0, rel: 0, columns: {}}, rules: [{check: 'removed_keys', max_pct: 1, severity: 'error'}]}},
    inputs,
    outputs: ['validation.json', 'mismatches.csv', 'added_keys.csv', 'removed_keys.csv', 'duplicate_keys.csv'],
  });
  const analyzed = await runTaskDirectly(analyze, {
    settings: {source: {keys: ['id']}, analysis: {segment_by: ['region'], bins: 10, top_n: 20, psi: {warn: 0.1, fail: 0.25}}},
    inputs,
    outputs: ['analysis.json', 'parameters.csv'],
  });
  const reported = await runTaskDirectly(report, {
    args: {old: '1.0', new: '1.1'},
    inputs: {validate: {'validation.json': join(validated.outputDir, 'validation.json')}, analyze: {'analysis.json': join(analyzed.outputDir, 'analysis.json')}},
    upstream: {validate: {status: 'ran', duration_ms: 1200, reason: 'no previous run', computed_at: '2024-05-01T10:00:00.000Z', rows: 294, verdict: 'fail', verdict_reasons: []}},
    outputs: ['report.html'],
  });
  return join(reported.outputDir, 'report.html');
}

let file: string;
let page: PageReport;

beforeAll(async () => {
  findChromium(); // fails with how to install it, rather than skipping: CI must run this test
  file = await buildReport();
  page = await inspectPage(pathToFileURL(file).href, {width: 1280, height: 1800});
  mkdirSync(ARTIFACTS, {recursive: true});
  writeFileSync(join(ARTIFACTS, 'report.png'), page.screenshot);
}, 90_000);

describe('report.html in headless Chromium', () => {
  it('loads nothing but itself and logs no error', () => {
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([pathToFileURL(file).href]);
  });

  it('renders the verdict first, with the rule that decided it', () => {
    expect(page.title).toBe('FAIL: 1.0 → 1.1 version comparison');
    const lines = page.text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    expect(lines.slice(0, 3)).toEqual(['VERSION COMPARISON REPORT', '1.0 → 1.1', '✗ Verdict: FAIL']);
    expect(lines[3]).toMatch(/^1 of 1 rule failed \(1 error, 0 warnings\)\. A rule of severity error failed/);
    expect(page.text).toMatch(/✗ error\tremoved_keys\t2%\t1%\tremoved_keys: 6 removed keys/);
  });

  it('renders the data as text, escaped', () => {
    expect(page.text).toContain('Matched keys\n294');
    expect(page.text).toContain('<b>&"tier"');
    // Drift hides in one segment: the whole of `score` barely moves, 'east' moves a lot.
    expect(page.text).toMatch(/\nscore\t○ none\t.*\teast ▲▲ PSI [\d.]+\n/);
  });

  it('takes a screenshot of the top of the page', () => {
    const png = readFileSync(join(ARTIFACTS, 'report.png'));
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    // IHDR: width and height, big-endian, at bytes 16 and 20.
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 1800]);
    expect(page.contentHeight).toBeGreaterThan(1800);
  });
});
