/**
 * A task's fingerprint: everything its result depends on, as canonical JSON. Equal
 * fingerprints mean the cached result can be reused; the parts say why a task reruns.
 */
import type {Json} from './task-api.js';
import {canonicalJson, sha256} from './util/hash.js';
import type {ContentDigest} from './util/hash.js';

/** The key a fingerprint is stored under. */
export type CacheKey = string & {readonly __brand: 'CacheKey'};

/**
 * Bumped when the meaning of a fingerprint or of cached outputs changes, so that an upgrade
 * never serves results computed under the old rules.
 */
export const RUNNER_VERSION = '1';

/** The parts of a fingerprint; each field says why it is there. */
export interface FingerprintParts {
  /** Cached results are only valid for the runner semantics that produced them. */
  runner: string;
  /** What the task runs and produces. Not its name: the same work under two names is shared. */
  task: {run: string | null; shell: string | null; with: Json; outputs: string[]};
  /** The values of exactly the settings the task declares (defaults applied). */
  settings: Record<string, Json>;
  /** Upstream outputs by content: an upstream rerun that produced the same bytes changes nothing. */
  inputs: Record<string, ContentDigest>;
  /** Declared input files by content. */
  files: Record<string, ContentDigest>;
  /** The task's module and the local modules it imports. */
  code: Record<string, ContentDigest>;
  /** What the source holds now (the task's freshness probe), or null when it has none. */
  probe: Json;
}

/**
 * SHA-256 of the canonical JSON. (object-hash was measured here and dropped: importing it
 * alone cost 17 ms of a 150 ms budget for a cached run, and canonical JSON is the format
 * DESIGN.md specifies anyway.)
 */
export function fingerprintKey(parts: FingerprintParts): CacheKey {
  return sha256(canonicalJson(parts)) as CacheKey;
}

const short = (value: Json | undefined): string => {
  if (value === undefined) return 'unset';
  // A string that reads as another value (the number Infinity, null) is quoted.
  const text = typeof value !== 'string' ? canonicalJson(value) : /^(-?Infinity|NaN|null|true|false)$/.test(value) ? JSON.stringify(value) : value;
  return /^[0-9a-f]{40,}$/.test(text) ? text.slice(0, 8) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** Leaf values of a JSON value by dotted path. */
function leaves(value: Json | undefined, prefix: string, into: Map<string, Json>): Map<string, Json> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [key, item] of Object.entries(value)) leaves(item, prefix === '' ? key : `${prefix}.${key}`, into);
  } else if (value !== undefined) {
    into.set(prefix, value);
  }
  return into;
}

function changedLeaves(before: Json | undefined, after: Json | undefined): {path: string; before?: Json; after?: Json}[] {
  const a = leaves(before, '', new Map());
  const b = leaves(after, '', new Map());
  const changes: {path: string; before?: Json; after?: Json}[] = [];
  // An empty object or list at the top (no settings declared, no arguments) is no leaf of its own.
  const empty = (value: Json | undefined) => value !== null && typeof value === 'object' && Object.keys(value).length === 0;
  for (const path of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(path);
    const y = b.get(path);
    if (path === '' && (empty(x) || empty(y))) continue;
    if (canonicalJson(x) !== canonicalJson(y)) changes.push({path, ...(x === undefined ? {} : {before: x}), ...(y === undefined ? {} : {after: y})});
  }
  return changes.sort((p, q) => p.path.localeCompare(q.path));
}

/** Human reasons why `current` differs from the previous fingerprint of the same task. */
export function explainChange(previous: FingerprintParts | undefined, current: FingerprintParts): string[] {
  if (previous === undefined) return ['no previous run'];
  const reasons: string[] = [];
  if (previous.runner !== current.runner) reasons.push(`runner version changed ${previous.runner} -> ${current.runner}`);
  if (previous.task.run !== current.task.run) reasons.push(`module changed ${short(previous.task.run)} -> ${short(current.task.run)}`);
  if (previous.task.shell !== current.task.shell) reasons.push('command changed');
  const describeChange = (kind: string, change: {path: string; before?: Json; after?: Json}) =>
    change.before === undefined
      ? `${kind} ${change.path} set to ${short(change.after)}`
      : change.after === undefined
        ? `${kind} ${change.path} removed (was ${short(change.before)})`
        : `${kind} ${change.path} changed ${short(change.before)} -> ${short(change.after)}`;
  for (const change of changedLeaves(previous.task.with, current.task.with)) reasons.push(describeChange('argument', change));
  if (canonicalJson(previous.task.outputs) !== canonicalJson(current.task.outputs)) reasons.push('declared outputs changed');
  for (const change of changedLeaves(previous.settings, current.settings)) reasons.push(describeChange('setting', change));
  const digestChanges = (kind: string, before: Record<string, string>, after: Record<string, string>) => {
    for (const name of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      if (before[name] === after[name]) continue;
      const what = before[name] === undefined ? 'added' : after[name] === undefined ? 'removed' : 'changed';
      reasons.push(`${kind}${name} ${what}`);
    }
  };
  digestChanges('input ', previous.inputs, current.inputs);
  digestChanges('file ', previous.files, current.files);
  digestChanges('', previous.code, current.code);
  // A source of files: each file changed, added or removed is named (a list of digests says nothing).
  const [before, after] = [sourceFiles(previous.probe), sourceFiles(current.probe)];
  if (before !== undefined && after !== undefined) {
    const files: string[] = [];
    for (const path of new Set([...before.keys(), ...after.keys()])) {
      if (before.get(path) !== after.get(path)) files.push(`source file ${path} ${!before.has(path) ? 'added' : !after.has(path) ? 'removed' : 'changed'}`);
    }
    // Hundreds of files edited make one line, not a page of them.
    reasons.push(...files.slice(0, SOURCE_FILES_NAMED), ...(files.length > SOURCE_FILES_NAMED ? [`${files.length - SOURCE_FILES_NAMED} more source files added, removed or changed`] : []));
  }
  const withoutFiles = (probe: Json): Json => {
    if (before === undefined || after === undefined || !isObject(probe)) return probe;
    return isObject(probe['source']) ? {...probe, source: {...probe['source'], files: null}} : {...probe, files: null};
  };
  for (const change of changedLeaves(withoutFiles(previous.probe), withoutFiles(current.probe))) {
    reasons.push(`source ${change.path === '' ? 'content' : change.path} changed ${short(change.before)} -> ${short(change.after)}`);
  }
  return reasons.length > 0 ? reasons : ['fingerprint changed'];
}

/** Source files named one by one in the reasons a task runs; the rest are counted. */
const SOURCE_FILES_NAMED = 5;

const isObject = (value: Json | undefined): value is {[key: string]: Json} => value !== null && typeof value === 'object' && !Array.isArray(value);

/** A probe's list of files (`files: [{path, ...}]`, or in its `source`), by path, or undefined when it has none. */
function sourceFiles(probe: Json): Map<string, string> | undefined {
  const holder = isObject(probe) && isObject(probe['source']) ? probe['source'] : probe;
  const files = isObject(holder) ? holder['files'] : undefined;
  if (!Array.isArray(files) || !files.every((file) => isObject(file) && typeof file['path'] === 'string')) return undefined;
  return new Map(files.map((file) => [(file as {path: string}).path, canonicalJson(file)]));
}
