/**
 * Reads pipeline.yaml and the settings layers, merges them in priority order and validates
 * the result. Every problem found is collected; nothing runs unless there are none.
 */
import {existsSync, statSync} from 'node:fs';
import {relative, resolve} from 'node:path';
import {parse as parseYaml} from 'yaml';
import {DiagnosticsError} from './diagnostics.js';
import type {Diagnostic, Location} from './diagnostics.js';
import {issuesToDiagnostics} from './issues.js';
import type {Locator} from './issues.js';
import {pipelineSchema, settingsSchema, taskSchema} from './schema.js';
import type {Settings, TaskDeclaration} from './schema.js';
import {YamlSource} from './yaml-source.js';
import {getPath, hasPath, isRecord, setPath} from '../util/json-path.js';
import {closest} from '../util/suggest.js';
import type {ValuePath} from './yaml-source.js';

/** Where settings come from, highest priority first. */
export interface SettingsInputs {
  /** `--config FILE`: JSON or YAML. */
  configFile?: string;
  /** `--set a.b=value` flags, in order (later wins). */
  sets?: readonly string[];
  /** `--output-dir DIR`, which overrides `output.base_dir`. */
  outputDir?: string;
  /** The environment, for `PIPELINE_<SECTION>_<KEY>` variables. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** One layer of settings and where each of its values is written. */
interface Layer {
  value: Record<string, unknown>;
  locate: Locator;
  has(path: ValuePath): boolean;
}

/**
 * pipeline.yaml with positions, its tasks and the resolved settings. When `diagnostics` is
 * not empty, `settings` and `tasks` are best effort (defaults under what parsed, the tasks
 * that were valid), so that later checks can still report their problems in the same go.
 */
export interface LoadedPipeline {
  file: string;
  /** Positions in pipeline.yaml; without lines when loaded from the memo (see memo.ts). */
  source: Pick<YamlSource, 'locate' | 'locateKey'>;
  /** True when settings came from the memo of an earlier, valid load. */
  fromMemo: boolean;
  settings: Settings;
  tasks: ReadonlyMap<string, TaskDeclaration>;
  /** Tasks declared but invalid (already diagnosed): still valid names for `deps`. */
  invalidTasks: ReadonlySet<string>;
  diagnostics: Diagnostic[];
  /** Those of `diagnostics` that make the settings unreliable (not a task's own problems). */
  settingsDiagnostics: Diagnostic[];
  /** Not wrong enough to stop the run, worth a line on the terminal (a misspelt environment variable). */
  warnings: string[];
}


/** Objects merge key by key; arrays and scalars replace. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = {...base};
  for (const [key, value] of Object.entries(over)) {
    const current = merged[key];
    merged[key] = isRecord(current) && isRecord(value) ? deepMerge(current, value) : value;
  }
  return merged;
}

function fileLayer(source: YamlSource, prefix: ValuePath, value: Record<string, unknown>): Layer {
  return {
    value,
    locate: {value: (path) => source.locate([...prefix, ...path]), key: (path) => source.locateKey([...prefix, ...path])},
    has: (path) => source.has([...prefix, ...path]),
  };
}

/** A layer whose values all come from one named origin, per path. */
function namedLayer(value: Record<string, unknown>, origins: Map<string, string>): Layer {
  const find = (path: ValuePath): Location => {
    for (let length = path.length; length > 0; length--) {
      const origin = origins.get(path.slice(0, length).join('.'));
      if (origin !== undefined) return {source: origin};
    }
    return {source: [...origins.values()][0] ?? 'command line'};
  };
  return {value, locate: {value: find, key: find}, has: (path) => hasPath(value, path)};
}

/** A scalar from the command line or the environment, typed as YAML would type it. */
function parseScalar(text: string): unknown {
  try {
    // (logLevel: a value starting with %, like logging.format's, is a YAML directive to the
    // parser: it fails, and the text is the value, without a warning on the terminal.)
    return parseYaml(text, {logLevel: 'error'}) ?? null;
  } catch {
    return text;
  }
}

const SECTIONS = Object.keys(settingsSchema.shape);

function environmentLayer(env: Readonly<Record<string, string | undefined>>, warnings: string[]): Layer {
  const value: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  for (const [name, text] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) {
    const match = /^PIPELINE_([A-Z]+)_(.+)$/.exec(name);
    if (match === null || text === undefined) continue;
    const section = match[1]!.toLowerCase();
    // Other tools use PIPELINE_* too (CI systems); only our sections are ours, and a name one
    // typo away from ours is pointed out rather than refused.
    if (!SECTIONS.includes(section)) {
      const meant = closest(section, SECTIONS);
      if (meant !== undefined) {
        warnings.push(`Environment variable ${name} is not read: "${section}" is not a settings section. Did you mean PIPELINE_${meant.toUpperCase()}_${match[2]!}?`);
      }
      continue;
    }
    const path = [section, ...match[2]!.toLowerCase().split('__')];
    setPath(value, path, parseScalar(text));
    origins.set(path.join('.'), `environment variable ${name}`);
  }
  return namedLayer(value, origins);
}

function flagLayer(inputs: SettingsInputs, diagnostics: Diagnostic[]): Layer {
  const value: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  for (const flag of inputs.sets ?? []) {
    const match = /^([A-Za-z_][\w]*(?:\.[\w-]+)*)=(.*)$/s.exec(flag);
    if (match === null) {
      diagnostics.push({
        location: {source: `--set ${flag}`},
        message: `Expected --set PATH=VALUE, such as --set validation.tolerance.abs=0.01, got "${flag}".`,
      });
      continue;
    }
    const path = match[1]!.split('.');
    setPath(value, path, parseScalar(match[2]!));
    origins.set(path.join('.'), `--set ${flag}`);
  }
  if (inputs.outputDir !== undefined && inputs.outputDir.trim() === '') {
    // resolve('') is the current folder: an empty value is a mistake, not a choice.
    diagnostics.push({location: {source: '--output-dir'}, message: 'Expected --output-dir to name a folder, got an empty value.'});
  } else if (inputs.outputDir !== undefined) {
    setPath(value, ['output', 'base_dir'], resolve(inputs.outputDir));
    origins.set('output.base_dir', '--output-dir');
  }
  return namedLayer(value, origins);
}

function configFileLayer(path: string, diagnostics: Diagnostic[]): Layer | undefined {
  if (!existsSync(path) || !statSync(path).isFile()) {
    diagnostics.push({
      location: {source: '--config'},
      message: `The config file "${relative(process.cwd(), path) || path}" ${existsSync(path) ? 'is a folder' : 'does not exist'}. Pass the path of a JSON or YAML settings file.`,
    });
    return undefined;
  }
  const source = YamlSource.read(path);
  diagnostics.push(...source.diagnostics);
  if (source.diagnostics.length > 0) return undefined;
  if (source.value === undefined || source.value === null) return fileLayer(source, [], {});
  if (!isRecord(source.value)) {
    diagnostics.push({
      location: source.locate([]),
      message: `Expected the config file to be a mapping of settings (JSON object or YAML mapping), got ${Array.isArray(source.value) ? 'a list' : JSON.stringify(source.value)}.`,
    });
    return undefined;
  }
  return fileLayer(source, [], source.value);
}

/**
 * Loads and validates everything. A missing or unparsable pipeline file throws at once;
 * every other problem is collected in `diagnostics` for the caller to report with its own.
 */
export function loadPipeline(pipelineFile: string, inputs: SettingsInputs): LoadedPipeline {
  const diagnostics: Diagnostic[] = [];
  // What makes the settings unreliable, as opposed to one task's own problems.
  const settingsDiagnostics: Diagnostic[] = [];
  if (!existsSync(pipelineFile)) {
    throw new DiagnosticsError([
      {
        location: {source: pipelineFile},
        message: `No pipeline file "${pipelineFile}". Run the command in the project folder (where pipeline.yaml is), or pass --pipeline FILE.`,
      },
    ]);
  }
  const source = YamlSource.read(pipelineFile);
  diagnostics.push(...source.diagnostics);
  if (source.diagnostics.length > 0) throw new DiagnosticsError(diagnostics);

  const pipelineLocator: Locator = {value: (path) => source.locate(path), key: (path) => source.locateKey(path)};
  const parsed = pipelineSchema.safeParse(source.value ?? {}, {reportInput: true});
  const tasks = new Map<string, TaskDeclaration>();
  const invalidTasks = new Set<string>();
  if (parsed.success) {
    for (const [name, task] of Object.entries(parsed.data.tasks)) tasks.set(name, task);
  } else {
    const [taskIssues, otherIssues] = partition(parsed.error.issues, isTaskOwnIssue);
    diagnostics.push(...issuesToDiagnostics(taskIssues, pipelineSchema, pipelineLocator, 'key'));
    settingsDiagnostics.push(...issuesToDiagnostics(otherIssues, pipelineSchema, pipelineLocator, 'key'));
    // Keep the tasks that are valid on their own, so graph problems are found too.
    const raw = (source.value as Record<string, unknown> | undefined)?.['tasks'];
    for (const [name, task] of Object.entries(isRecord(raw) ? raw : {})) {
      const one = taskSchema.safeParse(task);
      if (one.success) tasks.set(name, one.data);
      else invalidTasks.add(name);
    }
  }
  const pipelineSettings = isRecord((source.value as Record<string, unknown> | undefined)?.['settings'])
    ? ((source.value as Record<string, unknown>)['settings'] as Record<string, unknown>)
    : {};

  // Lowest priority first.
  const warnings: string[] = [];
  const layers: Layer[] = [fileLayer(source, ['settings'], pipelineSettings), environmentLayer(inputs.env ?? {}, warnings)];
  if (inputs.configFile !== undefined) {
    const layer = configFileLayer(inputs.configFile, settingsDiagnostics);
    if (layer !== undefined) layers.push(layer);
  }
  layers.push(flagLayer(inputs, settingsDiagnostics));

  const merged = layers.reduce<Record<string, unknown>>((value, layer) => deepMerge(value, layer.value), {});
  const settings = settingsSchema.safeParse(merged, {reportInput: true});
  if (!settings.success) {
    // Each problem is reported where the winning value was written: mappings merge key by
    // key, but a list or a scalar replaces what lower layers had, so a problem inside a list
    // (a rule) belongs to the layer that wrote the list, whatever the layers below hold.
    const owner = (path: ValuePath): Layer => {
      let found = layers[0]!;
      for (let length = 1; length <= path.length; length++) {
        const prefix = path.slice(0, length);
        const layer = [...layers].reverse().find((candidate) => candidate.has(prefix));
        if (layer === undefined) break;
        found = layer;
        if (!isRecord(getPath(layer.value, prefix))) break;
      }
      return found;
    };
    const locator: Locator = {
      value: (path) => owner(path).locate.value(path),
      key: (path) => owner(path).locate.key(path),
    };
    settingsDiagnostics.push(...issuesToDiagnostics(settings.error.issues, settingsSchema, locator, 'setting'));
  }
  diagnostics.push(...settingsDiagnostics);
  return {
    file: pipelineFile,
    source,
    fromMemo: false,
    settings: settings.success ? settings.data : (deepMerge(settingsSchema.parse({}), merged) as Settings),
    tasks,
    invalidTasks,
    diagnostics,
    settingsDiagnostics,
    warnings,
  };
}

/**
 * Whether a problem of pipeline.yaml is one task's own, leaving the settings reliable. Not so
 * when it names `settings` or `cache` (settings indented under `tasks` by mistake): the cache
 * commands would otherwise act on the default cache folder rather than the one meant.
 */
function isTaskOwnIssue(issue: {path: readonly PropertyKey[]; keys?: readonly string[]}): boolean {
  const names = [...issue.path.slice(1), ...(issue.keys ?? [])];
  return issue.path[0] === 'tasks' && !names.some((name) => name === 'settings' || name === 'cache');
}

function partition<T>(items: readonly T[], test: (item: T) => boolean): [T[], T[]] {
  return [items.filter(test), items.filter((item) => !test(item))];
}
