// Bundles the CLI into one file for start-up speed: a fully cached run is mostly module
// loading, and resolving ~40 modules one by one cost ~40 ms of a 150 ms budget (measured
// with bench:runner). Heavy dependencies stay external and are loaded only when needed.
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
  external: ['@duckdb/node-api', '@google-cloud/bigquery', 'google-auth-library', 'tsx', 'zx', 'cacache', 'yaml', 'zod'],
});
