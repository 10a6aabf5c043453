// Bundles the CLI into one file for start-up speed: a fully cached run is mostly module
// loading, and resolving ~40 modules one by one cost ~40 ms of a 150 ms budget (measured
// with bench:runner). Heavy dependencies are bundled into chunks of their own, loaded only
// when needed (dynamic imports): the YAML parser and zod when the configuration changed,
// DuckDB when a task runs. Bundled, each loads in about half the time (yaml 44 -> 17 ms,
// zod 77 -> 40 ms here); what stays
// external is native or optional.
import {rmSync} from 'node:fs';
import {build} from 'esbuild';

// Chunks are named by content: clear out the previous build's.
rmSync('dist/cli', {recursive: true, force: true});

await build({
  entryPoints: ['src/bin.ts'],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // DuckDB's JavaScript API is bundled (into a chunk loaded only when a task needs DuckDB):
  // importing it from node_modules, 124 CommonJS files, took 180-260 ms of every run that
  // runs a task, 110-130 ms bundled. Its native binding stays external, and CommonJS code in
  // the bundle requires it through this module's `require`.
  banner: {js: "import {createRequire as __createRequire} from 'node:module'; const require = __createRequire(import.meta.url);"},
  external: ['@duckdb/node-bindings', '@google-cloud/bigquery', 'google-auth-library', 'tsx', 'zx'],
});
