/** Turns schema validation issues into positioned, human diagnostics. */
import type {z} from 'zod';
import {didYouMean} from '../util/suggest.js';
import {describe} from './diagnostics.js';
import type {Diagnostic, Location} from './diagnostics.js';
import type {ValuePath} from './yaml-source.js';

/** Finds where a path came from: the value's position, or its key's. */
export interface Locator {
  value(path: ValuePath): Location;
  key(path: ValuePath): Location;
}

type AnySchema = z.core.$ZodType;

/**
 * The keys an object schema accepts at `path`, for "did you mean" on unknown keys; `value`
 * (the object there) picks the shape of a discriminated union (a rule's by its check).
 */
export function knownKeys(schema: AnySchema, path: ValuePath, value?: unknown): string[] {
  let current: AnySchema | undefined = schema;
  for (const segment of [...path, undefined]) {
    current = unwrap(current);
    const def = current?._zod.def as unknown as Record<string, unknown> | undefined;
    if (def === undefined) return [];
    if (def['type'] === 'union') {
      // A rule is one of several shapes: the keys of the one its check picks (of any, without one).
      let shapes = (def['options'] as AnySchema[]).map((option) => unwrap(option)?._zod.def as unknown as Record<string, unknown>).filter((o) => o?.['type'] === 'object');
      const discriminator = def['discriminator'];
      if (segment === undefined && typeof discriminator === 'string' && value !== null && typeof value === 'object' && discriminator in value) {
        const chosen = (value as Record<string, unknown>)[discriminator];
        const matching = shapes.filter((o) => ((o['shape'] as Record<string, AnySchema>)[discriminator]?._zod.def as unknown as {values?: unknown[]})?.values?.includes(chosen));
        if (matching.length > 0) shapes = matching;
      }
      const keys = shapes.map((o) => Object.keys(o['shape'] as object));
      if (segment === undefined) return [...new Set(keys.flat())];
      const owner = shapes.find((o) => String(segment) in (o['shape'] as object));
      current = owner === undefined ? undefined : (owner['shape'] as Record<string, AnySchema>)[String(segment)];
      continue;
    }
    if (segment === undefined) {
      return def['type'] === 'object' ? Object.keys(def['shape'] as object) : [];
    }
    if (def['type'] === 'object') current = (def['shape'] as Record<string, AnySchema>)[String(segment)];
    else if (def['type'] === 'array') current = def['element'] as AnySchema;
    else if (def['type'] === 'record') current = def['valueType'] as AnySchema;
    else return [];
  }
  return [];
}

function unwrap(schema: AnySchema | undefined): AnySchema | undefined {
  let current = schema;
  for (;;) {
    const def = current?._zod.def as unknown as Record<string, unknown> | undefined;
    if (def === undefined) return undefined;
    if (['default', 'prefault', 'optional', 'nullable', 'readonly'].includes(def['type'] as string)) {
      current = def['innerType'] as AnySchema;
    } else if (def['type'] === 'pipe') {
      current = def['in'] as AnySchema;
    } else {
      return current;
    }
  }
}

function dotted(path: ValuePath): string {
  return path.map((segment) => (typeof segment === 'number' ? `[${segment}]` : segment)).join('.').replaceAll('.[', '[');
}

const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

// What other pipeline tools call a task's keys (GitHub Actions' needs, wireit's
// dependencies, DVC's outs and cmd, ...): no typo distance finds these.
const KEY_SYNONYMS: Readonly<Record<string, string>> = {
  need: 'deps',
  needs: 'deps',
  depends_on: 'deps',
  dependencies: 'deps',
  requires: 'deps',
  command: 'shell',
  cmd: 'shell',
  script: 'shell',
  outs: 'outputs',
  output: 'outputs',
  input: 'inputs',
};

function suggestKey(key: string, known: readonly string[]): string {
  const synonym = KEY_SYNONYMS[key.toLowerCase()];
  return synonym !== undefined && known.includes(synonym) ? ` Did you mean "${synonym}"?` : didYouMean(key, known);
}

/**
 * One diagnostic per issue. `prefix` is the path under which `issues` paths sit in the file
 * (e.g. `['settings']` for pipeline.yaml), `subject` names what is checked ("setting").
 */
export function issuesToDiagnostics(
  issues: readonly z.core.$ZodIssue[],
  schema: AnySchema,
  locate: Locator,
  subject: string,
): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((segment): segment is string | number => typeof segment !== 'symbol');
    const name = dotted(path);
    const input = (issue as {input?: unknown}).input;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          const known = knownKeys(schema, path, input);
          const where = name === '' ? '' : path.length === 2 && path[0] === 'tasks' ? ` in task "${path[1]}"` : ` in "${name}"`;
          diagnostics.push({
            location: locate.key([...path, key]),
            message: `Unknown ${subject} "${key}"${where}.${suggestKey(key, known) || (known.length > 0 ? ` Expected one of: ${known.join(', ')}.` : '')}`,
          });
        }
        break;
      case 'invalid_type': {
        // A schema's own word for what it expects (a size with its unit) before the type's name.
        if (input !== undefined && !issue.message.startsWith('Invalid input')) {
          diagnostics.push({location: locate.value(path), message: `Expected "${name}" to be ${issue.message}, got ${describe(input)}.`});
          break;
        }
        const expected = issue.expected === 'array' ? 'list' : issue.expected === 'object' || issue.expected === 'record' ? 'mapping' : issue.expected;
        diagnostics.push({
          location: input === undefined ? locate.key(path) : locate.value(path),
          message:
            input === undefined
              ? `Missing "${name}": expected ${article(expected)}.`
              : `Expected ${article(expected)} for "${name}", got ${describe(input)}.${expected === 'list' && typeof input === 'string' ? ` For a list of one, write [${input}].` : ''}`,
        });
        break;
      }
      case 'invalid_union': {
        const union = issue as unknown as {discriminator?: string; options?: string[]};
        if (union.discriminator !== undefined && union.options !== undefined) {
          const got = input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[union.discriminator] : input;
          diagnostics.push({
            location: locate.value(path),
            message: `Expected "${name}" to be one of ${union.options.join(', ')}, got ${describe(got)}.${typeof got === 'string' ? didYouMean(got, union.options) : ''}`,
          });
        } else {
          diagnostics.push({location: locate.value(path), message: `"${name}" is not valid: ${issue.message}.`});
        }
        break;
      }
      case 'invalid_value':
        diagnostics.push({
          location: locate.value(path),
          message: `Expected "${name}" to be one of ${issue.values.map(String).join(', ')}, got ${describe(input)}.${typeof input === 'string' ? didYouMean(input, issue.values.map(String)) : ''}`,
        });
        break;
      case 'too_small':
      case 'too_big': {
        const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
        const strict = issue.inclusive === false;
        const word = issue.code === 'too_small' ? (strict ? 'more than' : 'at least') : strict ? 'less than' : 'at most';
        const what = issue.origin === 'array' ? ` item${bound === 1 ? '' : 's'}` : issue.origin === 'string' ? ` character${bound === 1 ? '' : 's'}` : '';
        const verb = issue.origin === 'array' || issue.origin === 'string' ? 'to have' : 'to be';
        diagnostics.push({
          location: locate.value(path),
          message: `Expected "${name}" ${verb} ${word} ${String(bound)}${what}, got ${describe(input)}.`,
        });
        break;
      }
      case 'invalid_key': {
        // A name (of a task, say) that its record does not allow: the inner issue says what it should be.
        const inner = (issue as unknown as {issues?: {message: string}[]}).issues?.[0]?.message ?? issue.message;
        const owner = dotted(path.slice(0, -1));
        diagnostics.push({
          location: locate.key(path),
          message: `Expected each name in "${owner}" to be ${inner}, got ${describe(path[path.length - 1])}.`,
        });
        break;
      }
      case 'custom':
        // A refinement's message names what is missing (see the schema's refine calls).
        diagnostics.push({location: locate.value(path), message: `Expected "${name}" to have ${issue.message}.`});
        break;
      case 'invalid_format':
        diagnostics.push({
          location: locate.value(path),
          message: `Expected "${name}" to be ${issue.message}, got ${describe(input)}.`,
        });
        break;
      default:
        diagnostics.push({
          location: locate.value(path),
          message: `"${name}" ${issue.message.replace(/^Invalid input: /, '').replace(/^Too small: expected/, 'must be').replace(/^Too big: expected/, 'must be').replace(/\.$/, '')}, got ${describe(input)}.`,
        });
    }
  }
  return diagnostics;
}
