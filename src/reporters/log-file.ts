/** The run's log file, in the format and level of the `logging` settings (Python-style). */
import {appendFileSync} from 'node:fs';
import {dirname} from 'node:path';
import type {LogLevel, RunHooks} from '../outcome.js';
import {redact} from '../util/redact.js';
import {makeFolders} from '../util/folders.js';

const LEVELS: LogLevel[] = ['DEBUG', 'INFO', 'WARNING', 'ERROR'];

function timestamp(date: Date): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())},${pad(date.getMilliseconds(), 3)}`;
}

/** Formats one record with `%(asctime)s`, `%(levelname)s`, `%(message)s`, `%(name)s`, `%(process)d`. */
export function formatRecord(format: string, level: LogLevel, message: string, task: string | undefined, date = new Date()): string {
  return format.replace(/%\((\w+)\)[-\d.]*[sd]/g, (whole, field: string) => {
    switch (field) {
      case 'asctime':
        return timestamp(date);
      case 'levelname':
        return level;
      case 'message':
        return message;
      case 'name':
        return task ?? 'pipeline';
      case 'process':
        return String(process.pid);
      default:
        return whole;
    }
  });
}

/** A reporter that appends log records to `file`. Writes are synchronous: a crash loses nothing. */
export function logFileReporter(file: string, options: {level: LogLevel; format: string}): RunHooks {
  makeFolders(dirname(file));
  const threshold = LEVELS.indexOf(options.level);
  const write = (level: LogLevel, message: string, task?: string) => {
    if (LEVELS.indexOf(level) < threshold) return;
    const lines = redact(task === undefined ? message : `${task}: ${message}`).split('\n');
    try {
      appendFileSync(file, lines.map((line) => formatRecord(options.format, level, line, task)).join('\n') + '\n');
    } catch {
      // Past the end of the run (its folder published, the staging path gone) or on a full
      // disk, a record the log can no longer take must not take the run down with it.
    }
  };
  return {
    log: write,
    warning: (message) => write('WARNING', message),
    finished: (outcome) => {
      const memory = `${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB resident`;
      switch (outcome.kind) {
        case 'cached':
          write('INFO', `served from cache (computed ${outcome.entry.created_at} in ${outcome.entry.duration_ms} ms); ${memory}`, outcome.task);
          break;
        case 'ran':
          write('INFO', `ran in ${outcome.durationMs} ms${outcome.entry.result.rows === undefined ? '' : `, ${outcome.entry.result.rows} ${outcome.entry.result.rows === 1 ? 'row' : 'rows'}`}; ${memory}`, outcome.task);
          break;
        case 'skipped':
          write('INFO', `skipped: ${outcome.reason}`, outcome.task);
          break;
        case 'failed':
          write('ERROR', `failed: ${outcome.error.message}`, outcome.task);
          break;
        case 'would-run':
          break;
      }
    },
  };
}
