/**
 * Finding, digesting and loading task modules. A module's code digest covers the module
 * and every local module it imports, so editing a helper reruns the tasks that use it.
 */
import {existsSync, readdirSync, readFileSync} from 'node:fs';
import {readFile} from 'node:fs/promises';
import {dirname, extname, join, relative, resolve, sep} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import type {StatMemo} from './cache/stat-memo.js';
import {ConfigurationError} from './errors.js';
import type {TaskDefinition} from './task-api.js';
import {canonicalJson, sha256} from './util/hash.js';
import {isRecord} from './util/json-path.js';
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

// `import x from './a.js'`, `export {y} from './b.js'`, `import './c.js'`, `import('./d.js')`,
// `import('./e.json', {with: ...})`, `require('./f.js')` (CommonJS, and TypeScript's
// `import x = require(...)`); type-only imports are left out: they do not change what runs.
// Matched on the text with comments blanked out, so an apostrophe in a comment inside an
// import list cannot hide it.
const IMPORT = /(?:^|[;\n}])\s*(?:import|export)\s+(?!type\s)(?:[^'"`;]*?\sfrom\s*)?(?<q>['"])(?<static>[^'"]+)\k<q>|(?<![\w$.])(?:import|require)\(\s*(?<q2>['"])(?<dynamic>[^'"]+)\k<q2>\s*[,)]/g;

// Comments out, strings and template literals kept (a specifier is a string).
const COMMENT_OR_STRING = /\/\*[\s\S]*?\*\/|\/\/[^\n]*|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g;

/** What finds imports, as a digest: a memo of imports found another way is not trusted. */
const SCANNER = sha256(IMPORT.source + COMMENT_OR_STRING.source).slice(0, 16);

/** The local modules a module's text imports, as written. */
export function localImports(text: string): string[] {
  const code = text.replace(COMMENT_OR_STRING, (token) => (token.startsWith('/') ? token.replace(/[^\n]/g, ' ') : token));
  const specifiers: string[] = [];
  for (const match of code.matchAll(IMPORT)) {
    const specifier = match.groups?.['static'] ?? match.groups?.['dynamic'];
    if (specifier !== undefined && specifier.startsWith('.')) specifiers.push(specifier);
  }
  return specifiers;
}

interface ModuleFile {
  digest: ContentDigest;
  imports: string[];
}

/** What a module's text says: its digest and the local imports as written. */
interface ModuleText {
  digest: ContentDigest;
  specifiers: string[];
}

function scanModule(text: string): ModuleText {
  return {digest: sha256(text) as ContentDigest, specifiers: localImports(text)};
}

/**
 * The code digests of task modules, each file read once. One per run: a server running many
 * sees the edits made between them. With a memo, a file is not read again while its (size,
 * mtime, inode, ctime) signature is unchanged (a cached run reads none); its imports are
 * resolved again each run, since which file './a.js' names depends on the files present.
 */
export class ModuleDigests {
  readonly #root: string;
  readonly #memo: StatMemo | undefined;
  readonly #files = new Map<string, Promise<ModuleFile>>();
  readonly #closures = new Map<string, Promise<Record<string, ContentDigest>>>();

  constructor(root: string, memo?: StatMemo) {
    this.#root = root;
    this.#memo = memo;
  }

  /** Digests of a module and every local module it imports, keyed by path relative to the root. */
  of(file: string): Promise<Record<string, ContentDigest>> {
    // Asked for by the probe, the fingerprint and the loader alike: worked out once a run.
    let digests = this.#closures.get(file);
    if (digests === undefined) {
      digests = this.#closure(file);
      this.#closures.set(file, digests);
    }
    return digests;
  }

  async #closure(file: string): Promise<Record<string, ContentDigest>> {
    const digests: Record<string, ContentDigest> = {};
    const seen = new Set<string>();
    // Level by level, each level's files at once.
    for (let level = [file]; level.length > 0; ) {
      const fresh = [...new Set(level)].filter((current) => !seen.has(current));
      for (const current of fresh) seen.add(current);
      const modules = await Promise.all(fresh.map((current) => this.#read(current)));
      fresh.forEach((current, index) => (digests[displayPath(current, this.#root)] = modules[index]!.digest));
      level = modules.flatMap((module) => module.imports);
    }
    return digests;
  }

  #read(file: string): Promise<ModuleFile> {
    let known = this.#files.get(file);
    if (known === undefined) {
      known = this.#scan(file).then(({digest, specifiers}) => ({
        digest,
        imports: specifiers.flatMap((specifier) => resolveImport(dirname(file), specifier) ?? []),
      }));
      this.#files.set(file, known);
    }
    return known;
  }

  async #scan(file: string): Promise<ModuleText> {
    const scan = async (path: string) => scanModule(await readFile(path, 'utf8'));
    const memo = this.#memo;
    if (memo === undefined) return scan(file);
    const remember = async (path: string) => JSON.stringify({...(await scan(path)), scanner: SCANNER});
    const remembered = JSON.parse(await memo.get(file, remember)) as Partial<ModuleText> & {scanner?: string};
    if (remembered.scanner === SCANNER && typeof remembered.digest === 'string' && Array.isArray(remembered.specifiers)) return remembered as ModuleText;
    // Found by another way of finding imports (an upgrade), or edited: read the file again.
    const fresh = await scan(file);
    await memo.set(file, JSON.stringify({...fresh, scanner: SCANNER}));
    return fresh;
  }
}

function resolveImport(from: string, specifier: string): string | undefined {
  const base = resolve(from, specifier);
  // TypeScript's convention: './a.js' names a.ts, './a.mjs' names a.mts (or the files as written).
  const written = /\.js$/.test(base) ? [base.slice(0, -3) + '.ts'] : /\.mjs$/.test(base) ? [base.slice(0, -4) + '.mts'] : [];
  const candidates = [...written, base, ...EXTENSIONS.map((extension) => base + extension), join(base, 'index.ts')];
  return candidates.find((candidate) => existsSync(candidate) && !candidate.endsWith(sep));
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
  } else {
    // tsx compiles TypeScript and, unlike import(), loads afresh each time: a long-lived
    // server runs a module's (and its helpers') code as it is now, not as first loaded.
    const {tsImport} = await import('tsx/esm/api');
    module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as {default?: unknown};
  }
  let definition = module.default;
  // A .ts file in a folder whose package.json does not say "type": "module" loads as
  // CommonJS, its default export one level down.
  if (isRecord(definition) && typeof definition['run'] !== 'function' && (isRecord(definition['default']) || typeof definition['default'] === 'function')) {
    definition = definition['default'];
  }
  if (definition === null || typeof definition !== 'object' || typeof (definition as TaskDefinition).run !== 'function') {
    // The author's to mend, like a setting: exit 2.
    throw new ConfigurationError(`${displayPath(file, process.cwd())} does not export a task${typeof definition === 'function' ? ': its default export is a function' : ''}.`, {
      hint:
        typeof definition === 'function'
          ? 'Give the function as the task\'s run: `export default defineTask({run: yourFunction})`.'
          : 'A task module must `export default defineTask({async run(ctx) {...}})`.',
    });
  }
  return definition as TaskDefinition;
}
