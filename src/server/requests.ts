/**
 * What a client may ask for: the body of `POST /runs`, checked with zod, and the settings
 * overrides it may carry, turned into the runner's `--set PATH=VALUE` strings. Problems are
 * values (`BadRequest`), rendered by the app as `400 {error: {field, message}}`.
 */
import {z} from 'zod';
import {ConfigurationError} from '../errors.js';
import {checkVersion} from '../runner.js';

/** A client mistake: which field, and what was expected there. */
export interface BadRequest {
  field: string;
  message: string;
}

/** A checked request to start a run. */
export interface RunRequest {
  old: string;
  new: string;
  /** Overrides as `PATH=VALUE` strings (VALUE is JSON, which YAML reads as the same value). */
  set: string[];
  /** The overrides as the client sent them, flattened to dotted paths (shown in the run's state). */
  overrides: Record<string, unknown>;
  force: boolean;
}

/**
 * Settings that name files, hosts or warehouse tables beyond the project: overriding them
 * over HTTP would let a client read any DuckDB or Parquet file the server can read, write
 * outputs, the cache or the log anywhere, send the server's cloud credentials to a host of
 * its choosing, or read (and, with mismatch_table, write) other BigQuery projects, datasets
 * and tables with those credentials.
 */
export const FORBIDDEN_OVERRIDES = [
  'duckdb.database',
  'duckdb.path',
  'output.base_dir',
  'cache.dir',
  'logging.file',
  'bigquery.api_endpoint',
  'bigquery.project_id',
  'bigquery.dataset_id',
  'bigquery.table_id',
  'source.table',
  'validation.mismatch_table',
] as const;

const FIELDS = ['old', 'new', 'set', 'force'];
const SEGMENT = /^[A-Za-z_][\w-]*$/;

const versionField = (name: string) =>
  z.string({error: (issue) => `Expected ${name} to be a version string such as "0.3615", got ${describe(issue.input)}.`}).min(1, `Expected ${name} to be a version such as "0.3615", got an empty string.`);

const runBody = z.strictObject({
  old: versionField('old'),
  new: versionField('new'),
  set: z
    .record(z.string(), z.json(), {
      error: (issue) =>
        issue.code === 'invalid_type'
          ? `Expected set to be an object of settings, such as {"validation.tolerance.abs": 0.01}, got ${describe(issue.input)}.`
          : undefined,
    })
    .optional(),
  force: z.boolean({error: (issue) => `Expected force to be true or false, got ${describe(issue.input)}.`}).optional(),
});

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** Checks the body of `POST /runs`; the first problem found, or the request. */
export function parseRunRequest(body: unknown): RunRequest | BadRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return {field: 'body', message: `Expected a JSON object such as {"old": "0.3615", "new": "0.3621"}, got ${describe(body)}.`};
  }
  const infinite = infiniteAt((body as Record<string, unknown>)['set'], 'set');
  if (infinite !== undefined) {
    return {field: infinite, message: `Expected a finite number in ${infinite}: a number beyond a double's range (about 1.8e308) reads as infinite. Give a value within that range.`};
  }
  const parsed = runBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0]!;
      return {field: key, message: `Unknown field "${key}": expected only ${FIELDS.join(', ')}.`};
    }
    const field = issue.path.map(String).join('.');
    return {field, message: issue.message.startsWith('Invalid input') ? `Invalid ${field}: ${issue.message.replace(/^Invalid input: /, '')}.` : issue.message};
  }
  const request = parsed.data;
  for (const which of ['old', 'new'] as const) {
    try {
      checkVersion(which, request[which]);
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      return {field: which, message: error.message};
    }
  }
  const flattened = flatten(request.set ?? {});
  if ('field' in flattened) return flattened;
  const overrides = flattened.paths;
  for (const path of Object.keys(overrides)) {
    const forbidden = FORBIDDEN_OVERRIDES.find((name) => path === name || path.startsWith(`${name}.`) || name.startsWith(`${path}.`));
    if (forbidden !== undefined) {
      return {
        field: `set.${path}`,
        message: `The setting ${forbidden} cannot be changed over HTTP: it points at files, hosts or tables beyond the project's. Set it in pipeline.yaml or the server's environment instead.`,
      };
    }
  }
  return {
    old: request.old,
    new: request.new,
    set: Object.entries(overrides).map(([path, value]) => `${path}=${JSON.stringify(value)}`),
    overrides,
    force: request.force ?? false,
  };
}

/**
 * `{"validation": {"tolerance": {"abs": 1}}}` and `{"validation.tolerance.abs": 1}` are the
 * same override; flattening nested objects lets one check see every path that would change.
 * An empty object stays a leaf, since it would still replace the setting it names.
 */
function flatten(set: Record<string, unknown>): {paths: Record<string, unknown>} | BadRequest {
  const flat: Record<string, unknown> = {};
  const walk = (prefix: string, value: unknown): BadRequest | undefined => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
      for (const [key, inner] of Object.entries(value)) {
        const problem = walk(prefix === '' ? key : `${prefix}.${key}`, inner);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    if (!prefix.split('.').every((segment) => SEGMENT.test(segment))) {
      return {
        field: `set.${prefix}`,
        message: `Expected a setting path of names joined by dots, such as "validation.tolerance.abs", got ${JSON.stringify(prefix)}.`,
      };
    }
    flat[prefix] = value;
    return undefined;
  };
  for (const [key, value] of Object.entries(set)) {
    const problem = walk(key, value);
    if (problem !== undefined) return problem;
  }
  return {paths: flat};
}

/** Where a parsed JSON value holds an infinite number (JSON.parse reads 1e400 as Infinity). */
function infiniteAt(value: unknown, path: string): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const found = infiniteAt(inner, Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The override path a `--set PATH=VALUE` diagnostic is about, to name it as the field. */
export function overrideField(origin: string, sets: readonly string[]): string | undefined {
  const flag = origin.replace(/^--set /, '');
  return sets.includes(flag) ? `set.${flag.slice(0, flag.indexOf('='))}` : undefined;
}
