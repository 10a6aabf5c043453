/**
 * Runs the validate task over two versions written as Parquet from inline SQL, for the
 * validate suites.
 */
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {DuckDBInstance} from '@duckdb/node-api';
import validate from '../../tasks/validate.js';
import type {Json, Progress, TaskResult} from '../../src/task-api.js';
import {runTaskDirectly} from './run-task.js';
import {temporaryFolder} from './temp.js';

export const VALIDATE_OUTPUTS = ['validation.json', 'mismatches.csv', 'added_keys.csv', 'removed_keys.csv', 'duplicate_keys.csv'];

/** What one validate run produced. */
export interface ValidateRun {
  result: TaskResult;
  /** validation.json, parsed; `any` because tests index into it freely. */
  json: any;
  files: Record<string, string>;
  progress: Progress[];
}

/** Writes each query's rows to a Parquet file in a new temp folder; returns the paths. */
export async function writeVersions(oldSql: string, newSql: string): Promise<{old: string; new: string}> {
  const dir = temporaryFolder('validate-fixture-');
  const paths = {old: join(dir, 'old.parquet'), new: join(dir, 'new.parquet')};
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    await connection.run(`COPY (${oldSql}) TO '${paths.old}' (FORMAT parquet)`);
    await connection.run(`COPY (${newSql}) TO '${paths.new}' (FORMAT parquet)`);
    connection.closeSync();
  } finally {
    instance.closeSync();
  }
  return paths;
}

/** Settings as validate reads them, with defaults for what a test does not care about. */
export function validateSettings(options: {
  keys?: string[];
  columns?: string[] | null;
  tolerance?: Json;
  rules?: Json[];
}): Record<string, Json> {
  return {
    source: {keys: options.keys ?? ['id'], columns: options.columns ?? null},
    validation: {
      tolerance: options.tolerance ?? {abs: 0, rel: 0, columns: {}},
      rules: options.rules ?? [],
    },
  };
}

/** Runs validate over two Parquet files and reads back everything it wrote. */
export async function runValidate(paths: {old: string; new: string}, settings: Record<string, Json>, signal?: AbortSignal): Promise<ValidateRun> {
  const run = await runTaskDirectly(validate, {
    name: 'validate',
    settings,
    ...(signal === undefined ? {} : {signal}),
    inputs: {'extract-old': {'rows.parquet': paths.old}, 'extract-new': {'rows.parquet': paths.new}},
    outputs: VALIDATE_OUTPUTS,
  });
  const files: Record<string, string> = {};
  for (const name of VALIDATE_OUTPUTS) files[name] = readFileSync(join(run.outputDir, name), 'utf8');
  return {result: run.result ?? {}, json: JSON.parse(files['validation.json'] ?? 'null'), files, progress: run.progress};
}

/** Writes two versions and validates them. */
export async function compareVersions(oldSql: string, newSql: string, options: Parameters<typeof validateSettings>[0] = {}): Promise<ValidateRun> {
  return runValidate(await writeVersions(oldSql, newSql), validateSettings(options));
}
