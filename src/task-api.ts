/**
 * The contract between the runner and a task. A task is a module whose default export is
 * made with `defineTask`; it reads its inputs from files, writes its declared outputs into
 * `ctx.outputDir`, and never touches the cache or the terminal.
 */
import type {DuckDBConnection} from '@duckdb/node-api';

/** A JSON value, as stored in fingerprints and cache entries. */
export type Json = null | boolean | number | string | Json[] | {[key: string]: Json};

/** The verdict a task may give; the run's status is the worst of them. */
export type Verdict = 'pass' | 'warn' | 'fail';

/** Log lines go to the run's log file, never to the terminal. */
export interface TaskLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What a task reports while it works; shown on its progress line. */
export interface Progress {
  /** Rows processed so far. */
  rows?: number;
  /** Rows expected in all, when known (enables a percentage and an ETA). */
  total?: number;
  /** A short note, such as the current step. */
  message?: string;
}

/** Everything a task receives. Paths are absolute. */
export interface TaskContext {
  /** The task's name in pipeline.yaml, e.g. `extract-old`. */
  readonly name: string;
  /** The task's `with` arguments after `${old}`, `${new}` and `${settings.*}` interpolation. */
  readonly args: Readonly<Record<string, Json>>;
  /**
   * The settings the task declared in `inputs.settings`, and only those, as a nested object
   * (declaring `validation.tolerance` gives `{validation: {tolerance: {...}}}`).
   */
  readonly settings: Readonly<Record<string, Json>>;
  /** Upstream outputs by `task` then file name: `inputs['extract-old']['rows.parquet']`. */
  readonly inputs: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * How each upstream task (transitively) fared in this run: for a report that says how
   * its figures were computed. Informational: not part of the fingerprint.
   */
  readonly upstream: Readonly<Record<string, UpstreamInfo>>;
  /** The declared input files (globs expanded), relative path -> absolute path. */
  readonly files: Readonly<Record<string, string>>;
  /** The folder the task writes its declared outputs into (empty when the task starts). */
  readonly outputDir: string;
  /** The absolute path of one declared output; throws for an undeclared name. */
  output(name: string): string;
  /** The absolute path of an upstream output; throws a clear error when it is unavailable. */
  input(task: string, file: string): string;
  /** The project directory (where pipeline.yaml lives). */
  readonly projectDir: string;
  /** A private scratch folder, removed after the task. */
  readonly tmpDir: string;
  readonly log: TaskLogger;
  /** A warning for the user (a setting that has no effect): shown on the terminal after the run, and logged. */
  warn(message: string): void;
  progress(update: Progress): void;
  /** Aborted on Ctrl-C, SIGTERM or timeout; long work must stop promptly when it fires. */
  readonly signal: AbortSignal;
  /**
   * A DuckDB connection of the run's shared embedded engine (memory limit from
   * `performance.max_memory`, spilling to a temp folder). Opened on first use; interrupted
   * when `signal` aborts.
   */
  duckdb(): Promise<DuckDBConnection>;
  /**
   * What the task's `probe` returned for this run's fingerprint (null without a probe). A task
   * reading a source can probe it again once done, and refuse a result read while it changed:
   * it would be kept under the content the fingerprint saw.
   */
  readonly probe: Json;
  /** Content digest of a file, as `ProbeContext.digestFile`. */
  digestFile(path: string): Promise<string>;
}

/** One upstream task's outcome as a downstream task sees it. */
export interface UpstreamInfo {
  status: 'ran' | 'cached' | 'skipped';
  /** How long it took when it ran (for a cached task: when its result was computed). */
  duration_ms: number;
  /** Why it ran or was skipped; null when served from cache. */
  reason: string | null;
  /** When the result was computed (ISO time). */
  computed_at: string | null;
  rows: number | null;
  verdict: Verdict | null;
  /** Why, when the verdict is not `pass` (its `verdictReasons`). */
  verdict_reasons: string[];
}

/** What a task returns; everything here is stored with its cache entry. */
export interface TaskResult {
  /** Rows the task produced or processed, for the progress line, the log and the summary. */
  rows?: number;
  /** The task's verdict; `fail` makes the run exit 1. */
  verdict?: Verdict;
  /** Why the verdict, in a line each (the rules that decided it). */
  verdictReasons?: string[];
  /**
   * What a reader should know whatever the verdict, in a line each (which parameters drifted):
   * shown under the run's verdict on the terminal and kept in summary.json. A few at most.
   */
  highlights?: string[];
  /** Any small JSON the task wants in summary.json (for example bytes scanned). */
  details?: Record<string, Json>;
}

/** What a probe sees: enough to find the source, nothing to run. */
export interface ProbeContext {
  readonly name: string;
  readonly args: Readonly<Record<string, Json>>;
  readonly settings: Readonly<Record<string, Json>>;
  readonly projectDir: string;
  readonly signal: AbortSignal;
  /** Content digest of a file, memoised on (size, mtime, inode, ctime) so unchanged files are not re-read. */
  digestFile(path: string): Promise<string>;
}

/** A task definition: `run` does the work; `probe` says what the source currently holds. */
export interface TaskDefinition {
  /**
   * Optional freshness probe: JSON identifying the current content of an external source
   * (a file digest, a table's last-modified time). It enters the fingerprint, so a changed
   * source reruns the task and an unchanged one does not.
   */
  probe?(ctx: ProbeContext): Promise<Json>;
  /** The work; a plain function (not `async`) is taken alike. */
  run(ctx: TaskContext): Promise<TaskResult | void> | TaskResult | void;
}

/** Declares a task; the identity function, there for the types. */
export function defineTask(definition: TaskDefinition): TaskDefinition {
  return definition;
}
