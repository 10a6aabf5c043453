/**
 * How runs fail: a crashing task, a hanging one (timeout), transient errors (retried),
 * Ctrl-C. Failures are reported with their class and context, dependents are skipped,
 * independent work finishes, and the cache stays consistent.
 */
import {execSync} from 'node:child_process';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {countingTask, Project, REPO} from './support/project.js';

const ERRORS = join(REPO, 'src/errors.ts');

function flaky(failures: number, permanent = false): string {
  return `import {appendFileSync, existsSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {ExecutionError, TransientError} from '${ERRORS}';
export default {
  async run(ctx) {
    appendFileSync(join(ctx.projectDir, 'runs.log'), ctx.name + '\\n');
    const attempts = readFileSync(join(ctx.projectDir, 'runs.log'), 'utf8').split('\\n').filter((line) => line === ctx.name).length;
    if (attempts <= ${failures}) {
      throw ${permanent ? "new ExecutionError('the source refused the query', {hint: 'Check the query.'})" : "new TransientError('HTTP 503 from the source')"};
    }
    writeFileSync(ctx.output('f.txt'), 'ok after ' + attempts);
  },
};
`;
}

describe('failures', () => {
  it('a crashing task fails the run with exit 3 and errors.json; dependents are skipped, no new task starts', () => {
    const project = new Project({
      'pipeline.yaml': `tasks:
  boom: {run: boom, outputs: [b.txt]}
  after: {run: ok, deps: [boom], outputs: [after.txt]}
  other: {run: ok2, outputs: [other.txt]}
`,
      'tasks/boom.ts': "export default {async run() { throw new Error('division by zero in row 7'); }};\n",
      'tasks/ok.ts': countingTask(['after.txt']),
      'tasks/ok2.ts': countingTask(['other.txt']),
    });
    const result = project.run(['--old', '1', '--new', '2', '--set', 'validation.parallel_processing=false']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('ERROR 1 vs 2');
    expect(result.stdout).toContain('  - boom failed: Task "boom" crashed: division by zero in row 7');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    const errors = project.json('output/1_vs_2/errors.json');
    expect(errors).toEqual({
      class: 'ExecutionError',
      message: 'Task "boom" crashed: division by zero in row 7',
      task: 'boom',
      hint: 'The log file has the stack trace at logging.level DEBUG (--verbose sets it).',
      failures: [{task: 'boom', class: 'ExecutionError', message: 'Task "boom" crashed: division by zero in row 7'}],
    });
    const summary = project.json<{status: string; tasks: {name: string; status: string; reason: string}[]}>('output/1_vs_2/summary.json');
    expect(summary.status).toBe('fail');
    expect(summary.tasks.slice(0, 2).map((task) => [task.name, task.status, task.reason])).toEqual([
      ['boom', 'failed', 'Task "boom" crashed: division by zero in row 7'],
      ['after', 'skipped', 'boom failed'],
    ]);
    // One at a time (parallel_processing: false): "other" may have gone first; if not, it
    // must not start after the failure.
    const other = summary.tasks[2]!;
    const log = project.read('output/1_vs_2/validation.log');
    if (other.status === 'ran') {
      expect(log.indexOf('other: started')).toBeLessThan(log.indexOf('boom: Task "boom" crashed'));
    } else {
      expect([other.status, other.reason]).toEqual(['skipped', 'not started: boom failed']);
      expect(log).not.toContain('other: started');
    }
    expect(project.read('output/1_vs_2/validation.log')).toContain('ERROR - boom: Task "boom" crashed: division by zero in row 7');
    expect(project.read('output/1_vs_2/validation.log')).not.toContain('DEBUG');
    // --verbose: the log has where the task's code failed.
    const verbose = project.run(['--old', '1', '--new', '2', '--set', 'validation.parallel_processing=false', '--verbose']);
    expect(verbose.code).toBe(3);
    expect(project.read('output/1_vs_2/validation.log')).toMatch(/DEBUG - boom: Error: division by zero in row 7\n.*DEBUG -\s+at /s);
  });

  it('after a failure, cached results are still served: an unrelated failing task does not hide a verdict', () => {
    // slow (never cached) finishes only after boom has failed; check, which needs it, is then
    // looked up after the failure, and its cached result served.
    const slow = `import {existsSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export default {async run(ctx) {
  if (process.env['FAIL']) { while (!existsSync(join(ctx.projectDir, 'boom-failed'))) await sleep(20); await sleep(200); }
  writeFileSync(ctx.output('s.txt'), 's');
}};
`;
    const check = "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output('c.txt'), 'c'); return {verdict: 'warn', verdictReasons: ['3 rows changed']}; }};\n";
    const boom = "import {writeFileSync} from 'node:fs';\nimport {join} from 'node:path';\nexport default {async run(ctx) { if (process.env['FAIL']) { writeFileSync(join(ctx.projectDir, 'boom-failed'), ''); throw new Error('it broke'); } writeFileSync(ctx.output('b.txt'), 'b'); }};\n";
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  boom: {run: boom, outputs: [b.txt], cache: false}\n  slow: {run: slow, outputs: [s.txt], cache: false}\n  check: {run: check, deps: [slow], outputs: [c.txt]}\n',
      'tasks/boom.ts': boom,
      'tasks/slow.ts': slow,
      'tasks/check.ts': check,
    });
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    const again = project.run(['--old', '1', '--new', '2'], {FAIL: '1'});
    expect(again.code).toBe(3);
    const summary = project.json<{tasks: {name: string; status: string}[]; verdict_reasons: string[]}>('output/1_vs_2/summary.json');
    expect(summary.tasks.map((task) => [task.name, task.status])).toEqual([
      ['boom', 'failed'],
      ['slow', 'ran'],
      ['check', 'cached'],
    ]);
    expect(summary.verdict_reasons).toEqual(['check: 3 rows changed']);
    expect(again.stdout).toContain('  - check: 3 rows changed');
  });

  it('a task that hangs is stopped at performance.timeout', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  hang: {run: hang, outputs: [h.txt]}\n',
      'tasks/hang.ts': 'export default {async run() { await new Promise((resolve) => setTimeout(resolve, 600_000)); }};\n',
    });
    const result = project.run(['--old', '1', '--new', '2', '--set', 'performance.timeout=1']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('  - hang failed: Task "hang" exceeded the time limit of 1 s (performance.timeout).');
    expect(project.json('output/1_vs_2/errors.json')['hint']).toBe('Raise performance.timeout (in seconds), or find out why the task is slow in the log file.');
  });

  it('retries a transient failure and succeeds', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  f: {run: flaky, outputs: [f.txt]}\n', 'tasks/flaky.ts': flaky(2)});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(project.runs()).toEqual({f: 3});
    expect(project.read('output/1_vs_2/f.txt')).toBe('ok after 3');
    expect(project.read('output/1_vs_2/validation.log')).toMatch(/WARNING - f: attempt 2 failed \(HTTP 503 from the source\); retrying in \d+ ms/);
  });

  it('gives up after performance.retry_count retries, and never retries a permanent error', () => {
    const transient = new Project({'pipeline.yaml': 'tasks:\n  f: {run: flaky, outputs: [f.txt]}\n', 'tasks/flaky.ts': flaky(10)});
    const result = transient.run(['--old', '1', '--new', '2', '--set', 'performance.retry_count=2']);
    expect(result.code).toBe(3);
    expect(transient.runs()).toEqual({f: 3});
    expect(transient.json('output/1_vs_2/errors.json')['class']).toBe('TransientError');

    const permanent = new Project({'pipeline.yaml': 'tasks:\n  f: {run: flaky, outputs: [f.txt]}\n', 'tasks/flaky.ts': flaky(10, true)});
    const refused = permanent.run(['--old', '1', '--new', '2']);
    expect(refused.code).toBe(3);
    expect(permanent.runs()).toEqual({f: 1});
    expect(refused.stdout).toContain('  - f failed: the source refused the query');
    expect(refused.stdout).toContain('  Check the query.');
  });

  it('a task that does not write a declared output fails with a clear message', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  lazy: {run: lazy, outputs: [promised.csv]}\n',
      'tasks/lazy.ts': 'export default {async run() {}};\n',
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('  - lazy failed: Task "lazy" finished without writing its declared output "promised.csv".');
  });

  it.each(['SIGINT', 'SIGHUP'] as const)('%s (Ctrl-C, a closed terminal) stops running tasks and their processes, exits 130, publishes nothing, keeps the cache usable', async (signal) => {
    const project = new Project({
      'pipeline.yaml': `tasks:
  quick: {run: quick, outputs: [q.txt]}
  slow:
    shell: echo slow >> runs.log && sleep 6123 && echo done > \${output:s.txt}
    deps: [quick]
    outputs: [s.txt]
`,
      'tasks/quick.ts': countingTask(['q.txt']),
    });
    const child = project.start(['--old', '1', '--new', '2']);
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    for (let i = 0; i < 600 && project.runs()['slow'] !== 1; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(project.runs()).toEqual({quick: 1, slow: 1});
    child.kill(signal);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(130);
    // Stopped, not failed.
    expect(stdout).toContain('slow: interrupted');
    expect(stdout).toContain('0 errors');
    expect(stderr).toContain(`${signal}: stopping running tasks`);
    expect(stderr).toContain('Error: Interrupted; nothing was published and the cache is consistent.');
    expect(project.exists('output/1_vs_2')).toBe(false);
    const sleeping = execSync("pgrep -f 'sleep 612[3]' || true", {encoding: 'utf8'}).trim();
    expect(sleeping).toBe('');
    // The next run reuses what finished before the interruption.
    project.write({'pipeline.yaml': project.read('pipeline.yaml').replace('sleep 6123 && ', '')});
    const next = project.run(['--old', '1', '--new', '2']);
    expect(next.code).toBe(0);
    expect(project.runs()).toEqual({quick: 1, slow: 2});
  });

  it('Ctrl-C during a DuckDB query exits, even when the task goes on querying after the interruption', async () => {
    // As validate drops its temp tables in a finally, the task queries after the interruption.
    // Closing the engine under that query deadlocked DuckDB and the process never exited;
    // a long one kept it running until done.
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  q: {run: q}\n',
      'tasks/q.ts': `import {appendFileSync} from 'node:fs';
export default {async run(ctx) {
  const db = await ctx.duckdb();
  appendFileSync('runs.log', 'q\\n');
  try {
    await db.run('SELECT count(*) FROM range(1000000000000)');
  } finally {
    try {
      await db.run('SELECT count(*) FROM range(1000000000000)');
      appendFileSync('cleanup.log', 'finished');
    } catch {
      appendFileSync('cleanup.log', 'interrupted');
    }
  }
}};
`,
    });
    const child = project.start(['--old', '1', '--new', '2']);
    for (let i = 0; i < 600 && project.runs()['q'] !== 1; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGINT');
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(130);
    // The query started after the interruption was interrupted too, not waited for.
    expect(project.read('cleanup.log')).toBe('interrupted');
  });
});
