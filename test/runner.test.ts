/**
 * The runner, end to end through the real CLI: what runs, what is served from the cache,
 * and why. Tasks count their runs in runs.log, so "did not run" is observed, not timed.
 */
import {readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {countingTask, Project} from './support/project.js';
import {localImports} from '../src/task-modules.js';

const PIPELINE = `settings:
  validation:
    tolerance: {abs: 0.5, rel: 0}
tasks:
  a:
    run: a
    inputs: {files: [source.txt]}
    outputs: [a.txt]
  b:
    run: b
    deps: [a]
    inputs: {settings: [validation.tolerance.abs, validation.tolerance.rel]}
    outputs: [b.txt]
  c:
    run: c
    deps: [a]
    inputs: {settings: [analysis.bins]}
    outputs: [c.txt]
  d:
    run: d
    deps: [b, c]
    outputs: [d.txt]
  e:
    shell: cat \${input:d/d.txt} > \${output:e.txt} && echo e >> runs.log
    deps: [d]
    outputs: [e.txt]
`;

function fivetasks(): Project {
  return new Project({
    'pipeline.yaml': PIPELINE,
    'source.txt': 'source v1\n',
    // a copies its input file; b writes only the absolute tolerance (not rel); c the bins.
    'tasks/a.ts': countingTask(['a.txt'], "readFileSync(join(ctx.projectDir, 'source.txt'), 'utf8')"),
    'tasks/b.ts': countingTask(['b.txt'], "read('a', 'a.txt') + ' abs=' + ctx.settings.validation.tolerance.abs"),
    'tasks/c.ts': countingTask(['c.txt'], "read('a', 'a.txt') + ' bins=' + ctx.settings.analysis.bins + helper()", "import {helper} from './lib/helper.js';"),
    'tasks/lib/helper.ts': "export function helper(): string { return ' helped'; }\n",
    'tasks/d.ts': countingTask(['d.txt'], "read('b', 'b.txt') + '|' + read('c', 'c.txt')"),
  });
}

const statuses = (project: Project) =>
  Object.fromEntries(
    project.json<{tasks: {name: string; status: string}[]}>('output/1_vs_2/summary.json').tasks.map((task) => [task.name, task.status]),
  );

function outputs(project: Project): Record<string, string> {
  const dir = project.path('output/1_vs_2');
  return Object.fromEntries(
    readdirSync(dir)
      .filter((file) => file.endsWith('.txt'))
      .map((file) => [file, readFileSync(join(dir, file), 'utf8')]),
  );
}

describe('the runner', () => {
  it('runs every task first, then none on an immediate rerun', () => {
    const project = fivetasks();
    const first = project.run(['--old', '1', '--new', '2']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 1, d: 1, e: 1});
    expect(project.read('output/1_vs_2/e.txt')).toBe('source v1\n abs=0.5|source v1\n bins=10 helped');
    expect(statuses(project)).toEqual({a: 'ran', b: 'ran', c: 'ran', d: 'ran', e: 'ran'});

    const second = project.run(['--old', '1', '--new', '2']);
    expect(second.code).toBe(0);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 1, d: 1, e: 1});
    expect(statuses(project)).toEqual({a: 'cached', b: 'cached', c: 'cached', d: 'cached', e: 'cached'});
    expect(second.stdout).toContain('PASS 1 vs 2 (0 ran, 5 cached');
  });

  it('reruns exactly the tasks that declare a changed setting, and their dependents, saying why', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    const result = project.run(['--old', '1', '--new', '2', '--set', 'analysis.bins=20']);
    expect(result.code).toBe(0);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 2, d: 2, e: 2});
    const summary = project.json<{tasks: {name: string; reason: string | null}[]}>('output/1_vs_2/summary.json');
    const reasons = Object.fromEntries(summary.tasks.map((task) => [task.name, task.reason]));
    expect(reasons).toEqual({
      a: null,
      b: null,
      c: 'setting analysis.bins changed 10 -> 20',
      d: 'input c/c.txt changed',
      e: 'input d/d.txt changed',
    });
    expect(result.stdout).toMatch(/c: done in \d+\.\d s, 1 row \(setting analysis\.bins changed 10 -> 20\)/);
  });

  it('tells a non-finite argument from its text and from null: .inf, "Infinity", .nan and null each run the task', () => {
    const project = new Project({'tasks/a.ts': countingTask(['a.txt'])});
    const reasons: (string | null)[] = [];
    for (const value of ['.inf', '"Infinity"', '.nan', 'null', '.inf']) {
      project.write({'pipeline.yaml': `tasks:\n  a: {run: a, with: {limit: ${value}, floor: -.inf}, outputs: [a.txt]}\n`});
      expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
      reasons.push(project.json<{tasks: {reason: string | null}[]}>('output/1_vs_2/summary.json').tasks[0]!.reason);
    }
    // The last .inf is the first one's result, from the cache; the unchanged floor is never named.
    expect(project.runs()).toEqual({a: 4});
    expect(reasons).toEqual([
      'no previous run',
      'argument limit changed Infinity -> "Infinity"',
      'argument limit changed "Infinity" -> NaN',
      'argument limit changed NaN -> null',
      null,
    ]);
  });

  it('hands a task .inf as Infinity on every run, the configuration remembered or not', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, with: {limit: .inf, floor: -.inf, odd: .nan}, outputs: [a.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt'], '[ctx.args.limit, ctx.args.floor, ctx.args.odd].join()'),
    });
    // The second run reads the configuration remembered by the first (.cache/config).
    for (const flags of [[], ['--force']]) {
      expect(project.run(['--old', '1', '--new', '2', ...flags]).code).toBe(0);
      expect(project.read('output/1_vs_2/a.txt')).toBe('Infinity,-Infinity,NaN');
    }
    expect(project.runs()).toEqual({a: 2});
  });

  it('reruns a task when an upstream verdict it sees changes, though the upstream bytes do not', () => {
    // gate writes the same file whatever it decides; show writes the verdict it sees.
    const gate = "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output('g.txt'), 'same'); const n = ctx.settings.performance.retry_count; return n > 3 ? {verdict: 'fail', verdictReasons: [`retry_count ${n}`]} : {verdict: 'pass'}; }};\n";
    const show = "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output('s.txt'), JSON.stringify(ctx.upstream['gate'])); }};\n";
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  gate: {run: gate, inputs: {settings: [performance.retry_count]}, outputs: [g.txt]}\n  show: {run: show, deps: [gate], outputs: [s.txt]}\n',
      'tasks/gate.ts': gate,
      'tasks/show.ts': show,
    });
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.json<{verdict: string}>('output/1_vs_2/s.txt').verdict).toBe('pass');
    expect(project.run(['--old', '1', '--new', '2', '--set', 'performance.retry_count=5']).code).toBe(1);
    expect(statuses(project)).toEqual({gate: 'ran', show: 'ran'});
    expect(project.json<{verdict: string; verdict_reasons: string[]}>('output/1_vs_2/s.txt')).toMatchObject({verdict: 'fail', verdict_reasons: ['retry_count 5']});
    const summary = project.json<{tasks: {name: string; reason: string | null}[]}>('output/1_vs_2/summary.json');
    expect(summary.tasks.find((task) => task.name === 'show')?.reason).toBe('input gate (verdict) changed');
  });

  it('says which setting a task now declares, when it declared none before', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n', 'tasks/a.ts': countingTask(['a.txt'])});
    project.run(['--old', '1', '--new', '2']);
    project.write({'pipeline.yaml': 'tasks:\n  a: {run: a, inputs: {settings: [validation.tolerance.abs]}, outputs: [a.txt]}\n'});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    const summary = project.json<{tasks: {name: string; reason: string | null}[]}>('output/1_vs_2/summary.json');
    expect(summary.tasks[0]!.reason).toBe('setting validation.tolerance.abs set to 0');
  });

  it('does not rerun a task whose upstream reran but produced identical bytes', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    // b declares validation.tolerance.rel but its output does not depend on it.
    project.run(['--old', '1', '--new', '2', '--set', 'validation.tolerance.rel=0.1']);
    expect(project.runs()).toEqual({a: 1, b: 2, c: 1, d: 1, e: 1});
    expect(statuses(project)).toEqual({a: 'cached', b: 'ran', c: 'cached', d: 'cached', e: 'cached'});
  });

  it('reruns a task when its module or a module it imports is edited', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    project.write({'tasks/lib/helper.ts': "export function helper(): string { return ' helped again'; }\n"});
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 2, d: 2, e: 2});
    const reason = project.json<{tasks: {name: string; reason: string | null}[]}>('output/1_vs_2/summary.json').tasks.find((task) => task.name === 'c')?.reason;
    expect(reason).toBe('tasks/lib/helper.ts changed');

    project.write({'tasks/b.ts': countingTask(['b.txt'], "read('a', 'a.txt') + ' abs:' + ctx.settings.validation.tolerance.abs")});
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({a: 1, b: 2, c: 2, d: 3, e: 3});
  });

  it('finds every local import a module makes, whatever comments and strings it holds', () => {
    const text = [
      "import {",
      "  helper, // the project's helper",
      "} from './lib/helper.js';",
      "import type {Shape} from './types.js';",
      "export {other} from \"./lib/other.js\"; import './side-effect.js';",
      "/* import {x} from './commented-out.js'; */",
      "// import {y} from './also-out.js';",
      "const lazy = await import('./lazy.js');",
      "import {readFileSync} from 'node:fs';",
      "const text = 'it\\'s not an import: from \"./nothing.js\"';",
      "const data = await import('./data.json', {with: {type: 'json'}});",
      "const common = require('./common.js'); import legacy = require('./legacy.js');",
      "const notMine = thing.require('./not-a-require.js');",
    ].join('\n');
    expect(localImports(text)).toEqual(['./lib/helper.js', './lib/other.js', './side-effect.js', './lazy.js', './data.json', './common.js', './legacy.js']);
  });

  it('says why a TypeScript task in a folder without "type": "module" cannot import() a local module, without its compiled code', () => {
    const project = new Project({
      'package.json': '{}\n',
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n',
      'tasks/a.ts': "export default {async run(ctx: any) { const m = await import('./lib/t.js'); (await import('node:fs')).writeFileSync(ctx.output('a.txt'), String(m.v)); }};\n",
      'tasks/lib/t.ts': 'export const v = 1;\n',
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('Failed to resolve module specifier "./lib/t.js" from "(the compiled task module)"');
    expect(result.stdout).toContain('cannot import() a local module: add "type": "module", or import it statically.');
    expect(result.stdout).not.toContain('data:text/javascript');
  });

  it('loads a TypeScript task from a folder whose package.json does not say "type": "module"', () => {
    const project = new Project({
      'package.json': '{}\n',
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n',
      'tasks/a.ts': "export default {async run(ctx) { (await import('node:fs')).writeFileSync(ctx.output('a.txt'), 'ok'); }};\n",
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(project.read('output/1_vs_2/a.txt')).toBe('ok');
  });

  it('reruns the task reading an input file only when its content changes, not when it is touched', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    const later = new Date(Date.now() + 5000);
    const {utimesSync} = require('node:fs') as typeof import('node:fs');
    utimesSync(project.path('source.txt'), later, later);
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 1, d: 1, e: 1});
    project.write({'source.txt': 'source v2\n'});
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({a: 2, b: 2, c: 2, d: 2, e: 2});
  });

  it('restores a deleted output folder from the cache without running anything', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    const before = outputs(project);
    const {rmSync} = require('node:fs') as typeof import('node:fs');
    rmSync(project.path('output'), {recursive: true});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 1, d: 1, e: 1});
    expect(outputs(project)).toEqual(before);
  });

  it('detects a corrupted cache blob, warns, and recomputes the task', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    const expected = outputs(project);
    // Find c's output among the stored blobs and flip one byte in place (same size).
    const blobs: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else blobs.push(path);
      }
    };
    walk(project.path('.cache/content-v2'));
    const blob = blobs.find((path) => readFileSync(path, 'utf8') === expected['c.txt']);
    expect(blob).toBeDefined();
    const bytes = readFileSync(blob!);
    bytes[0] = bytes[0]! ^ 0x20;
    writeFileSync(blob!, bytes);

    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/Warning: c: stored output c\.txt of c failed its integrity check; it will be recomputed\./);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 2, d: 1, e: 1});
    expect(outputs(project)).toEqual(expected);
  });

  it('after SIGKILL mid-task, the next run produces exactly the outputs of an uninterrupted run', async () => {
    const slow = (project: Project) =>
      project.write({
        'tasks/d.ts': countingTask(['d.txt'], "read('b', 'b.txt') + '|' + read('c', 'c.txt')").replace(
          'for (const output',
          "if (process.env.HOLD) await new Promise((resolve) => setTimeout(resolve, 60_000));\n    for (const output",
        ),
      });
    const reference = fivetasks();
    slow(reference);
    reference.run(['--old', '1', '--new', '2']);

    const project = fivetasks();
    slow(project);
    const child = project.start(['--old', '1', '--new', '2'], {HOLD: '1'});
    // Wait until d has started (it records its run first), then kill the whole run.
    for (let i = 0; i < 600 && !(project.runs()['d'] === 1); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(project.runs()['d']).toBe(1);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(project.exists('output/1_vs_2')).toBe(false);

    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    // a, b, c were stored before the kill and are not rerun; d and e run once more.
    expect(project.runs()).toEqual({a: 1, b: 1, c: 1, d: 2, e: 1});
    expect(outputs(project)).toEqual(outputs(reference));
  });

  it('--dry-run prints the plan with reasons and runs nothing', () => {
    const project = fivetasks();
    project.run(['--old', '1', '--new', '2']);
    const result = project.run(['--old', '1', '--new', '2', '--set', 'validation.tolerance.abs=1', '--dry-run']);
    expect(result.code).toBe(0);
    expect(project.runs()).toEqual({a: 1, b: 1, c: 1, d: 1, e: 1});
    expect(result.stdout).toContain('a: cached');
    expect(result.stdout).toContain('b: will run (setting validation.tolerance.abs changed 0.5 -> 1)');
    expect(result.stdout).toContain('d: will run (runs unless b reproduces its previous outputs)');
    expect(project.run(['--old', '1', '--new', '2', '--dry-run', '--force']).stdout).toContain('d: will run (--force)');
    expect(result.stdout).toContain('Dry run: 3 of 5 tasks would run; nothing was run, and the outputs and the cached results are as they were.');
    // Even a damaged entry is only reported: the real run that follows finds it and says so.
    const entries = readdirSync(project.path('.cache/entries')).flatMap((shard) => readdirSync(project.path('.cache/entries', shard)).map((file) => project.path('.cache/entries', shard, file)));
    const before = entries.map((file) => [readFileSync(file, 'utf8'), statSync(file).mtimeMs]);
    writeFileSync(entries[0]!, 'damaged');
    before[0] = ['damaged', statSync(entries[0]!).mtimeMs];
    expect(project.run(['--old', '1', '--new', '2', '--dry-run']).code).toBe(0);
    expect(entries.map((file) => [readFileSync(file, 'utf8'), statSync(file).mtimeMs])).toEqual(before);
    expect(project.run(['--old', '1', '--new', '2']).stderr).toMatch(/is damaged \(truncated or altered\); it will be recomputed/);
  });

  it('on plain output (not a terminal) each line of progress says whose task it is', () => {
    const project = fivetasks();
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.stdout).toContain('› a: why: no previous run');
    expect(result.stdout).toContain('› b: why: no previous run');
    expect(result.stdout).not.toMatch(/^› why:/m);
  });

  it('--skip-analysis and --skip-extraction say so when no task carries their tag', () => {
    const project = fivetasks();
    const result = project.run(['--old', '1', '--new', '2', '--skip-analysis', '--skip-extraction']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('Warning: --skip-analysis leaves out nothing: no task is tagged analysis (add `tags: [analysis]` to the tasks it should cover in pipeline.yaml).');
    expect(result.stderr).toContain('Warning: --skip-extraction leaves out nothing: no task is tagged extraction');
  });

  it('--dry-run of a task that cannot be planned says why and exits as the run would', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  cat:\n    shell: cat in/*.txt > ${output:o.txt}\n    inputs: {files: ["in/*.txt"]}\n    outputs: [o.txt]\n'});
    const result = project.run(['--old', '1', '--new', '2', '--dry-run']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('  - cat cannot run: Task "cat" declares input file "in/*.txt", but no file matches it.');
    expect(project.exists('output')).toBe(false);
  });

  it('--only runs a task and what it needs; --force reruns even when cached', () => {
    const project = fivetasks();
    // The verdict says it covers only what ran.
    expect(project.run(['--old', '1', '--new', '2', '--only', 'b']).stdout).toContain('  (--only b: the verdict covers a, b, not the whole pipeline)');
    expect(project.runs()).toEqual({a: 1, b: 1});
    expect(Object.keys(statuses(project))).toEqual(['a', 'b']);
    project.run(['--old', '1', '--new', '2', '--only', 'b', '--force']);
    expect(project.runs()).toEqual({a: 2, b: 2});
  });
});
