/**
 * One run at a time per cache: a lock file holding the owner's pid and host. A lock whose
 * owner is dead (same host, no such process) is stale and taken over.
 */
import {hostname} from 'node:os';
import {link, readFile, rm, stat, writeFile} from 'node:fs/promises';
import {dirname} from 'node:path';
import {ExecutionError, InterruptedError} from './errors.js';
import {isAlive, stopLeftovers} from './util/process.js';
import {makeFolders} from './util/folders.js';

interface Owner {
  pid: number;
  host: string;
  started: string;
}

/** A held lock; release it when the run ends. */
export interface Lock {
  release(): Promise<void>;
}


async function readOwner(file: string): Promise<Owner | undefined> {
  return parseOwner(await readFile(file, 'utf8').catch(() => ''));
}

function parseOwner(text: string): Owner | undefined {
  try {
    return JSON.parse(text) as Owner;
  } catch {
    return undefined;
  }
}

/**
 * Removes the stale lock whose text was `stale`, unless it has changed since. One run at a
 * time does this, holding `<lock>.takeover` (created whole, like the lock): a run that finds
 * it taken retries later. Under it the lock is read again and removed only if it is still the
 * stale one; nothing else removes a lock whose owner is dead, so two runs taking over at
 * once cannot remove each other's new lock, nor leave a moment without one.
 */
export async function removeStale(file: string, stale: string, me: Pick<Owner, 'pid'>): Promise<boolean> {
  const mutex = `${file}.takeover`;
  if (!(await createWhole(mutex, String(me.pid)))) {
    // A run that died while taking over (a matter of milliseconds) leaves it behind.
    const age = await stat(mutex).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > TAKEOVER_ABANDONED_MS) await rm(mutex, {force: true});
    return false;
  }
  try {
    if ((await readFile(file, 'utf8').catch(() => undefined)) !== stale) return false;
    await rm(file, {force: true});
    return true;
  } finally {
    await rm(mutex, {force: true});
  }
}

/** How old a takeover file must be to have been left by a run that died. */
const TAKEOVER_ABANDONED_MS = 10_000;

/** Creates `file` with `content` at once (written beside it, then linked); false when it exists. */
async function createWhole(file: string, content: string): Promise<boolean> {
  const draft = `${file}.${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(draft, content);
  try {
    await link(draft, file);
    return true;
  } catch (error) {
    if ((error as {code?: string}).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(draft, {force: true});
  }
}

/**
 * Takes the lock at `file`. When another live run holds it, waits (telling `notify` once),
 * or fails at once when `wait` is false.
 */
export async function acquireLock(
  file: string,
  options: {wait: boolean; signal: AbortSignal; notify(message: string): void; pollMs?: number},
): Promise<Lock> {
  makeFolders(dirname(file));
  const me: Owner = {pid: process.pid, host: hostname(), started: new Date().toISOString()};
  let told = false;
  for (;;) {
    // Written whole, then linked in place: another run never reads a lock file half written
    // and takes it for a stale one.
    if (await createWhole(file, JSON.stringify(me))) {
      return {
        async release() {
          const owner = await readOwner(file);
          if (owner?.pid === me.pid && owner.host === me.host) await rm(file, {force: true});
        },
      };
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as {code?: string}).code === 'ENOENT') continue; // released meanwhile
      throw error;
    }
    const owner = parseOwner(text);
    if (owner === undefined || (owner.host === me.host && !isAlive(owner.pid))) {
      if (await removeStale(file, text, me)) {
        // Its shell tasks may still be running (and writing): they go before this run starts.
        const stopped = owner === undefined ? 0 : stopLeftovers(owner.pid);
        options.notify(
          owner === undefined
            ? 'Removed an unreadable lock file left by an earlier run.'
            : `Took over the lock of run ${owner.pid} (started ${owner.started}), which is no longer running.${stopped === 0 ? '' : ` Stopped ${stopped === 1 ? 'a shell task' : `${stopped} shell tasks`} it left running.`}`,
        );
      }
      continue;
    }
    if (!options.wait) {
      throw new ExecutionError(`Another run (pid ${owner.pid} on ${owner.host}, started ${owner.started}) is using this cache.`, {
        hint: 'Wait for it to finish, or run without --no-wait to wait automatically.',
      });
    }
    if (!told) {
      // A run on another machine sharing the cache cannot be checked from here.
      const elsewhere = owner.host === me.host ? '' : ` It runs on ${owner.host}; if it is gone, delete ${file}.`;
      options.notify(`Waiting for another run (pid ${owner.pid}, started ${owner.started}) to finish...${elsewhere}`);
      told = true;
    }
    if (options.signal.aborted) throw new InterruptedError('Interrupted while waiting for another run.');
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 200));
  }
}
