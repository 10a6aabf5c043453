/**
 * Loading the configuration is the slowest part of a fully cached run (parsing YAML with
 * positions and validating with zod cost more than everything else together). The
 * outcome of a valid load depends only on the text of the files, the environment and the
 * flags, so it is remembered under their digest and the parsers are not even imported
 * when nothing changed.
 */
import {existsSync, readFileSync} from 'node:fs';
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises';
import {join, relative} from 'node:path';
import {PACKAGE_DIR} from '../task-modules.js';
import type {LoadedPipeline, SettingsInputs} from './load.js';
import type {Settings, TaskDeclaration} from './schema.js';
import {canonicalJson, parseKeepingNonFinite, sha256, stringifyKeepingNonFinite} from '../util/hash.js';

/** What is remembered of a valid load. */
interface Memo {
  settings: Settings;
  tasks: [string, TaskDeclaration][];
  warnings: string[];
}

/** Written by the build (scripts/stamp-build.mjs): a digest of the runner's sources. */
const BUILD_ID_FILE = join(PACKAGE_DIR, 'dist', '.build-id');

function readIfFile(path: string | undefined): string | null {
  if (path === undefined || !existsSync(path)) return null;
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function memoKey(pipelineFile: string, inputs: SettingsInputs): string | undefined {
  // Without a build id a changed schema could not be told apart: no memo then.
  const build = readIfFile(BUILD_ID_FILE);
  if (build === null) return undefined;
  const env = Object.entries(inputs.env ?? {})
    .filter(([name]) => name.startsWith('PIPELINE_'))
    .sort(([a], [b]) => a.localeCompare(b));
  return sha256(
    canonicalJson({
      build,
      pipeline: readIfFile(pipelineFile),
      config: inputs.configFile === undefined ? null : [inputs.configFile, readIfFile(inputs.configFile)],
      env,
      sets: inputs.sets ?? [],
      outputDir: inputs.outputDir ?? null,
      cwd: process.cwd(),
    }),
  );
}

/** Loads the configuration, from the memo when its inputs are unchanged. */
export async function loadWithMemo(pipelineFile: string, inputs: SettingsInputs, memoDir: string): Promise<LoadedPipeline> {
  const key = memoKey(pipelineFile, inputs);
  const file = join(memoDir, `${key ?? 'none'}.json`);
  try {
    if (key === undefined) throw new Error('no build id');
    const memo = parseKeepingNonFinite(await readFile(file, 'utf8')) as Memo;
    const where = {source: relative(process.cwd(), pipelineFile) || pipelineFile};
    return {
      file: pipelineFile,
      source: {locate: () => where, locateKey: () => where},
      fromMemo: true,
      settings: memo.settings,
      tasks: new Map(memo.tasks),
      invalidTasks: new Set(),
      diagnostics: [],
      settingsDiagnostics: [],
      warnings: memo.warnings,
    };
  } catch {
    // No memo (or an unreadable one): load for real.
  }
  const {loadPipeline} = await import('./load.js');
  const loaded = loadPipeline(pipelineFile, inputs);
  if (loaded.diagnostics.length === 0 && key !== undefined) {
    await mkdir(memoDir, {recursive: true}).catch(() => undefined);
    const temporary = `${file}.tmp-${process.pid}`;
    const memo: Memo = {settings: loaded.settings, tasks: [...loaded.tasks], warnings: loaded.warnings};
    // A read-only project still runs; it just loads slowly.
    // Non-finite numbers (`.inf` in a setting or an argument) stay numbers, not JSON's null.
    await writeFile(temporary, stringifyKeepingNonFinite(memo))
      .then(() => rename(temporary, file))
      .catch(() => undefined);
  }
  return loaded;
}
