/**
 * The HTTP API (`serve`), end to end: the real server as a child process in a temporary
 * project, driven over real HTTP on 127.0.0.1 the way a CI system or a dashboard drives it.
 */
import {spawnSync} from 'node:child_process';
import type {ChildProcess} from 'node:child_process';
import {copyFileSync, readdirSync} from 'node:fs';
import {request as httpRequest} from 'node:http';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {CLI, cliEnv, Project, REPO} from './support/project.js';

interface TaskView {
  name: string;
  state: string;
  reason: string | null;
  progress?: {rows?: number; total?: number; message?: string};
}
interface RunView {
  id: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  old: string;
  new: string;
  started_at: string | null;
  finished_at: string | null;
  queue_position?: number;
  tasks: TaskView[];
  status: string | null;
  exit_code: number | null;
  highlights: string[];
  error: {class: string; message: string} | null;
  files: string[];
}
interface Reply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A server started with `serve --port 0`, at the address it printed. */
class Server {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));
  }

  static async start(project: Project, args: string[] = [], env: Record<string, string> = {}): Promise<Server> {
    const child = project.start(['serve', '--port', '0', ...args], env);
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk;
        const match = /Listening on (http:\/\/\S+)/.exec(stdout);
        if (match !== null) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`the server exited with code ${code} before listening:\n${stderr}`)));
    });
    const server = new Server(child, url.replace('http://0.0.0.0:', 'http://127.0.0.1:'));
    server.stdout = stdout;
    child.stdout!.on('data', (chunk: Buffer) => (server.stdout += chunk));
    child.stderr!.on('data', (chunk: Buffer) => (server.stderr += chunk));
    server.stderr = stderr;
    return server;
  }

  async fetch<T = unknown>(path: string, init: RequestInit = {}): Promise<Reply<T>> {
    const response = await fetch(this.url + path, init);
    const text = await response.text();
    const json = (response.headers.get('content-type') ?? '').startsWith('application/json');
    return {status: response.status, headers: response.headers, body: (json ? JSON.parse(text) : undefined) as T, text};
  }

  post<T = RunView>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
    return this.fetch<T>(path, {method: 'POST', headers: {'Content-Type': 'application/json', ...headers}, body: typeof body === 'string' ? body : JSON.stringify(body)});
  }

  async run(id: string): Promise<RunView> {
    const reply = await this.fetch<RunView>(`/runs/${id}`);
    expect(reply.status).toBe(200);
    return reply.body;
  }

  /** Polls a run until it has finished; `each` sees every state observed on the way. */
  async settle(id: string, each: (view: RunView) => Promise<void> | void = () => undefined): Promise<RunView> {
    for (;;) {
      const view = await this.run(id);
      await each(view);
      if (!['queued', 'running'].includes(view.state)) return view;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Polls a run until it has left the queue. */
  async started(id: string): Promise<RunView> {
    for (;;) {
      const view = await this.run(id);
      if (view.state !== 'queued') return view;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** A request with headers fetch will not send as given (Host). */
function rawGet(url: string, path: string, headers: Record<string, string>): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url + path, {headers}, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk));
      response.on('end', () => resolve({status: response.statusCode!, body}));
    });
    request.on('error', reject);
    request.end();
  });
}

function shipped(): Project {
  const project = new Project({});
  copyFileSync(join(REPO, 'pipeline.yaml'), project.path('pipeline.yaml'));
  return project;
}

const TOKEN = 'test-token-0123456789abcdef';

describe('the HTTP API on the shipped pipeline', () => {
  let project: Project;
  let server: Server;
  beforeAll(async () => {
    project = shipped();
    server = await Server.start(project);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('prints the address it listens on, on loopback by default, and answers /healthz', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await server.fetch('/healthz')).toMatchObject({status: 200, body: {ok: true}});
  });

  let first: RunView;
  it('runs posted are queued and executed one at a time, each followed to completion', async () => {
    const a = await server.post('/runs', {old: '0.3615', new: '0.3621'});
    const b = await server.post('/runs', {old: '0.3609', new: '0.3615'});
    expect(a.status).toBe(202);
    expect(a.body.state).toBe('queued');
    expect(a.headers.get('location')).toBe(`/runs/${a.body.id}`);
    expect(b.status).toBe(202);
    expect(b.body.id).not.toBe(a.body.id);

    // The first run extracts two versions cold (seconds): the second waits behind it.
    expect(await server.run(b.body.id)).toMatchObject({state: 'queued', queue_position: 1});
    const seen = new Set<string>();
    first = await server.settle(a.body.id, async (view) => {
      if (view.state === 'running') {
        seen.add('running');
        // b waits while a runs (a may finish between the two requests: then b may have started).
        if ((await server.run(b.body.id)).state !== 'queued') expect((await server.run(a.body.id)).state).not.toBe('running');
        if (view.tasks.some((task) => task.state === 'running' && task.progress !== undefined)) seen.add('progress');
      }
    });
    expect(seen).toContain('running');
    expect(first).toMatchObject({state: 'succeeded', status: 'warn', exit_code: 0, error: null});
    expect(first.highlights).toEqual([
      'validate: 40,100 of 99,785 compared rows changed (40.2%), most in learning_rate (19,991), threshold (18,827), score (5,977) and 2 more columns; 349 keys added, 235 removed',
      'analyze: learning_rate: drift only in region=east (major, PSI 0.67); PSI 0.0091 overall',
    ]);
    expect(first.tasks.map((task) => [task.name, task.state])).toEqual([
      ['extract-old', 'ran'],
      ['extract-new', 'ran'],
      ['validate', 'ran'],
      ['analyze', 'ran'],
      ['report', 'ran'],
      ['alerts', 'ran'],
    ]);
    expect(first.tasks[0]!.reason).toBe('no previous run');

    const second = await server.settle(b.body.id);
    expect(second).toMatchObject({state: 'succeeded', exit_code: expect.any(Number)});
    expect(second.started_at! >= first.finished_at!).toBe(true);
    // 0.3615 was extracted by the first run: the queue shares the project's cache.
    expect(second.tasks.find((task) => task.name === 'extract-new')?.state).toBe('cached');

    const runs = await server.fetch<{runs: RunView[]}>('/runs');
    expect(runs.body.runs.map((run) => run.id)).toEqual([b.body.id, a.body.id]);
  });

  it("serves a finished run's report, summary, validation and analysis", async () => {
    const report = await server.fetch(`/runs/${first.id}/report`);
    expect(report.status).toBe(200);
    expect(report.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(report.text).toContain('<html');
    expect(report.text).toContain('0.3621');

    const summary = await server.fetch<{old: string; new: string; status: string; tasks: {status: string}[]}>(`/runs/${first.id}/summary.json`);
    expect(summary.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(summary.body).toMatchObject({old: '0.3615', new: '0.3621', status: 'warn'});
    const validation = await server.fetch<{keys: {added: number; removed: number}}>(`/runs/${first.id}/validation.json`);
    expect(validation.body.keys).toMatchObject({added: 349, removed: 235});
    const analysis = await server.fetch<Record<string, unknown>>(`/runs/${first.id}/analysis.json`);
    expect(analysis.status).toBe(200);
    expect(Object.keys(analysis.body).length).toBeGreaterThan(0);
  });

  it('an unchanged rerun is served from the cache, and each run keeps its own files', async () => {
    const posted = await server.post('/runs', {old: '0.3615', new: '0.3621'});
    const rerun = await server.settle(posted.body.id);
    expect(rerun.state).toBe('succeeded');
    const summary = await server.fetch<{tasks: {name: string; status: string}[]; cache: {ran: number}}>(`/runs/${rerun.id}/summary.json`);
    expect(summary.body.tasks.map((task) => task.status)).toEqual(['cached', 'cached', 'cached', 'cached', 'cached', 'cached']);
    expect(summary.body.cache.ran).toBe(0);
    // The first run's summary is still its own (every task ran), although both wrote one folder.
    const earlier = await server.fetch<{tasks: {status: string}[]}>(`/runs/${first.id}/summary.json`);
    expect(earlier.body.tasks.every((task) => task.status === 'ran')).toBe(true);
  });

  it('settings overrides rerun only what reads them', async () => {
    const posted = await server.post('/runs', {old: '0.3615', new: '0.3621', set: {'validation.tolerance.abs': 0.001}});
    expect(posted.status).toBe(202);
    const run = await server.settle(posted.body.id);
    expect(run.state).toBe('succeeded');
    const states = Object.fromEntries(run.tasks.map((task) => [task.name, task.state]));
    expect(states).toEqual({'extract-old': 'cached', 'extract-new': 'cached', validate: 'ran', analyze: 'cached', report: 'ran', alerts: 'cached'});
    expect(run.tasks.find((task) => task.name === 'validate')?.reason).toContain('setting validation.tolerance.abs changed 0 -> 0.001');
  });

  it('a run that fails reports its error class and message, without a stack trace', async () => {
    const posted = await server.post('/runs', {old: '0.3615', new: '9.9999'});
    const run = await server.settle(posted.body.id);
    expect(run).toMatchObject({state: 'failed', exit_code: 2, error: {class: 'ConfigurationError'}});
    expect(run.error!.message).toContain('version 9.9999 has no rows');
    expect(JSON.stringify(run)).not.toMatch(/\n\s+at |\.ts:\d+|\.js:\d+/);
    expect((await server.fetch(`/runs/${run.id}/analysis.json`)).status).toBe(404);
  });

  it("a failed run after a good one serves none of the previous run's files as its own", async () => {
    // 0.3615 vs 0.3621 ran above; a segment column that does not exist fails analyze.
    const posted = await server.post('/runs', {old: '0.3615', new: '0.3621', set: {'analysis.segment_by': ['regoin']}});
    const run = await server.settle(posted.body.id);
    expect(run).toMatchObject({state: 'failed', exit_code: 2, files: ['summary.json']});
    for (const file of ['report', 'validation.json', 'analysis.json']) expect((await server.fetch(`/runs/${run.id}/${file}`)).status).toBe(404);
    const summary = await server.fetch<{kept_from_previous_run: string[]}>(`/runs/${run.id}/summary.json`);
    expect(summary.body.kept_from_previous_run).toEqual(expect.arrayContaining(['report.html', 'validation.json', 'analysis.json']));
  });

  it('lists the versions in the source with their row counts', async () => {
    const reply = await server.fetch<{versions: {version: string; rows: number}[]}>('/versions');
    expect(reply.status).toBe(200);
    expect(reply.body.versions).toEqual([
      {version: '0.3609', rows: 100000},
      {version: '0.3615', rows: 100020},
      {version: '0.3621', rows: 100134},
    ]);
  });

  it.each([
    ['a missing old version', {new: '0.3621'}, 'old', 'Expected old to be a version string'],
    ['a version that is not one', {old: "0.1' OR '1'='1", new: '0.3621'}, 'old', 'a version is letters, digits'],
    ['a number as version', {old: 0.3615, new: '0.3621'}, 'old', 'got number 0.3615'],
    ['an unknown field', {old: '0.3615', new: '0.3621', sett: {}}, 'sett', 'Unknown field "sett"'],
    ['set of the wrong type', {old: '0.3615', new: '0.3621', set: 'validation.tolerance.abs=0.01'}, 'set', 'Expected set to be an object of settings'],
    ['force of the wrong type', {old: '0.3615', new: '0.3621', force: 'yes'}, 'force', 'Expected force to be true or false'],
    ['a setting of the wrong type', {old: '0.3615', new: '0.3621', set: {'validation.tolerance.abs': 'small'}}, 'set.validation.tolerance.abs', 'Expected a number'],
    ['an unknown setting', {old: '0.3615', new: '0.3621', set: {'validation.tolerence.abs': 0.1}}, 'set.validation.tolerence.abs', 'tolerence'],
    ['a body that is not an object', ['0.3615', '0.3621'], 'body', 'Expected a JSON object'],
    // JSON.parse reads a number past a double's range as Infinity, which --set would get as null.
    ['a number beyond a double', '{"old": "0.3615", "new": "0.3621", "set": {"validation": {"tolerance": {"abs": 1e400}}}}', 'set.validation.tolerance.abs', 'Expected a finite number in set.validation.tolerance.abs'],
  ])('refuses %s with 400 naming the field', async (_name, body, field, message) => {
    const reply = await server.post<{error: {field: string; message: string}}>('/runs', body);
    expect(reply.status).toBe(400);
    expect(reply.body.error.field).toBe(field);
    expect(reply.body.error.message).toContain(message);
  });

  it.each([
    ['duckdb.database', {'duckdb.database': '/etc/passwd'}],
    ['duckdb.path', {duckdb: {path: '/home/someone/secret.parquet'}}],
    ['output.base_dir', {'output.base_dir': '/tmp/elsewhere'}],
    ['cache.dir', {cache: {dir: '/tmp/elsewhere'}}],
    ['logging.file', {'logging.file': '/tmp/elsewhere.log'}],
    ['duckdb.database', {duckdb: {}}],
    ['bigquery.project_id', {'bigquery.project_id': 'someone-elses-project'}],
    ['bigquery.dataset_id', {bigquery: {dataset_id: 'payroll'}}],
    ['source.table', {'source.table': 'salaries'}],
    ['validation.mismatch_table', {'validation.mismatch_table': 'prod.model_parameters'}],
  ])('refuses an override of %s, which points outside the project', async (setting, set) => {
    const reply = await server.post<{error: {field: string; message: string}}>('/runs', {old: '0.3615', new: '0.3621', set});
    expect(reply.status).toBe(400);
    expect(reply.body.error.field).toMatch(/^set\./);
    expect(reply.body.error.message).toContain(`The setting ${setting} cannot be changed over HTTP`);
  });

  it('refuses invalid JSON, other content types and bodies over 64 KiB', async () => {
    const invalid = await server.post<{error: {field: string; message: string}}>('/runs', '{"old": "0.3615",');
    expect(invalid.status).toBe(400);
    expect(invalid.body.error).toMatchObject({field: 'body', message: expect.stringContaining('not valid JSON')});

    const form = await server.fetch('/runs', {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: '{"old": "0.3615", "new": "0.3621"}'});
    expect(form.status).toBe(415);

    const large = await server.post('/runs', {old: '0.3615', new: '0.3621', set: {'analysis.segment_by': Array.from({length: 20_000}, () => 'region')}});
    expect(large.status).toBe(413);
    // The server is still there for the next request.
    expect((await server.fetch('/healthz')).status).toBe(200);
  });

  it('answers 404 for unknown runs and endpoints and 405 for wrong methods', async () => {
    const unknown = await server.fetch<{error: {message: string}}>('/runs/00000000-0000-0000-0000-000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('No run');
    expect((await server.fetch('/runs/nope/report')).status).toBe(404);
    expect((await server.fetch('/runs/nope/summary.json')).status).toBe(404);
    expect((await server.fetch('/nothing-here')).status).toBe(404);
    const wrong = await server.fetch('/runs', {method: 'PUT'});
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
  });

  it('answers only requests addressed to a loopback host when it has no token', async () => {
    expect((await rawGet(server.url, '/healthz', {Host: 'attacker.example'})).status).toBe(403);
    expect((await rawGet(server.url, '/healthz', {Host: 'localhost'})).status).toBe(200);
  });

  it('cancels a queued run, and interrupts a running one', async () => {
    const running = await server.post('/runs', {old: '0.3609', new: '0.3621', force: true});
    const queued = await server.post('/runs', {old: '0.3609', new: '0.3621'});
    const cancelled = await server.fetch<RunView>(`/runs/${queued.body.id}`, {method: 'DELETE'});
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.state).toBe('cancelled');
    // `force` reruns every task (seconds): it is still running when the cancellation comes.
    expect((await server.started(running.body.id)).state).toBe('running');
    const interrupted = await server.fetch<RunView>(`/runs/${running.body.id}`, {method: 'DELETE'});
    expect(interrupted.status).toBe(202);
    // Asked again while it is being cancelled: accepted again, not "finishing".
    expect((await server.fetch<RunView>(`/runs/${running.body.id}`, {method: 'DELETE'})).status).toBe(202);
    expect(await server.settle(running.body.id)).toMatchObject({state: 'cancelled', exit_code: 130, error: {class: 'InterruptedError'}});
    expect(await server.run(queued.body.id)).toMatchObject({state: 'cancelled', exit_code: 130});
    // A finished run has nothing to cancel: 409, saying so, rather than a 202 that does nothing.
    const again = await server.fetch<{error: {message: string}}>(`/runs/${queued.body.id}`, {method: 'DELETE'});
    expect(again.status).toBe(409);
    expect(again.body.error.message).toBe(`Run ${queued.body.id} has already finished (cancelled); there is nothing to cancel.`);
  });
});

describe('the HTTP API beyond loopback', () => {
  it('refuses to listen on another address without PIPELINE_API_TOKEN', () => {
    const project = shipped();
    const result = spawnSync(process.execPath, [CLI, 'serve', '--host', '0.0.0.0', '--port', '0'], {cwd: project.dir, env: cliEnv(), encoding: 'utf8', timeout: 30_000});
    expect(result.status).toBe(2);
    expect(result.stdout).not.toContain('Listening');
    expect(result.stderr).toContain('Refusing to listen on 0.0.0.0 without PIPELINE_API_TOKEN');
  });

  it('requires the bearer token on every request, and never shows it', async () => {
    const server = await Server.start(shipped(), ['--host', '0.0.0.0'], {PIPELINE_API_TOKEN: TOKEN});
    try {
      const missing = await server.fetch('/healthz');
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const wrong = await server.fetch('/runs', {headers: {Authorization: `Bearer ${TOKEN.slice(0, -1)}x`}});
      expect(wrong.status).toBe(401);
      const short = await server.fetch('/runs', {headers: {Authorization: 'Bearer x'}});
      expect(short.status).toBe(401);
      const right = await server.fetch('/healthz', {headers: {Authorization: `Bearer ${TOKEN}`}});
      expect(right).toMatchObject({status: 200, body: {ok: true}});
      const posted = await server.post('/runs', {old: '0.3615'}, {Authorization: `Bearer ${TOKEN}`});
      expect(posted.status).toBe(400);
      for (const text of [missing.text, wrong.text, posted.text]) expect(text).not.toContain(TOKEN);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    expect(server.stdout + server.stderr).not.toContain(TOKEN);
  });
});

describe('graceful shutdown', () => {
  // A one-task pipeline whose task takes a moment, so a run is surely running when the signal comes.
  const slow = () => new Project({'pipeline.yaml': 'tasks:\n  slow:\n    shell: sleep 2; echo done > ${output:done.txt}\n    outputs: [done.txt]\n'});
  const runJson = (project: Project, id: string) => project.json<RunView>('.cache', 'server-runs', id, 'run.json');

  it('SIGTERM while idle exits 0 at once', async () => {
    const server = await Server.start(slow());
    expect(await server.stop('SIGTERM')).toBe(0);
  });

  it('lets the running validation finish within the grace period, cancels the queued ones, exits 0', async () => {
    const project = slow();
    const server = await Server.start(project, [], {PIPELINE_API_GRACE_SECONDS: '60'});
    const running = await server.post('/runs', {old: '1', new: '2'});
    const queued = await server.post('/runs', {old: '1', new: '3'});
    await server.started(running.body.id);
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(runJson(project, running.body.id)).toMatchObject({state: 'succeeded', exit_code: 0});
    expect(runJson(project, queued.body.id)).toMatchObject({state: 'cancelled', exit_code: 130, error: {message: expect.stringContaining('shut down')}});
  });

  it('a server killed during a run reports that run, after a restart, as failed and why', async () => {
    const project = slow();
    const server = await Server.start(project);
    const running = await server.post('/runs', {old: '1', new: '2'});
    await server.started(running.body.id);
    // Killed once the run is recorded as running (written as it starts).
    while (!project.exists('.cache', 'server-runs', running.body.id, 'run.json')) await new Promise((resolve) => setTimeout(resolve, 20));
    await server.stop('SIGKILL');
    const restarted = await Server.start(project);
    try {
      expect(await restarted.run(running.body.id)).toMatchObject({state: 'failed', exit_code: 3, error: {message: expect.stringContaining('The server stopped while this run was going on')}});
    } finally {
      expect(await restarted.stop()).toBe(0);
    }
  });

  it('an error escaping task code fails its run only: the server goes on serving', async () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, with: {version: "${new}"}, outputs: [a.txt]}\n',
      'tasks/a.ts': "export default {async run(ctx) { if (ctx.args.version === 'late') setTimeout(() => { throw new Error('thrown after the run'); }, 300); else if (ctx.args.version !== 'ok') void Promise.reject(new Error('unobserved rejection')); await new Promise((r) => setTimeout(r, 200)); (await import('node:fs')).writeFileSync(ctx.output('a.txt'), 'x'); }};\n",
    });
    const server = await Server.start(project);
    try {
      const bad = await server.settle((await server.post('/runs', {old: '1', new: '2'})).body.id);
      expect(bad).toMatchObject({state: 'failed', exit_code: 3, error: {message: expect.stringContaining('an error escaped its code: unobserved rejection')}});
      const good = await server.settle((await server.post('/runs', {old: '1', new: 'ok'})).body.id);
      expect(good).toMatchObject({state: 'succeeded', exit_code: 0});
      // A timer the task left behind throws after its run has ended: said, and the server goes on.
      const late = await server.settle((await server.post('/runs', {old: '1', new: 'late', force: true})).body.id);
      expect(late).toMatchObject({state: 'succeeded'});
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect((await server.fetch('/healthz')).status).toBe(200);
      expect(server.stderr).toContain('an error escaped task code: thrown after the run');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('interrupts the running validation after the grace period and exits 130; finished runs survive a restart', async () => {
    const project = slow();
    const server = await Server.start(project, [], {PIPELINE_API_GRACE_SECONDS: '0'});
    const running = await server.post('/runs', {old: '1', new: '2'});
    expect((await server.started(running.body.id)).state).toBe('running');
    expect(await server.stop('SIGTERM')).toBe(130);
    expect(runJson(project, running.body.id)).toMatchObject({state: 'cancelled', exit_code: 130, error: {class: 'InterruptedError'}});

    const restarted = await Server.start(project);
    try {
      expect((await restarted.run(running.body.id)).state).toBe('cancelled');
      expect(readdirSync(project.path('.cache', 'server-runs'))).toEqual([running.body.id]);
    } finally {
      expect(await restarted.stop()).toBe(0);
    }
  });
});
