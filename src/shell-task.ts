/**
 * A task declared with `shell:` runs its command through zx, in the project folder, with
 * every `${...}` reference replaced by a shell-quoted value.
 */
import type {Settings} from './config/schema.js';
import {ExecutionError} from './errors.js';
import {asText, substitute} from './interpolate.js';
import type {Reference} from './interpolate.js';
import {defineTask} from './task-api.js';
import {getPath} from './util/json-path.js';
import {RUN_PID_VARIABLE} from './util/process.js';
import type {TaskDefinition} from './task-api.js';

/** The task a shell command makes; `versions` fill `${old}` and `${new}`. */
export function shellTask(command: string, settings: Settings, versions: {old: string; new: string}): TaskDefinition {
  return defineTask({
    async run(ctx) {
      const {$, quote} = await import('zx');
      const resolve = (reference: Reference): string => {
        switch (reference.kind) {
          case 'version':
            return quote(versions[reference.which]);
          case 'setting':
            return quote(asText(getPath(settings, reference.path)));
          case 'input':
            return quote(ctx.input(reference.task, reference.file));
          case 'output':
            return quote(ctx.output(reference.file));
        }
      };
      const script = substitute(command, resolve);
      ctx.log.info(`$ ${script}`);
      const pieces = Object.assign([script], {raw: [script]}) as unknown as TemplateStringsArray;
      // In a process group of its own, so that an abort kills the shell and everything it
      // started, synchronously (the run may exit right after).
      // Marked with the run's pid: a run that takes over the lock of this one, dead, stops them.
      const env = {...process.env, [RUN_PID_VARIABLE]: String(process.pid)};
      const child = $({cwd: ctx.projectDir, quiet: true, nothrow: true, verbose: false, detached: true, env})(pieces);
      const stop = () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      };
      ctx.signal.addEventListener('abort', stop, {once: true});
      const output = await child.finally(() => ctx.signal.removeEventListener('abort', stop));
      for (const line of output.stdout.split('\n').filter(Boolean)) ctx.log.info(line);
      for (const line of output.stderr.split('\n').filter(Boolean)) ctx.log.warn(line);
      if (output.exitCode !== 0) {
        const tail = output.stderr.trim().split('\n').slice(-5).join('\n');
        throw new ExecutionError(
          `The command of task "${ctx.name}" exited with ${output.exitCode === null ? `signal ${output.signal}` : `code ${output.exitCode}`}${tail === '' ? '' : `:\n${tail}`}`,
          {hint: 'Run the command by hand in a shell to see the whole error; the log file has its output.'},
        );
      }
    },
  });
}
