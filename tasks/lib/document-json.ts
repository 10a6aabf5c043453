/**
 * validation.json's numbers. JSON has no infinite numbers, and JSON.stringify writes them as
 * null, which a reader takes for "no value": an infinite largest difference (a change to or
 * from ±Infinity or NaN, or one past the DOUBLE range) would read as no difference at all in
 * a script gating a release on it. They are written as the strings "Infinity", "-Infinity"
 * and "NaN", which Python's float(), JavaScript's Number() and pandas read as numbers.
 */

import {nonFiniteAsText} from '../../src/util/hash.js';

/** The JSON text of an output document, non-finite numbers as strings. */
export function documentJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, v: unknown) => nonFiniteAsText(v), 2)}\n`;
}

/** A number as such a document holds it: a number, or one of the strings documentJson writes. */
export function documentNumber(value: unknown): unknown {
  return value === 'Infinity' || value === '-Infinity' || value === 'NaN' ? Number(value) : value;
}
