/** Problems found in configuration, with the place they were found. */
import {ConfigurationError} from '../errors.js';

/** Where a problem is: a file position, or a named origin such as `--set` or an env var. */
export interface Location {
  /** A file path relative to the working directory, or an origin like `environment`. */
  source: string;
  line?: number;
  column?: number;
}

/** One problem; all are collected and reported together. */
export interface Diagnostic {
  location: Location;
  message: string;
}

export function formatLocation(location: Location): string {
  if (location.line === undefined) return location.source;
  return `${location.source}:${location.line}:${location.column ?? 1}`;
}

export function formatDiagnostic(diagnostic: Diagnostic): string {
  return `${formatLocation(diagnostic.location)} ${diagnostic.message}`;
}

/** Every diagnostic, sorted by place, as one ConfigurationError (exit code 2). */
export class DiagnosticsError extends ConfigurationError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    const sorted = [...diagnostics].sort(
      (a, b) =>
        a.location.source.localeCompare(b.location.source) ||
        (a.location.line ?? 0) - (b.location.line ?? 0) ||
        (a.location.column ?? 0) - (b.location.column ?? 0),
    );
    const count = sorted.length === 1 ? '1 problem' : `${sorted.length} problems`;
    super(`${count} in the configuration:\n${sorted.map(formatDiagnostic).join('\n')}`);
    this.diagnostics = sorted;
  }
}

/** Describes a value for a message: strings quoted, others as JSON. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
