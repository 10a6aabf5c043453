/**
 * The schema of pipeline.yaml and of settings files: the public contract users' files
 * depend on. Validation errors are turned into positioned diagnostics by `validate.ts`;
 * `pipeline.schema.json` is generated from here for editors.
 */
import {z} from 'zod';
import {parseBytes} from '../util/units.js';

const severity = z.enum(['error', 'warn']).default('error');
const column = z.string().min(1);
const pct = z.number().min(0);

// added_keys and removed_keys take max, max_pct or both, but not neither.
function keyRule<C extends 'added_keys' | 'removed_keys'>(check: C) {
  return z
    .strictObject({check: z.literal(check), max: z.number().int().min(0).optional(), max_pct: pct.optional(), severity})
    .refine((rule) => rule.max !== undefined || rule.max_pct !== undefined, {message: 'a limit: "max", "max_pct" or both'});
}

/** Declarative validation rules; `check` picks the shape. */
export const validationRule = z.discriminatedUnion('check', [
  z.strictObject({check: z.literal('row_count_change'), max_pct: pct, severity}),
  keyRule('added_keys'),
  keyRule('removed_keys'),
  z.strictObject({check: z.literal('duplicate_keys'), max: z.number().int().min(0), severity}),
  z.strictObject({check: z.literal('changed_rows'), max_pct: pct, column: column.optional(), severity}),
  z.strictObject({check: z.literal('null_rate_change'), max_pp: pct, column: column.optional(), severity}),
  z.strictObject({check: z.literal('schema_unchanged'), severity}),
  z.strictObject({check: z.literal('max_abs_diff'), column, max: z.number().min(0), severity}),
]);

/** Rules over the analysis figures. */
export const analysisRule = z.discriminatedUnion('check', [
  z.strictObject({check: z.literal('drift'), column: column.optional(), max_psi: z.number().min(0), severity}),
]);

const tolerance = z.strictObject({abs: z.number().min(0).optional(), rel: z.number().min(0).optional()});

const SIZE = 'a size such as "4G", "512MB" or "2GiB"';

const memory = z
  .string({error: (issue) => (typeof issue.input === 'number' ? `${SIZE} (with its unit)` : undefined)})
  // abort: a value that is no size is not measured by the checks after this one.
  .regex(/^\d+(\.\d+)?\s*(B|K|M|G|T|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, {message: SIZE, abort: true});

/** Every setting with its default. */
export const settingsSchema = z.strictObject({
  source: z
    .strictObject({
      engine: z.enum(['duckdb', 'bigquery']).default('duckdb'),
      table: z.string().min(1).default('model_parameters'),
      version_column: z.string().min(1).default('version'),
      keys: z.array(column).min(1).default(['entity_id']),
      columns: z.array(column).min(1).nullable().default(null),
    })
    .prefault({}),
  duckdb: z
    .strictObject({
      database: z.string().min(1).default('data/warehouse.duckdb'),
      path: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).nullable().default(null),
    })
    .prefault({}),
  bigquery: z
    .strictObject({
      project_id: z.string().min(1).nullable().default(null),
      dataset_id: z.string().min(1).nullable().default(null),
      table_id: z.string().min(1).nullable().default(null),
      location: z.string().min(1).default('US'),
      api_endpoint: z.string().url('a URL with its scheme, such as http://127.0.0.1:9050').nullable().default(null),
      maximum_bytes_billed: z.number().int().positive().nullable().default(null),
      /** For views and other sources without table metadata: re-extract `always`, or within `ttl_seconds`. */
      freshness: z.enum(['always', 'ttl']).default('always'),
      ttl_seconds: z.number().int().positive().default(3600),
      /** Cap on each retry delay, in seconds (the client's own default is 64). */
      retry_max_delay_seconds: z.number().positive().nullable().default(null),
    })
    .prefault({}),
  validation: z
    .strictObject({
      engine: z.enum(['local', 'bigquery']).default('local'),
      chunk_size: z.number().int().positive().default(10000),
      parallel_processing: z.boolean().default(true),
      max_mismatch_rows: z.number().int().min(0).default(10000),
      /** Pushed down: also write every mismatch to this BigQuery table, `dataset.table` or `project.dataset.table` (replaced on each run). */
      mismatch_table: z
        .string()
        .regex(/^(?:[a-z][a-z0-9-]*[a-z0-9]\.)?[A-Za-z0-9_]+\.[A-Za-z0-9_-]+$/, 'a BigQuery table, dataset.table or project.dataset.table (letters, digits, _ and - in the table name)')
        .nullable()
        .default(null),
      tolerance: z
        .strictObject({
          abs: z.number().min(0).default(0),
          rel: z.number().min(0).default(0),
          columns: z.record(z.string(), tolerance).default({}),
        })
        .prefault({}),
      rules: z.array(validationRule).default([]),
    })
    .prefault({}),
  analysis: z
    .strictObject({
      engine: z.enum(['local', 'bigquery']).default('local'),
      segment_by: z.array(column).default(['region']),
      bins: z.number().int().min(2).max(1000).default(10),
      top_n: z.number().int().min(0).default(20),
      psi: z
        .strictObject({warn: z.number().min(0).default(0.1), fail: z.number().min(0).default(0.25)})
        .refine((psi) => psi.warn <= psi.fail, {message: '"warn" at most "fail" (a PSI from "warn" up is a moderate drift, from "fail" up a major one)'})
        .prefault({}),
      rules: z.array(analysisRule).default([]),
    })
    .prefault({}),
  output: z
    .strictObject({
      base_dir: z.string().min(1).default('output'),
      save_intermediates: z.boolean().default(false),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['DEBUG', 'INFO', 'WARNING', 'ERROR']).default('INFO'),
      format: z.string().default('%(asctime)s - %(levelname)s - %(message)s'),
      file: z
        .string()
        .min(1)
        .refine((file) => !['summary.json', 'errors.json', '.outputs.json'].includes(file), {message: 'a name other than summary.json, errors.json and .outputs.json, which the runner writes'})
        .default('validation.log'),
    })
    .prefault({}),
  performance: z
    .strictObject({
      // DuckDB cannot start a query in much less; 0 would fail every task out of memory.
      max_memory: memory.refine((size) => parseBytes(size, 'performance.max_memory') >= 64 * 2 ** 20, {message: 'at least 64MB'}).default('4G'),
      timeout: z.number().positive().default(3600),
      retry_count: z.number().int().min(0).max(20).default(3),
      /** Seconds before the first retry; doubled each time, with jitter. */
      retry_delay: z.number().min(0).max(600).default(0.5),
    })
    .prefault({}),
  cache: z
    .strictObject({
      dir: z.string().min(1).default('.cache'),
      warn_size: memory.default('20G'),
    })
    .prefault({}),
});

/** Resolved settings: every key present, defaults applied. */
export type Settings = z.output<typeof settingsSchema>;

export const taskName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a task name of letters, digits, ".", "_" and "-"');
const fileName = z
  .string()
  .regex(/^(?!\.\.?$)[^/\\]+$/, 'a plain file name (no folders)');

/** One task of pipeline.yaml. */
export const taskSchema = z.strictObject({
  description: z.string().optional(),
  run: z.string().min(1).optional(),
  shell: z.string().min(1).optional(),
  deps: z.array(z.union([taskName, z.strictObject({task: taskName, optional: z.boolean().default(false)})])).default([]),
  inputs: z
    .strictObject({
      settings: z.array(z.string().min(1)).default([]),
      files: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  tuning: z.array(z.string().min(1)).default([]),
  with: z.record(z.string(), z.unknown()).default({}),
  outputs: z.array(fileName).default([]),
  intermediate: z.boolean().default(false),
  tags: z.array(z.string().min(1)).default([]),
  cache: z.boolean().default(true),
});

/** A task as declared, defaults applied. */
export type TaskDeclaration = z.output<typeof taskSchema>;

/** The whole pipeline.yaml. */
export const pipelineSchema = z.strictObject({
  settings: z.record(z.string(), z.unknown()).default({}),
  tasks: z.record(taskName, taskSchema),
});
