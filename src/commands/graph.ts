/** `graph`: the task graph as Mermaid or Graphviz dot, each task marked cached or stale. */
import {ConfigurationError} from '../errors.js';
import type {Outcome} from '../outcome.js';
import {checkVersion, ValidationRunner} from '../runner.js';

interface GraphFlags {
  old?: string;
  'old-version'?: string;
  new?: string;
  'new-version'?: string;
  format?: string;
  config?: string;
  pipeline?: string;
  set?: string[];
}

const MERMAID_WORDS = new Set(['end', 'graph', 'flowchart', 'subgraph', 'direction', 'style', 'class', 'classDef', 'click', 'call', 'href', 'linkStyle', 'default']);

/** The graph text; `states` maps a task to "cached" / "stale" / ... when versions were given. */
export function renderGraph(
  tasks: {name: string; deps: {task: string; optional: boolean}[]}[],
  format: 'mermaid' | 'dot',
  states: ReadonlyMap<string, string>,
): string {
  // Mermaid ids are letters, digits and _: names that read alike there (a-b, a_b) get a
  // suffix, and so do Mermaid's own words (a node named end breaks the whole chart).
  const ids = new Map<string, string>();
  for (const {name} of tasks) {
    const plain = name.replace(/[^A-Za-z0-9_]/g, '_');
    const base = MERMAID_WORDS.has(plain) ? `${plain}_task` : plain;
    let candidate = base;
    for (let n = 2; [...ids.values()].includes(candidate); n++) candidate = `${base}_${n}`;
    ids.set(name, candidate);
  }
  const id = (name: string) => ids.get(name) ?? name.replace(/[^A-Za-z0-9_]/g, '_');
  const label = (name: string) => (states.has(name) ? `${name} (${states.get(name)})` : name);
  const lines: string[] = [];
  if (format === 'mermaid') {
    lines.push('graph TD');
    for (const task of tasks) lines.push(`  ${id(task.name)}["${label(task.name)}"]`);
    for (const task of tasks) {
      for (const dep of task.deps) lines.push(`  ${id(dep.task)} ${dep.optional ? '-.->' : '-->'} ${id(task.name)}`);
    }
    for (const [state, style] of [['cached', 'fill:#e3f2e1,stroke:#2e7d32'], ['stale', 'fill:#fff3e0,stroke:#ef6c00']] as const) {
      const members = tasks.filter((task) => states.get(task.name) === state).map((task) => id(task.name));
      if (members.length > 0) lines.push(`  classDef ${state} ${style}`, `  class ${members.join(',')} ${state}`);
    }
  } else {
    lines.push('digraph pipeline {', '  rankdir=TB;', '  node [shape=box];');
    for (const task of tasks) {
      const state = states.get(task.name);
      const color = state === 'cached' ? ', style=filled, fillcolor="#e3f2e1"' : state === 'stale' ? ', style=filled, fillcolor="#fff3e0"' : '';
      lines.push(`  "${task.name}" [label="${label(task.name)}"${color}];`);
    }
    for (const task of tasks) {
      for (const dep of task.deps) lines.push(`  "${dep.task}" -> "${task.name}"${dep.optional ? ' [style=dashed]' : ''};`);
    }
    lines.push('}');
  }
  return lines.join('\n');
}

function stateOf(outcome: Outcome): string {
  return outcome.kind === 'cached' ? 'cached' : outcome.kind === 'skipped' ? 'skipped' : outcome.kind === 'failed' ? 'error' : 'stale';
}

export async function graphCommand(flags: GraphFlags): Promise<number> {
  const format = flags.format ?? 'mermaid';
  if (format !== 'mermaid' && format !== 'dot') {
    throw new ConfigurationError(`Expected --format mermaid or --format dot, got "${format}".`);
  }
  const runner = new ValidationRunner(flags.config, flags.pipeline === undefined ? {} : {pipelineFile: flags.pipeline});
  const pipeline = await runner.load(flags.set === undefined ? {} : {set: flags.set});
  const oldVersion = flags.old ?? flags['old-version'];
  const newVersion = flags.new ?? flags['new-version'];
  const states = new Map<string, string>();
  if (oldVersion !== undefined || newVersion !== undefined) {
    const outcomes: Outcome[] = [];
    await runner.runWorkflow(checkVersion('--old', oldVersion), checkVersion('--new', newVersion), {
      dryRun: true,
      ...(flags.set === undefined ? {} : {set: flags.set}),
      hooks: {finished: (outcome) => outcomes.push(outcome)},
    });
    for (const outcome of outcomes) states.set(outcome.task, stateOf(outcome));
  }
  const tasks = pipeline.order.map((name) => ({name, deps: pipeline.tasks.get(name)!.deps}));
  process.stdout.write(renderGraph(tasks, format, states) + '\n');
  return 0;
}
