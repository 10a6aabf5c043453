/** The run's summary: what summary.json holds and what the CLI's exit code is made from. */
import type {Pipeline} from './analyzer.js';
import {ConfigurationError} from './errors.js';
import type {Outcome} from './outcome.js';
import type {Json, Verdict} from './task-api.js';
import {unreachable} from './util/unreachable.js';
import {redact} from './util/redact.js';

/** One task's line in summary.json. */
export interface TaskSummary {
  name: string;
  status: 'ran' | 'cached' | 'skipped' | 'failed' | 'would-run';
  duration_ms: number;
  /** Why it ran, was skipped or failed; null when served from cache. */
  reason: string | null;
  rows?: number;
  verdict?: Verdict;
  /** For cached tasks: when the result was computed. */
  computed_at?: string;
  details?: Record<string, Json>;
}

/** The error of a failed run, as written to errors.json. */
export interface ErrorReport {
  class: string;
  message: string;
  task: string | null;
  hint: string | null;
  /** Every failed task, when several failed. */
  failures: {task: string; class: string; message: string}[];
}

/** What a run did and concluded. */
export interface RunSummary {
  old: string;
  new: string;
  /** pass: every rule passed; warn: a warn rule failed; fail: an error rule failed or the run failed. */
  status: Verdict;
  /** The rules that decided a warn or fail. */
  verdict_reasons: string[];
  /** What the tasks found worth a line whatever the verdict (TaskResult.highlights), `task: line`. */
  highlights: string[];
  dry_run: boolean;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  tasks: TaskSummary[];
  cache: {hits: number; ran: number; saved_ms: number; details: Record<string, Json>};
  output_dir: string;
  /** The files in the output folder after the run. */
  outputs: string[];
  /** After a failed run, the files of the previous run it left in place (it publishes none of its own then). */
  kept_from_previous_run?: string[];
  log_file: string | null;
  error?: ErrorReport;
}

const ORDER: Verdict[] = ['pass', 'warn', 'fail'];

export function summarize(input: {
  versions: {old: string; new: string};
  outcomes: Outcome[];
  startedAt: Date;
  outputDir: string;
  logFile: string | undefined;
  dryRun: boolean;
  pipeline: Pipeline;
}): RunSummary {
  const finished = new Date();
  let status: Verdict = 'pass';
  const reasons: string[] = [];
  const highlights: string[] = [];
  const tasks: TaskSummary[] = [];
  const outputs: string[] = [];
  let savedMs = 0;
  let bytesSaved = 0;
  const failures: ErrorReport['failures'] = [];
  let firstError: ErrorReport | undefined;
  for (const outcome of input.outcomes) {
    switch (outcome.kind) {
      case 'ran':
      case 'cached': {
        const result = outcome.entry.result;
        const cached = outcome.kind === 'cached';
        if (cached) {
          savedMs += outcome.entry.duration_ms;
          const scanned = result.details?.['bytes_processed'];
          if (typeof scanned === 'number') bytesSaved += scanned;
        }
        tasks.push({
          name: outcome.task,
          status: outcome.kind,
          duration_ms: cached ? 0 : outcome.durationMs,
          reason: cached ? null : outcome.reasons.join('; '),
          ...(result.rows === undefined ? {} : {rows: result.rows}),
          ...(result.verdict === undefined ? {} : {verdict: result.verdict}),
          ...(cached ? {computed_at: outcome.entry.created_at} : {}),
          ...(result.details === undefined ? {} : {details: result.details}),
        });
        if (result.verdict !== undefined && ORDER.indexOf(result.verdict) > ORDER.indexOf(status)) status = result.verdict;
        if (result.verdict !== undefined && result.verdict !== 'pass') reasons.push(...(result.verdictReasons ?? []).map((reason) => `${outcome.task}: ${reason}`));
        highlights.push(...(result.highlights ?? []).map((line) => `${outcome.task}: ${line}`));
        const intermediate = input.pipeline.tasks.get(outcome.task)?.declaration.intermediate ?? false;
        if (!intermediate || input.pipeline.settings.output.save_intermediates) {
          outputs.push(...Object.keys(outcome.entry.outputs).map((file) => (intermediate ? `${outcome.task}.${file}` : file)));
        }
        break;
      }
      case 'skipped':
        tasks.push({name: outcome.task, status: 'skipped', duration_ms: 0, reason: outcome.reason});
        break;
      case 'failed': {
        status = 'fail';
        tasks.push({name: outcome.task, status: 'failed', duration_ms: outcome.durationMs, reason: redact(outcome.error.message)});
        failures.push({task: outcome.task, class: outcome.error.name, message: redact(outcome.error.message)});
        firstError ??= {
          class: outcome.error.name,
          message: redact(outcome.error.message),
          task: outcome.task,
          hint: outcome.error.hint ?? null,
          failures,
        };
        break;
      }
      case 'would-run':
        tasks.push({name: outcome.task, status: 'would-run', duration_ms: 0, reason: outcome.reasons.join('; ')});
        break;
      default:
        unreachable(outcome);
    }
  }
  return {
    old: input.versions.old,
    new: input.versions.new,
    status,
    verdict_reasons: reasons,
    highlights,
    dry_run: input.dryRun,
    started_at: input.startedAt.toISOString(),
    finished_at: finished.toISOString(),
    duration_ms: finished.getTime() - input.startedAt.getTime(),
    tasks,
    cache: {
      hits: tasks.filter((task) => task.status === 'cached').length,
      ran: tasks.filter((task) => task.status === 'ran').length,
      saved_ms: savedMs,
      details: bytesSaved > 0 ? {bigquery_bytes_saved: bytesSaved} : {},
    },
    output_dir: input.outputDir,
    outputs: [...outputs, 'summary.json', ...(firstError === undefined ? [] : ['errors.json'])],
    log_file: input.logFile ?? null,
    ...(firstError === undefined ? {} : {error: firstError}),
  };
}

/** The process exit code for a summary (see DESIGN.md). */
export function exitCode(summary: RunSummary): number {
  if (summary.error !== undefined) {
    return summary.error.failures.every((failure) => failure.class === ConfigurationError.name || failure.class === 'DiagnosticsError') ? 2 : 3;
  }
  return summary.status === 'fail' ? 1 : 0;
}
