/**
 * The shipped pipeline on the sample warehouse, end to end through the CLI: the outputs a
 * reviewer gets, incremental reruns after a settings tweak, skipping, and exit codes.
 */
import {copyFileSync, readdirSync, readFileSync, utimesSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {beforeAll, describe, expect, it} from 'vitest';
import {Project, REPO} from './support/project.js';

type Summary = {status: string; tasks: {name: string; status: string; reason: string | null}[]};

const statuses = (project: Project, folder = '0.3615_vs_0.3621') =>
  Object.fromEntries(project.json<Summary>(`output/${folder}/summary.json`).tasks.map((task) => [task.name, task.status]));

function shipped(): Project {
  const project = new Project({});
  copyFileSync(join(REPO, 'pipeline.yaml'), project.path('pipeline.yaml'));
  return project;
}

describe('the shipped pipeline', () => {
  let project: Project;
  beforeAll(() => {
    project = shipped();
  });

  it('runs end to end on a fresh project with no account and no network', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.3621']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('WARN 0.3615 vs 0.3621 (6 ran, 0 cached');
    expect(result.stdout).toContain('Report: output/0.3615_vs_0.3621/report.html');
    // Under the verdict, what changed, whatever the rules: the validation in a line, and the
    // sample's drift in one region, which no rule looks at here.
    const changed =
      'validate: 40,100 of 99,785 compared rows changed (40.2%), most in learning_rate (19,991), threshold (18,827), score (5,977) and 2 more columns; 349 keys added, 235 removed';
    const drift = 'analyze: learning_rate: drift only in region=east (major, PSI 0.67); PSI 0.0091 overall';
    expect(result.stdout).toContain(`\n  · ${changed}\n  · ${drift}\n`);
    expect(project.json<{highlights: string[]}>('output/0.3615_vs_0.3621/summary.json').highlights).toEqual([changed, drift]);
    expect(statuses(project)).toEqual({'extract-old': 'ran', 'extract-new': 'ran', validate: 'ran', analyze: 'ran', report: 'ran', alerts: 'ran'});
    for (const file of ['summary.json', 'validation.json', 'mismatches.csv', 'added_keys.csv', 'removed_keys.csv', 'duplicate_keys.csv', 'analysis.json', 'parameters.csv', 'report.html', 'alerts.csv', 'validation.log']) {
      expect(project.exists('output/0.3615_vs_0.3621', file), file).toBe(true);
    }
    // Intermediates stay in the cache unless output.save_intermediates is set.
    expect(project.exists('output/0.3615_vs_0.3621/extract-old.rows.parquet')).toBe(false);
    const validation = project.json<{keys: {added: number; removed: number}; status: string}>('output/0.3615_vs_0.3621/validation.json');
    expect(validation.keys).toMatchObject({added: 349, removed: 235});
    // The report says which engine computed the figures.
    expect(project.read('output/0.3615_vs_0.3621/report.html')).toContain('<dt>Comparison computed by</dt><dd>DuckDB, on the extracted rows</dd>');
  });

  it('a fully cached run loads neither DuckDB nor zod or the YAML parser', () => {
    // What keeps a no-op rerun fast (BENCHMARKS.md): the memoised configuration, the cache's own
    // entry files, and task modules light enough to import for their probes.
    const log = project.path('modules.log');
    const result = project.run(['--old', '0.3615', '--new', '0.3621'], {
      NODE_OPTIONS: `--import ${pathToFileURL(join(REPO, 'test/support/module-log.mjs')).href}`,
      MODULE_LOG: log,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('(0 ran, 6 cached');
    expect(result.stdout).toContain('  · analyze: learning_rate: drift only in region=east'); // kept with the cached result
    const loaded = project.read('modules.log');
    expect(loaded).toContain('/dist/tasks/extract.js');
    expect(loaded.includes('/node_modules/tsx/'), 'tsx: the built tasks are loaded, not compiled').toBe(false);
    for (const heavy of ['zod', 'yaml', '@duckdb/node-api']) {
      expect(loaded.includes(`/node_modules/${heavy}/`), heavy).toBe(false);
      // The CLI bundles them into chunks of their own (esbuild marks each bundled file's origin).
      const chunks = bundleChunksOf(heavy);
      expect(chunks.length, heavy).toBeGreaterThan(0);
      for (const chunk of chunks) expect(loaded.includes(`/dist/cli/${chunk}`), `${heavy} in ${chunk}`).toBe(false);
    }
  });

  it('a validation tolerance tweak reruns validate and the report only, never the extraction', () => {
    const log = project.path('modules-tweak.log');
    const result = project.run(['--old', '0.3615', '--new', '0.3621', '--set', 'validation.tolerance.abs=0.001'], {
      NODE_OPTIONS: `--import ${pathToFileURL(join(REPO, 'test/support/module-log.mjs')).href}`,
      MODULE_LOG: log,
    });
    expect(result.code).toBe(0);
    // validate ran in DuckDB, whose JavaScript API came from the CLI bundle (one file), not
    // from node_modules (124).
    const loaded = project.read('modules-tweak.log');
    expect(loaded).toContain('/dist/tasks/validate.js');
    expect(loaded).not.toContain('/node_modules/@duckdb/node-api/');
    expect(statuses(project)).toEqual({'extract-old': 'cached', 'extract-new': 'cached', validate: 'ran', analyze: 'cached', report: 'ran', alerts: 'cached'});
    const reasons = project.json<Summary>('output/0.3615_vs_0.3621/summary.json').tasks;
    expect(reasons.find((task) => task.name === 'validate')?.reason).toBe('setting validation.tolerance.abs changed 0 -> 0.001');
  });

  it('a setting that takes no effect is said on the terminal, not only in the log', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.3621', '--set', 'validation.tolerance.columns.scroe.abs=0.1']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('Warning: validate: validation.tolerance.columns.scroe applies to no numeric column present in both versions. Did you mean "score"?');
    expect(project.read('output/0.3615_vs_0.3621/validation.log')).toContain('WARNING - validate: validation.tolerance.columns.scroe applies to no numeric column');
    // Said again when the result comes from the cache: a cached run tells as much as a fresh one.
    const again = project.run(['--old', '0.3615', '--new', '0.3621', '--set', 'validation.tolerance.columns.scroe.abs=0.1']);
    expect(again.stdout).toContain('validate: cached');
    expect(again.stderr).toContain('Warning: validate: validation.tolerance.columns.scroe applies to no numeric column present in both versions. Did you mean "score"?');
  });

  it('an analysis tweak reruns analyze and what depends on it, never validate or the extraction', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.3621', '--set', 'analysis.bins=20']);
    expect(result.code).toBe(0);
    expect(statuses(project)).toMatchObject({'extract-old': 'cached', 'extract-new': 'cached', validate: 'cached', analyze: 'ran', report: 'ran'});
  });

  it('extracting a version once serves every later comparison that involves it', () => {
    const result = project.run(['--old', '0.3609', '--new', '0.3615']);
    expect(result.code).toBeLessThan(2);
    expect(statuses(project, '0.3609_vs_0.3615')).toMatchObject({'extract-old': 'ran', 'extract-new': 'cached'});
  });

  it('--skip-analysis leaves the analysis out and the report says so', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.3621', '--skip-analysis']);
    expect(result.code).toBe(0);
    const summary = project.json<Summary>('output/0.3615_vs_0.3621/summary.json');
    expect(summary.tasks.map((task) => [task.name, task.status, task.reason])).toEqual([
      ['extract-old', 'cached', null],
      ['extract-new', 'cached', null],
      ['validate', 'cached', null],
      ['analyze', 'skipped', 'skipped on request'],
      ['report', 'ran', expect.stringContaining('input analyze/analysis.json removed')],
      ['alerts', 'skipped', 'skipped on request'],
    ]);
    expect(project.read('output/0.3615_vs_0.3621/report.html')).toContain('Analysis was skipped (--skip-analysis)');
  });

  it('--skip-extraction reuses cached extractions, and names the version when there is none', () => {
    const reused = project.run(['--old', '0.3615', '--new', '0.3621', '--skip-extraction']);
    expect(reused.code).toBe(0);
    expect(statuses(project)).toMatchObject({'extract-old': 'cached', 'extract-new': 'cached'});
    // Extracting only the score column was never done: nothing to reuse.
    const missing = project.run(['--old', '0.3615', '--new', '0.3621', '--skip-extraction', '--set', 'source.columns=[score]']);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toContain(
      '  - extract-old failed: Task "extract-old" has no cached result to reuse for {"version":"0.3615"} (since its last run: setting source.columns changed null -> ["score"]).',
    );
    expect(missing.stdout).toContain('  Run once without --skip-extraction so the source is read and cached, or undo the change.');
  });

  it('exits 1 when a rule of severity error fails', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.3621', '--set', 'validation.rules=[{check: changed_rows, max_pct: 10, severity: error}]']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAIL 0.3615 vs 0.3621');
    expect(project.json<Summary>('output/0.3615_vs_0.3621/summary.json').status).toBe('fail');
  });

  it('re-extracts when the source changes, not when it is only touched', async () => {
    const database = project.path('data/warehouse.duckdb');
    const later = new Date(Date.now() + 60_000);
    utimesSync(database, later, later);
    project.run(['--old', '0.3615', '--new', '0.3621', '--only', 'extract-old']);
    expect(statuses(project)).toEqual({'extract-old': 'cached'});

    const {DuckDBInstance} = await import('@duckdb/node-api');
    const instance = await DuckDBInstance.create(database);
    const connection = await instance.connect();
    await connection.run("UPDATE model_parameters SET score = score + 0.5 WHERE version = '0.3615' AND entity_id = 1");
    connection.closeSync();
    instance.closeSync();
    project.run(['--old', '0.3615', '--new', '0.3621', '--only', 'extract-old']);
    const summary = project.json<Summary>('output/0.3615_vs_0.3621/summary.json');
    expect(summary.tasks.map((task) => [task.name, task.status])).toEqual([['extract-old', 'ran']]);
    expect(summary.tasks[0]!.reason).toMatch(/^source /);
  });

  it('names the file of a source of files that changed, or came', () => {
    const files = new Project({
      'data/a.csv': 'entity_id,version,score\n1,0.3615,0.5\n2,0.3615,0.6\n',
      'data/b.csv': 'entity_id,version,score\n1,0.3621,0.5\n2,0.3621,0.7\n',
    });
    writeFileSync(files.path('pipeline.yaml'), readFileSync(join(REPO, 'pipeline.yaml'), 'utf8'));
    const run = () => files.run(['--old', '0.3615', '--new', '0.3621', '--only', 'extract-new', '--set', 'duckdb.path=data/*.csv', '--set', 'analysis.segment_by=[]']);
    run();
    files.write({'data/b.csv': 'entity_id,version,score\n1,0.3621,0.5\n2,0.3621,0.8\n', 'data/c.csv': 'entity_id,version,score\n3,0.3621,0.1\n'});
    run();
    const reason = files.json<Summary>('output/0.3615_vs_0.3621/summary.json').tasks[0]!.reason;
    expect(reason).toBe('source file data/b.csv changed; source file data/c.csv added');
    // Many: five named, the rest counted.
    files.write(Object.fromEntries(Array.from({length: 8}, (_, i) => [`data/more-${i}.csv`, `entity_id,version,score\n${10 + i},0.3621,0.1\n`])));
    run();
    expect(files.json<Summary>('output/0.3615_vs_0.3621/summary.json').tasks[0]!.reason).toBe(
      [0, 1, 2, 3, 4].map((i) => `source file data/more-${i}.csv added`).join('; ') + '; 3 more source files added, removed or changed',
    );
  });

  it('comparing a version with itself warns that nothing can change, and finds nothing', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.3615']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('Warning: --old and --new are the same version (0.3615): the comparison can only find no change. Pass the two versions to compare.');
    expect(statuses(project, '0.3615_vs_0.3615')).toMatchObject({'extract-old': 'cached', 'extract-new': 'cached'});
    const validation = JSON.parse(readFileSync(join(project.dir, 'output', '0.3615_vs_0.3615', 'validation.json'), 'utf8')) as object;
    expect(validation).toMatchObject({changed_rows: 0, keys: {added: 0, removed: 0}, status: 'pass'});
  });

  it('a version with no rows is a clear error naming the versions present', () => {
    const result = project.run(['--old', '0.3615', '--new', '0.9999']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('  - extract-new failed: version 0.9999 has no rows in model_parameters; versions present: 0.3609, 0.3615, 0.3621');
  });
});

/** The CLI bundle's chunks holding code of the npm package `name`. */
function bundleChunksOf(name: string): string[] {
  const dir = join(REPO, 'dist', 'cli');
  return readdirSync(dir).filter((file) => file.endsWith('.js') && readFileSync(join(dir, file), 'utf8').includes(`\n// node_modules/${name}/`));
}
