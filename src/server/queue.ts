/**
 * The server's runs: a FIFO queue executed one run at a time through the library API, each
 * run's state kept up to date from the runner's hooks. `runWorkflow` takes the cache lock
 * itself, so a CLI run and a server run never overlap either.
 *
 * Two queued runs of the same versions share one output folder, so when a run finishes its
 * files are copied to `<cache.dir>/server-runs/<id>/` (with `run.json`, its final state):
 * every run's files stay addressable, and finished runs survive a restart of the server.
 */
import {randomUUID} from 'node:crypto';
import {copyFile, mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {ConfigurationError, InterruptedError, ValidationError} from '../errors.js';
import type {Outcome, RunHooks} from '../outcome.js';
import type {ValidationRunner} from '../runner.js';
import {exitCode} from '../summary.js';
import type {RunSummary} from '../summary.js';
import type {Progress, Verdict} from '../task-api.js';
import {redact} from '../util/redact.js';
import {unreachable} from '../util/unreachable.js';
import type {RunRequest} from './requests.js';

/** Where a run is in its life. */
export type RunState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** One task of a run as clients see it: live from the hooks, then from the summary. */
export interface TaskView {
  name: string;
  state: 'pending' | 'running' | Outcome['kind'];
  reason: string | null;
  duration_ms?: number;
  rows?: number;
  progress?: Progress;
}

/** Why a run failed: the error's class and message, never a stack trace. */
export interface RunError {
  class: string;
  message: string;
  task: string | null;
  hint: string | null;
}

/** A run as `GET /runs/:id` returns it (and as `run.json` keeps it). */
export interface RunView {
  id: string;
  state: RunState;
  old: string;
  new: string;
  set: Record<string, unknown>;
  force: boolean;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** While queued: how many runs are ahead of this one (the running one included). */
  queue_position?: number;
  tasks: TaskView[];
  warnings: string[];
  /** The verdict (pass, warn, fail) and the CLI's exit code for it, once finished. */
  status: Verdict | null;
  exit_code: number | null;
  verdict_reasons: string[];
  /** What the tasks found worth a line whatever the verdict (RunSummary.highlights). */
  highlights: string[];
  error: RunError | null;
  /** The files kept for this run (see FILES), once finished. */
  files: string[];
}

/** The files of a finished run that the API serves, by the name clients ask for. */
export const FILES = ['summary.json', 'validation.json', 'analysis.json', 'report.html'] as const;
export type RunFile = (typeof FILES)[number];

/** Options of a queue. */
export interface QueueOptions {
  /** Where finished runs are kept: `<cache.dir>/server-runs`. */
  dir: string;
  /** How many finished runs are kept (and listed); older ones are deleted. */
  keep?: number;
  /** How many runs may wait; more are refused (`submit` returns undefined). */
  maxQueued?: number;
  /** Told of each run's start and end (the server prints it). */
  notify?(message: string): void;
}

interface Run {
  view: RunView;
  sets: string[];
  controller: AbortController;
  /** Settles when the run has finished, whatever the outcome. */
  done: Promise<void>;
  settle(): void;
}

const MAX_WARNINGS = 20;

export class RunQueue {
  readonly #runner: ValidationRunner;
  readonly #dir: string;
  readonly #keep: number;
  readonly #maxQueued: number;
  readonly #notify: (message: string) => void;
  /** Every known run, oldest first. */
  readonly #runs = new Map<string, Run>();
  readonly #waiting: Run[] = [];
  #active: Run | undefined;
  #closed = false;

  constructor(runner: ValidationRunner, options: QueueOptions) {
    this.#runner = runner;
    this.#dir = options.dir;
    this.#keep = options.keep ?? 50;
    this.#maxQueued = options.maxQueued ?? 100;
    this.#notify = options.notify ?? (() => undefined);
  }

  /** Loads the finished runs kept by earlier servers; deletes the ones beyond `keep`. */
  async restore(): Promise<void> {
    const views: RunView[] = [];
    for (const id of await readdir(this.#dir).catch(() => [] as string[])) {
      try {
        const view = JSON.parse(await readFile(join(this.#dir, id, 'run.json'), 'utf8')) as RunView;
        if (view.id === id && view.state === 'running') {
          // The server stopped (was killed) during this run: it failed, and says why.
          view.state = 'failed';
          view.error = {class: 'ExecutionError', message: 'The server stopped while this run was going on; nothing of it was kept.', task: null, hint: 'Post the run again.'};
          view.exit_code = 3;
          view.finished_at = new Date().toISOString();
          await writeView(join(this.#dir, id), view);
        }
        if (view.id === id && ['succeeded', 'failed', 'cancelled'].includes(view.state)) {
          views.push(view);
          continue;
        }
      } catch {
        // Not a finished run (a copy interrupted by a crash): nothing to keep.
      }
      await rm(join(this.#dir, id), {recursive: true, force: true});
    }
    views.sort((a, b) => a.created_at.localeCompare(b.created_at));
    for (const view of views) this.#runs.set(view.id, finishedRun(view));
    await this.#evict();
  }

  /** Queues a run; undefined when the queue is full or the server is shutting down. */
  submit(request: RunRequest): RunView | undefined {
    if (this.#closed || this.#waiting.length >= this.#maxQueued) return undefined;
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = resolve));
    const run: Run = {
      view: {
        id: randomUUID(),
        state: 'queued',
        old: request.old,
        new: request.new,
        set: request.overrides,
        force: request.force,
        created_at: new Date().toISOString(),
        started_at: null,
        finished_at: null,
        tasks: [],
        warnings: [],
        status: null,
        exit_code: null,
        verdict_reasons: [],
        highlights: [],
        error: null,
        files: [],
      },
      sets: request.set,
      controller: new AbortController(),
      done,
      settle,
    };
    this.#runs.set(run.view.id, run);
    this.#waiting.push(run);
    this.#notify(`run ${run.view.id} queued: ${request.old} vs ${request.new}`);
    queueMicrotask(() => this.#pump());
    return this.view(run.view.id);
  }

  /** A run's current state. */
  view(id: string): RunView | undefined {
    const run = this.#runs.get(id);
    if (run === undefined) return undefined;
    const position = this.#waiting.indexOf(run);
    return {
      ...run.view,
      ...(position >= 0 ? {queue_position: position + (this.#active === undefined ? 0 : 1)} : {}),
      tasks: run.view.tasks.map((task) => ({...task})),
    };
  }

  /** Recent runs, newest first. */
  list(limit = this.#keep): RunView[] {
    return [...this.#runs.keys()].reverse().slice(0, limit).map((id) => this.view(id)!);
  }

  /**
   * Cancels a queued run at once, or interrupts a running one; undefined for an unknown id.
   * `refused` says why nothing can be cancelled: the run has finished, or its tasks have and
   * it is publishing its outputs (an interruption would no longer stop it).
   */
  cancel(id: string): {view: RunView; refused?: string} | undefined {
    const run = this.#runs.get(id);
    if (run === undefined) return undefined;
    if (run.view.state === 'queued') {
      const at = this.#waiting.indexOf(run);
      if (at >= 0) this.#waiting.splice(at, 1);
      void this.#finish(run, 'cancelled', {class: InterruptedError.name, message: 'Cancelled before it started.', task: null, hint: null}, 130);
    } else if (run.view.state === 'running') {
      // Asked again while it is being cancelled (its tasks given up, a task letting go of a
      // BigQuery job): it is, still.
      if (run.controller.signal.aborted) return {view: this.view(id)!};
      const done = run.view.tasks.length > 0 && run.view.tasks.every((task) => task.state !== 'pending' && task.state !== 'running');
      if (done) return {view: this.view(id)!, refused: `Run ${id} is finishing: its tasks are done and its outputs are being published; it cannot be cancelled.`};
      run.controller.abort(new InterruptedError('Cancelled over HTTP.'));
    } else {
      return {view: this.view(id)!, refused: `Run ${id} has already finished (${run.view.state}); there is nothing to cancel.`};
    }
    return {view: this.view(id)!};
  }

  /** The path of a finished run's kept file, when it has one. */
  file(id: string, name: RunFile): string | undefined {
    const run = this.#runs.get(id);
    return run?.view.files.includes(name) ? join(this.#dir, id, name) : undefined;
  }

  /**
   * Stops taking runs: queued runs are cancelled, the running one may finish within
   * `graceMs`, then is interrupted. True when a run had to be interrupted.
   */
  async shutdown(graceMs: number): Promise<boolean> {
    this.#closed = true;
    for (const run of this.#waiting.splice(0)) {
      await this.#finish(run, 'cancelled', {class: InterruptedError.name, message: 'The server shut down before the run started.', task: null, hint: null}, 130);
    }
    const active = this.#active;
    if (active === undefined) return false;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      active.done.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (finished) return false;
    this.#notify(`run ${active.view.id}: still running after ${graceMs / 1000} s; interrupting it`);
    active.controller.abort(new InterruptedError('Interrupted: the server shut down.'));
    await active.done;
    return true;
  }

  #pump(): void {
    if (this.#active !== undefined || this.#closed) return;
    const run = this.#waiting.shift();
    if (run === undefined) return;
    this.#active = run;
    void this.#execute(run).finally(() => {
      this.#active = undefined;
      this.#pump();
    });
  }

  async #execute(run: Run): Promise<void> {
    const view = run.view;
    // Running from the moment it left the queue (a cancellation now interrupts it), and
    // recorded so, so that a server killed during the run still reports it (as failed).
    view.state = 'running';
    view.started_at = new Date().toISOString();
    this.#notify(`run ${view.id} started: ${view.old} vs ${view.new}`);
    await writeView(join(this.#dir, view.id), view).catch(() => undefined);
    let summary: RunSummary;
    try {
      summary = await this.#runner.runWorkflow(view.old, view.new, {
        set: run.sets,
        force: view.force,
        wait: true,
        signal: run.controller.signal,
        hooks: liveHooks(view),
      });
    } catch (error) {
      if (error instanceof InterruptedError) {
        await this.#finish(run, 'cancelled', errorOf(error), 130);
      } else if (error instanceof ValidationError) {
        await this.#finish(run, 'failed', errorOf(error), error instanceof ConfigurationError ? 2 : 3);
      } else {
        // A bug: its message only (a stack trace says nothing useful to an API client).
        const message = redact(error instanceof Error ? error.message : String(error));
        this.#notify(`run ${view.id}: unexpected error: ${message}`);
        await this.#finish(run, 'failed', {class: error instanceof Error ? error.name : 'Error', message: `Unexpected error: ${message}`, task: null, hint: null}, 3);
      }
      return;
    }
    view.tasks = summary.tasks.map((task) => ({
      name: task.name,
      state: task.status,
      reason: task.reason,
      duration_ms: task.duration_ms,
      ...(task.rows === undefined ? {} : {rows: task.rows}),
    }));
    view.status = summary.status;
    view.verdict_reasons = summary.verdict_reasons;
    view.highlights = summary.highlights;
    const error = summary.error === undefined ? null : {class: summary.error.class, message: summary.error.message, task: summary.error.task, hint: summary.error.hint};
    await this.#finish(run, error === null ? 'succeeded' : 'failed', error, exitCode(summary), summary);
  }

  async #finish(run: Run, state: RunState, error: RunError | null, code?: number, summary?: RunSummary): Promise<void> {
    const view = run.view;
    const folder = join(this.#dir, view.id);
    // The files are kept before the state says finished: a client that sees "succeeded"
    // may fetch them at once.
    if (summary !== undefined) {
      try {
        await mkdir(folder, {recursive: true});
        view.files = await keepFiles(summary, folder);
      } catch (problem) {
        view.warnings.push(`Could not keep this run's files: ${redact((problem as Error).message)}`);
      }
    }
    view.state = state;
    view.error = error;
    view.exit_code = code ?? null;
    view.finished_at = new Date().toISOString();
    for (const task of view.tasks) delete task.progress;
    try {
      await writeView(folder, view);
    } catch (problem) {
      view.warnings.push(`Could not keep this run's files: ${redact((problem as Error).message)}`);
    }
    this.#notify(`run ${view.id} ${state}${view.status === null ? '' : ` (${view.status}, exit code ${view.exit_code})`}${error === null ? '' : `: ${error.class}: ${error.message}`}`);
    run.settle();
    await this.#evict();
  }

  /** Forgets the oldest finished runs beyond `keep`, and deletes their files. */
  async #evict(): Promise<void> {
    const finished = [...this.#runs.values()].filter((run) => ['succeeded', 'failed', 'cancelled'].includes(run.view.state));
    for (const run of finished.slice(0, Math.max(0, finished.length - this.#keep))) {
      this.#runs.delete(run.view.id);
      await rm(join(this.#dir, run.view.id), {recursive: true, force: true});
    }
  }
}

function finishedRun(view: RunView): Run {
  return {view, sets: [], controller: new AbortController(), done: Promise.resolve(), settle: () => undefined};
}

function errorOf(error: ValidationError): RunError {
  const task = (error as {task?: unknown}).task;
  return {class: error.name, message: redact(error.message), task: typeof task === 'string' ? task : null, hint: error.hint === undefined ? null : redact(error.hint)};
}

/** Hooks that keep a running run's view current. */
function liveHooks(view: RunView): RunHooks {
  const task = (name: string): TaskView => {
    let found = view.tasks.find((candidate) => candidate.name === name);
    if (found === undefined) {
      found = {name, state: 'pending', reason: null};
      view.tasks.push(found);
    }
    return found;
  };
  return {
    planned(names) {
      view.tasks = names.map((name) => ({name, state: 'pending', reason: null}));
    },
    started(name, reasons) {
      Object.assign(task(name), {state: 'running', reason: reasons.join('; ')});
    },
    progress(name, progress) {
      const {rows, total, message} = progress;
      task(name).progress = {
        ...(rows === undefined ? {} : {rows}),
        ...(total === undefined ? {} : {total}),
        ...(message === undefined ? {} : {message: redact(message)}),
      };
    },
    finished(outcome) {
      const view = task(outcome.task);
      view.state = outcome.kind;
      delete view.progress;
      switch (outcome.kind) {
        case 'ran':
          view.reason = outcome.reasons.join('; ');
          view.duration_ms = outcome.durationMs;
          break;
        case 'cached':
          view.reason = null;
          break;
        case 'skipped':
          view.reason = outcome.reason;
          break;
        case 'failed':
          view.reason = redact(outcome.error.message);
          view.duration_ms = outcome.durationMs;
          break;
        case 'would-run':
          view.reason = outcome.reasons.join('; ');
          break;
        default:
          unreachable(outcome);
      }
    },
    warning(message) {
      if (view.warnings.length < MAX_WARNINGS) view.warnings.push(redact(message));
    },
  };
}

/**
 * Copies the run's files from its output folder. The cache lock is released when
 * `runWorkflow` returns, so a CLI run may replace the folder meanwhile: the folder's
 * summary.json, read before and after copying, must still be this run's.
 */
async function keepFiles(summary: RunSummary, folder: string): Promise<RunFile[]> {
  const ours = async () => {
    try {
      return (JSON.parse(await readFile(join(summary.output_dir, 'summary.json'), 'utf8')) as RunSummary).started_at === summary.started_at;
    } catch {
      return false;
    }
  };
  await writeFile(join(folder, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  const kept: RunFile[] = ['summary.json'];
  if (!(await ours())) return kept;
  for (const name of FILES) {
    // A failed run's folder holds the previous run's files: they are not this run's.
    if (name === 'summary.json' || !summary.outputs.includes(name) || summary.kept_from_previous_run?.includes(name)) continue;
    try {
      await copyFile(join(summary.output_dir, name), join(folder, name));
      kept.push(name);
    } catch {
      // Listed but gone (the folder was replaced): the check below tells.
    }
  }
  if (await ours()) return kept;
  for (const name of kept.slice(1)) await rm(join(folder, name), {force: true});
  return ['summary.json'];
}

/** Writes a run's `run.json` through a temporary name. */
async function writeView(folder: string, view: RunView): Promise<void> {
  await mkdir(folder, {recursive: true});
  const temporary = join(folder, `run.json.tmp-${process.pid}`);
  await writeFile(temporary, JSON.stringify(view, null, 2) + '\n');
  await rename(temporary, join(folder, 'run.json'));
}
