#!/usr/bin/env node
/**
 * The executable: turns on Node's compile cache where there is one (Node 22.1+), then loads
 * the CLI. A fully cached run is mostly start-up, and most of start-up is compiling modules.
 */
import module from 'node:module';

(module as {enableCompileCache?: () => unknown}).enableCompileCache?.();
await import('./cli.js');
