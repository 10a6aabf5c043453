/**
 * The progress display: one listr2 line per task (state, elapsed time, rows) and a footer
 * with memory in use and the error count. listr2 picks plain lines when stdout is not a
 * terminal and honours NO_COLOR. This is the only module that writes to the terminal
 * while a run is going on.
 */
import {Listr} from 'listr2';
import type {DefaultRenderer, ListrTaskWrapper, SimpleRenderer} from 'listr2';

type Wrapper = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;
import type {TaskName} from '../analyzer.js';
import type {Outcome, RunHooks} from '../outcome.js';
import type {Progress} from '../task-api.js';
import {redact} from '../util/redact.js';
import {InterruptedError} from '../errors.js';

interface Line {
  task?: Wrapper;
  settle?: (outcome: Outcome) => void;
  outcome?: Outcome;
  started?: number;
}

const MiB = 2 ** 20;

/** 1,234,567. By hand: toLocaleString's first call loads ICU's number formats, ~20 ms of a cold run. */
function formatCount(n: number): string {
  return String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function describeProgress(progress: Progress, started: number | undefined): string {
  const parts: string[] = [];
  if (progress.rows !== undefined) {
    parts.push(progress.total === undefined ? `${formatCount(progress.rows)} rows` : `${formatCount(progress.rows)} of ${formatCount(progress.total)} rows`);
    if (progress.total !== undefined && progress.rows > 0 && started !== undefined) {
      const elapsed = (performance.now() - started) / 1000;
      const remaining = (elapsed * (progress.total - progress.rows)) / progress.rows;
      parts.push(`ETA ${Math.max(0, Math.round(remaining))} s`);
    }
  }
  if (progress.message !== undefined) parts.push(progress.message);
  return parts.join(', ');
}

/** A reporter that drives listr2; `close()` waits until the display has finished. */
export class ProgressReporter implements RunHooks {
  readonly #lines = new Map<TaskName, Line>();
  #listr: Promise<unknown> | undefined;
  #errors = 0;
  #warnings: string[] = [];
  #finishedAll: (() => void) | undefined;
  #remaining = 0;

  planned(tasks: readonly TaskName[]): void {
    this.#remaining = tasks.length;
    const allDone = new Promise<void>((resolve) => (this.#finishedAll = resolve));
    if (tasks.length === 0) this.#finishedAll?.();
    const listr = new Listr(
      [
        ...tasks.map((name) => ({
          title: name,
          task: async (_ctx: unknown, task: Wrapper) => {
            const line = this.#line(name);
            line.task = task;
            const outcome = line.outcome ?? (await new Promise<Outcome>((resolve) => (line.settle = resolve)));
            this.#render(name, outcome, task);
          },
        })),
        {
          title: this.#footer(),
          task: async (_ctx: unknown, task: Wrapper) => {
            const timer = setInterval(() => {
              task.title = this.#footer();
              this.#tickRunning();
            }, 250);
            await allDone;
            clearInterval(timer);
            task.title = this.#footer();
          },
        },
      ],
      {
        concurrent: true,
        exitOnError: false,
        // The CLI owns Ctrl-C: it stops tasks cleanly and exits 130 (listr2 would exit 127).
        registerSignalListeners: false,
        // A terminal that reports no width (a bare pseudo-terminal) would get a character a line.
        renderer: process.stdout.isTTY && (process.stdout.columns ?? 0) > 0 ? 'default' : 'simple',
        // Durations are the tasks' own (listr2's timers would count the wait for upstream tasks).
        rendererOptions: {collapseErrors: false},
        fallbackRenderer: 'simple',
      },
    );
    this.#listr = listr.run().catch(() => undefined);
  }

  started(task: TaskName, reasons: readonly string[]): void {
    const line = this.#line(task);
    line.started = performance.now();
    if (line.task !== undefined) {
      line.task.title = `${task}: running 0.0 s`;
      line.task.output = `${this.#whose(task)}why: ${reasons.join('; ')}`;
    }
  }

  progress(task: TaskName, progress: Progress): void {
    const line = this.#line(task);
    if (line.task !== undefined) line.task.output = `${this.#whose(task)}${describeProgress(progress, line.started)}`;
  }

  // Plain lines (not a terminal: CI, a pipe) interleave the tasks' outputs: each says whose.
  #whose(task: TaskName): string {
    return process.stdout.isTTY && (process.stdout.columns ?? 0) > 0 ? '' : `${task}: `;
  }

  finished(outcome: Outcome): void {
    if (outcome.kind === 'failed' && !(outcome.error instanceof InterruptedError)) this.#errors++;
    const line = this.#line(outcome.task);
    line.outcome = outcome;
    line.settle?.(outcome);
    if (--this.#remaining <= 0) this.#finishedAll?.();
  }

  /**
   * Warnings wait for the display to finish, so as not to tear it; one before the display
   * starts (waiting for another run's lock) is shown at once.
   */
  warning(message: string): void {
    if (this.#listr === undefined) process.stderr.write(`Warning: ${redact(message)}\n`);
    else this.#warnings.push(message);
  }

  /** Waits for the display to finish; returns the warnings to print after it. */
  async close(): Promise<string[]> {
    this.#finishedAll?.();
    await this.#listr;
    return this.#warnings;
  }

  /** Elapsed time on the line of every running task. */
  #tickRunning(): void {
    for (const [name, line] of this.#lines) {
      if (line.started === undefined || line.outcome !== undefined || line.task === undefined) continue;
      line.task.title = `${name}: running ${((performance.now() - line.started) / 1000).toFixed(1)} s`;
    }
  }

  #line(task: TaskName): Line {
    let line = this.#lines.get(task);
    if (line === undefined) this.#lines.set(task, (line = {}));
    return line;
  }

  #footer(): string {
    const memory = Math.round(process.memoryUsage().rss / MiB);
    const errors = this.#errors === 1 ? '1 error' : `${this.#errors} errors`;
    return `memory ${memory} MiB · ${errors}`;
  }

  #render(name: TaskName, outcome: Outcome, task: Wrapper): void {
    switch (outcome.kind) {
      case 'ran': {
        const rows = outcome.entry.result.rows;
        task.title = `${name}: done in ${(outcome.durationMs / 1000).toFixed(1)} s${rows === undefined ? '' : `, ${formatCount(rows)} ${rows === 1 ? 'row' : 'rows'}`} (${outcome.reasons.join('; ')})`;
        return;
      }
      case 'cached':
        task.title = `${name}: cached`;
        return;
      case 'skipped':
        task.skip(`${name}: skipped (${outcome.reason})`);
        return;
      case 'would-run':
        task.title = `${name}: will run (${outcome.reasons.join('; ')})`;
        return;
      case 'failed':
        // Stopped by Ctrl-C: not a failure of the task.
        if (outcome.error instanceof InterruptedError) {
          task.skip(`${name}: interrupted`);
          return;
        }
        throw new Error(redact(`${name}: failed: ${outcome.error.message.split('\n')[0]}`));
    }
  }
}
