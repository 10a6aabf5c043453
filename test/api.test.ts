/** The library API: what the CLI does, from code. */
import {writeFileSync} from 'node:fs';
import {describe, expect, it} from 'vitest';
import {ConfigurationError, DiagnosticsError, ValidationRunner} from '../src/index.js';
import type {Outcome} from '../src/index.js';
import {countingTask, Project} from './support/project.js';

describe('ValidationRunner', () => {
  it('runs the workflow, returns the summary, and adds steps in code', async () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt']),
    });
    const seen: Outcome['kind'][] = [];
    const runner = new ValidationRunner(undefined, {projectDir: project.dir}).addTask('shout', {
      deps: ['a'],
      outputs: ['shout.txt'],
      async run(ctx) {
        const {readFileSync, writeFileSync} = await import('node:fs');
        writeFileSync(ctx.output('shout.txt'), readFileSync(ctx.input('a', 'a.txt'), 'utf8').toUpperCase());
        return {rows: 1, verdict: 'warn', verdictReasons: ['shouting']};
      },
    });
    const summary = await runner.runWorkflow('0.1', '0.2', {hooks: {finished: (outcome) => seen.push(outcome.kind)}});
    expect(summary.status).toBe('warn');
    expect(summary.verdict_reasons).toEqual(['shout: shouting']);
    expect(summary.tasks.map((task) => [task.name, task.status])).toEqual([
      ['a', 'ran'],
      ['shout', 'ran'],
    ]);
    expect(project.read('output/0.1_vs_0.2/shout.txt')).toBe('A:{}');
    expect(seen).toEqual(['ran', 'ran']);

    const again = await runner.runWorkflow('0.1', '0.2');
    expect(again.tasks.map((task) => task.status)).toEqual(['cached', 'cached']);
    expect(again.status).toBe('warn');
  });

  it('throws typed errors: DiagnosticsError for configuration, ConfigurationError for versions', async () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  a: {run: nothing}\n'});
    const runner = new ValidationRunner(undefined, {projectDir: project.dir});
    await expect(runner.runWorkflow('1', '2')).rejects.toBeInstanceOf(DiagnosticsError);
    await expect(runner.runWorkflow('1 OR 1=1', '2')).rejects.toBeInstanceOf(ConfigurationError);
    // An empty output folder is no folder (it would be the current one).
    project.write({'pipeline.yaml': 'tasks:\n  a: {shell: "true"}\n'});
    await expect(runner.runWorkflow('1', '2', {outputDir: ''})).rejects.toThrow(/--output-dir Expected --output-dir to name a folder, got an empty value\./);
  });

  it('sees edits to task modules and their helpers between runs of one process (a server)', async () => {
    const helper = (value: string) => `export const value = () => '${value}';\n`;
    const task = (extension: string) =>
      `import {writeFileSync} from 'node:fs';\nimport {value} from './lib/helper${extension}';\n` +
      `export default {async run(ctx) { writeFileSync(ctx.output(ctx.name + '.txt'), value()); }};\n`;
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  ts: {run: ts, outputs: [ts.txt]}\n  js: {run: js, outputs: [js.txt]}\n',
      'tasks/ts.ts': task('.js'),
      'tasks/lib/helper.ts': helper('one'),
      'tasks/js.mjs': task('.mjs'),
      'tasks/lib/helper.mjs': helper('one'),
    });
    const runner = new ValidationRunner(undefined, {projectDir: project.dir});
    const first = await runner.runWorkflow('1', '2');
    expect(first.tasks.map((t) => t.status)).toEqual(['ran', 'ran']);
    writeFileSync(project.path('tasks/lib/helper.ts'), helper('two'));
    writeFileSync(project.path('tasks/lib/helper.mjs'), helper('two'));
    const second = await runner.runWorkflow('1', '2');
    expect(second.tasks.map((t) => [t.name, t.status, t.reason])).toEqual([
      ['ts', 'ran', 'tasks/lib/helper.ts changed'],
      ['js', 'ran', 'tasks/lib/helper.mjs changed'],
    ]);
    // Both ran the helper as it is now, not as the process first loaded it.
    expect([project.read('output/1_vs_2/ts.txt'), project.read('output/1_vs_2/js.txt')]).toEqual(['two', 'two']);
  });
});
