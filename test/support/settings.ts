/**
 * Settings for a task run without the runner: validated by the pipeline's schema and
 * completed with its defaults, as the runner gives them (tasks/lib/settings.ts).
 */
import {settingsSchema} from '../../src/config/schema.js';
import {ConfigurationError} from '../../src/errors.js';
import type {Json} from '../../src/task-api.js';

export function completeSettings(settings: Record<string, Json> = {}): Record<string, Json> {
  const parsed = settingsSchema.safeParse(settings);
  if (parsed.success) return parsed.data as unknown as Record<string, Json>;
  throw new ConfigurationError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '), {
    hint: 'Fix the settings in pipeline.yaml or your --config file.',
  });
}
