/**
 * The library entry point (the ValidationRunner of the original specification): loads the
 * configuration, plans, executes, publishes the outputs and returns the run's summary.
 * The CLI and the HTTP server are thin layers over it.
 */
import {rm} from 'node:fs/promises';
import {availableParallelism} from 'node:os';
import {dirname, isAbsolute, join, resolve} from 'node:path';
import {analyze} from './analyzer.js';
import type {CodeTask, Pipeline, TaskName} from './analyzer.js';
import {CacheStore, DamagedOutputError, SPILL} from './cache/store.js';
import {KeyValueMemo, StatMemo} from './cache/stat-memo.js';
import {DiagnosticsError} from './config/diagnostics.js';
import type {SettingsInputs} from './config/load.js';
import {loadWithMemo} from './config/memo.js';
import type {Settings, TaskDeclaration} from './config/schema.js';
import {DuckDBEngine} from './engines/duckdb.js';
import {ConfigurationError, DISK_FULL_HINT, ExecutionError, InterruptedError, isDiskFull, ValidationError} from './errors.js';
import {Executor} from './executor.js';
import {closure} from './graph.js';
import {acquireLock} from './lock.js';
import {combineHooks} from './outcome.js';
import type {Outcome, RunHooks} from './outcome.js';
import {OutputFolder} from './output.js';
import {logFileReporter} from './reporters/log-file.js';
import {summarize} from './summary.js';
import type {RunSummary} from './summary.js';
import type {TaskDefinition} from './task-api.js';
import {redact} from './util/redact.js';
import {formatBytes, parseBytes} from './util/units.js';
import {didYouMean} from './util/suggest.js';
import {VERSION_PATTERN, VERSION_RULE} from './util/version.js';

/** Options of one run; every field is optional. */
export interface RunOptions {
  /** Settings layers above pipeline.yaml: `--config`, `--set`, `--output-dir`, environment. */
  config?: string;
  set?: readonly string[];
  outputDir?: string;
  /** Run tasks even when cached. */
  force?: boolean;
  /** Plan only; nothing runs and nothing is written. */
  dryRun?: boolean;
  /** Run only these tasks and what they need. */
  only?: readonly string[];
  /** Leave out tasks with these names or tags (`--skip-analysis` is `skip: ['analysis']`). */
  skip?: readonly string[];
  /** Reuse the latest cached results of tasks with these names or tags, without probing their source. */
  reuse?: readonly string[];
  /** Wait for another run holding the cache (default), or fail at once. */
  wait?: boolean;
  /** Reporters (progress display, custom hooks). */
  hooks?: RunHooks;
  /** Aborting it interrupts the run (Ctrl-C). */
  signal?: AbortSignal;
}

/** Construction options of a runner. */
export interface RunnerOptions {
  /** The project folder (where pipeline.yaml is); the current directory by default. */
  projectDir?: string;
  /** The pipeline file; `pipeline.yaml` in the project folder by default. */
  pipelineFile?: string;
  /** Environment for `PIPELINE_*` settings; `process.env` by default. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** A task added in code: its declaration (as in pipeline.yaml, without `run`) and its work. */
export type CodeTaskDefinition = Partial<Omit<TaskDeclaration, 'run' | 'shell'>> & {
  run: TaskDefinition['run'];
  probe?: TaskDefinition['probe'];
};

/** How long a run waits, at its end, for task code given up on (interrupted, timed out) to return before closing the engine. */
const ENGINE_SETTLE_MS = 10_000;

/** Refuses a version that is empty or could be anything but a version (quotes, spaces, SQL). */
export function checkVersion(flag: string, version: string | undefined): string {
  if (version === undefined || version.trim() === '') {
    throw new ConfigurationError(`Missing ${flag}: pass the version to compare, such as ${flag} 0.3615.`);
  }
  if (!VERSION_PATTERN.test(version)) {
    throw new ConfigurationError(`Invalid ${flag} ${JSON.stringify(version)}: ${VERSION_RULE}.`);
  }
  return version;
}

export class ValidationRunner {
  readonly projectDir: string;
  readonly pipelineFile: string;
  readonly #configPath: string | undefined;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #codeTasks = new Map<string, CodeTaskDefinition>();

  /** `configPath` is a settings file (JSON or YAML) layered over pipeline.yaml, as `--config`. */
  constructor(configPath?: string, options: RunnerOptions = {}) {
    this.projectDir = resolve(options.projectDir ?? process.cwd());
    this.pipelineFile = resolve(this.projectDir, options.pipelineFile ?? 'pipeline.yaml');
    this.#configPath = configPath;
    this.#env = options.env ?? process.env;
  }

  /** Adds a step in code; it is fingerprinted by its function's source and cached like any task. */
  addTask(name: string, definition: CodeTaskDefinition): this {
    this.#codeTasks.set(name, definition);
    return this;
  }

  /** Loads and checks pipeline.yaml and every settings layer; throws DiagnosticsError listing all problems. */
  async load(options: Pick<RunOptions, 'config' | 'set' | 'outputDir'> = {}): Promise<Pipeline> {
    const inputs = this.#inputs(options);
    const projectDir = dirname(this.pipelineFile);
    const codeTasks = await this.#checkedCodeTasks();
    const loaded = await loadWithMemo(this.pipelineFile, inputs, join(projectDir, '.cache', 'config'));
    try {
      return analyze(loaded, projectDir, codeTasks);
    } catch (error) {
      // The memo has no positions: load for real to point at the problem.
      if (!(error instanceof DiagnosticsError) || !loaded.fromMemo) throw error;
      const {loadPipeline} = await import('./config/load.js');
      return analyze(loadPipeline(this.pipelineFile, inputs), projectDir, codeTasks);
    }
  }

  /**
   * The settings alone, for commands that look after the cache: a task that could not run (its
   * module missing, a dependency misspelt) does not stop them; a problem in the settings does.
   */
  async loadSettings(options: Pick<RunOptions, 'config' | 'set'> = {}): Promise<{projectDir: string; settings: Settings; warnings: readonly string[]}> {
    const inputs = this.#inputs(options);
    const projectDir = dirname(this.pipelineFile);
    let loaded = await loadWithMemo(this.pipelineFile, inputs, join(projectDir, '.cache', 'config'));
    if (loaded.settingsDiagnostics.length > 0 && loaded.fromMemo) {
      const {loadPipeline} = await import('./config/load.js');
      loaded = loadPipeline(this.pipelineFile, inputs);
    }
    if (loaded.settingsDiagnostics.length > 0) throw new DiagnosticsError(loaded.settingsDiagnostics);
    return {projectDir, settings: loaded.settings, warnings: loaded.warnings};
  }

  #inputs(options: Pick<RunOptions, 'config' | 'set' | 'outputDir'>): SettingsInputs {
    const inputs: SettingsInputs = {env: this.#env};
    const config = options.config ?? this.#configPath;
    if (config !== undefined) inputs.configFile = resolve(config);
    if (options.set !== undefined) inputs.sets = options.set;
    if (options.outputDir !== undefined) inputs.outputDir = options.outputDir;
    return inputs;
  }

  async #checkedCodeTasks(): Promise<Map<string, CodeTask>> {
    const tasks = new Map<string, CodeTask>();
    if (this.#codeTasks.size === 0) return tasks;
    const {taskSchema} = await import('./config/schema.js');
    for (const [name, {run, probe, ...declaration}] of this.#codeTasks) {
      const parsed = taskSchema.safeParse(declaration);
      if (!parsed.success) {
        throw new ConfigurationError(`addTask("${name}"): ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
      }
      tasks.set(name, {declaration: parsed.data, definition: probe === undefined ? {run} : {run, probe}});
    }
    return tasks;
  }

  /** Runs the workflow for two versions and returns its summary (also written as summary.json). */
  async runWorkflow(oldVersion: string, newVersion: string, options: RunOptions = {}): Promise<RunSummary> {
    const versions = {old: checkVersion('--old', oldVersion), new: checkVersion('--new', newVersion)};
    const pipeline = await this.load(options);
    const settings = pipeline.settings;
    // --skip-analysis and --skip-extraction name tags: one no task carries would do nothing, unseen.
    const unmatched: string[] = [];
    const select = (flag: string, names: readonly string[] | undefined): Set<TaskName> => {
      const chosen = new Set<TaskName>();
      for (const name of names ?? []) {
        const matches = pipeline.order.filter((task) => task === name || pipeline.tasks.get(task)!.declaration.tags.includes(name));
        if (matches.length === 0 && flag !== '--only') {
          unmatched.push(`--skip-${name} leaves out nothing: no task is tagged ${name} (add \`tags: [${name}]\` to the tasks it should cover in pipeline.yaml).`);
        }
        if (matches.length === 0 && flag === '--only') {
          const tags = [...new Set(pipeline.order.flatMap((task) => pipeline.tasks.get(task)!.declaration.tags))].sort();
          throw new ConfigurationError(`${flag} ${name}: no task or tag of that name.${didYouMean(name, [...pipeline.order, ...tags])}`, {
            hint: `The tasks are ${pipeline.order.join(', ')}${tags.length > 0 ? `; the tags ${tags.join(', ')}` : ''}.`,
          });
        }
        for (const match of matches) chosen.add(match);
      }
      return chosen;
    };
    const only = options.only === undefined || options.only.length === 0 ? undefined : select('--only', options.only);
    const selected = only === undefined ? undefined : (closure(only, (task) => pipeline.tasks.get(task as TaskName)!.deps.map((dep) => dep.task)) as Set<TaskName>);
    const skipped = select('--skip', options.skip);
    const reused = select('--reuse', options.reuse);
    if (only !== undefined) {
      // A task asked for that is left out, or needs one that is, would not run, yet the run
      // would pass and publish: a gate passing on nothing.
      const needs = (task: TaskName) => closure([task], (t) => pipeline.tasks.get(t as TaskName)!.deps.filter((dep) => !dep.optional).map((dep) => dep.task)) as Set<TaskName>;
      const blocked = [...only].flatMap((task) => {
        if (skipped.has(task)) return [task];
        const missing = [...needs(task)].filter((t) => skipped.has(t));
        return missing.length === 0 ? [] : [`${task} (it needs ${missing.join(', ')})`];
      });
      if (blocked.length > 0) {
        throw new ConfigurationError(`--only asks for ${blocked.join(', ')}, which ${(options.skip ?? []).map((name) => `--skip-${name}`).join(' and ')} leaves out.`, {
          hint: 'Drop one of the two.',
        });
      }
    }

    const cacheDir = resolve(pipeline.projectDir, settings.cache.dir);
    const baseDir = resolve(pipeline.projectDir, settings.output.base_dir);
    const folder = new OutputFolder(join(baseDir, `${versions.old}_vs_${versions.new}`));
    const signal = options.signal ?? new AbortController().signal;
    const userHooks = options.hooks ?? {};
    const startedAt = new Date();

    const lock = options.dryRun
      ? undefined
      : await acquireLock(join(cacheDir, 'lock'), {wait: options.wait ?? true, signal, notify: (message) => userHooks.warning?.(message)}).catch(
          (error: unknown) => {
            // Taking the lock is the run's first write to the cache: where it fails, say so plainly.
            if (error instanceof ValidationError) throw error;
            throw new ConfigurationError(`Cannot write to the cache folder ${cacheDir}: ${(error as Error).message.replace(/^[A-Z]+: /, '')}`, {
              hint: 'Make the folder writable, or point cache.dir at a writable folder (e.g. --set cache.dir=/tmp/pipeline-cache).',
            });
          },
        );
    const cache = new CacheStore(cacheDir, {readOnly: options.dryRun ?? false});
    // Holding the lock, no other run spills or stores outputs: what is there was left by a run
    // that was killed, and goes.
    if (lock !== undefined) await cache.clearLeftovers();
    const spill = join(cacheDir, SPILL, `duckdb-${process.pid}`);
    const engine = new DuckDBEngine({memoryLimit: duckdbMemory(settings), tempDirectory: spill});
    let executor: Executor | undefined;
    const fileDigests = new StatMemo(join(cacheDir, 'file-digests.json'));
    const moduleFacts = new KeyValueMemo(join(cacheDir, 'module-facts.json'));
    const moduleFiles = new StatMemo(join(cacheDir, 'module-files.json'));
    // Task code may leave a promise unawaited or throw in a callback: such an error fails the
    // task it came from (exit 3, errors.json) rather than the process (or a server's every
    // run); from a task that has finished, it is said as a warning.
    let strayHooks: Required<RunHooks> | undefined;
    const stray = (error: unknown) => {
      const blamed = executor?.failRunning(error);
      const message = error instanceof Error ? error.message : String(error);
      if (blamed?.finished !== undefined) strayHooks?.warning(`An error escaped the code of task ${blamed.finished} after it finished: ${message}`);
      else if ((blamed?.failed.length ?? 0) === 0) strayHooks?.warning(`An error escaped task code after its task finished: ${message}`);
    };
    try {
      let logFile: string | undefined;
      const reporters: RunHooks[] = [userHooks];
      if (!options.dryRun) {
        try {
          await folder.prepare();
        } catch (error) {
          throw new ConfigurationError(`Cannot write to the output folder ${baseDir}: ${(error as Error).message}`, {
            hint: 'Choose a writable folder with --output-dir, or fix its permissions.',
          });
        }
        logFile = isAbsolute(settings.logging.file) ? settings.logging.file : join(folder.staging, settings.logging.file);
        try {
          reporters.push(logFileReporter(logFile, settings.logging));
        } catch (error) {
          throw new ConfigurationError(`Cannot write the log file ${settings.logging.file} (logging.file): ${(error as Error).message}`, {
            hint: 'Set logging.file to a file name (written in the output folder) or to a writable path.',
          });
        }
      }
      const hooks = combineHooks(...reporters);
      hooks.log('INFO', `run ${versions.old} vs ${versions.new} in ${pipeline.projectDir} (pid ${process.pid})`);
      for (const warning of [...pipeline.warnings, ...unmatched]) hooks.warning(warning);
      if (versions.old === versions.new) {
        hooks.warning(`--old and --new are the same version (${versions.old}): the comparison can only find no change. Pass the two versions to compare.`);
      }
      executor = new Executor(
        pipeline,
        {
          versions,
          force: options.force ?? false,
          ...(selected === undefined ? {} : {selected}),
          skip: skipped,
          reuse: reused,
          dryRun: options.dryRun ?? false,
          signal,
          concurrency: settings.validation.parallel_processing ? Math.max(2, availableParallelism()) : 1,
          timeoutMs: settings.performance.timeout * 1000,
          retryCount: settings.performance.retry_count,
          retryDelayMs: settings.performance.retry_delay * 1000,
        },
        {cache, fileDigests, moduleFacts, moduleFiles, workDir: join(cacheDir, 'tmp'), duckdb: (taskSignal) => engine.connect(taskSignal), hooks},
      );
      // DuckDB is held to performance.max_memory by its own limit; the JavaScript heap is
      // watched here, since a task that loads rows into JavaScript would escape that limit.
      const memoryLimit = parseBytes(settings.performance.max_memory, 'performance.max_memory');
      const heapWatch = setInterval(() => {
        const heap = process.memoryUsage().heapUsed;
        if (heap > memoryLimit) {
          hooks.warning(`The JavaScript heap uses ${formatBytes(heap)}, more than performance.max_memory (${settings.performance.max_memory}).`);
          clearInterval(heapWatch);
        }
      }, 1000);
      heapWatch.unref();
      strayHooks = hooks;
      process.on('unhandledRejection', stray);
      process.on('uncaughtException', stray);
      const outcomes = await executor.run().finally(() => clearInterval(heapWatch));
      if (!options.dryRun) {
        await Promise.all([cache.flush(), fileDigests.flush(), moduleFacts.flush(), moduleFiles.flush()]);
        await cache.recordRun(outcomes.flatMap((outcome) => (outcome.kind === 'ran' || outcome.kind === 'cached' ? [outcome.entry.key] : [])));
        if (outcomes.some((outcome) => outcome.kind === 'ran')) {
          const size = await cache.size();
          const limit = parseBytes(settings.cache.warn_size, 'cache.warn_size');
          if (size > limit) {
            hooks.warning(`The cache holds ${formatBytes(size)}, more than cache.warn_size (${settings.cache.warn_size}). Run \`npm run pipeline -- cache gc --max-size ${settings.cache.warn_size}\` to trim it.`);
          }
        }
      }
      if (signal.aborted) {
        await folder.discard();
        throw new InterruptedError('Interrupted; nothing was published and the cache is consistent.');
      }
      const publishedLog = logFile === undefined ? undefined : isAbsolute(settings.logging.file) ? logFile : join(folder.path, settings.logging.file);
      const summary = summarize({versions, outcomes, startedAt, outputDir: folder.path, logFile: publishedLog, dryRun: options.dryRun ?? false, pipeline});
      return options.dryRun ? summary : await this.#publish(folder, outcomes, pipeline, cache, summary);
    } catch (error) {
      await folder.discard();
      throw error;
    } finally {
      // Task code given up on (interrupted, timed out) may still be running a query.
      engine.close({busy: !(await executor?.settle(ENGINE_SETTLE_MS) ?? true)});
      // Only now: code given up on may still fail, up to here.
      process.off('unhandledRejection', stray);
      process.off('uncaughtException', stray);
      await rm(spill, {recursive: true, force: true}).catch(() => undefined);
      await lock?.release();
    }
  }

  /** Publishes the run's outputs; returns the summary as published (what the folder holds). */
  async #publish(folder: OutputFolder, outcomes: Outcome[], pipeline: Pipeline, cache: CacheStore, summary: RunSummary): Promise<RunSummary> {
    try {
      const previous = await folder.previousManifest();
      // A failed run publishes why it failed and leaves the previous run's outputs together
      // as they were: its own finished outputs beside them would be a mix of two runs (a new
      // validation.json beside the old report). With no previous run, it publishes them.
      const keepPrevious = summary.error !== undefined && Object.keys(previous).length > 0;
      const save = pipeline.settings.output.save_intermediates;
      const adding: Promise<void>[] = [];
      // A failed run leaves out an output whose stored content went bad during it (a task
      // changed its input: the failure says so); a successful one cannot publish without it.
      const damaged: string[] = [];
      for (const outcome of keepPrevious ? [] : outcomes) {
        if (outcome.kind !== 'ran' && outcome.kind !== 'cached') continue;
        const intermediate = pipeline.tasks.get(outcome.task)!.declaration.intermediate;
        if (intermediate && !save) continue;
        for (const [file, stored] of Object.entries(outcome.entry.outputs)) {
          const name = intermediate ? `${outcome.task}.${file}` : file;
          adding.push(
            folder.add(name, stored, cache, previous).catch((error: unknown) => {
              if (summary.error === undefined || !(error instanceof DamagedOutputError)) throw error;
              damaged.push(name);
            }),
          );
        }
      }
      await settled(adding);
      let published = damaged.length === 0 ? summary : {...summary, outputs: summary.outputs.filter((file) => !damaged.includes(file))};
      if (keepPrevious) {
        const files = Object.keys(previous);
        const keeps = await settled(files.map((file) => folder.keep(file, previous)));
        const kept = files.filter((_, index) => keeps[index]);
        published = {...published, outputs: [...kept, 'summary.json', 'errors.json'], kept_from_previous_run: kept};
      }
      if (summary.error !== undefined) await folder.write('errors.json', JSON.stringify(summary.error, null, 2) + '\n');
      await folder.write('summary.json', JSON.stringify(published, null, 2) + '\n');
      await folder.publish();
      return published;
    } catch (error) {
      await folder.discard();
      if (error instanceof ValidationError) throw error;
      throw new ExecutionError(`Could not write the outputs to ${folder.path}: ${redact((error as Error).message)}`, {
        hint: error instanceof DamagedOutputError
          ? 'Rerun: the damaged output is recomputed; the previous outputs were left as they were.'
          : isDiskFull(error)
            ? DISK_FULL_HINT
            : 'Check that the output folder is writable; the previous outputs were left as they were.',
      });
    }
  }
}

/**
 * Waits for every file operation, then fails with the first failure: none is left running
 * while the staging folder is discarded.
 */
async function settled<T>(operations: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(operations);
  const failure = results.find((result) => result.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

/** DuckDB reads `G` as gigabytes of 1000^3; users mean GiB. */
function duckdbMemory(settings: Settings): string {
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(settings.performance.max_memory.trim());
  if (match === null) return settings.performance.max_memory;
  const unit = match[2]!.toUpperCase().replace(/I?B$/, '');
  return `${match[1]}${unit === '' ? 'B' : `${unit}iB`}`;
}
