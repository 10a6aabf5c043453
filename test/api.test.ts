/** The library API: what the CLI does, from code. */
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
  });
});
