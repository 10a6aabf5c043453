/**
 * Fault injection for the crash-consistency tests: with `PIPELINE_FAULT_KILL_AT=POINT#N`
 * the process kills itself (SIGKILL, no clean-up) the N-th time it reaches POINT. Unset,
 * a point costs one comparison.
 */
const spec = /^([\w-]+)(?:#(\d+))?$/.exec(process.env['PIPELINE_FAULT_KILL_AT'] ?? '');
const target = spec?.[1];
let remaining = Number(spec?.[2] ?? 1);

/** A named moment of a run where a crash must leave the cache and the outputs consistent. */
export function faultPoint(name: string): void {
  if (name === target && --remaining === 0) process.kill(process.pid, 'SIGKILL');
}
