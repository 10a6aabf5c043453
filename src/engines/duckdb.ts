/**
 * The embedded engine shared by the tasks of one run. Loaded only when a task asks for it,
 * so a fully cached run never pays for DuckDB's start-up.
 */
import {mkdirSync} from 'node:fs';
import type {DuckDBConnection, DuckDBInstance} from '@duckdb/node-api';

/** How the engine is bounded. */
export interface DuckDBOptions {
  /** DuckDB's memory_limit, e.g. `4G` or `512MB`. */
  memoryLimit: string;
  /** Where DuckDB spills when a query outgrows the memory limit. */
  tempDirectory: string;
  /** Worker threads; DuckDB's default (all cores) when omitted. */
  threads?: number;
}

/** How often the connection of an interrupted task interrupts the query it runs. */
const INTERRUPT_EVERY_MS = 50;

/** One in-memory DuckDB instance per run; each task gets its own connection. */
export class DuckDBEngine {
  readonly #options: DuckDBOptions;
  #instance: Promise<DuckDBInstance> | undefined;
  readonly #connections = new Set<DuckDBConnection>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(options: DuckDBOptions) {
    this.#options = options;
  }

  /**
   * A new connection; interrupted when `signal` aborts, and then every query it starts too
   * (task code may go on querying after the abort, a cleanup in a finally), so that the run
   * can end promptly; closed by `close()`.
   */
  async connect(signal?: AbortSignal): Promise<DuckDBConnection> {
    this.#instance ??= this.#create();
    const connection = await (await this.#instance).connect();
    this.#connections.add(connection);
    if (this.#connections.size === 1) process.on('exit', this.#interruptAll);
    signal?.addEventListener(
      'abort',
      () => {
        connection.interrupt();
        const timer = setInterval(() => connection.interrupt(), INTERRUPT_EVERY_MS);
        timer.unref();
        this.#timers.add(timer);
      },
      {once: true},
    );
    return connection;
  }

  // Process exit (a second Ctrl-C) waits for DuckDB's threads: their queries are stopped first.
  readonly #interruptAll = () => {
    for (const connection of this.#connections) connection.interrupt();
  };

  /**
   * Closes every connection and the instance. With `busy` (a query may still be running on a
   * worker thread) nothing is closed: closing a connection under its query deadlocks DuckDB
   * (its context is destroyed inside the query), and the exiting process waits forever on the
   * thread; left open, the query ends and the process exits.
   */
  close(options: {busy?: boolean} = {}): void {
    if (options.busy === true) {
      // Its connections go on interrupting what they run, and once more at process exit.
      this.#instance = undefined;
      return;
    }
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers.clear();
    process.off('exit', this.#interruptAll);
    for (const connection of this.#connections) connection.closeSync();
    this.#connections.clear();
    void this.#instance?.then((instance) => instance.closeSync(), () => undefined);
    this.#instance = undefined;
  }

  async #create(): Promise<DuckDBInstance> {
    const {DuckDBInstance} = await import('./duckdb-api.js');
    mkdirSync(this.#options.tempDirectory, {recursive: true});
    const config: Record<string, string> = {
      memory_limit: this.#options.memoryLimit,
      temp_directory: this.#options.tempDirectory,
      // Parquet written by one run must be byte-identical to the next run's, so that
      // downstream tasks are not rerun for nothing: keep row order deterministic.
      preserve_insertion_order: 'true',
    };
    if (this.#options.threads !== undefined) config['threads'] = String(this.#options.threads);
    return DuckDBInstance.create(':memory:', config);
  }
}
