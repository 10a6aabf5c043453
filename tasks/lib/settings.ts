/**
 * The settings a built-in task runs with, typed by the pipeline's schema. The runner has
 * already validated what a task declares and applied the defaults, so a task reads fields
 * instead of re-checking them. Parsing once more is cheap and gives a task run on its own
 * (as the tests run them) the defaults the runner would give.
 */
import {settingsSchema} from '../../src/config/schema.js';
import type {Settings} from '../../src/config/schema.js';
import {ConfigurationError} from '../../src/errors.js';
import type {Json} from '../../src/task-api.js';

export type {Settings};

/** `ctx.settings` as the schema types them, every section complete. */
export function taskSettings(settings: Readonly<Record<string, Json>>): Settings {
  const parsed = settingsSchema.safeParse(settings);
  if (parsed.success) return parsed.data;
  throw new ConfigurationError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '), {
    hint: 'Fix the settings in pipeline.yaml or your --config file.',
  });
}
