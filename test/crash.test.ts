/**
 * Crash consistency: the run is killed with SIGKILL at many points (before, during and after
 * each task's writes, and while the output folder is switched); the next ordinary run must
 * produce, byte for byte, the outputs of a run that was never interrupted.
 */
import {readdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {Project} from './support/project.js';

/** A task that writes half its output, can die right there (KILL_IN), then finishes it. */
const task = (output: string, content: string) => `import {appendFileSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
export default {
  async run(ctx) {
    appendFileSync(join(ctx.projectDir, 'runs.log'), ctx.name + '\\n');
    const read = (task, file) => readFileSync(ctx.input(task, file), 'utf8');
    const text = String(${content}).repeat(2000);
    writeFileSync(ctx.output('${output}'), text.slice(0, text.length / 2));
    if (process.env.KILL_IN === ctx.name) process.kill(process.pid, 'SIGKILL');
    appendFileSync(ctx.output('${output}'), text.slice(text.length / 2));
  },
};
`;

const files = () => ({
  'pipeline.yaml': `tasks:
  a: {run: a, outputs: [a.txt]}
  b: {run: b, deps: [a], outputs: [b.txt]}
  c: {run: c, deps: [a], outputs: [c.txt]}
  d: {run: d, deps: [b, c], outputs: [d.txt]}
  e: {run: e, deps: [d], outputs: [e.txt]}
`,
  'tasks/a.ts': task('a.txt', "'a'"),
  'tasks/b.ts': task('b.txt', "read('a', 'a.txt').slice(0, 10) + 'b'"),
  'tasks/c.ts': task('c.txt', "read('a', 'a.txt').slice(0, 10) + 'c'"),
  'tasks/d.ts': task('d.txt', "read('b', 'b.txt').slice(0, 5) + read('c', 'c.txt').slice(0, 5)"),
  'tasks/e.ts': task('e.txt', "read('d', 'd.txt').slice(0, 20) + 'e'"),
});

/** Every published file but the run's own records (timings, pids). */
function published(project: Project): Record<string, string> {
  const dir = project.path('output/1_vs_2');
  return Object.fromEntries(
    readdirSync(dir)
      .filter((file) => !['summary.json', 'validation.log'].includes(file) && !file.startsWith('.'))
      .sort()
      .map((file) => [file, readFileSync(join(dir, file), 'utf8')]),
  );
}

const POINTS: {name: string; env: Record<string, string>}[] = [
  ...[1, 2, 3, 4, 5].flatMap((n) => [
    {name: `before task ${n} runs`, env: {PIPELINE_FAULT_KILL_AT: `task-start#${n}`}},
    {name: `after task ${n} wrote its outputs, before they are stored`, env: {PIPELINE_FAULT_KILL_AT: `task-ran#${n}`}},
    {name: `after task ${n}'s output is stored, before its entry`, env: {PIPELINE_FAULT_KILL_AT: `blob-stored#${n}`}},
    {name: `after task ${n}'s entry is written`, env: {PIPELINE_FAULT_KILL_AT: `entry-written#${n}`}},
  ]),
  ...['a', 'b', 'c', 'd', 'e'].map((name) => ({name: `while task ${name} is half-way through writing`, env: {KILL_IN: name}})),
  {name: 'after the output folder is staged', env: {PIPELINE_FAULT_KILL_AT: 'publish-staged'}},
  {name: 'after the previous output folder is moved away', env: {PIPELINE_FAULT_KILL_AT: 'publish-swapped-out'}},
  {name: 'right after the new output folder is in place', env: {PIPELINE_FAULT_KILL_AT: 'publish-swapped-in'}},
];

describe('SIGKILL at any point', () => {
  const reference = new Project(files());
  const uninterrupted = () => {
    if (!reference.exists('output/1_vs_2')) expect(reference.run(['--old', '1', '--new', '2']).code).toBe(0);
    return published(reference);
  };

  it(`covers ${POINTS.length} points`, () => {
    expect(POINTS.length).toBeGreaterThanOrEqual(20);
  });

  for (const point of POINTS) {
    it(point.name, async () => {
      const expected = uninterrupted();
      const project = new Project(files());
      // A previous run's outputs exist, so the switch of the output folder is exercised too.
      expect(project.run(['--old', '1', '--new', '2', '--set', 'validation.chunk_size=7']).code).toBe(0);
      project.write({'tasks/a.ts': task('a.txt', "'A'")});
      const killed = project.start(['--old', '1', '--new', '2'], point.env);
      const signal = await new Promise((resolve) => killed.once('exit', (_code, signal) => resolve(signal)));
      expect(signal).toBe('SIGKILL');
      project.write({'tasks/a.ts': task('a.txt', "'a'")});
      const next = project.run(['--old', '1', '--new', '2']);
      // The killed run's lock is taken over, and said so; nothing else is reported.
      expect(next.stderr).toMatch(/^Warning: Took over the lock of run \d+ \(started [^)]+\), which is no longer running\.\n$/);
      expect(next.code).toBe(0);
      expect(published(project)).toEqual(expected);
      // Scratch space the killed run left behind is gone.
      expect(project.exists('.cache/tmp') ? readdirSync(project.path('.cache/tmp')) : []).toEqual([]);
    });
  }

  it('a run killed between the two renames of publishing leaves the last good outputs to the next run, even one that fails', async () => {
    const project = new Project(files());
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    const good = published(project);
    project.write({'tasks/a.ts': task('a.txt', "'A'")});
    const killed = project.start(['--old', '1', '--new', '2'], {PIPELINE_FAULT_KILL_AT: 'publish-swapped-out'});
    expect(await new Promise((resolve) => killed.once('exit', (_code, signal) => resolve(signal)))).toBe('SIGKILL');
    expect(project.exists('output/1_vs_2')).toBe(false);
    // The next run fails at once: the folder it finds is the last good one, put back whole.
    project.write({'tasks/a.ts': "export default {async run() { throw new Error('broken'); }};\n"});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(3);
    const after = published(project);
    for (const [file, content] of Object.entries(good)) expect(after[file], file).toBe(content);
    expect(project.exists('output/1_vs_2/errors.json')).toBe(true);
  });
});
