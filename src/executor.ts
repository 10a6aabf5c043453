/**
 * Runs the stale tasks of a pipeline in dependency order, independent tasks concurrently.
 * Each task's execution is memoised, so a shared dependency runs once. A task is cached
 * when its fingerprint is in the store; otherwise it runs, and its outputs are stored
 * before its entry, so an interrupted run leaves nothing a later run would trust.
 */
import {AsyncLocalStorage} from 'node:async_hooks';
import {existsSync, readdirSync, statSync} from 'node:fs';
import {mkdir, mkdtemp, rm, symlink} from 'node:fs/promises';
import {dirname, isAbsolute, join, relative, resolve} from 'node:path';
import type {DuckDBConnection} from '@duckdb/node-api';
import type {Pipeline, TaskName, TaskNode} from './analyzer.js';
import type {CacheEntry, CacheStore, StoredOutput} from './cache/store.js';
import type {KeyValueMemo, StatMemo} from './cache/stat-memo.js';
import type {Settings} from './config/schema.js';
import {ConfigurationError, DISK_FULL_HINT, ExecutionError, InterruptedError, isDiskFull, TransientError, ValidationError} from './errors.js';
import {explainChange, fingerprintKey, RUNNER_VERSION} from './fingerprint.js';
import type {CacheKey, FingerprintParts} from './fingerprint.js';
import {interpolateValue, substitute} from './interpolate.js';
import type {Reference} from './interpolate.js';
import type {Outcome, RunHooks} from './outcome.js';
import {shellTask} from './shell-task.js';
import type {Json, TaskContext, TaskDefinition, TaskResult, UpstreamInfo} from './task-api.js';
import {combinedDigest, loadTaskModule, ModuleDigests} from './task-modules.js';
import {canonicalJson, digestFile, nonFiniteAsText, sha256} from './util/hash.js';
import type {ContentDigest} from './util/hash.js';
import {faultPoint} from './util/fault.js';
import {getPath, setPath} from './util/json-path.js';
import {WorkerPool} from './util/pool.js';

/** What to run and how. */
export interface ExecutorOptions {
  versions: {old: string; new: string};
  /** Run even when cached. */
  force: boolean;
  /** Consider only these tasks (`--only` and what it needs); all when undefined. */
  selected?: ReadonlySet<TaskName>;
  /** Leave these out (`--skip-analysis`). */
  skip: ReadonlySet<TaskName>;
  /** Serve these from their latest cached result without probing the source (`--skip-extraction`). */
  reuse: ReadonlySet<TaskName>;
  /** Plan only: nothing runs. */
  dryRun: boolean;
  signal: AbortSignal;
  concurrency: number;
  timeoutMs: number;
  retryCount: number;
  /** First retry delay; doubles each attempt, with jitter. */
  retryDelayMs: number;
}

/** What the executor uses but does not own. */
export interface ExecutorServices {
  cache: CacheStore;
  /** Memoised content digests of source files. */
  fileDigests: StatMemo;
  /** Scratch space for running tasks (under the cache folder, same file system). */
  workDir: string;
  duckdb(signal: AbortSignal): Promise<DuckDBConnection>;
  /** Facts about task modules by code digest (whether they have a probe). */
  moduleFacts: KeyValueMemo;
  /** Memoised digests and imports of task module files, by file signature. */
  moduleFiles: StatMemo;
  hooks: Required<RunHooks>;
}

const isRecord = (value: unknown): value is Record<string, Json> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function getSetting(settings: Settings, path: readonly string[]): Json {
  return (getPath(settings, path) ?? null) as Json;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), {once: true});
  });

/** Converts anything a task threw into a failure with context (the one boundary for that). */
function asFailure(error: unknown, task: string): ValidationError {
  // Whatever was being written when the disk filled up, the remedy is the same.
  if (isDiskFull(error) && !(error instanceof InterruptedError)) {
    const message = error instanceof Error ? error.message : String(error);
    return new ExecutionError(`Task "${task}" ran out of disk space: ${message}`, {cause: error, task, hint: DISK_FULL_HINT});
  }
  if (error instanceof ValidationError) {
    if (error instanceof ExecutionError) error.task ??= task;
    return error;
  }
  // A module compiled on the fly is named by a data: URL of its whole code: not worth reading.
  const message = (error instanceof Error ? error.message : String(error)).replace(/data:text\/javascript,[^"'\s]*/g, '(the compiled task module)');
  const resolving = /Failed to resolve module specifier/.test(message);
  return new ExecutionError(`Task "${task}" crashed: ${message}`, {
    cause: error,
    task,
    hint: resolving
      ? 'A TypeScript task in a folder whose package.json does not say "type": "module" cannot import() a local module: add "type": "module", or import it statically.'
      : 'The log file has the stack trace at logging.level DEBUG (--verbose sets it).',
  });
}

/** The task whose code runs (in the async context of its `run`). */
const taskContext = new AsyncLocalStorage<string>();

/**
 * A task's inputs as paths named like the files (`in/<task>/<file>`, links to the store), so
 * that code going by the extension (DuckDB's `FROM 'rows.parquet'`) reads them.
 */
async function linkInputs(dir: string, blobs: Record<string, Record<string, string>>): Promise<Record<string, Record<string, string>>> {
  const inputs: Record<string, Record<string, string>> = {};
  for (const [from, files] of Object.entries(blobs)) {
    inputs[from] = {};
    for (const [file, blob] of Object.entries(files)) {
      const path = join(dir, from, file);
      await mkdir(dirname(path), {recursive: true});
      await symlink(blob, path);
      inputs[from][file] = path;
    }
  }
  return inputs;
}

/** A task about to run: what was decided when it was planned. */
interface PlannedRun {
  node: TaskNode;
  parts: FingerprintParts;
  key: CacheKey;
  alias: string;
  reasons: string[];
  /** Declared input files, relative path -> absolute path. */
  files: Record<string, string>;
  upstream: Outcome[];
  /** How each task upstream fared (ctx.upstream); its verdicts are in the fingerprint. */
  upstreamInfo: Record<string, UpstreamInfo>;
}

export class Executor {
  readonly #pipeline: Pipeline;
  readonly #options: ExecutorOptions;
  readonly #services: ExecutorServices;
  readonly #pool: WorkerPool;
  /** Task modules' code digests, read once per run. */
  readonly #code: ModuleDigests;
  readonly #outcomes = new Map<TaskName, Promise<Outcome>>();
  readonly #modules = new Map<string, Promise<TaskDefinition>>();
  readonly #working = new Set<Promise<unknown>>();
  /** The module tasks running now, by name: what an error escaping task code is put down to. */
  readonly #running = new Map<string, AbortController>();
  /** Set on the first failure: running tasks finish, no new task starts. */
  #stopped: string | undefined;

  constructor(pipeline: Pipeline, options: ExecutorOptions, services: ExecutorServices) {
    this.#pipeline = pipeline;
    this.#options = options;
    this.#services = services;
    this.#pool = new WorkerPool(options.concurrency);
    this.#code = new ModuleDigests(pipeline.projectDir, services.moduleFiles);
  }

  /**
   * An error escaped task code (a rejection nobody awaited, a throw in a callback). The task
   * whose code it came from is known when the error carries its async context: that task
   * fails if it still runs; one that has finished gets the error told as a warning. Without
   * a context, every module task running fails with it (a shell task has no such code). No
   * task starts after. Returns the tasks failed, or the finished task it came from.
   */
  failRunning(error: unknown): {failed: string[]; finished?: string} {
    const origin = taskContext.getStore();
    if (origin !== undefined && !this.#running.has(origin)) return {failed: [], finished: origin};
    const tasks = origin !== undefined ? [origin] : [...this.#running.keys()];
    if (tasks.length === 0) return {failed: []};
    const message = error instanceof Error ? error.message : String(error);
    this.#stopped ??= 'task code failed';
    for (const task of tasks) {
      const others = tasks.filter((t) => t !== task);
      const whose = origin !== undefined ? '' : ` (or that of ${others.length > 0 ? `${others.join(', ')}, running beside it, or ` : ''}a task that ran before it and left a callback behind)`;
      this.#running.get(task)!.abort(
        new ExecutionError(`Task "${task}" crashed: an error escaped its code${whose}: ${message}`, {
          task,
          hint: 'A promise the task did not await rejected, or a callback it scheduled threw: await every promise in run(), and catch errors in callbacks.',
        }),
      );
    }
    return {failed: tasks};
  }

  /** Every considered task's outcome, in dependency order. */
  async run(): Promise<Outcome[]> {
    const names = this.#pipeline.order.filter((name) => this.#options.selected?.has(name) ?? true);
    this.#services.hooks.planned(names);
    return Promise.all(names.map((name) => this.#outcome(name)));
  }

  #outcome(name: TaskName): Promise<Outcome> {
    let outcome = this.#outcomes.get(name);
    if (outcome === undefined) {
      outcome = this.#execute(this.#pipeline.tasks.get(name)!).then((result) => {
        if (result.kind === 'failed') this.#stopped ??= `${name} failed`;
        this.#services.hooks.finished(result);
        return result;
      });
      this.#outcomes.set(name, outcome);
    }
    return outcome;
  }

  async #execute(node: TaskNode): Promise<Outcome> {
    const task = node.name;
    const upstream = await Promise.all(node.deps.map(async (dep) => ({dep, outcome: await this.#outcome(dep.task)})));
    if (this.#options.skip.has(task)) return {kind: 'skipped', task, reason: 'skipped on request'};
    const waitFor: string[] = [];
    for (const {dep, outcome} of upstream) {
      switch (outcome.kind) {
        case 'failed':
          return {kind: 'skipped', task, reason: `${dep.task} ${outcome.error instanceof InterruptedError ? 'was interrupted' : 'failed'}`};
        case 'skipped':
          if (!dep.optional) return {kind: 'skipped', task, reason: `${dep.task} was skipped`};
          break;
        case 'would-run':
          waitFor.push(dep.task);
          break;
        case 'ran':
        case 'cached':
          break;
      }
    }
    if (waitFor.length > 0) {
      const upstream = waitFor.length === 1 ? `${waitFor[0]} reproduces its` : `${waitFor.join(' and ')} reproduce their`;
      return {kind: 'would-run', task, reasons: [this.#options.force ? '--force' : `runs unless ${upstream} previous outputs`]};
    }
    if (this.#options.signal.aborted) return {kind: 'skipped', task, reason: 'interrupted'};

    let parts: FingerprintParts;
    let files: Record<string, string>;
    const upstreamInfo = await this.#upstreamInfo(node);
    let probe: TaskDefinition['probe'];
    try {
      probe = await this.#probe(node);
      ({parts, files} = await this.#fingerprint(node, probe, upstream.map(({outcome}) => outcome), upstreamInfo));
    } catch (error) {
      return {kind: 'failed', task, error: asFailure(error, task), reasons: [], durationMs: 0};
    }
    const key = fingerprintKey(parts);
    const cache = this.#services.cache;
    const alias = this.#alias(parts);

    if (this.#options.reuse.has(task) && probe !== undefined) {
      const lookup = await cache.getByAlias(alias);
      if (lookup.kind === 'hit') return this.#served(task, lookup.entry);
      const args = canonicalJson(parts.task.with);
      // Say what differs from the task's last result (a setting or its code, say), the probe aside.
      const last = await cache.previous(task);
      const since = last === undefined ? [] : explainChange(last.parts, {...parts, probe: last.parts.probe});
      const changed = since.length === 0 || since[0] === 'fingerprint changed' ? '' : ` (since its last run: ${since.join('; ')})`;
      return {
        kind: 'failed',
        task,
        reasons: [],
        durationMs: 0,
        error: new ConfigurationError(`Task "${task}" has no cached result to reuse for ${args === '{}' ? 'these settings' : args}${changed}.`, {
          hint: 'Run once without --skip-extraction so the source is read and cached, or undo the change.',
        }),
      };
    }

    const cacheable = node.declaration.cache;
    let damaged = false;
    if (cacheable && !this.#options.force) {
      const lookup = await cache.get(key);
      if (lookup.kind === 'hit') {
        if (!this.#options.dryRun) await cache.recordUse(task, key, parts.probe === null ? undefined : alias);
        return this.#served(task, lookup.entry);
      }
      if (lookup.kind === 'corrupt') {
        this.#services.hooks.warning(`${task}: ${lookup.problem}; it will be recomputed.`);
        damaged = true;
      }
    }
    // After a failure no task starts; cached results above are still served (they start
    // nothing), so an unrelated failing task does not hide the validation's verdict.
    if (this.#stopped !== undefined && !this.#options.dryRun) return {kind: 'skipped', task, reason: `not started: ${this.#stopped}`};
    const reasons = this.#options.force
      ? ['--force']
      : !cacheable
        ? ['cache: false (runs every time)']
        : damaged
          ? ['its cached result was damaged']
          : await this.#whyRun(task, parts);
    if (this.#options.dryRun) return {kind: 'would-run', task, reasons};
    return this.#pool.run(() => this.#runTask({node, parts, key, alias, reasons, files, upstream: upstream.map(({outcome}) => outcome), upstreamInfo}));
  }

  /** What changed since the task's last result, or that the result has left the cache. */
  async #whyRun(task: TaskName, parts: FingerprintParts): Promise<string[]> {
    const last = await this.#services.cache.last(task);
    if (last.kind === 'removed') return ['its last result is no longer in the cache (removed by cache gc or cache verify)'];
    return explainChange(last.kind === 'entry' ? last.entry.parts : undefined, parts);
  }

  /**
   * The task's freshness probe, if it has one. Whether a module has a probe is remembered
   * by its code digest, so a cached run does not load (or compile) modules that have none.
   */
  async #probe(node: TaskNode): Promise<TaskDefinition['probe']> {
    if (node.definition !== undefined) return node.definition.probe;
    if (node.module === undefined) return undefined;
    const digest = combinedDigest(await this.#code.of(node.module));
    const known = await this.#services.moduleFacts.get(digest);
    if (known === 'no-probe') return undefined;
    const definition = await this.#definition(node);
    await this.#services.moduleFacts.set(digest, definition.probe === undefined ? 'no-probe' : 'probe');
    return definition.probe?.bind(definition);
  }

  /** A cached result, with the warnings its run gave (a cached run tells as much as a fresh one). */
  #served(task: TaskName, entry: CacheEntry): Outcome {
    for (const warning of entry.warnings ?? []) this.#services.hooks.warning(`${task}: ${warning}`);
    return {kind: 'cached', task, entry};
  }

  /** Reuse of a result without probing its source matches everything but the probe. */
  #alias(parts: FingerprintParts): string {
    return fingerprintKey({...parts, probe: 'reused'});
  }

  #definition(node: TaskNode): Promise<TaskDefinition> {
    if (node.definition !== undefined) return Promise.resolve(node.definition);
    if (node.declaration.shell !== undefined) {
      return Promise.resolve(shellTask(node.declaration.shell, this.#pipeline.settings, this.#options.versions));
    }
    const file = node.module!;
    let module = this.#modules.get(file);
    if (module === undefined) {
      module = this.#code.of(file).then((digests) => loadTaskModule(file, combinedDigest(digests)));
      this.#modules.set(file, module);
    }
    return module;
  }

  #resolveReference = (reference: Reference): Json => {
    switch (reference.kind) {
      case 'version':
        return this.#options.versions[reference.which];
      case 'setting':
        return getSetting(this.#pipeline.settings, reference.path);
      case 'input':
      case 'output':
        return `\${${reference.kind}:${reference.kind === 'input' ? `${reference.task}/` : ''}${reference.file}}`;
    }
  };

  /** The settings a task sees: those it declares (fingerprinted) and its tuning settings. */
  #taskSettings(node: TaskNode): Record<string, Json> {
    const settings: Record<string, Json> = {};
    for (const path of [...node.declaration.inputs.settings, ...node.declaration.tuning]) {
      setPath(settings, path.split('.'), getSetting(this.#pipeline.settings, path.split('.')));
    }
    return settings;
  }

  /** The fingerprint's parts, and the declared input files it digested (path -> absolute path). */
  async #fingerprint(
    node: TaskNode,
    runProbe: TaskDefinition['probe'],
    upstream: Outcome[],
    upstreamInfo: Record<string, UpstreamInfo>,
  ): Promise<{parts: FingerprintParts; files: Record<string, string>}> {
    const {declaration} = node;
    const projectDir = this.#pipeline.projectDir;
    const settings: Record<string, Json> = {};
    for (const path of declaration.inputs.settings) settings[path] = getSetting(this.#pipeline.settings, path.split('.'));

    const inputs: Record<string, ContentDigest> = {};
    for (const outcome of upstream) {
      if (outcome.kind !== 'ran' && outcome.kind !== 'cached') continue;
      for (const [file, stored] of Object.entries(outcome.entry.outputs)) {
        inputs[`${outcome.task}/${file}`] = stored.integrity as ContentDigest;
      }
    }
    // A task sees its upstream's verdicts (ctx.upstream; the report shows them), which need
    // not show in their outputs' bytes: a changed verdict reruns it too.
    for (const [task, info] of Object.entries(upstreamInfo)) {
      if (info.verdict !== null) inputs[`${task} (verdict)`] = sha256(canonicalJson({verdict: info.verdict, reasons: info.verdict_reasons})) as ContentDigest;
    }

    const declaredFiles = await this.#declaredFiles(node);
    const files: Record<string, ContentDigest> = {};
    for (const [path, absolute] of Object.entries(declaredFiles)) {
      files[path] = (await this.#services.fileDigests.get(absolute, digestFile)) as ContentDigest;
    }

    let code: Record<string, ContentDigest> = {};
    if (node.module !== undefined) code = await this.#code.of(node.module);
    else if (node.definition !== undefined) code = {'<code>': sha256(node.definition.run.toString()) as ContentDigest};

    const args = interpolateValue(declaration.with, this.#resolveReference);
    let probe: Json = null;
    if (runProbe !== undefined && !this.#options.reuse.has(node.name)) {
      probe = await runProbe({
        name: node.name,
        args: isRecord(args) ? args : {},
        settings: this.#taskSettings(node),
        projectDir,
        signal: this.#options.signal,
        digestFile: (path) => this.#digestFile(path),
      });
    }
    const parts: FingerprintParts = {
      runner: RUNNER_VERSION,
      task: {
        run: declaration.run ?? null,
        shell: declaration.shell === undefined ? null : substitute(declaration.shell, (reference) => {
          const value = this.#resolveReference(reference);
          return typeof value === 'string' ? value : JSON.stringify(value);
        }),
        with: args,
        outputs: declaration.outputs,
      },
      settings,
      inputs,
      files,
      code,
      probe,
    };
    return {parts, files: declaredFiles};
  }

  /** A file's content digest, memoised on its signature (probes and tasks alike). */
  #digestFile(path: string): Promise<string> {
    return this.#services.fileDigests.get(resolve(this.#pipeline.projectDir, path), digestFile);
  }

  /** Declared input files, globs expanded, relative path -> absolute path. */
  async #declaredFiles(node: TaskNode): Promise<Record<string, string>> {
    const projectDir = this.#pipeline.projectDir;
    const files: Record<string, string> = {};
    for (const pattern of node.declaration.inputs.files) {
      const text = substitute(pattern, (reference) => String(this.#resolveReference(reference)));
      let matches: string[];
      if (/[*?[{]/.test(text)) {
        const {glob} = await import('zx');
        matches = (await glob(text, {cwd: projectDir, absolute: true, onlyFiles: true})).sort();
      } else {
        const absolute = isAbsolute(text) ? text : resolve(projectDir, text);
        matches = existsSync(absolute) && statSync(absolute).isFile() ? [absolute] : [];
      }
      if (matches.length === 0) {
        throw new ConfigurationError(`Task "${node.name}" declares input file "${text}", but no file matches it.`, {
          hint: 'Create the file, or fix the path in "inputs.files" (relative to the folder of pipeline.yaml).',
        });
      }
      for (const match of matches) files[relative(projectDir, match).split('\\').join('/')] = match;
    }
    return files;
  }

  async #runTask({node, parts, key, alias, reasons, files, upstream, upstreamInfo}: PlannedRun): Promise<Outcome> {
    const task = node.name;
    const {hooks, cache} = this.#services;
    if (this.#options.signal.aborted) return {kind: 'skipped', task, reason: 'interrupted'};
    if (this.#stopped !== undefined) return {kind: 'skipped', task, reason: `not started: ${this.#stopped}`};
    let definition: TaskDefinition;
    try {
      definition = await this.#definition(node);
    } catch (error) {
      return {kind: 'failed', task, error: asFailure(error, task), reasons, durationMs: 0};
    }
    hooks.started(task, reasons);
    hooks.log('INFO', `started (${reasons.join('; ')})`, task);
    const started = performance.now();
    // Upstream outputs as stored (by digest, without their names).
    const blobs: Record<string, Record<string, string>> = {};
    const stored: {from: string; file: string; output: StoredOutput}[] = [];
    for (const outcome of upstream) {
      if (outcome.kind !== 'ran' && outcome.kind !== 'cached') continue;
      blobs[outcome.task] = {};
      for (const [file, output] of Object.entries(outcome.entry.outputs)) {
        blobs[outcome.task]![file] = cache.blobPath(output);
        stored.push({from: outcome.task, file, output});
      }
    }
    const skippedDeps = node.deps.filter((dep) => !(dep.task in blobs)).map((dep) => dep.task as string);
    const args = parts.task.with;
    const settings = this.#taskSettings(node);

    let attempt = 0;
    for (;;) {
      attempt++;
      await mkdir(this.#services.workDir, {recursive: true});
      const work = await mkdtemp(join(this.#services.workDir, `${task}-`));
      const outputDir = join(work, 'out');
      const tmpDir = join(work, 'tmp');
      await mkdir(outputDir);
      await mkdir(tmpDir);
      const inputs = await linkInputs(join(work, 'in'), blobs);
      const controller = new AbortController();
      const abort = () => controller.abort(new InterruptedError('Interrupted.'));
      this.#options.signal.addEventListener('abort', abort, {once: true});
      if (node.declaration.shell === undefined) this.#running.set(task, controller);
      const timeout = setTimeout(
        () =>
          controller.abort(
            new ExecutionError(`Task "${task}" exceeded the time limit of ${this.#options.timeoutMs / 1000} s (performance.timeout).`, {
              task,
              hint: 'Raise performance.timeout (in seconds), or find out why the task is slow in the log file.',
            }),
          ),
        this.#options.timeoutMs,
      );
      const log = (level: 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR') => (message: string) => hooks.log(level, message, task);
      // A task's warnings are kept with its result, to be said again when it is served.
      const warnings: string[] = [];
      const warn = (message: string) => {
        warnings.push(message);
        hooks.warning(`${task}: ${message}`);
      };
      const ctx: TaskContext = {
        name: task,
        args: isRecord(args) ? args : {},
        settings,
        inputs,
        upstream: upstreamInfo,
        files,
        outputDir,
        output(name) {
          if (!node.declaration.outputs.includes(name)) {
            throw new ExecutionError(`Task "${task}" wrote "${name}", which is not among its declared outputs (${node.declaration.outputs.join(', ') || 'none'}).`, {
              task,
              hint: `Add "${name}" to "outputs" of ${task} in pipeline.yaml.`,
            });
          }
          return join(outputDir, name);
        },
        input(from, file) {
          const path = inputs[from]?.[file];
          if (path === undefined) {
            const skipped = skippedDeps.includes(from);
            const why = skipped ? `"${from}" was skipped in this run` : `"${from}" is not in its deps or has no output "${file}"`;
            throw new ExecutionError(`Task "${task}" needs ${from}/${file}, but ${why}.`, {
              task,
              hint: skipped
                ? `Make the task check ctx.upstream["${from}"] before reading it, or run without skipping ${from}.`
                : `Add ${from} to "deps" of ${task} in pipeline.yaml (and "${file}" to the outputs of ${from}).`,
            });
          }
          return path;
        },
        projectDir: this.#pipeline.projectDir,
        tmpDir,
        probe: parts.probe,
        digestFile: (path) => this.#digestFile(path),
        log: {debug: log('DEBUG'), info: log('INFO'), warn: log('WARNING'), error: log('ERROR')},
        warn,
        progress: (update) => hooks.progress(task, update),
        signal: controller.signal,
        duckdb: () => this.#services.duckdb(controller.signal),
      };
      // Inputs are the store's own files, to be read only: one changed (by this task or one
      // beside it) would corrupt every task and run that reads it, so the change fails the
      // task and the file goes. Checked against the store's record, not a snapshot taken now.
      try {
        faultPoint('task-start');
        // Run in the task's async context, so that an error escaping its code is known as its;
        // a run that is not async (plain JavaScript) returns or throws as a promise would.
        const work = taskContext.run(task, async () => definition.run(ctx));
        this.#track(work);
        const result = checkedResult(task, (await this.#race(work, controller.signal)) ?? {});
        faultPoint('task-ran');
        const intact = await Promise.all(stored.map(({output}) => cache.unchanged(output)));
        const changed = stored.filter((_, i) => !intact[i]);
        if (changed.length > 0) {
          await Promise.all(changed.map(({output}) => rm(cache.blobPath(output), {force: true})));
          throw new ExecutionError(`Task "${task}" found its input ${changed.map(({from, file}) => `${from}/${file}`).join(', ')} changed, a file in the cache that tasks must only read (it wrote to it, or a task beside it did); it was removed, and the next run recomputes it.`, {
            task,
            hint: 'Copy an input into ctx.tmpDir (or ${output:...}) before changing it.',
          });
        }
        const produced: Record<string, string> = {};
        for (const output of node.declaration.outputs) {
          const path = join(outputDir, output);
          if (!existsSync(path)) {
            throw new ExecutionError(`Task "${task}" finished without writing its declared output "${output}".`, {
              task,
              hint: `Write it to ctx.output('${output}') (or \${output:${output}} in a shell command), or remove it from "outputs".`,
            });
          }
          if (!statSync(path).isFile()) {
            throw new ExecutionError(`Task "${task}" wrote its declared output "${output}" as a folder; an output is one file.`, {
              task,
              hint: 'Write a single file (an archive of the folder, say), or declare each file as an output.',
            });
          }
          produced[output] = path;
        }
        // Files it wrote beside its outputs are not kept: say so, once, rather than drop them unseen.
        const undeclared = readdirSync(outputDir).filter((name) => !node.declaration.outputs.some((output) => output === name || output.startsWith(`${name}/`)));
        if (undeclared.length > 0) {
          const listed = undeclared.slice(0, 5).join(', ') + (undeclared.length > 5 ? `, and ${undeclared.length - 5} more` : '');
          warn(`wrote ${listed} in its output folder without declaring ${undeclared.length === 1 ? 'it' : 'them'}: not kept (add to "outputs" to keep, or write scratch files to ctx.tmpDir)`);
        }
        const durationMs = Math.round(performance.now() - started);
        // Stored even for `cache: false` tasks (never looked up then): downstream tasks and
        // the output folder read every output from the store.
        const entry: CacheEntry = await cache.set(
          {key, task, parts, result: result as TaskResult, duration_ms: durationMs, created_at: new Date().toISOString(), ...(warnings.length === 0 ? {} : {warnings})},
          produced,
          parts.probe === null ? undefined : alias,
        );
        hooks.log('INFO', `finished in ${durationMs} ms${result.rows === undefined ? '' : `, ${result.rows} ${result.rows === 1 ? 'row' : 'rows'}`}`, task);
        return {kind: 'ran', task, entry, reasons, durationMs, attempts: attempt};
      } catch (thrown) {
        const error = asFailure(controller.signal.aborted ? (controller.signal.reason ?? thrown) : thrown, task);
        if (error instanceof TransientError && attempt <= this.#options.retryCount && !this.#options.signal.aborted) {
          const delay = this.#options.retryDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random());
          hooks.log('WARNING', `attempt ${attempt} failed (${error.message}); retrying in ${Math.round(delay)} ms`, task);
          await sleep(delay, this.#options.signal);
          continue;
        }
        hooks.log('ERROR', error.message, task);
        // Where task code failed, for whoever reads the log at DEBUG (--verbose).
        const origin = error.cause instanceof Error ? error.cause : undefined;
        if (origin?.stack !== undefined) hooks.log('DEBUG', origin.stack, task);
        // Before the pool slot is released, so that no queued task starts after a failure.
        this.#stopped ??= `${task} failed`;
        return {kind: 'failed', task, error, reasons, durationMs: Math.round(performance.now() - started)};
      } finally {
        clearTimeout(timeout);
        this.#running.delete(task);
        this.#options.signal.removeEventListener('abort', abort);
        await rm(work, {recursive: true, force: true});
      }
    }
  }

  /** The outcomes of every task upstream of `node`, for reports. */
  async #upstreamInfo(node: TaskNode): Promise<Record<string, UpstreamInfo>> {
    const info: Record<string, UpstreamInfo> = {};
    const visit = async (current: TaskNode) => {
      for (const dep of current.deps) {
        if (dep.task in info) continue;
        const outcome = await this.#outcome(dep.task);
        const result = outcome.kind === 'ran' || outcome.kind === 'cached' ? outcome.entry.result : undefined;
        info[dep.task] = {
          status: outcome.kind === 'ran' || outcome.kind === 'cached' ? outcome.kind : 'skipped',
          duration_ms: outcome.kind === 'ran' ? outcome.durationMs : outcome.kind === 'cached' ? outcome.entry.duration_ms : 0,
          reason: outcome.kind === 'ran' ? outcome.reasons.join('; ') : outcome.kind === 'skipped' ? outcome.reason : null,
          computed_at: outcome.kind === 'ran' || outcome.kind === 'cached' ? outcome.entry.created_at : null,
          rows: result?.rows ?? null,
          verdict: result?.verdict ?? null,
          verdict_reasons: result?.verdict === undefined || result.verdict === 'pass' ? [] : (result.verdictReasons ?? []),
        };
        await visit(this.#pipeline.tasks.get(dep.task)!);
      }
    };
    await visit(node);
    return info;
  }

  /** Task code still running, though its task may have been given up (interrupted, timed out). */
  #track(work: Promise<unknown>): void {
    this.#working.add(work);
    const done = () => this.#working.delete(work);
    work.then(done, done);
  }

  /**
   * Waits, at most `ms`, for task code still running after its task was given up (an
   * interrupted query returns at once, a task's cleanup follows); true when none is left.
   * The engine may only be closed then: closing a connection under a running query
   * deadlocks DuckDB, and the process with it.
   */
  async settle(ms: number): Promise<boolean> {
    if (this.#working.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const settled = Promise.allSettled([...this.#working]).then(() => true as const);
    try {
      return await Promise.race([settled, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the task, or rejects as soon as its signal aborts (a task that ignores it cannot hang the run). */
  #race<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, {once: true});
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}

/**
 * A task's result as the runner stores it: rows a number (a DuckDB count arrives as a
 * BigInt), a known verdict, lists of lines, JSON details. A task that returns anything else
 * fails with a message saying what, not a crash when the result is stored.
 */
function checkedResult(task: string, result: unknown): TaskResult {
  const wrong = (what: string) =>
    new ExecutionError(`Task "${task}" returned ${what}.`, {task, hint: 'Return {rows: number, verdict: "pass" | "warn" | "fail", verdictReasons: [...], highlights: [...], details: {...}} (every part optional).'});
  if (!isRecord(result)) throw wrong(`${Array.isArray(result) ? 'a list' : typeof result} instead of an object`);
  const r = result as Record<string, unknown>;
  if (typeof r['rows'] === 'bigint') r['rows'] = Number(r['rows']);
  if (r['rows'] !== undefined && (typeof r['rows'] !== 'number' || !Number.isFinite(r['rows']))) throw wrong(`rows ${String(r['rows'])}, not a number`);
  if (r['verdict'] !== undefined && !['pass', 'warn', 'fail'].includes(r['verdict'] as string)) throw wrong(`the verdict ${JSON.stringify(r['verdict'])}; expected "pass", "warn" or "fail"`);
  for (const list of ['verdictReasons', 'highlights']) {
    if (r[list] !== undefined && !(Array.isArray(r[list]) && (r[list] as unknown[]).every((line) => typeof line === 'string'))) throw wrong(`${list} that is not a list of strings`);
  }
  try {
    // BigInts (DuckDB's integers) in details become numbers, ±Infinity and NaN their text (as
    // in validation.json: JSON would write null, read as "none"); anything else JSON cannot hold is refused.
    const storable = (_: string, value: unknown) => nonFiniteAsText(typeof value === 'bigint' ? Number(value) : value);
    r['details'] = r['details'] === undefined ? undefined : (JSON.parse(JSON.stringify(r['details'], storable)) as Record<string, Json>);
  } catch (error: unknown) {
    throw wrong(`details that cannot be stored as JSON (${(error as Error).message})`);
  }
  if (r['details'] === undefined) delete r['details'];
  return r as TaskResult;
}
