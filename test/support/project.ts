/**
 * End-to-end test support: a temporary project (pipeline.yaml, tasks) and the real CLI,
 * run as a child process exactly as a user runs it.
 */
import {spawn, spawnSync} from 'node:child_process';
import type {ChildProcess} from 'node:child_process';
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {temporaryFolder} from './temp.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(REPO, 'dist/cli/bin.js');

/** The result of one CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for child runs: no colours, no inherited PIPELINE_* settings, fast retries. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('PIPELINE_') && !name.startsWith('VITEST')) env[name] = value;
  return {...env, NO_COLOR: '1', PIPELINE_PERFORMANCE_RETRY_DELAY: '0.02', ...extra};
}

export class Project {
  readonly dir: string;

  constructor(files: Record<string, string>) {
    this.dir = temporaryFolder('pipeline-e2e-');
    this.write({'package.json': '{"type":"module"}\n', ...files});
  }

  write(files: Record<string, string>): void {
    for (const [name, content] of Object.entries(files)) {
      const path = join(this.dir, name);
      mkdirSync(dirname(path), {recursive: true});
      writeFileSync(path, content);
    }
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  read(...parts: string[]): string {
    return readFileSync(this.path(...parts), 'utf8');
  }

  exists(...parts: string[]): boolean {
    return existsSync(this.path(...parts));
  }

  json<T = Record<string, unknown>>(...parts: string[]): T {
    return JSON.parse(this.read(...parts)) as T;
  }

  /** Runs the CLI to completion. */
  run(args: string[], env: Record<string, string> = {}): CliResult {
    const result = spawnSync(process.execPath, [CLI, ...args], {cwd: this.dir, env: cliEnv(env), encoding: 'utf8', timeout: 300_000});
    return {code: result.status, stdout: result.stdout, stderr: result.stderr};
  }

  /** Runs the CLI without blocking this process (when the test itself serves requests to it). */
  async runAsync(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
    const child = this.start(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return {code, stdout, stderr};
  }

  /** Starts the CLI without waiting (for interruption tests). */
  start(args: string[], env: Record<string, string> = {}): ChildProcess {
    return spawn(process.execPath, [CLI, ...args], {cwd: this.dir, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe']});
  }

  /** How many times each task ran, from the `runs.log` that counting tasks append to. */
  runs(): Record<string, number> {
    const counts: Record<string, number> = {};
    if (!this.exists('runs.log')) return counts;
    for (const line of this.read('runs.log').split('\n').filter(Boolean)) counts[line] = (counts[line] ?? 0) + 1;
    return counts;
  }
}

/**
 * A task module that records each run in runs.log, then writes `content` (a JS expression
 * over `ctx` and `read(task, file)`) to each declared output.
 */
export function countingTask(outputs: string[], content = "ctx.name + ':' + JSON.stringify(ctx.args)", imports = ''): string {
  return `import {appendFileSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
${imports}
export default {
  async run(ctx) {
    appendFileSync(join(ctx.projectDir, 'runs.log'), ctx.name + '\\n');
    const read = (task, file) => readFileSync(ctx.input(task, file), 'utf8');
    for (const output of ${JSON.stringify(outputs)}) writeFileSync(ctx.output(output), String(${content}));
    return {rows: 1};
  },
};
`;
}
