/** What happened to each task in a run. */
import type {TaskName} from './analyzer.js';
import type {CacheEntry} from './cache/store.js';
import type {ValidationError} from './errors.js';
import type {Progress} from './task-api.js';

/** A task's outcome; `would-run` appears only in dry runs. */
export type Outcome =
  | {kind: 'ran'; task: TaskName; entry: CacheEntry; reasons: string[]; durationMs: number; attempts: number}
  | {kind: 'cached'; task: TaskName; entry: CacheEntry}
  | {kind: 'skipped'; task: TaskName; reason: string}
  | {kind: 'failed'; task: TaskName; error: ValidationError; reasons: string[]; durationMs: number}
  | {kind: 'would-run'; task: TaskName; reasons: string[]};

/** Hooks a reporter implements; every one is optional. */
export interface RunHooks {
  /** The tasks that will be considered, in order. */
  planned?(tasks: readonly TaskName[]): void;
  started?(task: TaskName, reasons: readonly string[]): void;
  progress?(task: TaskName, progress: Progress): void;
  finished?(outcome: Outcome): void;
  warning?(message: string): void;
  log?(level: LogLevel, message: string, task?: TaskName): void;
}

export type LogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

/** Calls the same hook on several reporters. */
export function combineHooks(...all: RunHooks[]): Required<RunHooks> {
  return {
    planned: (tasks) => all.forEach((hooks) => hooks.planned?.(tasks)),
    started: (task, reasons) => all.forEach((hooks) => hooks.started?.(task, reasons)),
    progress: (task, progress) => all.forEach((hooks) => hooks.progress?.(task, progress)),
    finished: (outcome) => all.forEach((hooks) => hooks.finished?.(outcome)),
    warning: (message) => all.forEach((hooks) => hooks.warning?.(message)),
    log: (level, message, task) => all.forEach((hooks) => hooks.log?.(level, message, task)),
  };
}
