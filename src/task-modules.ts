/**
 * Finding, digesting and loading task modules. A module's code digest covers the module
 * and every local module it imports, so editing a helper reruns the tasks that use it.
 */
import {existsSync, readdirSync, readFileSync} from 'node:fs';
import {dirname, extname, join, relative, resolve, sep} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {ExecutionError} from './errors.js';
import type {TaskDefinition} from './task-api.js';
import {canonicalJson, sha256} from './util/hash.js';
import type {ContentDigest} from './util/hash.js';

/** The folder of this package (where the built-in tasks live). */
export const PACKAGE_DIR = findPackageDir(dirname(fileURLToPath(import.meta.url)));

function findPackageDir(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'tasks'))) return dir;
    if (dirname(dir) === dir) return resolve(start, '..');
  }
}

const EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

function taskDirs(projectDir: string): string[] {
  const dirs = [join(projectDir, 'tasks'), join(PACKAGE_DIR, 'tasks')];
  return [...new Set(dirs)];
}

/** The file a `run:` name refers to: the project's `tasks/` first, then the built-in tasks. */
export function resolveTaskModule(run: string, projectDir: string): string | undefined {
  if (run.split(/[\\/]/).includes('..')) return undefined;
  for (const dir of taskDirs(projectDir)) {
    for (const extension of ['', ...EXTENSIONS]) {
      const file = join(dir, run + extension);
      if ((extension !== '' || EXTENSIONS.includes(extname(run))) && existsSync(file)) return file;
    }
  }
  return undefined;
}

/** The task names available to `run:`, for suggestions. */
export function availableTaskModules(projectDir: string): string[] {
  const names = new Set<string>();
  for (const dir of taskDirs(projectDir)) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir)) {
      const extension = extname(entry);
      if (EXTENSIONS.includes(extension) && !entry.endsWith('.d.ts')) names.add(entry.slice(0, -extension.length));
    }
  }
  return [...names].sort();
}

// `import x from './a.js'`, `export {y} from './b.js'`, `import './c.js'`, `import('./d.js')`;
// type-only imports are left out: they do not change what runs.
const IMPORT = /(?:^|[;\n])\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

interface ModuleFile {
  digest: ContentDigest;
  imports: string[];
}

const moduleFiles = new Map<string, ModuleFile>();

function readModule(file: string): ModuleFile {
  let cached = moduleFiles.get(file);
  if (cached === undefined) {
    const text = readFileSync(file, 'utf8');
    const imports: string[] = [];
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2];
      if (specifier === undefined || !specifier.startsWith('.')) continue;
      const target = resolveImport(dirname(file), specifier);
      if (target !== undefined) imports.push(target);
    }
    cached = {digest: sha256(text) as ContentDigest, imports};
    moduleFiles.set(file, cached);
  }
  return cached;
}

function resolveImport(from: string, specifier: string): string | undefined {
  const base = resolve(from, specifier);
  const stem = base.replace(/\.(m?js)$/, '');
  const candidates = [stem + '.ts', stem + '.mts', base, ...EXTENSIONS.map((extension) => base + extension), join(base, 'index.ts')];
  return candidates.find((candidate) => existsSync(candidate) && !candidate.endsWith(sep));
}

/** Digests of a module and every local module it imports, keyed by path relative to `root`. */
export function codeDigests(file: string, root: string): Record<string, ContentDigest> {
  const digests: Record<string, ContentDigest> = {};
  const pending = [file];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const current = pending.pop()!;
    if (seen.has(current)) continue;
    seen.add(current);
    const module = readModule(current);
    digests[displayPath(current, root)] = module.digest;
    pending.push(...module.imports);
  }
  return digests;
}

/** A path relative to `root` when inside it, else relative to the package. */
export function displayPath(file: string, root: string): string {
  const inRoot = relative(root, file);
  const path = inRoot.startsWith('..') ? relative(PACKAGE_DIR, file) : inRoot;
  return path.split(sep).join('/');
}

/** The digest that identifies a module's code as a whole. */
export function combinedDigest(digests: Record<string, ContentDigest>): string {
  return sha256(canonicalJson(digests));
}

const STAMPS_FILE = join(PACKAGE_DIR, 'dist', '.build-stamps.json');
let stamps: Record<string, string> | undefined;

function buildStamps(): Record<string, string> {
  if (stamps === undefined) {
    try {
      stamps = JSON.parse(readFileSync(STAMPS_FILE, 'utf8')) as Record<string, string>;
    } catch {
      stamps = {};
    }
  }
  return stamps;
}

/**
 * Imports a task module. The package's own tasks load from the build when the build was made
 * from exactly this code (fast); anything else is compiled on the fly with tsx.
 */
export async function loadTaskModule(file: string, codeDigest: string): Promise<TaskDefinition> {
  let module: {default?: unknown};
  const relativeToPackage = relative(PACKAGE_DIR, file).split(sep).join('/');
  const built = join(PACKAGE_DIR, 'dist', relativeToPackage.replace(/\.m?ts$/, '.js'));
  if (!relativeToPackage.startsWith('..') && buildStamps()[relativeToPackage] === codeDigest && existsSync(built)) {
    module = (await import(pathToFileURL(built).href)) as {default?: unknown};
  } else if (/\.m?ts$/.test(file)) {
    const {tsImport} = await import('tsx/esm/api');
    module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as {default?: unknown};
  } else {
    module = (await import(pathToFileURL(file).href)) as {default?: unknown};
  }
  const definition = module.default;
  if (definition === null || typeof definition !== 'object' || typeof (definition as TaskDefinition).run !== 'function') {
    throw new ExecutionError(`${displayPath(file, process.cwd())} does not export a task.`, {
      hint: 'A task module must `export default defineTask({async run(ctx) {...}})`.',
    });
  }
  return definition as TaskDefinition;
}
