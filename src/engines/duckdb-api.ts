/**
 * DuckDB's JavaScript API, for the modules that load it lazily (`await import(...)`). The CLI
 * bundle puts this module and the API into one chunk (scripts/bundle-cli.mjs); importing
 * through an ES module keeps the API's named exports, which a CommonJS package imported
 * dynamically into a split bundle would lose.
 */
export {DuckDBInstance} from '@duckdb/node-api';
