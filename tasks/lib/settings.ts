/**
 * The settings a built-in task runs with, typed by the pipeline's schema. Before any task
 * runs, the runner has validated the whole configuration and applied its defaults, and it
 * hands each task the settings the task declares (`inputs.settings` and `tuning` in
 * pipeline.yaml); a task reads them as they are, without checking them again (and without
 * loading the schema's validator, which a cached run must not pay for).
 *
 * Only what a task declares is there, and reading anything else is a configuration error
 * naming the setting: a default in its place would hide a setting the task's fingerprint
 * does not cover (the user changes it, nothing reruns). Tasks run on their own (the tests,
 * the benchmarks) get every setting from `completeSettings` (test/support/settings.ts).
 */
import type {Settings} from '../../src/config/schema.js';
import {ConfigurationError} from '../../src/errors.js';
import type {Json} from '../../src/task-api.js';

export type {Settings};

/** `ctx.settings` as the schema types them; reading a section or setting not declared throws. */
export function taskSettings(settings: Readonly<Record<string, Json>>): Settings {
  return declaredOnly(settings, '') as unknown as Settings;
}

// Sections, and the settings in them: every one is present once declared (the schema gives
// each a default), so a missing one was not declared. Deeper values are the user's own
// (tolerances per column, rules) and are handed over as they are.
function declaredOnly(object: Readonly<Record<string, Json>>, section: string): Readonly<Record<string, Json>> {
  return new Proxy(object, {
    get(target, key, receiver) {
      // (`then` and `toJSON` are asked of any object that is awaited or serialised.)
      if (typeof key === 'symbol' || key in target || key === 'then' || key === 'toJSON') {
        const value = Reflect.get(target, key, receiver) as Json;
        return section === '' && typeof key === 'string' && isSection(value) ? declaredOnly(value, key) : value;
      }
      // A section none of whose settings is declared: the setting read in it is named.
      if (section === '') return declaredOnly({}, key);
      throw new ConfigurationError(`This task reads the setting ${section}.${key}, which pipeline.yaml does not declare for it.`, {
        hint: `Add ${section}.${key} to the task's inputs.settings (or tuning) in pipeline.yaml, as the shipped pipeline.yaml does.`,
      });
    },
  });
}

function isSection(value: Json | undefined): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
