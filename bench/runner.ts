/**
 * bench:runner — the runner's own overhead: a no-op rerun of a 5-task pipeline (everything
 * cached), through the built CLI (`node dist/cli/bin.js`) and through `npm run pipeline`.
 * Targets: at most 150 ms and 400 ms. Prints the median, min and max of several runs.
 */
import {execFileSync, spawnSync} from 'node:child_process';
import {mkdirSync, writeFileSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {temporaryFolder} from '../test/support/temp.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'dist/cli/bin.js');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);

function project(): string {
  const dir = temporaryFolder('bench-runner-');
  mkdirSync(join(dir, 'tasks'));
  writeFileSync(
    join(dir, 'tasks/noop.ts'),
    "import {writeFileSync} from 'node:fs';\nexport default {async run(ctx) { writeFileSync(ctx.output(ctx.name + '.txt'), ctx.name); }};\n",
  );
  writeFileSync(
    join(dir, 'pipeline.yaml'),
    `tasks:
  extract-old: {run: noop, outputs: [extract-old.txt]}
  extract-new: {run: noop, outputs: [extract-new.txt]}
  validate: {run: noop, deps: [extract-old, extract-new], inputs: {settings: [validation.tolerance]}, outputs: [validate.txt]}
  analyze: {run: noop, deps: [extract-old, extract-new], inputs: {settings: [analysis]}, outputs: [analyze.txt]}
  report: {run: noop, deps: [validate, analyze], outputs: [report.txt]}
`,
  );
  // npm run needs a package.json with the script; it runs the repository's built CLI.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({type: 'module', scripts: {pipeline: `node ${CLI}`}}));
  return dir;
}

function time(command: string, args: string[], cwd: string): number {
  const started = performance.now();
  const result = spawnSync(command, args, {cwd, stdio: 'ignore', env: {...process.env, NO_COLOR: '1'}});
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`);
  return performance.now() - started;
}

function stats(samples: number[]): {median: number; min: number; max: number} {
  const sorted = [...samples].sort((a, b) => a - b);
  return {median: sorted[Math.floor(sorted.length / 2)]!, min: sorted[0]!, max: sorted[sorted.length - 1]!};
}

const dir = project();
const args = ['--old', '0.3615', '--new', '0.3621'];
execFileSync(process.execPath, [CLI, ...args], {cwd: dir, stdio: 'ignore'});
for (let i = 0; i < 2; i++) time(process.execPath, [CLI, ...args], dir);

const direct = stats(Array.from({length: RUNS}, () => time(process.execPath, [CLI, ...args], dir)));
const npm = stats(Array.from({length: RUNS}, () => time('npm', ['run', '--silent', 'pipeline', '--', ...args], dir)));
const bare = stats(Array.from({length: RUNS}, () => time(process.execPath, ['-e', '0'], dir)));

const row = (name: string, s: {median: number; min: number; max: number}, target: string) =>
  `${name.padEnd(34)} ${s.median.toFixed(0).padStart(6)} ms  (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)})  ${target}`;
console.log(`No-op rerun of a 5-task pipeline, every task cached, ${RUNS} runs each:`);
console.log(row('node dist/cli/bin.js', direct, 'target <= 150 ms'));
console.log(row('npm run pipeline', npm, 'target <= 400 ms'));
console.log(row('node -e 0 (start-up floor)', bare, ''));
console.log(JSON.stringify({bench: 'runner', runs: RUNS, direct_ms: direct, npm_ms: npm, node_floor_ms: bare}));
