/**
 * Reliability: concurrent runs, stale locks, damaged cache entries, cache housekeeping,
 * unwritable places, a full disk, secrets. Each case: a clear message, the documented exit
 * code, and nothing that was there before lost.
 */
import {execSync, spawn, spawnSync} from 'node:child_process';
import {cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {afterEach, describe, expect, it} from 'vitest';
import {CLI, cliEnv, countingTask, Project, REPO} from './support/project.js';
import {temporaryFolder} from './support/temp.js';
import {removeStale} from '../src/lock.js';

const SLOW = (ms: number) =>
  countingTask(['a.txt'], "'done'").replace('for (const output', `await new Promise((resolve) => setTimeout(resolve, ${ms}));\n    for (const output`);

function simple(task = countingTask(['a.txt'])): Project {
  return new Project({'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n', 'tasks/a.ts': task});
}

const exit = (child: import('node:child_process').ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', resolve));
const collect = (child: import('node:child_process').ChildProcess) => {
  let text = '';
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
};

const mounts: string[] = [];
afterEach(() => {
  for (const mount of mounts.splice(0)) execSync(`umount ${mount}`);
});

/** A small file system of its own (root only; CI runs as root), to fill or make read-only. */
function tmpfs(path: string, options: string): void {
  mkdirSync(path, {recursive: true});
  execSync(`mount -t tmpfs -o ${options} tmpfs ${path}`);
  mounts.push(path);
}

describe('concurrent runs', () => {
  it('a second run waits for the first, visibly; both succeed and the task runs once', async () => {
    const project = simple(SLOW(4000));
    const first = project.start(['--old', '1', '--new', '2']);
    const firstOut = collect(first);
    for (let i = 0; i < 200 && !project.exists('.cache/lock'); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    const second = project.start(['--old', '1', '--new', '2']);
    const secondOut = collect(second);
    let firstDone = false;
    const firstExit = exit(first).then((code) => ((firstDone = true), code));
    // Said while it waits, not once the wait is over.
    for (let i = 0; i < 400 && !firstDone && !/Waiting for another run/.test(secondOut()); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(firstDone).toBe(false);
    expect(secondOut()).toMatch(/Warning: Waiting for another run \(pid \d+, started [^)]+\) to finish\.\.\./);
    expect(await firstExit).toBe(0);
    expect(await exit(second)).toBe(0);
    expect(firstOut()).toContain('PASS 1 vs 2 (1 ran, 0 cached');
    expect(secondOut()).toContain('PASS 1 vs 2 (0 ran, 1 cached');
    expect(project.runs()).toEqual({a: 1});
  });

  it('--no-wait fails at once while another run holds the cache', async () => {
    const project = simple(SLOW(1500));
    const first = project.start(['--old', '1', '--new', '2']);
    for (let i = 0; i < 200 && !project.exists('.cache/lock'); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    const second = project.run(['--old', '1', '--new', '2', '--no-wait']);
    expect(second.code).toBe(3);
    expect(second.stderr).toMatch(/^Error: Another run \(pid \d+ on \S+, started \S+\) is using this cache\.\nWait for it to finish, or run without --no-wait to wait automatically\.\n$/);
    expect(await exit(first)).toBe(0);
  });

  it('names the lock file when the run holding it is on another machine', async () => {
    const project = simple();
    mkdirSync(project.path('.cache'));
    writeFileSync(project.path('.cache/lock'), JSON.stringify({pid: 4242, host: 'elsewhere', started: '2026-01-01T00:00:00.000Z'}));
    const waiting = project.start(['--old', '1', '--new', '2']);
    const out = collect(waiting);
    for (let i = 0; i < 400 && !/Waiting/.test(out()); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(out()).toContain(`Warning: Waiting for another run (pid 4242, started 2026-01-01T00:00:00.000Z) to finish... It runs on elsewhere; if it is gone, delete ${project.path('.cache/lock')}.`);
    rmSync(project.path('.cache/lock'));
    expect(await exit(waiting)).toBe(0);
  });

  it("a run taking over a dead run's lock never removes the lock another run took meanwhile", async () => {
    const dir = temporaryFolder('lock-stale-');
    const stale = JSON.stringify({pid: 2 ** 22 + 777, host: 'here', started: '2026-01-01T00:00:00.000Z'});
    const fresh = JSON.stringify({pid: process.pid, host: 'here', started: '2026-11-28T00:00:00.000Z'});
    // Seen stale, but replaced by another run's lock before this run removes it: kept.
    writeFileSync(join(dir, 'lock'), fresh);
    expect(await removeStale(join(dir, 'lock'), stale, {pid: 1})).toBe(false);
    expect(readFileSync(join(dir, 'lock'), 'utf8')).toBe(fresh);
    // Another run taking it over at this moment: leave it to that run.
    writeFileSync(join(dir, 'lock'), stale);
    writeFileSync(join(dir, 'lock.takeover'), '2');
    expect(await removeStale(join(dir, 'lock'), stale, {pid: 1})).toBe(false);
    expect(readFileSync(join(dir, 'lock'), 'utf8')).toBe(stale);
    rmSync(join(dir, 'lock.takeover'));
    // Still the stale one, nobody else at it: removed.
    expect(await removeStale(join(dir, 'lock'), stale, {pid: 1})).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("runs taking over a dead run's lock at the same moment never hold it together", async () => {
    // Four runs start at once against a lock left by a dead run; each holds the lock for a
    // while, claiming a marker file that only one may hold. Twenty rounds.
    const dir = temporaryFolder('lock-race-');
    const holder = `
      import {openSync, closeSync, rmSync} from 'node:fs';
      import {acquireLock} from ${JSON.stringify(pathToFileURL(join(REPO, 'dist/src/lock.js')).href)};
      const {existsSync} = await import('node:fs');
      while (!existsSync(process.argv[1] + '/go')) await new Promise((resolve) => setTimeout(resolve, 1));
      const lock = await acquireLock(process.argv[1] + '/lock', {wait: true, signal: new AbortController().signal, notify() {}, pollMs: 5});
      let marker;
      try { marker = openSync(process.argv[1] + '/held', 'wx'); } catch { console.log('overlap'); process.exit(1); }
      await new Promise((resolve) => setTimeout(resolve, 60));
      closeSync(marker);
      rmSync(process.argv[1] + '/held');
      await lock.release();
    `;
    for (let round = 0; round < 20; round++) {
      rmSync(join(dir, 'go'), {force: true});
      writeFileSync(join(dir, 'lock'), JSON.stringify({pid: 2 ** 22 + 777, host: execSync('hostname').toString().trim(), started: '2026-01-01T00:00:00.000Z'}));
      const runs = Array.from({length: 4}, () => spawn(process.execPath, ['--input-type=module', '-e', holder, dir], {stdio: ['ignore', 'pipe', 'inherit']}));
      // Every run loaded and waiting, then all go at once.
      await new Promise((resolve) => setTimeout(resolve, 400));
      writeFileSync(join(dir, 'go'), '');
      const codes = await Promise.all(runs.map(exit));
      expect(codes, `round ${round}`).toEqual([0, 0, 0, 0]);
    }
  });

  it('takes over the lock of a run that died', () => {
    const project = simple();
    mkdirSync(project.path('.cache'));
    writeFileSync(project.path('.cache/lock'), JSON.stringify({pid: 2 ** 22 + 12345, host: execSync('hostname').toString().trim(), started: '2026-01-01T00:00:00.000Z'}));
    // What the dead run left in the output folder, for another comparison.
    mkdirSync(project.path(`output/.3_vs_4.staging-${2 ** 22 + 12345}`), {recursive: true});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`Warning: Took over the lock of run ${2 ** 22 + 12345} (started 2026-01-01T00:00:00.000Z), which is no longer running.`);
    expect(project.exists('.cache/lock')).toBe(false);
    expect(readdirSync(project.path('output'))).toEqual(['1_vs_2']);
  });
});

describe('shell tasks a dead run left', () => {
  it('are stopped by the run that takes over its lock', async () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  slow:\n    shell: echo started >> runs.log && sleep 7351 && echo done > ${output:s.txt}\n    outputs: [s.txt]\n'});
    const killed = project.start(['--old', '1', '--new', '2']);
    for (let i = 0; i < 600 && !project.exists('runs.log'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    killed.kill('SIGKILL');
    await exit(killed);
    const sleeping = () => execSync("pgrep -f 'sleep 735[1]' || true", {encoding: 'utf8'}).trim();
    expect(sleeping()).not.toBe('');
    project.write({'pipeline.yaml': 'tasks:\n  slow:\n    shell: echo done > ${output:s.txt}\n    outputs: [s.txt]\n'});
    const next = project.run(['--old', '1', '--new', '2']);
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/Took over the lock of run \d+ \([^)]+\), which is no longer running\. Stopped a shell task it left running\./);
    for (let i = 0; i < 100 && sleeping() !== ''; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sleeping()).toBe('');
  });
});

describe('the cache', () => {
  it('a truncated entry is reported and recomputed, never trusted', () => {
    const project = simple();
    project.run(['--old', '1', '--new', '2']);
    const shard = readdirSync(project.path('.cache/entries'))[0]!;
    const file = project.path('.cache/entries', shard, readdirSync(project.path('.cache/entries', shard))[0]!);
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 40));
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/Warning: a: cache entry [0-9a-f]{12} is damaged \(truncated or altered\); it will be recomputed\./);
    expect(project.runs()).toEqual({a: 2});
    expect(project.json<{tasks: {reason: string}[]}>('output/1_vs_2/summary.json').tasks[0]!.reason).toBe('its cached result was damaged');
  });

  it('a stored output changed with its modification time put back is found out and recomputed', () => {
    const project = simple(countingTask(['a.txt'], "'good content'"));
    project.run(['--old', '1', '--new', '2']);
    const blobs = execSync(`find ${project.path('.cache/content-v2')} -type f`, {encoding: 'utf8'}).trim().split('\n');
    for (const blob of blobs) {
      const {atime, mtime} = statSync(blob);
      writeFileSync(blob, readFileSync(blob, 'utf8').replace('good', 'evil'));
      utimesSync(blob, atime, mtime);
    }
    rmSync(project.path('output'), {recursive: true});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('Warning: a: stored output a.txt of a failed its integrity check; it will be recomputed.');
    expect(project.runs()).toEqual({a: 2});
    expect(project.read('output/1_vs_2/a.txt')).toBe('good content');
  });

  it('an input touched or chmod-ed but not changed is no damage: read again, kept, made read-only again', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  make: {shell: "echo original > ${output:data.txt}", outputs: [data.txt]}\n  touchy: {run: touchy, deps: [make], outputs: [copy.txt]}\n',
      'tasks/touchy.ts': "import {chmodSync, copyFileSync, utimesSync} from 'node:fs';\nexport default {async run(ctx) { const p = ctx.input('make', 'data.txt'); utimesSync(p, new Date(), new Date()); chmodSync(p, 0o644); copyFileSync(p, ctx.output('copy.txt')); }};\n",
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(project.read('output/1_vs_2/copy.txt')).toBe('original\n');
    const blob = execSync(`grep -rl original ${project.path('.cache/content-v2')}`, {encoding: 'utf8'}).trim();
    expect(statSync(blob).mode & 0o777).toBe(0o444);
  });

  it('a damaged stored file is replaced when a rerun stores the same content again, not taken on trust', () => {
    const project = simple(countingTask(['a.txt'], "'good content'"));
    project.run(['--old', '1', '--new', '2']);
    const blobs = execSync(`find ${project.path('.cache/content-v2')} -type f`, {encoding: 'utf8'}).trim().split('\n');
    for (const blob of blobs) writeFileSync(blob, readFileSync(blob, 'utf8').replace('good', 'evil'));
    const forced = project.run(['--old', '1', '--new', '2', '--force']);
    expect(forced.code).toBe(0);
    expect(project.read('output/1_vs_2/a.txt')).toBe('good content');
    for (const blob of blobs) expect(readFileSync(blob, 'utf8')).toBe('good content');
  });

  it('a task that changes its input in the cache fails, and nothing it damaged is published or kept', () => {
    const project = new Project({
      'pipeline.yaml': [
        'tasks:',
        '  make: {shell: "echo original > ${output:data.txt}", outputs: [data.txt]}',
        '  use: {shell: "echo oops >> ${input:make/data.txt}; cp ${input:make/data.txt} ${output:copy.txt}", deps: [make], outputs: [copy.txt]}',
        '',
      ].join('\n'),
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('use failed: Task "use" found its input make/data.txt changed, a file in the cache that tasks must only read (it wrote to it, or a task beside it did); it was removed, and the next run recomputes it.');
    expect(project.exists('output/1_vs_2/data.txt')).toBe(false);
    // Without the offending task, make is recomputed and its true output published.
    project.write({'pipeline.yaml': 'tasks:\n  make: {shell: "echo original > ${output:data.txt}", outputs: [data.txt]}\n'});
    const next = project.run(['--old', '1', '--new', '2']);
    expect(next.code).toBe(0);
    expect(project.read('output/1_vs_2/data.txt')).toBe('original\n');
  });

  it('--skip-extraction reuses the extraction the latest run used, not the latest one stored', () => {
    // The source goes A, B, back to A: the third run is served A's extraction from the cache.
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  e: {run: e, tags: [extraction], outputs: [e.txt]}\n',
      'tasks/e.ts': `import {readFileSync, writeFileSync} from 'node:fs';
export default {
  probe: (ctx) => readFileSync(ctx.projectDir + '/source.txt', 'utf8'),
  async run(ctx) { writeFileSync(ctx.output('e.txt'), readFileSync(ctx.projectDir + '/source.txt', 'utf8')); },
};
`,
    });
    for (const content of ['A', 'B', 'A']) {
      project.write({'source.txt': content});
      expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    }
    project.write({'source.txt': 'C'});
    expect(project.run(['--old', '1', '--new', '2', '--skip-extraction']).code).toBe(0);
    expect(project.read('output/1_vs_2/e.txt')).toBe('A');
  });

  it('keeps stored files in the layout of cacache, which reads them by their digest; nothing is left in the folder of files being stored', async () => {
    const project = simple(countingTask(['a.txt'], "'stored content'"));
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    const shard = readdirSync(project.path('.cache/entries'))[0]!;
    const file = JSON.parse(readFileSync(project.path('.cache/entries', shard, readdirSync(project.path('.cache/entries', shard))[0]!), 'utf8')) as {entry: string};
    const {outputs} = JSON.parse(file.entry) as {outputs: Record<string, {integrity: string; size: number}>};
    expect(outputs['a.txt']).toEqual({integrity: expect.stringMatching(/^sha256-/), size: 'stored content'.length});
    const {default: cacache} = await import('cacache');
    expect((await cacache.get.byDigest(project.path('.cache'), outputs['a.txt']!.integrity)).toString()).toBe('stored content');
    expect(readdirSync(project.path('.cache/incoming'))).toEqual([]);
  });

  it('stores an output read to its end, whatever size it reports (a link to a file of /proc reports 0 bytes)', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [version.txt]}\n',
      'tasks/a.ts': "import {symlinkSync} from 'node:fs';\nexport default {run(ctx) { symlinkSync('/proc/version', ctx.output('version.txt')); return {}; }};\n",
    });
    expect(statSync('/proc/version').size).toBe(0);
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.read('output/1_vs_2/version.txt')).toBe(readFileSync('/proc/version', 'utf8'));
  });

  it('stores into a content folder moved to another file system through a symlink', () => {
    const project = simple(countingTask(['a.txt'], "'moved content'"));
    tmpfs(project.path('elsewhere'), 'size=1m');
    mkdirSync(project.path('.cache'), {recursive: true});
    symlinkSync(project.path('elsewhere'), project.path('.cache/content-v2'));
    const first = project.run(['--old', '1', '--new', '2']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(execSync(`find ${project.path('elsewhere')} -type f`, {encoding: 'utf8'}).trim().split('\n')).toHaveLength(1);
    expect(project.run(['--old', '1', '--new', '2', '--force']).code).toBe(0);
    expect(project.read('output/1_vs_2/a.txt')).toBe('moved content');
    // Clearing the cache empties the folder the link points to, and keeps the link.
    expect(project.run(['cache', 'clear']).stdout).toMatch(/^Cleared \.cache: [1-9]\d* B freed\.\n$/);
    expect(readdirSync(project.path('elsewhere'))).toEqual([]);
    expect(statSync(project.path('.cache/content-v2')).isDirectory()).toBe(true);
  });

  it('cache gc empties a spill folder moved elsewhere through a symlink, keeping the link', () => {
    const project = simple();
    project.run(['--old', '1', '--new', '2']);
    const elsewhere = temporaryFolder('spill-elsewhere-');
    writeFileSync(join(elsewhere, 'spilled-by-a-killed-run'), 'twelve bytes');
    rmSync(project.path('.cache/tmp'), {recursive: true, force: true});
    symlinkSync(elsewhere, project.path('.cache/tmp'));
    expect(project.run(['cache', 'status']).stdout).toContain('1 file being stored or spilled (12 B)');
    expect(project.run(['cache', 'gc']).stdout).toMatch(/^Removed 0 entries and 1 files \(12 B\)/);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(statSync(project.path('.cache/tmp')).isDirectory()).toBe(true);
    // A run, which clears the spill folder as it takes the lock, keeps the link too.
    expect(project.run(['--old', '1', '--new', '2', '--force']).code).toBe(0);
    expect(lstatSync(project.path('.cache/tmp')).isSymbolicLink()).toBe(true);
  });

  it('a run removes what a killed run left half-stored, as it holds the lock', () => {
    const project = simple();
    mkdirSync(project.path('.cache/incoming'), {recursive: true});
    writeFileSync(project.path('.cache/incoming/left-by-a-killed-run'), 'partial copy');
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(readdirSync(project.path('.cache/incoming'))).toEqual([]);
  });

  it('status, verify, gc and clear', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, with: {v: "${new}"}, outputs: [a.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt']),
    });
    project.run(['--old', '1', '--new', '2']);
    project.run(['--old', '1', '--new', '3']);
    const status = project.run(['cache', 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^Cache \.cache: 2 entries, 2 stored files, \d+ B\n  a +2 entries +\d+ B  last used \S+\n$/);

    const verify = project.run(['cache', 'verify']);
    expect(verify.stdout).toBe('Verified 2 entries: all intact.\n');

    // gc keeps the latest run's entries whatever the limits, and removes a copy a killed run left.
    writeFileSync(project.path('.cache/incoming/left-by-a-killed-run'), 'partial copy');
    const gc = project.run(['cache', 'gc', '--max-size', '0', '--max-age', '0']);
    expect(gc.code).toBe(0);
    expect(existsSync(project.path('.cache/incoming/left-by-a-killed-run'))).toBe(false);
    // The unused stored file and the partial copy.
    expect(gc.stdout).toMatch(/^Removed 1 entries and 2 files \(\d+ B\); kept 1 entries \(\d+ B\), including the latest run's\.\n$/);
    project.run(['--old', '1', '--new', '3']);
    expect(project.runs()).toEqual({a: 2});
    // verify after gc keeps every file the entries refer to (cacache's own verify deleted them).
    expect(project.run(['cache', 'verify']).stdout).toBe('Verified 1 entries: all intact.\n');
    expect(project.run(['cache', 'status']).stdout).toMatch(/^Cache \.cache: 1 entries, 1 stored files, [1-9]\d* B\n/);
    project.run(['--old', '1', '--new', '3']);
    expect(project.runs()).toEqual({a: 2});
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({a: 3});

    // A file whose entry is gone (an interrupted run's, or removed by hand) is reported, not removed.
    const shard = readdirSync(project.path('.cache/entries'))[0]!;
    rmSync(project.path('.cache/entries', shard, readdirSync(project.path('.cache/entries', shard))[0]!));
    const orphans = project.run(['cache', 'verify']);
    expect(orphans.stdout).toMatch(/^Verified 1 entries: all intact\.\n1 stored file belongs to no entry \(\d+ B\); `cache gc` removes them\.\n$/);
    expect(project.run(['cache', 'status']).stdout).toMatch(/^Cache \.cache: 1 entries, 2 stored files/);

    const clear = project.run(['cache', 'clear']);
    expect(clear.stdout).toMatch(/^Cleared \.cache: \d+ B freed\.\n$/);
    project.run(['--old', '1', '--new', '2']);
    expect(project.runs()).toEqual({a: 4});

    const bad = project.run(['cache', 'gc', '--max-size', 'huge']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('Error: Expected --max-size to be a size such as 5G or 512MB, got "huge".\n');
    const unknown = project.run(['cache', 'stats']);
    expect(unknown.stderr).toBe('Error: Expected "cache status", "cache verify", "cache gc" or "cache clear", got "cache stats". Did you mean "status"?\n');
  });

  it('status, gc and clear look after the cache while a task cannot run (its module deleted, a dependency misspelt)', () => {
    const project = simple();
    project.run(['--old', '1', '--new', '2']);
    rmSync(project.path('tasks/a.ts'));
    project.write({'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n  b: {run: a, deps: [c], outputs: [b.txt]}\n'});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(2);
    mkdirSync(project.path('.cache/tmp'), {recursive: true});
    writeFileSync(project.path('.cache/tmp/spilled-by-a-killed-run'), 'twelve bytes');
    const status = project.run(['cache', 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      /^Cache \.cache: 1 entries, 1 stored files, [1-9]\d* B\n  a +1 entries +\d+ B  last used \S+\n1 file being stored or spilled \(12 B\): a running run's, or left by one that was killed; the next run or `cache gc` removes them\.\n$/,
    );
    expect(project.run(['cache', 'gc']).stdout).toMatch(/^Removed 0 entries and 1 files \(12 B\); kept 1 entries/);
    expect(project.run(['cache', 'status']).stdout).not.toContain('being stored or spilled');
    expect(project.run(['cache', 'clear']).stdout).toMatch(/^Cleared \.cache: [1-9]\d* B freed\.\n$/);
    // A problem in the settings still stops them: which cache they would look after is unsure.
    project.write({'pipeline.yaml': 'settings:\n  cache: {dir: 7}\ntasks:\n  a: {run: a, outputs: [a.txt]}\n'});
    const bad = project.run(['cache', 'clear']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('1 problem in the configuration:\npipeline.yaml:2:16 Expected a string for "cache.dir", got 7.\n');
    // So do settings indented under tasks by mistake: the default folder is not the one meant.
    project.write({'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n', 'tasks/a.ts': countingTask(['a.txt'])});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    for (const misplaced of ['tasks:\n  a: {run: a, outputs: [a.txt]}\n  settings:\n    cache: {dir: mycache}\n', 'tasks:\n  a: {run: a, outputs: [a.txt], settings: {cache: {dir: mycache}}}\n']) {
      project.write({'pipeline.yaml': misplaced});
      expect(project.run(['cache', 'clear']).code).toBe(2);
      expect(project.exists('.cache/entries')).toBe(true);
    }
    // A misspelt variable is pointed out, as a run does.
    project.write({'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n'});
    const misspelt = project.run(['cache', 'status'], {PIPELINE_CACH_DIR: 'elsewhere'});
    expect(misspelt.code).toBe(0);
    expect(misspelt.stderr).toBe('Warning: Environment variable PIPELINE_CACH_DIR is not read: "cach" is not a settings section. Did you mean PIPELINE_CACHE_DIR?\n');
  });

  it('gc counts a file entries share once, as status does, keeping and limiting by size on disk', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, with: {v: "${new}"}, outputs: [a.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt'], "'the same whatever the version'"),
    });
    project.run(['--old', '1', '--new', '2']);
    project.run(['--old', '1', '--new', '3']);
    const status = /^Cache \.cache: 2 entries, 1 stored files, (\d+ B)\n/.exec(project.run(['cache', 'status']).stdout);
    expect(status).not.toBeNull();
    // The older entry fits in the limit beside the latest, since it adds nothing on disk.
    expect(project.run(['cache', 'gc', '--max-size', status![1]!.replace(' ', '')]).stdout).toBe(`Removed 0 entries and 0 files (0 B); kept 2 entries (${status![1]}), including the latest run's.\n`);
  });

  it('says a task reruns because its last result left the cache, not that it never ran', () => {
    const project = simple();
    project.run(['--old', '1', '--new', '2']);
    for (const shard of readdirSync(project.path('.cache/entries'))) rmSync(project.path('.cache/entries', shard), {recursive: true});
    project.run(['--old', '1', '--new', '2']);
    expect(project.json<{tasks: {reason: string}[]}>('output/1_vs_2/summary.json').tasks[0]!.reason).toBe('its last result is no longer in the cache (removed by cache gc or cache verify)');
  });

  it('looks after a cache outside the project (an absolute cache.dir)', () => {
    const project = simple();
    const elsewhere = temporaryFolder('cache-elsewhere-');
    project.run(['--old', '1', '--new', '2', '--set', `cache.dir=${elsewhere}`]);
    expect(project.run(['cache', 'status', '--set', `cache.dir=${elsewhere}`]).stdout).toMatch(/^Cache \S+: 1 entries, 1 stored files, [1-9]\d* B\n/);
    expect(project.run(['cache', 'clear', '--set', `cache.dir=${elsewhere}`]).stdout).toMatch(/^Cleared \S+: [1-9]\d* B freed\.\n$/);
    expect(project.exists(elsewhere.slice(1))).toBe(false);
  });
});

describe('a reader that stops early (| head)', () => {
  /** Runs the CLI into `| head -1` (through bash, as a user would); the CLI's exit code and what head read. */
  const into = (reader: string, project: Project, args: string[]) => {
    const command = `${[process.execPath, CLI, ...args].map((word) => `'${word}'`).join(' ')} 2>&1 | ${reader}; exit \${PIPESTATUS[0]}`;
    const result = spawnSync('bash', ['-c', command], {cwd: project.path('.'), env: cliEnv(), encoding: 'utf8'});
    return {code: result.status, stdout: result.stdout};
  };

  it('a run goes on to its end and its exit code; no task is blamed for the closed pipe', () => {
    // b outlives head: the line saying a is done meets a closed pipe while b runs.
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: fast, outputs: [a.txt]}\n  b: {run: slow, outputs: [b.txt]}\n',
      'tasks/fast.ts': SLOW(200),
      'tasks/slow.ts': SLOW(1500).replace('["a.txt"]', '["b.txt"]'),
    });
    const piped = into('head -1', project, ['--old', '1', '--new', '2']);
    expect(piped.stdout.split('\n')).toHaveLength(2);
    expect(piped.code).toBe(0);
    expect(project.runs()).toEqual({a: 1, b: 1});
    expect(project.json<{status: string}>('output/1_vs_2/summary.json').status).toBe('pass');
    expect(project.exists('output/1_vs_2/errors.json')).toBe(false);
    expect(project.read('output/1_vs_2/b.txt')).toBe('done');
  });

  it('cache status ends normally, without a stack trace', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n' + [1, 2, 3, 4, 5, 6].map((i) => `  t${i}: {run: a, outputs: [a.txt]}\n`).join(''),
      'tasks/a.ts': countingTask(['a.txt']),
    });
    project.run(['--old', '1', '--new', '2']);
    // A reader that reads nothing: the pipe is closed before the first line.
    expect(into('true', project, ['cache', 'status'])).toEqual({code: 0, stdout: ''});
  });
});

describe('failed runs', () => {
  it('a failed run publishes why beside the previous outputs, never in their place', () => {
    const project = simple(countingTask(['a.txt'], "(process.env['FAIL'] ? (() => { throw new Error('it broke'); })() : 'good')"));
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    const failed = project.run(['--old', '1', '--new', '2', '--force'], {FAIL: '1'});
    expect(failed.code).toBe(3);
    expect(project.read('output/1_vs_2/a.txt')).toBe('good');
    expect(project.json<{class: string; message: string}>('output/1_vs_2/errors.json')).toMatchObject({message: expect.stringContaining('it broke')});
    expect(project.json<{status: string}>('output/1_vs_2/summary.json').status).toBe('fail');
    // The next good run publishes its own outputs only: errors.json goes.
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.exists('output/1_vs_2/errors.json')).toBe(false);
    expect(project.read('output/1_vs_2/a.txt')).toBe('good');
  });

  it.each([
    ['a rejection nobody awaited', "void Promise.reject(new Error('unobserved rejection'));"],
    ['a throw in a callback', "setTimeout(() => { throw new Error('thrown in a timer'); }, 10);"],
  ])('an error escaping task code (%s) fails its task: exit 3, errors.json, no stack, the lock released', (_name, stray) => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n',
      'tasks/a.ts': `export default {async run(ctx) { ${stray} await new Promise((resolve) => setTimeout(resolve, 300)); (await import('node:fs')).writeFileSync(ctx.output('a.txt'), 'x'); }};\n`,
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    const message = stray.includes('timer') ? 'thrown in a timer' : 'unobserved rejection';
    expect(result.stdout).toContain(`a failed: Task "a" crashed: an error escaped its code: ${message}`);
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    expect(project.json<{class: string; hint: string}>('output/1_vs_2/errors.json')).toMatchObject({class: 'ExecutionError', hint: expect.stringContaining('await every promise')});
    expect(project.exists('.cache/lock')).toBe(false);
  });

  it('an error escaping the code of one task fails that task only, not the one running beside it', () => {
    const sleeper = (name: string, stray: string) =>
      `export default {async run(ctx) { ${stray} await new Promise((resolve) => setTimeout(resolve, 600)); (await import('node:fs')).writeFileSync(ctx.output('${name}.txt'), '${name}'); }};\n`;
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  guilty: {run: guilty, outputs: [guilty.txt]}\n  bystander: {run: bystander, outputs: [bystander.txt]}\n',
      'tasks/guilty.ts': sleeper('guilty', "setTimeout(() => { throw new Error('thrown in a timer'); }, 100);"),
      'tasks/bystander.ts': sleeper('bystander', ''),
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('guilty failed: Task "guilty" crashed: an error escaped its code: thrown in a timer');
    expect(project.json<{tasks: {name: string; status: string}[]}>('output/1_vs_2/summary.json').tasks.find((task) => task.name === 'bystander')?.status).toBe('ran');
  });

  it('an error escaping the code of a finished task is not put down to a shell task running then', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  bomber: {run: bomber, outputs: [a.txt]}\n  innocent: {shell: "sleep 1; echo ok > ${output:b.txt}", deps: [bomber], outputs: [b.txt]}\n',
      'tasks/bomber.ts': "export default {async run(ctx) { (await import('node:fs')).writeFileSync(ctx.output('a.txt'), 'a'); setTimeout(() => { throw new Error('late timer throw'); }, 300); }};\n",
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('Warning: An error escaped the code of task bomber after it finished: late timer throw');
  });

  it('an error escaping task code given up on (timed out) is a warning, not the end of the process', () => {
    const project = new Project({
      'pipeline.yaml': 'settings:\n  performance: {timeout: 1}\ntasks:\n  a: {run: a, outputs: [a.txt]}\n',
      'tasks/a.ts': "export default {async run() { await new Promise((resolve) => setTimeout(resolve, 2500)); void Promise.reject(new Error('late rejection')); await new Promise((resolve) => setTimeout(resolve, 100)); }};\n",
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('exceeded the time limit of 1 s');
    expect(result.stderr).toContain('Warning: An error escaped the code of task a after it finished: late rejection');
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /);
    expect(project.exists('.cache/lock')).toBe(false);
  });

  it('a failed run leaves the previous outputs together, never its own finished ones beside them', () => {
    // a finishes, then b fails: a's new output must not sit beside b's old one.
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, inputs: {settings: [analysis.top_n]}, outputs: [a.txt]}\n  b: {run: b, deps: [a], outputs: [b.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt'], "`top_n ${JSON.stringify(ctx.settings)}`"),
      'tasks/b.ts': countingTask(['b.txt'], "(process.env['FAIL'] ? (() => { throw new Error('b broke'); })() : 'b good')"),
    });
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    const before = project.read('output/1_vs_2/a.txt');
    const failed = project.run(['--old', '1', '--new', '2', '--set', 'analysis.top_n=7'], {FAIL: '1'});
    expect(failed.code).toBe(3);
    expect(failed.stdout).toMatch(/\nErrors: output\/1_vs_2\/errors\.json\n$/);
    expect(project.read('output/1_vs_2/a.txt')).toBe(before);
    expect(project.read('output/1_vs_2/b.txt')).toBe('b good');
    const summary = project.json<{outputs: string[]; kept_from_previous_run: string[]}>('output/1_vs_2/summary.json');
    expect(summary.kept_from_previous_run.sort()).toEqual(['a.txt', 'b.txt']);
    expect(summary.outputs.sort()).toEqual(['a.txt', 'b.txt', 'errors.json', 'summary.json']);
    // With no previous run, a failed run publishes what it finished.
    const fresh = project.run(['--old', '1', '--new', '3', '--set', 'analysis.top_n=7'], {FAIL: '1'});
    expect(fresh.code).toBe(3);
    expect(fresh.stdout).toMatch(/\nErrors: output\/1_vs_3\/errors\.json\n$/);
    expect(project.read('output/1_vs_3/a.txt')).not.toBe(before);
    expect(project.exists('output/1_vs_3/b.txt')).toBe(false);
  });

  it('a failed run keeps previous outputs that were copied or edited since, and a later run does not trust their content', () => {
    const project = simple(countingTask(['a.txt'], "(process.env['FAIL'] ? (() => { throw new Error('it broke'); })() : 'good')"));
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    // The folder copied (as `cp -r` of a project does): every file has a new inode and time.
    cpSync(project.path('output/1_vs_2'), project.path('output/copy'), {recursive: true});
    rmSync(project.path('output/1_vs_2'), {recursive: true});
    renameSync(project.path('output/copy'), project.path('output/1_vs_2'));
    expect(project.run(['--old', '1', '--new', '2', '--force'], {FAIL: '1'}).code).toBe(3);
    expect(project.read('output/1_vs_2/a.txt')).toBe('good');
    // Edited by hand, then two failed runs: still there, as edited.
    writeFileSync(project.path('output/1_vs_2/a.txt'), 'edited');
    expect(project.run(['--old', '1', '--new', '2', '--force'], {FAIL: '1'}).code).toBe(3);
    expect(project.run(['--old', '1', '--new', '2', '--force'], {FAIL: '1'}).code).toBe(3);
    expect(project.read('output/1_vs_2/a.txt')).toBe('edited');
    // A good run (from the cache) publishes the stored content, not the edited file.
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.read('output/1_vs_2/a.txt')).toBe('good');
  });
});

describe('unwritable places and full disks', () => {
  it('an output folder that cannot be created: exit 2, nothing lost', () => {
    const project = simple();
    writeFileSync(project.path('blocker'), 'a file where a folder should be');
    const result = project.run(['--old', '1', '--new', '2', '--output-dir', 'blocker/out']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^Error: Cannot write to the output folder \S+\/blocker\/out: .+\nChoose a writable folder with --output-dir, or fix its permissions\.\n$/);
    expect(project.read('blocker')).toBe('a file where a folder should be');
    // A folder the file system refuses although its parent exists: Node's recursive mkdir
    // never returned there.
    const refused = project.run(['--old', '1', '--new', '2', '--output-dir', '/proc/no-such-folder/out']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^Error: Cannot write to the output folder \/proc\/no-such-folder\/out: ENOENT/);
    const log = project.run(['--old', '1', '--new', '2', '--set', 'logging.file=/proc/no-such-folder/run.log']);
    expect(log.code).toBe(2);
    expect(log.stderr).toMatch(/^Error: Cannot write the log file \/proc\/no-such-folder\/run\.log \(logging\.file\): ENOENT/);
  });

  it('a full disk while publishing: exit 3, the previous outputs stay as they were, the cache stays intact', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, inputs: {settings: [validation.chunk_size]}, outputs: [a.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt'], "'x'.repeat(ctx.settings.validation.chunk_size / 1000)"),
    });
    tmpfs(project.path('out'), 'size=64k');
    expect(project.run(['--old', '1', '--new', '2', '--output-dir', 'out']).code).toBe(0);
    const result = project.run(['--old', '1', '--new', '2', '--output-dir', 'out', '--set', 'validation.chunk_size=200000000']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('The disk is full: free space (`npm run pipeline -- cache gc` shrinks the cache) and rerun; the cache is intact.');
    expect(project.read('out/1_vs_2/a.txt')).toBe('x'.repeat(10));
    expect(readdirSync(project.path('out')).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('a full disk while a task writes: exit 3, saying the disk is full and what to do', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.txt]}\n',
      'tasks/a.ts': countingTask(['a.txt'], "'x'.repeat(256 * 1024)"),
    });
    tmpfs(project.path('.cache'), 'size=128k');
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('a failed: Task "a" ran out of disk space: ENOSPC: no space left on device');
    expect(result.stdout).toContain('The disk is full: free space (`npm run pipeline -- cache gc` shrinks the cache) and rerun; the cache is intact.');
  });

  it('a full disk while an output is stored: that task fails saying so, and no other task is blamed', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  a: {run: a, outputs: [a.bin]}\n  b: {run: b, outputs: [b.txt]}\n',
      'tasks/a.ts': countingTask(['a.bin'], "'x'.repeat(3 * 1024 * 1024)"),
      'tasks/b.ts': SLOW(1500).replaceAll('a.txt', 'b.txt'),
    });
    tmpfs(project.path('.cache'), 'size=4m');
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('a failed: Task "a" ran out of disk space: ENOSPC: no space left on device');
    expect(result.stdout).not.toContain('escaped');
    expect(result.stderr).not.toContain('Warning');
    expect(readdirSync(project.path('.cache/incoming'))).toEqual([]);
  });

  it('an output written as a folder: a message naming it, not EISDIR', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  d: {shell: "mkdir ${output:d.out}", outputs: [d.out]}\n'});
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('d failed: Task "d" wrote its declared output "d.out" as a folder; an output is one file.');
  });

  it('a read-only cache: exit 2 with what to do', () => {
    const project = simple();
    tmpfs(project.path('.cache'), 'ro,size=64k');
    const result = project.run(['--old', '1', '--new', '2']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^Error: Cannot write to the cache folder \S+\/\.cache: .*read-only file system.*\nMake the folder writable, or point cache\.dir at a writable folder/);
  });

  it('a read-only output folder: exit 2, saying it is read-only', () => {
    const project = simple();
    tmpfs(project.path('out'), 'ro,size=64k');
    const result = project.run(['--old', '1', '--new', '2', '--output-dir', 'out']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^Error: Cannot write to the output folder \S+\/out: .*read-only file system/);
  });
});

describe('memory', () => {
  it('warns when the JavaScript heap passes performance.max_memory', () => {
    const project = simple(`import {writeFileSync} from 'node:fs';
export default {
  async run(ctx) {
    const rows = [];
    for (let i = 0; i < 30; i++) {
      rows.push(new Array(1_000_000).fill(i));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    writeFileSync(ctx.output('a.txt'), String(rows.length));
  },
};
`);
    const result = project.run(['--old', '1', '--new', '2', '--set', 'performance.max_memory=64MB']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/Warning: The JavaScript heap uses [\d.]+ MiB, more than performance.max_memory \(64MB\)\./);
  });
});

describe('secrets', () => {
  it('never appear in logs, summaries, errors or the terminal', () => {
    const secret = 'sk-live-9f8e7d6c5b4a39281706';
    const project = simple(
      "export default {async run(ctx) { ctx.log.info('using key ' + process.env.SERVICE_API_KEY); throw new Error('auth failed with Bearer ' + process.env.SERVICE_API_KEY); }};\n",
    );
    const result = project.run(['--old', '1', '--new', '2'], {SERVICE_API_KEY: secret});
    expect(result.code).toBe(3);
    const everything = [result.stdout, result.stderr, project.read('output/1_vs_2/validation.log'), project.read('output/1_vs_2/summary.json'), project.read('output/1_vs_2/errors.json')].join('\n');
    expect(everything).toContain('[redacted]');
    expect(everything).not.toContain(secret);
  });

  it('leave the path of a credentials file in a message (the file is the secret, not its name)', () => {
    const project = simple("export default {async run() { throw new Error('The file at ' + process.env.GOOGLE_APPLICATION_CREDENTIALS + ' does not exist'); }};\n");
    const result = project.run(['--old', '1', '--new', '2'], {GOOGLE_APPLICATION_CREDENTIALS: '/home/me/keys/service-account.json'});
    expect(result.stdout).toContain('The file at /home/me/keys/service-account.json does not exist');
  });
});
