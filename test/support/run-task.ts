/**
 * Runs one task module directly, without the runner: for focused tests of a task's logic,
 * and for the benchmarks of one task. End-to-end behaviour (caching, CLI, exit codes) is
 * tested through the real CLI instead.
 */
import {mkdirSync} from 'node:fs';
import {join, resolve} from 'node:path';
import {DuckDBEngine} from '../../src/engines/duckdb.js';
import {digestFile} from '../../src/util/hash.js';
import type {Json, Progress, TaskContext, TaskDefinition, TaskResult} from '../../src/task-api.js';
import {completeSettings} from './settings.js';
import {temporaryFolder} from './temp.js';

export interface DirectRun {
  result: TaskResult | void;
  outputDir: string;
  progress: Progress[];
  logs: string[];
  /** Wall time of the task's run alone. */
  taskMs: number;
}

export async function runTaskDirectly(
  task: TaskDefinition,
  options: {
    name?: string;
    args?: Record<string, Json>;
    settings?: Record<string, Json>;
    inputs?: Record<string, Record<string, string>>;
    upstream?: TaskContext['upstream'];
    outputs: string[];
    projectDir?: string;
    /**
     * The DuckDB engine the task gets (2GB by default). `started`: started before the task
     * runs, as a run's engine shared by its tasks is, so `taskMs` leaves its start-up out.
     */
    engine?: {memoryLimit?: string; threads?: number; started?: boolean};
    /** Aborts the task's signal, as an interruption of the run would. */
    signal?: AbortSignal;
    /** What the task's probe returned for the fingerprint, as the runner hands it (null by default). */
    probe?: Json;
  },
): Promise<DirectRun> {
  const root = temporaryFolder('task-');
  const outputDir = join(root, 'out');
  const tmpDir = join(root, 'tmp');
  mkdirSync(outputDir);
  mkdirSync(tmpDir);
  // Validated and completed with the defaults first, as the runner does.
  const settings = completeSettings(options.settings);
  const engine = new DuckDBEngine({
    memoryLimit: options.engine?.memoryLimit ?? '2GB',
    tempDirectory: join(root, 'spill'),
    ...(options.engine?.threads === undefined ? {} : {threads: options.engine.threads}),
  });
  const progress: Progress[] = [];
  const logs: string[] = [];
  const controller = new AbortController();
  options.signal?.addEventListener('abort', () => controller.abort(options.signal!.reason), {once: true});
  const inputs = options.inputs ?? {};
  const ctx: TaskContext = {
    name: options.name ?? 'task',
    args: options.args ?? {},
    settings,
    inputs,
    upstream: options.upstream ?? {},
    files: {},
    outputDir,
    output(name) {
      if (!options.outputs.includes(name)) throw new Error(`undeclared output ${name}`);
      return join(outputDir, name);
    },
    input(taskName, file) {
      const path = inputs[taskName]?.[file];
      if (path === undefined) throw new Error(`no input ${taskName}/${file}`);
      return path;
    },
    projectDir: options.projectDir ?? root,
    tmpDir,
    probe: options.probe ?? null,
    digestFile: (path) => digestFile(resolve(options.projectDir ?? root, path)),
    log: {
      debug: (m) => logs.push(`DEBUG ${m}`),
      info: (m) => logs.push(`INFO ${m}`),
      warn: (m) => logs.push(`WARNING ${m}`),
      error: (m) => logs.push(`ERROR ${m}`),
    },
    warn: (m) => logs.push(`WARNING ${m}`),
    progress: (p) => progress.push(p),
    signal: controller.signal,
    duckdb: () => engine.connect(controller.signal),
  };
  try {
    if (options.engine?.started) await engine.connect();
    const started = performance.now();
    const result = await task.run(ctx);
    return {result, outputDir, progress, logs, taskMs: performance.now() - started};
  } finally {
    engine.close();
  }
}
