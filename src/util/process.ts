import {readdirSync, readFileSync} from 'node:fs';

/** Whether a process is alive (EPERM: alive, but another user's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as {code?: string}).code === 'EPERM';
  }
}

/** Set in the environment of a shell task's processes: the pid of the run that started them. */
export const RUN_PID_VARIABLE = 'PIPELINE_RUN_PID';

/**
 * Stops the process groups a run that died left running (shell tasks run detached, so they
 * outlive their run): those whose environment names that run. Linux only (it reads /proc);
 * elsewhere, and for processes it may not read, it finds none. Returns how many it stopped.
 */
export function stopLeftovers(deadRunPid: number): number {
  const marker = `${RUN_PID_VARIABLE}=${deadRunPid}`;
  const groups = new Set<number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(marker)) continue;
      // The process group is the fifth field of /proc/<pid>/stat, after the command's ")".
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (group > 1) groups.add(group);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  for (const group of groups) {
    try {
      process.kill(-group, 'SIGTERM');
    } catch {
      // Gone meanwhile.
    }
  }
  return groups.size;
}
