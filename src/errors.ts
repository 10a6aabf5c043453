/** The exception hierarchy of the original specification; each maps to an exit code. */

/** Base class of every error the product reports to users (never shown with a stack trace). */
export class ValidationError extends Error {
  /** What the user can do about it, shown after the message. */
  readonly hint: string | undefined;
  constructor(message: string, options: {hint?: string; cause?: unknown} = {}) {
    super(message, {cause: options.cause});
    this.name = new.target.name;
    this.hint = options.hint;
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
