/**
 * Turns a loaded pipeline.yaml into a checked task graph: every dependency exists, no
 * cycles, modules found, references resolvable, outputs unique. All problems at once.
 */
import {isAbsolute, normalize} from 'node:path';
import {describe, DiagnosticsError} from './config/diagnostics.js';
import type {Diagnostic} from './config/diagnostics.js';
import type {LoadedPipeline} from './config/load.js';
import type {Settings, TaskDeclaration} from './config/schema.js';
import {findCycles, topologicalOrder} from './graph.js';
import type {Edge} from './graph.js';
import {references, strings} from './interpolate.js';
import type {TaskDefinition} from './task-api.js';
import {availableTaskModules, resolveTaskModule} from './task-modules.js';
import {getPath} from './util/json-path.js';
import {didYouMean} from './util/suggest.js';

/** A task's name; never mixed up with other strings. */
export type TaskName = string & {readonly __brand: 'TaskName'};

/** One dependency of a task. */
export interface Dependency {
  task: TaskName;
  /** An optional dependency may be skipped (e.g. `--skip-analysis`) without skipping this task. */
  optional: boolean;
}

/** A checked task. */
export interface TaskNode {
  name: TaskName;
  declaration: TaskDeclaration;
  deps: Dependency[];
  /** The module file for `run:` tasks. */
  module?: string;
  /** The definition of a task added in code (`ValidationRunner.addTask`). */
  definition?: TaskDefinition;
}

/** The checked pipeline: tasks in dependency order and the resolved settings. */
export interface Pipeline {
  file: string;
  projectDir: string;
  settings: Settings;
  tasks: ReadonlyMap<TaskName, TaskNode>;
  /** Every task, dependencies first. */
  order: TaskName[];
  /** Said on the terminal when a run starts (see LoadedPipeline). */
  warnings: readonly string[];
}

/** A task added in code rather than in pipeline.yaml. */
export interface CodeTask {
  declaration: TaskDeclaration;
  definition: TaskDefinition;
}

/** Files the runner itself writes into the output folder. */
const RESERVED_OUTPUTS = ['summary.json', 'errors.json', '.outputs.json'];

/** Whether `path` names a setting (a key inside a list is not one). */
export function settingExists(settings: Settings, path: readonly string[]): boolean {
  let node: unknown = settings;
  for (const segment of path) {
    if (node === null || typeof node !== 'object' || Array.isArray(node) || !(segment in node)) return false;
    node = (node as Record<string, unknown>)[segment];
  }
  return true;
}

function settingPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([key, item]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    return [path, ...settingPaths(item, path)];
  });
}

export function analyze(loaded: LoadedPipeline, projectDir: string, codeTasks: ReadonlyMap<string, CodeTask> = new Map()): Pipeline {
  const diagnostics: Diagnostic[] = [...loaded.diagnostics];
  const source = loaded.source;
  const at = (task: string, ...path: (string | number)[]) => source.locate(['tasks', task, ...path]);
  const declarations = new Map<string, {declaration: TaskDeclaration; definition?: TaskDefinition}>();
  for (const [name, declaration] of loaded.tasks) declarations.set(name, {declaration});
  for (const [name, task] of codeTasks) declarations.set(name, task);
  // Suggestions for a misspelt dependency include tasks declared with problems of their own.
  const names = [...declarations.keys(), ...loaded.invalidTasks];
  const knownSettings = settingPaths(loaded.settings);
  // The log is written into the output folder beside the tasks' outputs (unless given a path elsewhere).
  const logFile = isAbsolute(loaded.settings.logging.file) ? undefined : normalize(loaded.settings.logging.file);
  const tasks = new Map<TaskName, TaskNode>();
  const edges: Edge<{index: number}>[] = [];

  for (const [name, {declaration, definition}] of declarations) {
    const node: TaskNode = {name: name as TaskName, declaration, deps: []};
    if (definition !== undefined) {
      node.definition = definition;
    } else if (declaration.run !== undefined && declaration.shell !== undefined) {
      diagnostics.push({
        location: at(name, 'shell'),
        message: `Task "${name}" has both "run" and "shell"; keep one: "run" names a module in tasks/, "shell" is a command.`,
      });
    } else if (declaration.run !== undefined) {
      const module = resolveTaskModule(declaration.run, projectDir);
      if (module === undefined) {
        diagnostics.push({
          location: at(name, 'run'),
          message:
            `Task "${name}" runs "${declaration.run}", but there is no module tasks/${declaration.run}.ts (nor .mts, .js or .mjs; looked in the project's tasks/ and the built-in tasks).` +
            // A command line given to "run" is the likely slip.
            (/\s/.test(declaration.run.trim()) ? ' To run a shell command, write it under "shell" instead of "run".' : didYouMean(declaration.run, availableTaskModules(projectDir))),
        });
      } else {
        node.module = module;
      }
    } else if (declaration.shell === undefined) {
      diagnostics.push({
        location: source.locateKey(['tasks', name]),
        message: `Task "${name}" does nothing: add "run" (a module in tasks/) or "shell" (a command).`,
      });
    }

    for (const [index, dep] of declaration.deps.entries()) {
      const target = typeof dep === 'string' ? dep : dep.task;
      const optional = typeof dep === 'string' ? false : dep.optional;
      if (loaded.invalidTasks.has(target)) continue;
      if (!declarations.has(target)) {
        diagnostics.push({
          location: at(name, 'deps', index),
          message: `Expected "deps" of task "${name}" to name a task, got "${target}".${didYouMean(target, names)}`,
        });
        continue;
      }
      node.deps.push({task: target as TaskName, optional});
      edges.push({from: name, to: target, data: {index}});
    }

    for (const [field, paths] of [['inputs', declaration.inputs.settings], ['tuning', declaration.tuning]] as const) {
      for (const [index, path] of paths.entries()) {
        if (!settingExists(loaded.settings, path.split('.'))) {
          diagnostics.push({
            location: field === 'inputs' ? at(name, 'inputs', 'settings', index) : at(name, 'tuning', index),
            message: `Task "${name}" declares setting "${path}", which does not exist.${didYouMean(path, knownSettings)}`,
          });
        }
      }
    }

    const outputs = new Set<string>();
    for (const [index, output] of declaration.outputs.entries()) {
      if (outputs.has(output)) {
        diagnostics.push({location: at(name, 'outputs', index), message: `Task "${name}" declares output "${output}" twice.`});
      }
      outputs.add(output);
      if (!declaration.intermediate && RESERVED_OUTPUTS.includes(output)) {
        diagnostics.push({
          location: at(name, 'outputs', index),
          message: `Output "${output}" of task "${name}" is written by the runner itself; choose another name.`,
        });
      } else if (!declaration.intermediate && output === logFile) {
        diagnostics.push({
          location: at(name, 'outputs', index),
          message: `Output "${output}" of task "${name}" is the run's log file (logging.file); choose another name, or set logging.file to another.`,
        });
      }
    }
    tasks.set(node.name, node);
  }

  // Every reference must resolve now, not halfway through a run.
  for (const [name, {declaration}] of declarations) {
    const checks: [string, (string | number)[]][] = [...strings(declaration.with, ['with'])];
    if (declaration.shell !== undefined) checks.push([declaration.shell, ['shell']]);
    for (const [index, pattern] of declaration.inputs.files.entries()) checks.push([pattern, ['inputs', 'files', index]]);
    for (const [text, path] of checks) {
      for (const {text: written, reference} of references(text)) {
        const location = at(name, ...path);
        const value = typeof reference !== 'string' && reference.kind === 'setting' ? getPath(loaded.settings, reference.path) : undefined;
        if (typeof reference === 'string') {
          diagnostics.push({location, message: `Task "${name}": ${reference}`});
        } else if (reference.kind === 'setting' && !settingExists(loaded.settings, reference.path)) {
          diagnostics.push({
            location,
            message: `Task "${name}" refers to ${written}, but setting "${reference.path.join('.')}" does not exist.${didYouMean(reference.path.join('.'), knownSettings)}`,
          });
        } else if (reference.kind === 'setting' && path[0] === 'inputs' && !['string', 'number'].includes(typeof value)) {
          // A file name is made of text: null would read "null", a list "a,b".
          diagnostics.push({location, message: `Task "${name}" refers to ${written} in a file name, but it is ${describe(value)}; a file name needs text or a number.`});
        } else if ((reference.kind === 'input' || reference.kind === 'output') && path[0] !== 'shell') {
          diagnostics.push({location, message: `Task "${name}": ${written} can only be used in "shell"; a module gets its paths from ctx.input() and ctx.output().`});
        } else if (reference.kind === 'input') {
          const needs = declaration.deps.some((dep) => (typeof dep === 'string' ? dep : dep.task) === reference.task);
          const upstream = declarations.get(reference.task)?.declaration;
          if (!needs || upstream === undefined) {
            diagnostics.push({location, message: `Task "${name}" refers to ${written}, but "${reference.task}" is not in its "deps". Add it to "deps".`});
          } else if (!upstream.outputs.includes(reference.file)) {
            diagnostics.push({
              location,
              message: `Task "${name}" refers to ${written}, but task "${reference.task}" has no output "${reference.file}".${didYouMean(reference.file, upstream.outputs)}`,
            });
          }
        } else if (reference.kind === 'output' && !declaration.outputs.includes(reference.file)) {
          diagnostics.push({
            location,
            message: `Task "${name}" refers to ${written}, but "${reference.file}" is not in its "outputs". Declare it in "outputs".`,
          });
        }
      }
    }
  }

  // Intermediates are published as <task>.<file> when output.save_intermediates is set.
  const saveIntermediates = getPath(loaded.settings, ['output', 'save_intermediates']) === true;
  const published = new Map<string, {task: string; output: string; intermediate: boolean}>();
  const described = (task: string, output: string, intermediate: boolean) =>
    intermediate ? `Intermediate output "${output}" of task "${task}" (published as "${task}.${output}" by output.save_intermediates)` : `Output "${output}" of task "${task}"`;
  for (const [name, {declaration}] of declarations) {
    if (declaration.intermediate && !saveIntermediates) continue;
    for (const [index, output] of declaration.outputs.entries()) {
      const file = declaration.intermediate ? `${name}.${output}` : output;
      const owner = published.get(file);
      if (owner !== undefined && owner.task !== name) {
        const first = source.locate(['tasks', owner.task, 'outputs']);
        const other = owner.intermediate ? `the intermediate output "${owner.output}" of task "${owner.task}", published under that name by output.save_intermediates` : `an output of task "${owner.task}"`;
        diagnostics.push({
          location: at(name, 'outputs', index),
          message: `${described(name, output, declaration.intermediate)} is also ${other} (${first.source}:${first.line}:${first.column}); both would be written to the same folder. Rename one${declaration.intermediate || owner.intermediate ? '' : ', or mark the task "intermediate: true"'}.`,
        });
      } else {
        published.set(file, {task: name, output, intermediate: declaration.intermediate});
      }
    }
  }

  for (const cycle of findCycles(names, edges)) {
    const description = cycle
      .map((edge) => {
        const where = at(edge.from, 'deps', edge.data.index);
        return `"${edge.from}" needs "${edge.to}" at ${where.source}:${where.line}:${where.column}`;
      })
      .join('; ');
    const path = [cycle[0]!.from, ...cycle.map((edge) => edge.to)].join(' -> ');
    diagnostics.push({
      location: at(cycle[0]!.from, 'deps', cycle[0]!.data.index),
      message: `Dependency cycle: ${path} (${description}). Remove one of these deps.`,
    });
  }

  if (diagnostics.length > 0) throw new DiagnosticsError(diagnostics);
  const order = topologicalOrder(names, (name) => tasks.get(name as TaskName)?.deps.map((dep) => dep.task) ?? []) as TaskName[];
  return {file: loaded.file, projectDir, settings: loaded.settings, tasks, order, warnings: loaded.warnings};
}
