/**
 * The library: everything the CLI does is available here.
 *
 *   import {ValidationRunner} from 'version-validation-pipeline';
 *   const summary = await new ValidationRunner().runWorkflow('0.3615', '0.3621');
 */
export {ValidationRunner, checkVersion} from './runner.js';
export type {CodeTaskDefinition, RunOptions, RunnerOptions} from './runner.js';
export {defineTask} from './task-api.js';
export type {
  Json,
  Progress,
  ProbeContext,
  TaskContext,
  TaskDefinition,
  TaskLogger,
  TaskResult,
  UpstreamInfo,
  Verdict,
} from './task-api.js';
export {ConfigurationError, ExecutionError, InterruptedError, TransientError, ValidationError} from './errors.js';
export {DiagnosticsError} from './config/diagnostics.js';
export type {Diagnostic, Location} from './config/diagnostics.js';
export type {Outcome, RunHooks, LogLevel} from './outcome.js';
export type {ErrorReport, RunSummary, TaskSummary} from './summary.js';
export {exitCode} from './summary.js';
export type {Settings, TaskDeclaration} from './config/schema.js';
