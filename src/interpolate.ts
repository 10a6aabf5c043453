/**
 * `${...}` references in `with` arguments and shell commands:
 * `${old}`, `${new}`, `${settings.a.b}`, and in shell commands `${input:TASK/FILE}` and
 * `${output:FILE}` (paths, quoted for the shell); `$${...}` stands for the text `${...}`.
 */
import type {Json} from './task-api.js';
import {nonFiniteAsText} from './util/hash.js';

/** One `${...}` reference found in a string. */
export type Reference =
  | {kind: 'version'; which: 'old' | 'new'}
  | {kind: 'setting'; path: string[]}
  | {kind: 'input'; task: string; file: string}
  | {kind: 'output'; file: string};

// `$${...}` is an escaped reference: the text `${...}` as it is (for the shell's own
// expansions, such as `$${f%.csv}`).
const PATTERN = /\$(\$?)\{([^}]*)\}/g;

/** Parses one reference's text, or returns why it is not one. */
export function parseReference(text: string): Reference | string {
  const body = text.trim();
  if (body === 'old' || body === 'new') return {kind: 'version', which: body};
  if (body.startsWith('settings.') && body.length > 'settings.'.length) {
    return {kind: 'setting', path: body.slice('settings.'.length).split('.')};
  }
  const input = /^input:([^/]+)\/(.+)$/.exec(body);
  if (input !== null) return {kind: 'input', task: input[1]!, file: input[2]!};
  const output = /^output:(.+)$/.exec(body);
  if (output !== null) return {kind: 'output', file: output[1]!};
  // ${HOME} in a shell command was meant for the shell, which reads $HOME as well.
  // ${f%.csv}, ${x:-y}: an expansion of the shell's own, passed on escaped.
  const variable = /^[A-Z_][A-Z0-9_]*$/.test(text)
    ? ` For a variable of the shell, write $${text} (without braces).`
    : /[%#?!*@/]|:[-=+?]/.test(text) && !/^\s*\w+:/.test(text)
      ? ` To pass it to the shell as it is, write $\${${text}}.`
      : '';
  return `Unknown reference "\${${text}}". Expected \${old}, \${new}, \${settings.PATH}, \${input:TASK/FILE} or \${output:FILE}.${variable}`;
}

/** Every reference in a string, with its text. */
export function references(text: string): {text: string; reference: Reference | string}[] {
  return [...text.matchAll(PATTERN)].filter((match) => match[1] === '').map((match) => ({text: match[0], reference: parseReference(match[2]!)}));
}

/** Replaces every reference with `resolve(reference)`. References must have been validated. */
export function substitute(text: string, resolve: (reference: Reference) => string): string {
  return text.replace(PATTERN, (_match, escaped: string, body: string) => {
    if (escaped !== '') return `\${${body}}`;
    const reference = parseReference(body);
    if (typeof reference === 'string') throw new Error(reference);
    return resolve(reference);
  });
}

/**
 * A setting's value inside a text (an argument, a shell command): a string as it is, a number
 * as its digits (Infinity, NaN as such, not JSON's null), anything else as JSON.
 */
export function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value, (_key, item: unknown) => nonFiniteAsText(item)) ?? 'null';
}

/**
 * Interpolates every string inside a `with` value. A string that is exactly one reference
 * to a setting takes the setting's value with its type (a list stays a list).
 */
export function interpolateValue(value: unknown, resolve: (reference: Reference) => Json): Json {
  if (typeof value === 'string') {
    const whole = /^\$\{([^}]*)\}$/.exec(value);
    if (whole !== null) {
      const reference = parseReference(whole[1]!);
      if (typeof reference !== 'string') return resolve(reference);
    }
    return substitute(value, (reference) => asText(resolve(reference)));
  }
  if (Array.isArray(value)) return value.map((item) => interpolateValue(item, resolve));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateValue(item, resolve)]));
  }
  return (value ?? null) as Json;
}

/** Every string in a value, with its path, for validation. */
export function* strings(value: unknown, path: (string | number)[] = []): Generator<[string, (string | number)[]]> {
  if (typeof value === 'string') yield [value, path];
  else if (Array.isArray(value)) for (const [index, item] of value.entries()) yield* strings(item, [...path, index]);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) yield* strings(item, [...path, key]);
  }
}
