/**
 * A local BigQuery: the part of the REST API v2 that `@google-cloud/bigquery` uses
 * (jobs.query, jobs.getQueryResults, jobs.insert/get incl. dry runs, jobs.cancel, tables.get), answering
 * from DuckDB, with switches that inject failures. The real client talks to it unchanged
 * with only `apiEndpoint`, `projectId` and a pass-through auth client set
 * (see ../shared/BIGQUERY-REST.md for the wire contract it follows).
 *
 * A BigQuery table `project.dataset.table` is the DuckDB table `dataset.table` (a schema and
 * a table); the shipped warehouse keeps its tables in the schema `main`, so point the pipeline
 * at it with `bigquery.dataset_id: main`.
 *
 * Standalone: `node --import tsx test/support/bigquery-server.ts --database data/warehouse.duckdb
 * --port 9050 --project local`, then set `bigquery.api_endpoint: http://127.0.0.1:9050`.
 */
import {createHash} from 'node:crypto';
import {createServer} from 'node:http';
import type {IncomingMessage, Server, ServerResponse} from 'node:http';
import type {AddressInfo} from 'node:net';
import {DOUBLE} from '@duckdb/node-api';
import type {DuckDBInstance, DuckDBType} from '@duckdb/node-api';

/** One request as the server saw it. */
export interface LoggedRequest {
  method: string;
  /** The route: `jobs.query`, `jobs.getQueryResults`, `jobs.insert`, `jobs.get`, `jobs.cancel`, `tables.get`, `unknown`. */
  route: Route;
  /** The path without the query string and without the `/bigquery/v2` prefix. */
  path: string;
  status: number;
  /** Whether a switch (failNext, dropNext, loseNext) answered instead of the API. */
  injected: boolean;
  /** Whether it asked for a dry run (jobs.query, jobs.insert). */
  dryRun: boolean;
  /** Whether it asked for a page after the first (a pageToken). */
  paged: boolean;
  /** When it arrived (performance.now(), milliseconds). */
  at: number;
  /** The job id, for jobs.insert (as requested), jobs.getQueryResults and jobs.cancel. */
  jobId?: string;
}

/** The API methods the server implements. */
export type Route = 'jobs.query' | 'jobs.getQueryResults' | 'jobs.insert' | 'jobs.get' | 'jobs.cancel' | 'tables.get' | 'unknown';

/** Which requests a switch applies to: every request, or those of one route, dry runs or not, later pages or not. */
export interface FailureMatch {
  route?: Route;
  dryRun?: boolean;
  paged?: boolean;
}

/** A running local BigQuery. */
export interface BigQueryServer {
  /** The base URL to use as `apiEndpoint` (`http://127.0.0.1:PORT`). */
  readonly url: string;
  readonly project: string;
  /** Every request, in order. */
  readonly log: LoggedRequest[];
  /** How many requests each route received. */
  count(route: Route): number;
  /** How many queries were run (jobs.query or jobs.insert, not dry runs, answered). */
  queries(): number;
  /** Clears the log and the list of cancelled jobs. */
  resetLog(): void;
  /**
   * Answers the next `count` matching requests with `status` and a BigQuery error envelope;
   * with `inJob`, a jobs.insert with 200 and the job done with those errors (a job that failed
   * as it was created), or on jobs.getQueryResults a job that failed while running: every later
   * jobs.getQueryResults of it answers the same, and jobs.get shows its errorResult.
   */
  failNext(count: number, status: number, options?: FailureMatch & {reason?: string; message?: string; inJob?: boolean}): void;
  /** Answers the next `count` matching jobs.getQueryResults with `jobComplete: false` (a query still running), as BigQuery does after ~10 s. */
  pendingNext(count: number, options?: FailureMatch): void;
  /** Destroys the socket of the next `count` matching requests without answering. */
  dropNext(count: number, options?: FailureMatch): void;
  /** Carries out the next `count` matching requests, then destroys the socket instead of answering (an answer lost on the way). */
  loseNext(count: number, options?: FailureMatch): void;
  /** The ids of the jobs cancelled (jobs.cancel), in order. */
  readonly cancelled: string[];
  /** Delays the next `count` matching responses by `ms`. */
  slowNext(count: number, ms: number, options?: FailureMatch): void;
  /** Marks a table modified (as DML would): bumps its lastModifiedTime and etag. */
  touchTable(dataset: string, table: string): void;
  /** Runs SQL on the server's DuckDB (fixtures); tables live in schemas named after datasets. */
  run(sql: string): Promise<void>;
  close(): Promise<void>;
}

/** Options of `startBigQueryServer`. */
export interface BigQueryServerOptions {
  /** A DuckDB file attached read-only; omitted, the server starts empty (create tables with `run`). */
  database?: string;
  project: string;
  /** 0 (default) picks a free port. */
  port?: number;
  location?: string;
  /** Rows per page when a request sets no `maxResults`. */
  defaultPageSize?: number;
}

interface Field {
  name: string;
  type: string;
  mode: 'NULLABLE' | 'REPEATED';
  fields?: Field[];
}

interface StoredJob {
  id: string;
  table: string; // DuckDB table holding the encoded rows (rn, j)
  schema: {fields: Field[]};
  totalRows: number;
  bytes: number;
  query: unknown;
  dryRun: boolean;
  /** Set when the job failed while running (failNext with inJob on jobs.getQueryResults). */
  failure?: ApiFailure;
}

interface Switch {
  kind: 'fail' | 'drop' | 'lose' | 'slow' | 'pending';
  inJob?: boolean;
  remaining: number;
  match: FailureMatch;
  status?: number;
  reason?: string;
  message?: string;
  ms?: number;
}

/** An error answered with BigQuery's error envelope. */
class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const REASONS: Record<number, string> = {
  400: 'invalidQuery',
  401: 'unauthorized',
  403: 'accessDenied',
  404: 'notFound',
  408: 'timeout',
  409: 'duplicate',
  429: 'rateLimitExceeded',
  500: 'internalError',
  502: 'backendError',
  503: 'backendError',
  504: 'backendError',
};
const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};
// A fixed origin keeps lastModifiedTime deterministic across server restarts.
const MODIFIED_ORIGIN_MS = 1_700_000_000_000;

/** Starts a local BigQuery on 127.0.0.1. */
export async function startBigQueryServer(options: BigQueryServerOptions): Promise<BigQueryServer> {
  const {DuckDBInstance} = await import('@duckdb/node-api');
  const instance: DuckDBInstance = await DuckDBInstance.create(':memory:');
  const setup = await instance.connect();
  let catalog = 'memory';
  if (options.database !== undefined) {
    await setup.run(`ATTACH ${sqlString(options.database)} AS warehouse (READ_ONLY)`);
    catalog = 'warehouse';
  }
  await setup.run('CREATE SCHEMA IF NOT EXISTS memory."_jobs"');
  // BigQuery functions the generated comparison and analysis use, under their BigQuery names (DuckDB
  // resolves function names case-insensitively, so `IS_NAN(x)` finds `is_nan`).
  await setup.run(`
    CREATE MACRO memory.main.is_nan(x) AS isnan(x);
    CREATE MACRO memory.main.is_inf(x) AS isinf(x);
    CREATE MACRO memory.main.ieee_divide(a, b) AS CAST(a AS DOUBLE) / CAST(b AS DOUBLE);
    CREATE MACRO memory.main.to_json_string(x) AS CAST(to_json(x) AS VARCHAR);
    CREATE MACRO memory.main.st_astext(x) AS CAST(x AS VARCHAR);
    CREATE MACRO memory.main.bq_countif(x) AS count(CASE WHEN x THEN 1 END);
    CREATE MACRO memory.main.safe_subtract(a, b) AS TRY(a - b);
    CREATE MACRO memory.main.approx_quantiles(x, n) AS quantile_disc(x, [i / n FOR i IN range(n + 1)]);
  `);
  const state = new ServerState(instance, catalog, options);
  const server = createServer((req, res) => void state.handle(req, res));
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    project: options.project,
    log: state.log,
    count: (route) => state.log.filter((r) => r.route === route).length,
    queries: () => state.log.filter((r) => (r.route === 'jobs.query' || r.route === 'jobs.insert') && !r.dryRun && r.status === 200).length,
    resetLog: () => {
      state.log.splice(0);
      state.cancelled.splice(0);
    },
    failNext: (count, status, o = {}) =>
      state.switches.push({kind: 'fail', remaining: count, status, match: {route: o.route, dryRun: o.dryRun, paged: o.paged}, reason: o.reason, message: o.message, inJob: o.inJob}),
    pendingNext: (count, o = {}) => state.switches.push({kind: 'pending', remaining: count, match: {route: o.route ?? 'jobs.getQueryResults', dryRun: o.dryRun, paged: o.paged}}),
    dropNext: (count, o = {}) => state.switches.push({kind: 'drop', remaining: count, match: {route: o.route, dryRun: o.dryRun, paged: o.paged}}),
    loseNext: (count, o = {}) => state.switches.push({kind: 'lose', remaining: count, match: {route: o.route, dryRun: o.dryRun, paged: o.paged}}),
    cancelled: state.cancelled,
    slowNext: (count, ms, o = {}) => state.switches.push({kind: 'slow', remaining: count, ms, match: {route: o.route, dryRun: o.dryRun, paged: o.paged}}),
    touchTable: (dataset, table) => state.touch(dataset, table),
    run: async (sql) => {
      await setup.run(sql);
    },
    close: () => closeServer(server, () => {
      setup.closeSync();
      instance.closeSync();
    }),
  };
}

function closeServer(server: Server, after: () => void): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      after();
      resolve();
    });
    server.closeAllConnections();
  });
}

class ServerState {
  readonly log: LoggedRequest[] = [];
  readonly switches: Switch[] = [];
  readonly cancelled: string[] = [];
  readonly #instance: DuckDBInstance;
  readonly #catalog: string;
  readonly #project: string;
  readonly #location: string;
  readonly #defaultPageSize: number;
  readonly #jobs = new Map<string, StoredJob>();
  readonly #modifications = new Map<string, number>();
  #nextJob = 1;

  constructor(instance: DuckDBInstance, catalog: string, options: BigQueryServerOptions) {
    this.#instance = instance;
    this.#catalog = catalog;
    this.#project = options.project;
    this.#location = options.location ?? 'US';
    this.#defaultPageSize = options.defaultPageSize ?? 10_000;
  }

  touch(dataset: string, table: string): void {
    const key = `${dataset}.${table}`;
    this.#modifications.set(key, (this.#modifications.get(key) ?? 0) + 1);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // Both prefixes: the client's `/bigquery/v2/...` and BIGQUERY_EMULATOR_HOST's bare one.
    const path = url.pathname.replace(/^\/bigquery\/v2(?=\/)/, '');
    const method = req.method ?? 'GET';
    const {route, params} = matchRoute(method, path);
    const entry: LoggedRequest = {method, route, path, status: 0, injected: false, dryRun: false, paged: url.searchParams.has('pageToken'), at: performance.now()};
    if (params.job !== undefined) entry.jobId = params.job;
    this.log.push(entry);
    const body = await readBody(req);
    if (route === 'jobs.query' || route === 'jobs.insert') {
      const request = (parseJsonOrNull(body) ?? {}) as {dryRun?: unknown; configuration?: {dryRun?: unknown}; jobReference?: {jobId?: string}};
      entry.dryRun = request.dryRun === true || request.configuration?.dryRun === true;
      if (request.jobReference?.jobId !== undefined) entry.jobId = request.jobReference.jobId;
    }

    const slow = this.#take('slow', entry);
    if (slow?.ms) await new Promise((r) => setTimeout(r, slow.ms));
    if (this.#take('drop', entry)) {
      entry.injected = true;
      req.socket.destroy();
      return;
    }
    const fail = this.#take('fail', entry);
    if (fail?.inJob && route === 'jobs.getQueryResults') {
      // The job fails while running: this and every later ask about it says so, as BigQuery's would.
      const job = this.#jobs.get(params.job ?? '');
      const failure = new ApiFailure(fail.status ?? 500, fail.reason ?? 'backendError', fail.message ?? 'Injected job failure');
      if (job !== undefined) job.failure = failure;
      entry.injected = true;
      entry.status = failure.status;
      sendError(res, failure);
      return;
    }
    if (fail?.inJob) {
      entry.injected = true;
      entry.status = 200;
      const jobId = ((parseJsonOrNull(body) ?? {}) as {jobReference?: {jobId?: string}}).jobReference?.jobId ?? 'failed_job';
      const errors = [{reason: fail.reason ?? 'invalidQuery', message: fail.message ?? 'Injected job failure'}];
      res.writeHead(200, {'content-type': 'application/json; charset=UTF-8'});
      res.end(JSON.stringify({kind: 'bigquery#job', jobReference: {projectId: this.#project, jobId, location: this.#location}, status: {state: 'DONE', errorResult: errors[0], errors}}));
      return;
    }
    if (this.#take('pending', entry)) {
      entry.injected = true;
      entry.status = 200;
      res.writeHead(200, {'content-type': 'application/json; charset=UTF-8'});
      res.end(JSON.stringify({kind: 'bigquery#getQueryResultsResponse', jobReference: {projectId: this.#project, jobId: params.job, location: this.#location}, jobComplete: false}));
      return;
    }
    if (fail) {
      entry.injected = true;
      const status = fail.status ?? 500;
      entry.status = status;
      sendError(res, new ApiFailure(status, fail.reason ?? REASONS[status] ?? 'backendError', fail.message ?? `Injected failure ${status}`));
      return;
    }
    try {
      if (params.project !== undefined && params.project !== this.#project) {
        throw new ApiFailure(404, 'notFound', `Not found: Project ${params.project}`);
      }
      const json = await this.#dispatch(route, params, url.searchParams, body);
      if (this.#take('lose', entry)) {
        // Carried out (status 200), the answer lost on the way.
        entry.status = 200;
        entry.injected = true;
        req.socket.destroy();
        return;
      }
      entry.status = 200;
      res.writeHead(200, {'content-type': 'application/json; charset=UTF-8'});
      res.end(json);
    } catch (error) {
      const failure = error instanceof ApiFailure ? error : new ApiFailure(500, 'internalError', String((error as Error).message));
      entry.status = failure.status;
      sendError(res, failure);
    }
  }

  #take(kind: Switch['kind'], request: LoggedRequest): Switch | undefined {
    const found = this.switches.find(
      (s) =>
        s.kind === kind &&
        s.remaining > 0 &&
        (s.match.route === undefined || s.match.route === request.route) &&
        (s.match.dryRun === undefined || s.match.dryRun === request.dryRun) &&
        (s.match.paged === undefined || s.match.paged === request.paged),
    );
    if (found) found.remaining -= 1;
    return found;
  }

  async #dispatch(route: Route, params: Record<string, string>, query: URLSearchParams, body: string): Promise<string> {
    switch (route) {
      case 'jobs.query': {
        const request = parseJson(body) as QueryRequest;
        const job = await this.#runQuery(request.query, request.queryParameters, request.dryRun === true);
        const pageSize = positive(request.maxResults) ?? this.#defaultPageSize;
        return this.#page(job, 0, pageSize, 'bigquery#queryResponse');
      }
      case 'jobs.getQueryResults': {
        const job = this.#job(params.job!);
        if (job.failure !== undefined) throw job.failure;
        const pageToken = query.get('pageToken');
        const start = pageToken !== null ? Number(pageToken.replace(/^o:/, '')) : Number(query.get('startIndex') ?? 0);
        const pageSize = positive(query.get('maxResults')) ?? this.#defaultPageSize;
        return this.#page(job, start, pageSize, 'bigquery#getQueryResultsResponse');
      }
      case 'jobs.insert': {
        const request = parseJson(body) as {configuration?: {dryRun?: boolean; query?: QueryRequest}; jobReference?: {jobId?: string}};
        const q = request.configuration?.query;
        if (!q?.query) throw new ApiFailure(400, 'invalid', 'Required parameter is missing: configuration.query');
        const id = request.jobReference?.jobId;
        if (id !== undefined && this.#jobs.has(id)) throw new ApiFailure(409, 'duplicate', `Already Exists: Job ${this.#project}:${this.#location}.${id}`);
        const job = await this.#runQuery(q.query, q.queryParameters, request.configuration?.dryRun === true, request.jobReference?.jobId);
        return JSON.stringify(this.#jobResource(job));
      }
      case 'jobs.get':
        return JSON.stringify(this.#jobResource(this.#job(params.job!)));
      case 'jobs.cancel': {
        const job = this.#job(params.job!);
        this.cancelled.push(job.id);
        return JSON.stringify({kind: 'bigquery#jobCancelResponse', job: this.#jobResource(job)});
      }
      case 'tables.get':
        return JSON.stringify(await this.#tableResource(params.dataset!, params.table!));
      case 'unknown':
        throw new ApiFailure(404, 'notFound', 'Not found: URL');
    }
  }

  #job(id: string): StoredJob {
    const job = this.#jobs.get(id);
    if (!job) throw new ApiFailure(404, 'notFound', `Not found: Job ${this.#project}:${this.#location}.${id}`);
    return job;
  }

  #jobResource(job: StoredJob): Json {
    return {
      kind: 'bigquery#job',
      id: `${this.#project}:${this.#location}.${job.id}`,
      jobReference: {projectId: this.#project, jobId: job.id, location: this.#location},
      configuration: {dryRun: job.dryRun, query: job.query as Json, jobType: 'QUERY'},
      status: job.failure === undefined ? {state: 'DONE'} : {state: 'DONE', errorResult: {reason: job.failure.reason, message: job.failure.message}, errors: [{reason: job.failure.reason, message: job.failure.message}]},
      statistics: {
        totalBytesProcessed: String(job.bytes),
        query: {totalBytesProcessed: String(job.bytes), totalBytesBilled: '0', cacheHit: false, schema: job.schema as unknown as Json},
      },
    };
  }

  async #page(job: StoredJob, start: number, pageSize: number, kind: string): Promise<string> {
    const end = Math.min(job.totalRows, start + pageSize);
    let rows = '';
    if (end > start) {
      const connection = await this.#instance.connect();
      try {
        // The rows are stored already encoded, so a page is one string_agg: the server stays
        // far cheaper than the client and benchmarks measure the client.
        const reader = await connection.runAndReadAll(
          `SELECT string_agg(j, ',' ORDER BY rn) FROM memory."_jobs".${quoteIdent(job.table)} WHERE rn > ${start} AND rn <= ${end}`,
        );
        rows = String(reader.getRows()[0]?.[0] ?? '');
      } finally {
        connection.closeSync();
      }
    }
    const head: Record<string, Json> = {
      kind,
      etag: hash(`${job.id}:${start}`),
      schema: job.schema as unknown as Json,
      jobReference: {projectId: this.#project, jobId: job.id, location: this.#location},
      totalRows: String(job.totalRows),
      totalBytesProcessed: String(job.bytes),
      jobComplete: true,
      cacheHit: false,
    };
    if (end < job.totalRows) head['pageToken'] = `o:${end}`;
    const json = JSON.stringify(head);
    return end > start ? `${json.slice(0, -1)},"rows":[${rows}]}` : json;
  }

  async #runQuery(sql: string | undefined, parameters: QueryParameter[] | undefined, dryRun: boolean, jobId?: string): Promise<StoredJob> {
    if (!sql) throw new ApiFailure(400, 'invalid', 'Required parameter is missing: query');
    const {text, tables} = this.#translate(sql);
    const connection = await this.#instance.connect();
    try {
      // BigQuery accepts parameters a query does not use, DuckDB does not: only those used are
      // bound; a FLOAT64 as a DOUBLE even when its value looks like an integer (2^63).
      const values: Record<string, unknown> = {};
      const types: Record<string, DuckDBType | undefined> = {};
      for (const p of parameters ?? []) {
        if (!p.name) throw new ApiFailure(400, 'invalidQuery', 'Positional parameters are not supported by the local server');
        if (!new RegExp(`\\$${p.name}(?![A-Za-z0-9_])`).test(text)) continue;
        values[p.name] = parameterValue(p);
        if (/^FLOAT/.test(p.parameterType?.type ?? '')) types[p.name] = DOUBLE;
      }
      // DDL (CREATE [OR REPLACE] TABLE ... AS SELECT): priced and described by its SELECT,
      // run as it is, answered like BigQuery answers DDL (no schema, no rows).
      const ddl = /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(\S+)\s+AS\s+([\s\S]*)$/i.exec(text);
      const select = ddl ? ddl[2]! : text;
      const read = ddl ? tables.filter((t) => t !== ddl[1]) : tables;
      let prepared;
      try {
        prepared = await connection.prepare(`SELECT * FROM (${select})`);
        if (Object.keys(values).length > 0) prepared.bind(values as never, types);
      } catch (error) {
        throw translateError(error, this.#project);
      }
      const columns: {name: string; type: string}[] = [];
      for (let i = 0; i < prepared.columnCount; i++) {
        columns.push({name: prepared.columnName(i), type: prepared.columnType(i).toString()});
      }
      const schema = {fields: ddl ? [] : columns.map((c) => bigQueryField(c.name, c.type))};
      // A stand-in for bytes scanned: 8 bytes per output column per row of the tables read.
      let tableRows = 0;
      for (const t of read) {
        const reader = await connection.runAndReadAll(`SELECT count(*) FROM ${t}`);
        tableRows += Number(reader.getRows()[0]?.[0] ?? 0);
      }
      const bytes = tableRows * 8 * columns.length;
      const id = jobId ?? `job_${this.#nextJob++}`;
      const table = `r_${id.replace(/[^A-Za-z0-9_]/g, '_')}`;
      let totalRows = 0;
      if (!dryRun && ddl) {
        try {
          const statement = await connection.prepare(text);
          if (Object.keys(values).length > 0) statement.bind(values as never);
          await statement.run();
        } catch (error) {
          throw translateError(error, this.#project);
        }
      } else if (!dryRun) {
        const encoded = columns.map((c, i) => `json_object('v', ${encodeValue(`"c${i}"`, c.type)})`).join(', ');
        const renamed = columns.map((c, i) => `${quoteIdent(c.name)} AS "c${i}"`).join(', ');
        try {
          const create = await connection.prepare(
            `CREATE OR REPLACE TABLE memory."_jobs".${quoteIdent(table)} AS
             SELECT row_number() OVER () AS rn, CAST(json_object('f', json_array(${encoded})) AS VARCHAR) AS j
             FROM (SELECT ${renamed} FROM (${text}))`,
          );
          if (Object.keys(values).length > 0) create.bind(values as never);
          await create.run();
        } catch (error) {
          throw translateError(error, this.#project);
        }
        const reader = await connection.runAndReadAll(`SELECT count(*) FROM memory."_jobs".${quoteIdent(table)}`);
        totalRows = Number(reader.getRows()[0]?.[0] ?? 0);
      }
      const job: StoredJob = {id, table, schema, totalRows, bytes, query: {query: sql, queryParameters: parameters ?? []}, dryRun};
      if (!dryRun) this.#jobs.set(id, job);
      return job;
    } finally {
      connection.closeSync();
    }
  }

  /**
   * BigQuery's dialect, as far as the product generates it, differs from DuckDB's in identifier
   * quoting, tables, parameters, a few type names and keywords (WORDS) and functions (the
   * macros made at start).
   */
  #translate(sql: string): {text: string; tables: string[]} {
    let out = '';
    const tables: string[] = [];
    let i = 0;
    while (i < sql.length) {
      const ch = sql[i]!;
      if (ch === "'") {
        const end = sql.indexOf("'", i + 1);
        out += sql.slice(i, end < 0 ? sql.length : end + 1);
        i = end < 0 ? sql.length : end + 1;
      } else if (ch === '`') {
        let j = i + 1;
        let name = '';
        while (j < sql.length && sql[j] !== '`') {
          if (sql[j] === '\\' && j + 1 < sql.length) j++;
          name += sql[j];
          j++;
        }
        i = j + 1;
        const parts = name.split('.');
        if (parts.length === 3) {
          const [project, dataset, table] = parts as [string, string, string];
          if (project !== this.#project) throw new ApiFailure(404, 'notFound', `Not found: Project ${project}`);
          const ref = `${quoteIdent(this.#catalog)}.${quoteIdent(dataset)}.${quoteIdent(table)}`;
          tables.push(ref);
          out += ref;
        } else {
          out += parts.map(quoteIdent).join('.');
        }
      } else if (ch === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
        const m = /^@([A-Za-z_][A-Za-z0-9_]*)/.exec(sql.slice(i))!;
        out += `$${m[1]}`;
        i += m[0].length;
      } else if (/[A-Za-z_]/.test(ch) && !/[A-Za-z0-9_$.]/.test(sql[i - 1] ?? ' ')) {
        const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i))![0];
        out += WORDS[word.toUpperCase()] ?? word;
        i += word.length;
      } else {
        out += ch;
        i++;
      }
    }
    return {text: out, tables};
  }

  async #tableResource(dataset: string, table: string): Promise<Json> {
    const connection = await this.#instance.connect();
    try {
      const prepared = await connection.prepare(
        `SELECT table_type FROM information_schema.tables WHERE table_catalog = $1 AND table_schema = $2 AND table_name = $3`,
      );
      prepared.bindVarchar(1, this.#catalog);
      prepared.bindVarchar(2, dataset);
      prepared.bindVarchar(3, table);
      const found = (await prepared.runAndReadAll()).getRows()[0];
      if (!found) throw new ApiFailure(404, 'notFound', `Not found: Table ${this.#project}:${dataset}.${table}`);
      const isView = String(found[0]) === 'VIEW';
      const ref = `${quoteIdent(this.#catalog)}.${quoteIdent(dataset)}.${quoteIdent(table)}`;
      const described = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${ref}`)).getRows();
      const fields = described.map((r) => bigQueryField(String(r[0]), String(r[1])));
      const resource: Record<string, Json> = {
        kind: 'bigquery#table',
        id: `${this.#project}:${dataset}.${table}`,
        tableReference: {projectId: this.#project, datasetId: dataset, tableId: table},
        schema: {fields: fields as unknown as Json},
        type: isView ? 'VIEW' : 'TABLE',
        location: this.#location,
        creationTime: String(MODIFIED_ORIGIN_MS),
      };
      const modifications = this.#modifications.get(`${dataset}.${table}`) ?? 0;
      if (isView) {
        resource['view'] = {query: '(defined in DuckDB)', useLegacySql: false};
        resource['lastModifiedTime'] = String(MODIFIED_ORIGIN_MS);
        resource['etag'] = hash(`${dataset}.${table}:view`);
      } else {
        const numRows = Number((await connection.runAndReadAll(`SELECT count(*) FROM ${ref}`)).getRows()[0]?.[0] ?? 0);
        resource['numRows'] = String(numRows);
        resource['numBytes'] = String(numRows * 8 * fields.length);
        resource['lastModifiedTime'] = String(MODIFIED_ORIGIN_MS + modifications * 1000);
        resource['etag'] = hash(`${dataset}.${table}:${modifications}:${numRows}`);
      }
      return resource;
    } finally {
      connection.closeSync();
    }
  }
}

type Json = null | boolean | number | string | Json[] | {[key: string]: Json};

/** BigQuery words with another spelling in DuckDB (INT64, STRING, BOOL are shared). */
// DuckDB's own countif is a sum: NULL over no rows, where BigQuery's COUNTIF gives 0.
// DuckDB's NUMERIC is DECIMAL(18,3); BigQuery's is DECIMAL(38,9) (BIGNUMERIC's 76 digits do not fit DuckDB).
const WORDS: Record<string, string> = {FLOAT64: 'DOUBLE', SAFE_CAST: 'TRY_CAST', NUMERIC: 'DECIMAL(38, 9)', BIGNUMERIC: 'DECIMAL(38, 9)', COUNTIF: 'bq_countif'};

interface QueryParameter {
  name?: string;
  parameterType?: {type?: string};
  parameterValue?: {value?: unknown};
}

interface QueryRequest {
  query?: string;
  queryParameters?: QueryParameter[];
  maxResults?: number;
  dryRun?: boolean;
}

function matchRoute(method: string, path: string): {route: Route; params: Record<string, string>} {
  const m = /^\/projects\/([^/]+)(\/.*)$/.exec(path);
  if (!m) return {route: 'unknown', params: {}};
  const project = decodeURIComponent(m[1]!);
  const rest = m[2]!;
  let r: RegExpExecArray | null;
  if (method === 'POST' && rest === '/queries') return {route: 'jobs.query', params: {project}};
  if (method === 'GET' && (r = /^\/queries\/([^/]+)$/.exec(rest))) return {route: 'jobs.getQueryResults', params: {project, job: decodeURIComponent(r[1]!)}};
  if (method === 'POST' && rest === '/jobs') return {route: 'jobs.insert', params: {project}};
  if (method === 'GET' && (r = /^\/jobs\/([^/]+)$/.exec(rest))) return {route: 'jobs.get', params: {project, job: decodeURIComponent(r[1]!)}};
  if (method === 'POST' && (r = /^\/jobs\/([^/]+)\/cancel$/.exec(rest))) return {route: 'jobs.cancel', params: {project, job: decodeURIComponent(r[1]!)}};
  if (method === 'GET' && (r = /^\/datasets\/([^/]+)\/tables\/([^/]+)$/.exec(rest))) {
    return {route: 'tables.get', params: {project, dataset: decodeURIComponent(r[1]!), table: decodeURIComponent(r[2]!)}};
  }
  return {route: 'unknown', params: {project}};
}

/** DuckDB type text -> BigQuery schema field, with the legacy type names the client expects. */
function bigQueryField(name: string, duckType: string): Field {
  const t = duckType.trim();
  if (t.endsWith('[]')) return {...bigQueryField(name, t.slice(0, -2)), mode: 'REPEATED'};
  const struct = /^STRUCT\((.*)\)$/s.exec(t);
  if (struct) {
    return {name, type: 'RECORD', mode: 'NULLABLE', fields: splitStructFields(struct[1]!).map(([n, ty]) => bigQueryField(n, ty))};
  }
  return {name, type: scalarType(t), mode: 'NULLABLE'};
}

function scalarType(t: string): string {
  const decimal = /^DECIMAL\((\d+),\s*(\d+)\)$/.exec(t);
  if (decimal) return Number(decimal[2]) <= 9 && Number(decimal[1]) - Number(decimal[2]) <= 29 ? 'NUMERIC' : 'BIGNUMERIC';
  if (/^(BIGINT|INTEGER|SMALLINT|TINYINT|UBIGINT|UINTEGER|USMALLINT|UTINYINT|HUGEINT)$/.test(t)) return 'INTEGER';
  if (/^(DOUBLE|FLOAT|REAL)$/.test(t)) return 'FLOAT';
  if (t === 'BOOLEAN') return 'BOOLEAN';
  if (t === 'BLOB') return 'BYTES';
  if (t === 'DATE') return 'DATE';
  if (t === 'TIMESTAMP') return 'DATETIME';
  if (t === 'TIMESTAMP WITH TIME ZONE') return 'TIMESTAMP';
  if (t === 'TIME') return 'TIME';
  if (t === 'JSON') return 'JSON';
  if (t === 'INTERVAL') return 'INTERVAL';
  return 'STRING';
}

/** Splits `a INTEGER, "b c" VARCHAR[]` at top-level commas into [name, type] pairs. */
function splitStructFields(inner: string): [string, string][] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (const ch of inner) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === '(') depth++;
    if (!quoted && ch === ')') depth--;
    if (!quoted && depth === 0 && ch === ',') {
      parts.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim()) parts.push(current.trim());
  return parts.map((p) => {
    const m = /^("(?:[^"]|"")*"|\S+)\s+(.*)$/s.exec(p)!;
    const name = m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replaceAll('""', '"') : m[1]!;
    return [name, m[2]!];
  });
}

/** SQL giving the wire value of `expr` (per section 3 of the spec): VARCHAR for scalars, JSON for nested. */
function encodeValue(expr: string, duckType: string): string {
  const t = duckType.trim();
  if (t.endsWith('[]')) {
    return `coalesce(to_json(list_transform(${expr}, lambda e: json_object('v', ${encodeValue('e', t.slice(0, -2))}))), '[]'::JSON)`;
  }
  const struct = /^STRUCT\((.*)\)$/s.exec(t);
  if (struct) {
    const fields = splitStructFields(struct[1]!).map(([n, ty]) => `json_object('v', ${encodeValue(`${expr}.${quoteIdent(n)}`, ty)})`);
    return `CASE WHEN ${expr} IS NULL THEN NULL ELSE json_object('f', json_array(${fields.join(', ')})) END`;
  }
  switch (scalarType(t)) {
    case 'FLOAT':
      return `CASE WHEN isnan(${expr}) THEN 'NaN' WHEN isinf(${expr}) THEN (CASE WHEN ${expr} > 0 THEN 'Infinity' ELSE '-Infinity' END) ELSE CAST(${expr} AS VARCHAR) END`;
    case 'BYTES':
      return `to_base64(${expr})`;
    case 'DATETIME':
      return `strftime(${expr}, '%Y-%m-%dT%H:%M:%S.%f')`;
    case 'TIMESTAMP':
      return `CAST(epoch_us(${expr}) AS VARCHAR)`;
    default:
      return `CAST(${expr} AS VARCHAR)`;
  }
}

function parameterValue(p: QueryParameter): unknown {
  const value = p.parameterValue?.value ?? null;
  if (value === null) return null;
  switch (p.parameterType?.type) {
    case 'INT64':
    case 'INTEGER':
      return BigInt(value as string | number);
    case 'FLOAT64':
    case 'FLOAT':
      return Number(value);
    case 'BOOL':
    case 'BOOLEAN':
      return value === true || value === 'true';
    default:
      return String(value);
  }
}

/** DuckDB's errors, phrased as BigQuery phrases them. */
function translateError(error: unknown, project: string): ApiFailure {
  if (error instanceof ApiFailure) return error;
  const message = error instanceof Error ? error.message : String(error);
  const table = /Table with name (\S+) does not exist/.exec(message);
  if (table) return new ApiFailure(404, 'notFound', `Not found: Table ${project}:${table[1]} was not found in location US`);
  const schema = /Schema with name "?([^"\s]+)"? does not exist|Catalog "[^"]*" does not exist/.exec(message);
  if (schema) return new ApiFailure(404, 'notFound', `Not found: Dataset ${project}:${schema[1] ?? '?'}`);
  const column = /Referenced column "?([^"\s]+)"? not found/.exec(message);
  if (column) return new ApiFailure(400, 'invalidQuery', `Unrecognized name: ${column[1]} at [1:8]`);
  if (/Parser Error/.test(message)) return new ApiFailure(400, 'invalidQuery', `Syntax error: ${message.replace(/^Parser Error: /, '')}`);
  return new ApiFailure(400, 'invalidQuery', message);
}

function sendError(res: ServerResponse, failure: ApiFailure): void {
  const body = {
    error: {
      code: failure.status,
      message: failure.message,
      errors: [{message: failure.message, domain: 'global', reason: failure.reason}],
      status: STATUS_NAMES[failure.status] ?? 'UNKNOWN',
    },
  };
  res.writeHead(failure.status, {'content-type': 'application/json; charset=UTF-8'});
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJsonOrNull(body: string): unknown {
  try {
    return JSON.parse(body || '{}');
  } catch {
    return null;
  }
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body || '{}');
  } catch {
    throw new ApiFailure(400, 'parseError', 'Parse Error');
  }
}

function positive(value: unknown): number | undefined {
  const n = Number(value);
  return value !== null && value !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

// Standalone: serve a DuckDB file until interrupted.
if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const server = await startBigQueryServer({
    database: arg('database'),
    project: arg('project') ?? 'local',
    port: Number(arg('port') ?? 9050),
    location: arg('location'),
  });
  process.stdout.write(`Local BigQuery for project "${server.project}" at ${server.url} (set bigquery.api_endpoint to it)\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
