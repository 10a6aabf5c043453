/**
 * Extending and inspecting the pipeline: user tasks in TypeScript and in shell, the graph,
 * the JSON Schema for editors.
 */
import {execFileSync} from 'node:child_process';
import {copyFileSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {CLI, Project, REPO} from './support/project.js';

describe('user tasks', () => {
  it('a shell task reruns when its command, a setting it uses, or its input file changes', () => {
    const project = new Project({
      'pipeline.yaml': `tasks:
  words:
    shell: wc -w < words.txt > \${output:count.txt}; echo words >> runs.log
    inputs: {files: [words.txt]}
    outputs: [count.txt]
`,
      'words.txt': 'one two three\n',
    });
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.read('output/1_vs_2/count.txt').trim()).toBe('3');
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({words: 1});
    project.write({'words.txt': 'one two three four\n'});
    project.run(['--old', '1', '--new', '2']);
    expect(project.read('output/1_vs_2/count.txt').trim()).toBe('4');
    project.write({'pipeline.yaml': project.read('pipeline.yaml').replace('wc -w <', 'wc -w  <')});
    const rerun = project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({words: 3});
    expect(project.json<{tasks: {reason: string}[]}>('output/1_vs_2/summary.json').tasks[0]!.reason).toBe('command changed');
    expect(rerun.code).toBe(0);
  });

  it('a shell command that fails reports its exit code and error output', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  broken: {shell: "echo about to fail; echo no such table >&2; exit 4", outputs: [x.txt]}\n',
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('  - broken failed: The command of task "broken" exited with code 4:\nno such table');
    expect(project.read('output/1_vs_2/validation.log')).toMatch(/INFO - broken: about to fail/);
  });

  it('a shell task that does not write its declared output fails with a clear message', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  forgetful: {shell: "echo nothing", outputs: [made.txt]}\n'});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('  - forgetful failed: Task "forgetful" finished without writing its declared output "made.txt".');
    expect(result.stdout).toContain("  Write it to ctx.output('made.txt') (or ${output:made.txt} in a shell command), or remove it from \"outputs\".");
  });

  it('a TypeScript task that writes an undeclared file is told which outputs it declared', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  t: {run: t, outputs: [a.txt]}\n',
      'tasks/t.ts': "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output('b.txt'), 'x'); }};\n",
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('  - t failed: Task "t" wrote "b.txt", which is not among its declared outputs (a.txt).');
    expect(result.stdout).toContain('  Add "b.txt" to "outputs" of t in pipeline.yaml.');
  });

  it('says what to do when a task reads an input it has no dependency for, and when it writes files it does not declare', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  t: {run: t, outputs: [a.txt]}\n',
      'tasks/t.ts': "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output('a.txt'), 'x'); writeFileSync(ctx.outputDir + '/scratch.tmp', 'y'); if (process.env.READ) ctx.input('other', 'b.txt'); }};\n",
    });
    const wrote = project.run(['--old', '1', '--new', '2']);
    expect(wrote.code).toBe(0);
    expect(wrote.stderr).toContain('Warning: t: wrote scratch.tmp in its output folder without declaring it: not kept (add to "outputs" to keep, or write scratch files to ctx.tmpDir)');
    const read = project.run(['--old', '1', '--new', '2', '--force'], {READ: '1'});
    expect(read.code).toBe(3);
    expect(read.stdout).toContain('t failed: Task "t" needs other/b.txt, but "other" is not in its deps or has no output "b.txt".');
    expect(read.stdout).toContain('Add other to "deps" of t in pipeline.yaml (and "b.txt" to the outputs of other).');
  });

  it('hands a task its inputs under their own names, so DuckDB reads them by extension', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  make: {run: make, outputs: [rows.parquet]}\n  count: {run: count, deps: [make], outputs: [n.txt]}\n',
      'tasks/make.ts': "export default {async run(ctx) { const db = await ctx.duckdb(); await db.run(`COPY (SELECT * FROM range(7)) TO '${ctx.output('rows.parquet')}'`); }};\n",
      'tasks/count.ts':
        "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { const path = ctx.input('make', 'rows.parquet'); const db = await ctx.duckdb(); " +
        "const n = (await db.runAndReadAll(`SELECT count(*) FROM '${path}'`)).getRows()[0][0]; writeFileSync(ctx.output('n.txt'), `${path.endsWith('/make/rows.parquet')} ${n}`); }};\n",
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.stdout + result.stderr).not.toContain('failed');
    expect(result.code).toBe(0);
    expect(project.read('output/1_vs_2/n.txt')).toBe('true 7');
  });

  it('a built-in task that reads a setting its declaration leaves out fails with a configuration error naming it', () => {
    // Quietly using the default instead would hide a setting the task's fingerprint does not
    // cover: the user changes it and nothing reruns.
    const shipped = readFileSync(join(REPO, 'pipeline.yaml'), 'utf8');
    const validate = (text: string) => text.slice(text.indexOf('  validate:'), text.indexOf('  analyze:'));
    const without = (...settings: string[]) => shipped.replace(validate(shipped), settings.reduce((text, setting) => text.replace(`, ${setting}`, ''), validate(shipped)));
    const project = new Project({'pipeline.yaml': without('validation.max_mismatch_rows')});
    let result = project.run(['--old', '0.3615', '--new', '0.3621']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('  - validate failed: This task reads the setting validation.max_mismatch_rows, which pipeline.yaml does not declare for it.');
    expect(result.stdout).toContain("  Add validation.max_mismatch_rows to the task's inputs.settings (or tuning) in pipeline.yaml");
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    project.write({'pipeline.yaml': without('bigquery.maximum_bytes_billed', 'bigquery.retry_max_delay_seconds')});
    result = project.run(['--old', '0.3615', '--new', '0.3621']);
    expect(result.code).toBe(2);
    // A section none of whose settings is declared: the setting read is named all the same.
    expect(result.stdout).toContain('  - validate failed: This task reads the setting bigquery.maximum_bytes_billed, which pipeline.yaml does not declare for it.');
    // analyze declaring only part of its section: the first setting it reads unannounced is named.
    project.write({'pipeline.yaml': shipped.replace('settings: [source.keys, analysis]', 'settings: [source.keys, analysis.bins]')});
    result = project.run(['--old', '0.3615', '--new', '0.3621']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('  - analyze failed: This task reads the setting analysis.engine, which pipeline.yaml does not declare for it.');
    project.write({'pipeline.yaml': shipped});
    expect(project.run(['--old', '0.3615', '--new', '0.3621']).code).toBeLessThan(2);
  });

  it('takes a DuckDB count (a BigInt) for rows, and refuses a result it cannot store with a message saying what', () => {
    const task = (result: string) => `import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output('a.txt'), 'x'); return ${result}; }};\n`;
    const project = new Project({'pipeline.yaml': 'tasks:\n  t: {run: t, outputs: [a.txt]}\n', 'tasks/t.ts': task('{rows: 12n, details: {scanned: 7n, worst: [Infinity, -Infinity, NaN, 1.5]}}')});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    // Numbers JSON cannot hold as their text, not as null (which reads as "none").
    expect(project.json<{tasks: {rows: number; details: unknown}[]}>('output/1_vs_2/summary.json').tasks[0]).toMatchObject({
      rows: 12,
      details: {scanned: 7, worst: ['Infinity', '-Infinity', 'NaN', 1.5]},
    });
    project.write({'tasks/t.ts': task("{verdict: 'bogus'}")});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('  - t failed: Task "t" returned the verdict "bogus"; expected "pass", "warn" or "fail".');
  });

  it('a task whose run is not async: its result is taken, and what it throws fails it with its message', () => {
    const task = (body: string) => `import {writeFileSync} from 'node:fs';\nexport default {run(ctx) { ${body} }};\n`;
    const project = new Project({'pipeline.yaml': 'tasks:\n  t: {run: t, outputs: [a.txt]}\n', 'tasks/t.ts': task("writeFileSync(ctx.output('a.txt'), 'x'); return {rows: 3};")});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.json<{tasks: {rows: number}[]}>('output/1_vs_2/summary.json').tasks[0]).toMatchObject({rows: 3});
    project.write({'tasks/t.ts': task("throw new Error('no input today');")});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('no input today');
  });

  it('a module without a task export is a clear error of its author (exit 2), a default-exported function too', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  t: {run: t, outputs: [a.txt]}\n', 'tasks/t.ts': 'export const nothing = 1;\n'});
    let result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('  - t failed: tasks/t.ts does not export a task.\n  A task module must `export default defineTask({async run(ctx) {...}})`.');
    project.write({'tasks/t.ts': 'export default async function run(ctx) {}\n'});
    result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain(
      '  - t failed: tasks/t.ts does not export a task: its default export is a function.\n  Give the function as the task\'s run: `export default defineTask({run: yourFunction})`.',
    );
  });
});

describe('graph', () => {
  const shipped = () => {
    const project = new Project({});
    copyFileSync(join(REPO, 'pipeline.yaml'), project.path('pipeline.yaml'));
    return project;
  };

  it('prints the shipped pipeline as Mermaid and as dot', () => {
    const project = shipped();
    const mermaid = project.run(['graph']);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout).toBe(`graph TD
  extract_old["extract-old"]
  extract_new["extract-new"]
  validate["validate"]
  analyze["analyze"]
  report["report"]
  alerts["alerts"]
  extract_old --> validate
  extract_new --> validate
  extract_old --> analyze
  extract_new --> analyze
  validate --> report
  analyze -.-> report
  analyze --> alerts
`);
    const dot = project.run(['graph', '--format', 'dot']);
    expect(dot.stdout).toContain('digraph pipeline {\n  rankdir=TB;\n  node [shape=box];\n  "extract-old" [label="extract-old"];');
    expect(dot.stdout).toContain('  "analyze" -> "report" [style=dashed];\n');
    expect(project.run(['graph', '--format', 'svg']).stderr).toBe('Error: Expected --format mermaid or --format dot, got "svg".\n');
  });

  it('gives names that read alike in Mermaid (a-b, a_b) nodes of their own', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  a-b: {shell: "true"}\n  a_b: {shell: "true", deps: [a-b]}\n'});
    expect(project.run(['graph']).stdout).toBe('graph TD\n  a_b["a-b"]\n  a_b_2["a_b"]\n  a_b --> a_b_2\n');
    // Mermaid's own words are no node ids: a node named end breaks the whole chart.
    const words = new Project({'pipeline.yaml': 'tasks:\n  end: {shell: "true"}\n  graph: {shell: "true", deps: [end]}\n'});
    expect(words.run(['graph']).stdout).toBe('graph TD\n  end_task["end"]\n  graph_task["graph"]\n  end_task --> graph_task\n');
  });

  it('marks each task cached or stale for the given versions', () => {
    const project = shipped();
    expect(project.run(['--old', '0.3615', '--new', '0.3621']).code).toBe(0);
    const graph = project.run(['graph', '--old', '0.3615', '--new', '0.3621', '--set', 'validation.tolerance.abs=0.001']);
    expect(graph.code).toBe(0);
    expect(graph.stdout).toContain('  extract_old["extract-old (cached)"]\n');
    expect(graph.stdout).toContain('  validate["validate (stale)"]\n');
    expect(graph.stdout).toContain('  analyze["analyze (cached)"]\n');
    expect(graph.stdout).toContain('  report["report (stale)"]\n');
    expect(graph.stdout).toContain('  class extract_old,extract_new,analyze,alerts cached\n');
  });
});

describe('JSON Schema', () => {
  it('pipeline.schema.json is generated from the code, and pipeline.yaml points editors at it', () => {
    const generated = execFileSync(process.execPath, [CLI, 'schema'], {cwd: REPO, encoding: 'utf8'});
    expect(readFileSync(join(REPO, 'pipeline.schema.json'), 'utf8')).toBe(generated);
    expect(readFileSync(join(REPO, 'pipeline.yaml'), 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./pipeline.schema.json');
    const schema = JSON.parse(generated) as {properties: {settings: {properties: Record<string, unknown>}; tasks: unknown}};
    expect(Object.keys(schema.properties.settings.properties)).toEqual(['source', 'duckdb', 'bigquery', 'validation', 'analysis', 'output', 'logging', 'performance', 'cache']);
  });
});

