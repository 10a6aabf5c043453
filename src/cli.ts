/**
 * The command line: a thin layer over ValidationRunner. Parses flags, installs signal
 * handlers, shows progress, prints the verdict and maps the outcome to an exit code.
 */
import {relative} from 'node:path';
import {parseArgs} from 'node:util';
import {DiagnosticsError} from './config/diagnostics.js';
import {ConfigurationError, InterruptedError, ValidationError} from './errors.js';
import {ProgressReporter} from './reporters/progress.js';
import {ValidationRunner} from './runner.js';
import {exitCode} from './summary.js';
import type {RunSummary} from './summary.js';
import {redact} from './util/redact.js';
import {didYouMean} from './util/suggest.js';

const HELP = `Usage: npm run pipeline -- --old VERSION --new VERSION [options]
       npm run pipeline -- cache <status|verify|gc|clear> [options]
       npm run pipeline -- graph [--old VERSION --new VERSION] [--format mermaid|dot]
       npm run --silent pipeline -- schema > pipeline.schema.json
       npm run pipeline -- serve [--host 127.0.0.1] [--port 8787]   (the HTTP API; see the README)

Compares two versions of a model's output table and reports what changed. Tasks whose
inputs are unchanged are served from the cache (.cache/); only what changed reruns.

Run options:
  --old, --old-version VERSION   the version to compare from (e.g. 0.3615)
  --new, --new-version VERSION   the version to compare to (e.g. 0.3621)
  --config FILE                  a JSON or YAML settings file layered over pipeline.yaml
  --set PATH=VALUE               set one setting, e.g. --set validation.tolerance.abs=0.01 (repeatable;
                                 the value is read as YAML: --set 'validation.rules=[]')
  --output-dir DIR               write outputs under DIR (overrides output.base_dir)
  --skip-extraction              reuse the extraction of each version the latest run used (tasks
                                 tagged extraction); do not touch the source
  --skip-analysis                leave out the tasks tagged analysis (the report says so)
  --only TASK                    run only TASK and what it needs (repeatable; a tag works too)
  --force                        run tasks even when cached
  --dry-run                      print the plan (what is cached, what would run and why); run nothing
  --no-wait                      fail at once if another run holds the cache, instead of waiting
  --pipeline FILE                the pipeline file (default: pipeline.yaml in the current folder)
  --verbose                      show stack traces of unexpected errors; log at DEBUG (with task
                                 code's stack traces)
  -h, --help                     show this help

Other commands' options:
  --format mermaid|dot           graph: the notation (default mermaid); graph takes --config, --set
                                 and --pipeline too
  --host HOST, --port PORT       serve: where to listen (default 127.0.0.1:8787); serve takes
                                 --config, --pipeline and --verbose too (a run's other options
                                 go in its request)

Cache options (cache commands also take --config, --set and --pipeline):
  --max-size SIZE                gc: keep at most SIZE, least recently used removed first (e.g. 5G)
  --max-age AGE                  gc: remove entries unused for AGE (e.g. 30d, 12h; 0: all of them)
  gc never removes the latest run's entries; gc and clear wait for a running run (--no-wait: fail).

Settings priority, highest first: --set/--output-dir, --config file, environment variables
(PIPELINE_<SECTION>_<KEY>, e.g. PIPELINE_PERFORMANCE_TIMEOUT=600), pipeline.yaml, defaults.

Exit codes: 0 passed (warnings allowed), 1 a rule of severity error failed,
2 usage or configuration error, 3 execution error, 130 interrupted.`;

const OPTIONS = {
  old: {type: 'string'},
  'old-version': {type: 'string'},
  new: {type: 'string'},
  'new-version': {type: 'string'},
  config: {type: 'string'},
  set: {type: 'string', multiple: true},
  'output-dir': {type: 'string'},
  'skip-extraction': {type: 'boolean'},
  'skip-analysis': {type: 'boolean'},
  only: {type: 'string', multiple: true},
  force: {type: 'boolean'},
  'dry-run': {type: 'boolean'},
  'no-wait': {type: 'boolean'},
  pipeline: {type: 'string'},
  verbose: {type: 'boolean'},
  help: {type: 'boolean', short: 'h'},
  format: {type: 'string'},
  'max-size': {type: 'string'},
  'max-age': {type: 'string'},
  host: {type: 'string'},
  port: {type: 'string'},
} as const;

type Flags = ReturnType<typeof parse>['values'];

type Option = keyof typeof OPTIONS;
const VERSIONS: Option[] = ['old', 'old-version', 'new', 'new-version'];
const LAYERS: Option[] = ['config', 'set', 'pipeline'];
/**
 * The options each command reads (besides --help and --verbose): another is a mistake, not
 * ignored. (An unknown cache command is the cache command's to name.)
 */
const COMMAND_OPTIONS: Record<string, readonly Option[]> = {
  run: [...VERSIONS, ...LAYERS, 'output-dir', 'skip-extraction', 'skip-analysis', 'only', 'force', 'dry-run', 'no-wait'],
  'cache status': LAYERS,
  'cache verify': LAYERS,
  'cache gc': [...LAYERS, 'max-size', 'max-age', 'no-wait'],
  'cache clear': [...LAYERS, 'no-wait'],
  graph: [...VERSIONS, ...LAYERS, 'format'],
  schema: [],
  serve: ['config', 'pipeline', 'host', 'port'],
};

function checkOptions(command: string, flags: Flags): void {
  const allowed = COMMAND_OPTIONS[command];
  if (allowed === undefined) return;
  const extra = Object.keys(flags).filter((name) => name !== 'help' && name !== 'verbose' && !allowed.includes(name as Option));
  if (extra.length === 0) return;
  const list = extra.map((name) => `--${name}`).join(', ');
  throw new ConfigurationError(`${list} ${extra.length === 1 ? 'is not an option' : 'are not options'} of ${command === 'run' ? 'a run' : `the ${command} command`}.`, {
    hint: 'Run with --help to see which options each command takes.',
  });
}

function parse(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({args: argv, options: OPTIONS, allowPositionals: true, strict: true});
  } catch (error) {
    const message = (error as Error).message;
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(message)?.[1];
    const hint = unknown === undefined ? '' : didYouMean(unknown.replace(/^-+/, ''), Object.keys(OPTIONS)).replace(/"([^"]+)"/, '"--$1"');
    throw new ConfigurationError(`${message.replace(/\. To specify a positional.*$/s, '')}.${hint}`, {hint: 'Run with --help to see every option.'});
  }
  // An empty value is a mistake, not a choice (--output-dir '' would write into the current folder).
  // (An empty version is reported as missing, with an example, when the run starts.)
  for (const [name, value] of Object.entries(parsed.values)) {
    if (/^(old|new)(-version)?$/.test(name)) continue;
    if (value === '' || (Array.isArray(value) && value.includes(''))) {
      throw new ConfigurationError(`Option --${name} needs a value, got an empty one.`, {hint: 'Run with --help to see every option.'});
    }
  }
  return parsed;
}

function print(text: string): void {
  process.stdout.write(text + '\n');
}

function printError(error: ValidationError, verbose: boolean): void {
  const lines = [error instanceof DiagnosticsError ? error.message : `Error: ${error.message}`];
  if (error.hint !== undefined) lines.push(error.hint);
  if (verbose && error.stack !== undefined) lines.push(error.stack);
  process.stderr.write(redact(lines.join('\n')) + '\n');
}

function printVerdict(summary: RunSummary, only?: readonly string[]): void {
  const where = relative(process.cwd(), summary.output_dir) || '.';
  if (summary.dry_run) {
    const running = summary.tasks.filter((task) => task.status === 'would-run').length;
    print(`Dry run: ${running} of ${summary.tasks.length} tasks would run; nothing was run, and the outputs and the cached results are as they were.`);
    // A task that cannot even be planned would fail the run: say so, as the run would.
    if (summary.error !== undefined) {
      for (const failure of summary.error.failures) print(`  - ${failure.task} cannot run: ${failure.message}`);
      if (summary.error.hint !== null) print(`  ${summary.error.hint}`);
    }
    return;
  }
  // ERROR, not FAIL, when the run itself failed (exit 2 or 3): the versions were not judged.
  const mark = summary.error !== undefined ? 'ERROR' : {pass: 'PASS', warn: 'WARN', fail: 'FAIL'}[summary.status];
  print(`${mark} ${summary.old} vs ${summary.new} (${summary.cache.ran} ran, ${summary.cache.hits} cached, ${(summary.duration_ms / 1000).toFixed(1)} s)`);
  // A partial run judges only what it ran: say so, so a PASS is not read as the whole pipeline's.
  if (only !== undefined && only.length > 0) print(`  (--only ${only.join(', ')}: the verdict covers ${summary.tasks.map((task) => task.name).join(', ')}, not the whole pipeline)`);
  for (const reason of summary.verdict_reasons) print(`  - ${reason}`);
  for (const line of summary.highlights) print(`  · ${line}`);
  if (summary.error !== undefined) {
    for (const failure of summary.error.failures) print(`  - ${failure.task} failed: ${failure.message}`);
    if (summary.error.hint !== null) print(`  ${summary.error.hint}`);
  }
  if (summary.error !== undefined) {
    print(`Errors: ${where}/errors.json`);
    if (summary.kept_from_previous_run?.includes('report.html')) print(`The previous run's report, left in place: ${where}/report.html`);
    else if (summary.outputs.includes('report.html')) print(`Report of the tasks that finished: ${where}/report.html`);
    return;
  }
  print(summary.outputs.includes('report.html') ? `Report: ${where}/report.html` : `Summary: ${where}/summary.json`);
}

async function runCommand(flags: Flags, signal: AbortSignal): Promise<number> {
  const runner = new ValidationRunner(flags.config, {...(flags.pipeline === undefined ? {} : {pipelineFile: flags.pipeline})});
  const oldVersion = flags.old ?? flags['old-version'];
  const newVersion = flags.new ?? flags['new-version'];
  const progress = new ProgressReporter();
  const summary = await runner
    .runWorkflow(oldVersion ?? '', newVersion ?? '', {
      // --verbose: the log takes everything, task code's stack traces included.
      ...(flags.set === undefined && !flags.verbose ? {} : {set: [...(flags.set ?? []), ...(flags.verbose ? ['logging.level=DEBUG'] : [])]}),
      ...(flags['output-dir'] === undefined ? {} : {outputDir: flags['output-dir']}),
      ...(flags.only === undefined ? {} : {only: flags.only}),
      force: flags.force ?? false,
      dryRun: flags['dry-run'] ?? false,
      skip: flags['skip-analysis'] ? ['analysis'] : [],
      reuse: flags['skip-extraction'] ? ['extraction'] : [],
      wait: !(flags['no-wait'] ?? false),
      hooks: progress,
      signal,
    })
    .finally(async () => {
      for (const warning of await progress.close()) process.stderr.write(`Warning: ${redact(warning)}\n`);
    });
  printVerdict(summary, flags.only);
  return exitCode(summary);
}

export async function main(argv: string[]): Promise<number> {
  let verbose = argv.includes('--verbose');
  const controller = new AbortController();
  let interrupts = 0;
  // What a signal stops: a run's tasks, or the server (which gives its running run a grace period).
  let stopping = 'stopping running tasks';
  const onSignal = (name: string) => () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\n${name}: ${stopping} (press Ctrl-C again to quit at once)...\n`);
    controller.abort(new InterruptedError(`Interrupted by ${name}.`));
  };
  process.on('SIGINT', onSignal('SIGINT'));
  process.on('SIGTERM', onSignal('SIGTERM'));
  // The terminal closed (an ssh session dropped): stop as for SIGTERM, not die mid-write.
  process.on('SIGHUP', onSignal('SIGHUP'));
  try {
    const {values: flags, positionals} = parse(argv);
    verbose = flags.verbose ?? false;
    if (flags.help) {
      print(HELP);
      return 0;
    }
    const [command, ...rest] = positionals;
    checkOptions(command === 'cache' ? `cache ${rest[0] ?? ''}` : (command ?? 'run'), flags);
    switch (command) {
      case undefined:
      case 'run':
        return await runCommand(flags, controller.signal);
      case 'cache': {
        const {cacheCommand} = await import('./commands/cache.js');
        return await cacheCommand(rest, flags);
      }
      case 'schema': {
        const {pipelineJsonSchema} = await import('./config/json-schema.js');
        process.stdout.write(pipelineJsonSchema());
        return 0;
      }
      case 'graph': {
        const {graphCommand} = await import('./commands/graph.js');
        return await graphCommand(flags);
      }
      case 'serve': {
        stopping = 'stopping the server: no new run starts, the running one may finish within PIPELINE_API_GRACE_SECONDS';
        const {serveCommand} = await import('./commands/serve.js');
        return await serveCommand(flags, controller.signal);
      }
      default:
        throw new ConfigurationError(`Unknown command "${command}".${didYouMean(command, ['run', 'cache', 'graph', 'schema', 'serve'])}`, {
          hint: 'Run with --help to see the commands.',
        });
    }
  } catch (error) {
    if (error instanceof InterruptedError) {
      printError(error, verbose);
      return 130;
    }
    if (error instanceof ValidationError) {
      printError(error, verbose);
      return error instanceof ConfigurationError ? 2 : 3;
    }
    process.stderr.write(`Unexpected error: ${redact(error instanceof Error ? error.message : String(error))}\n`);
    process.stderr.write(verbose && error instanceof Error ? `${error.stack}\n` : 'This is a bug; rerun with --verbose for the stack trace and report it.\n');
    return 3;
  }
}

// A reader that stops early (`| head`, `less` quit before the end) closes the pipe: what is
// left to say is dropped, and the run goes on to its end and its exit code (not a crash put
// down to whichever task was running).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
  });
}

// Exit explicitly: a task that ignored its abort signal (a timeout) must not keep the
// process alive. Writes to pipes and files are synchronous on POSIX, so nothing is lost.
process.exit(await main(process.argv.slice(2)));
