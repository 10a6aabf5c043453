/** The exception hierarchy of the original specification; each maps to an exit code. */

/**
 * `instanceof` works by class name across copies of this module (a task compiled on the fly
 * imports its own copy), so an error's class survives the trip from a task to the runner.
 */
const LINEAGE = Symbol.for('version-validation-pipeline/error-lineage');

/** Base class of every error the product reports to users (never shown with a stack trace). */
export class ValidationError extends Error {
  /** What the user can do about it, shown after the message. */
  readonly hint: string | undefined;
  declare readonly [LINEAGE]: string[];

  constructor(message: string, options: {hint?: string; cause?: unknown} = {}) {
    super(message, {cause: options.cause});
    this.name = new.target.name;
    this.hint = options.hint;
    const lineage: string[] = [];
    for (let proto: Function = new.target; proto !== (Error as Function) && proto.name !== ''; proto = Object.getPrototypeOf(proto) as Function) {
      lineage.push(proto.name);
    }
    Object.defineProperty(this, LINEAGE, {value: lineage});
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    const lineage = (value as {[LINEAGE]?: unknown} | null)?.[LINEAGE];
    return Array.isArray(lineage) && lineage.includes(this.name);
  }
}

/** Bad settings, pipeline.yaml, flags or versions: exit code 2. */
export class ConfigurationError extends ValidationError {}

/** A task or a source failed while running: exit code 3. */
export class ExecutionError extends ValidationError {
  /** The task that failed, when one did. */
  task: string | undefined;
  constructor(message: string, options: {hint?: string; cause?: unknown; task?: string} = {}) {
    super(message, options);
    this.task = options.task;
  }
}

/** A failure worth retrying (HTTP 429/5xx, a dropped connection); the executor retries it. */
export class TransientError extends ExecutionError {}

/** The run was interrupted (Ctrl-C, SIGTERM): exit code 130. */
export class InterruptedError extends ValidationError {}

/** What to do when the disk filled up under a run. */
export const DISK_FULL_HINT = 'The disk is full: free space (`npm run pipeline -- cache gc` shrinks the cache) and rerun; the cache is intact.';

/** Whether an error is the disk filling up (Node's ENOSPC, or DuckDB's words for it). */
export function isDiskFull(error: unknown): boolean {
  return (error as {code?: unknown} | null)?.code === 'ENOSPC' || /No space left on device/i.test(error instanceof Error ? error.message : String(error));
}
