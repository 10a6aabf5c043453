/**
 * The narrow seam between the tasks and BigQuery: four calls (table metadata, dry run,
 * first page, next page) with the real `@google-cloud/bigquery` client behind them. Tests
 * point it at the local server in test/support/bigquery-server.ts through `apiEndpoint`.
 *
 * Rows come back undecoded (`skipParsing`): the wire strings are exactly what the Parquet
 * conversion needs, and the client's per-value objects (Big, BigQueryTimestamp, rounded
 * INT64 numbers) would cost time and, for INT64, precision.
 */
import {randomUUID} from 'node:crypto';
import {setTimeout as sleep} from 'node:timers/promises';
import {ConfigurationError, InterruptedError} from '../../src/errors.js';

/** A field of a BigQuery schema, as the REST API returns it. */
export interface BigQueryField {
  name: string;
  type: string;
  mode?: string;
  fields?: BigQueryField[];
  precision?: string;
  scale?: string;
}

/** A row on the wire: `{f: [{v}]}`, values in schema order. */
export interface WireRow {
  f: {v: unknown}[];
}

/** tables.get, reduced to what freshness and column resolution need. */
export interface BigQueryTableMetadata {
  type: string;
  numRows?: string;
  lastModifiedTime?: string;
  etag?: string;
  fields: BigQueryField[];
}

/** A parameterised query. */
export interface BigQueryQuery {
  sql: string;
  params: Record<string, string | number | boolean>;
  /** BigQuery types of parameters given as strings (INT64, NUMERIC, DATE, ...). */
  types?: Record<string, string>;
  maximumBytesBilled?: string;
}

/** One page of results. */
export interface BigQueryPage {
  rows: WireRow[];
  fields: BigQueryField[];
  totalRows: number;
  /** Present when more pages follow. */
  pageToken?: string;
  /** Identifies the query's results for the following pages. */
  jobId: string;
  location?: string;
}

/** The four calls extraction and the pushed-down tasks make. */
export interface BigQuerySource {
  tableMetadata(dataset: string, table: string): Promise<BigQueryTableMetadata>;
  /** Bytes the query would process, from a dry run; `signal` ends a wait to try again. */
  dryRun(query: BigQueryQuery, signal?: AbortSignal): Promise<number>;
  /**
   * Runs a query and reads its first page. When `signal` aborts, the job is cancelled in
   * BigQuery (it would otherwise run, and bill, to its end) and the call rejects with an
   * InterruptedError.
   */
  firstPage(query: BigQueryQuery, pageSize: number, signal?: AbortSignal): Promise<BigQueryPage>;
  nextPage(previous: BigQueryPage, pageSize: number): Promise<BigQueryPage>;
}

/** The HTTP status BigQuery gives each error reason (cloud.google.com/bigquery/docs/error-messages); 400 for the rest. */
const JOB_ERROR_STATUS: Record<string, number> = {
  accessDenied: 403,
  billingNotEnabled: 403,
  notFound: 404,
  quotaExceeded: 403,
  rateLimitExceeded: 403,
  responseTooLarge: 403,
  backendError: 500,
  internalError: 500,
  jobBackendError: 500,
  jobInternalError: 500,
};

/** How long an interrupted query waits for its job to be created, then for BigQuery to take the cancellation: together within the 10 s the runner waits for an interrupted task. */
const CANCEL_WAIT_MS = 4_000;

/** How to reach BigQuery. */
export interface BigQueryConnection {
  projectId: string;
  location: string;
  /** An emulator or the local test server; no credentials are used then. */
  apiEndpoint?: string;
  /** Retries of a transient failure (429, 5xx, a dropped connection) before giving up. */
  retryCount: number;
  /** Cap on one backoff delay, in seconds (the client's default is 64). */
  maxRetryDelaySeconds?: number;
}

/**
 * Opens the real client. With `apiEndpoint` set, requests go there unauthenticated
 * (`PassThroughClient`); otherwise Application Default Credentials are resolved first,
 * so that a missing credential is a clear ConfigurationError instead of the client's
 * silent fallback to unauthenticated requests.
 */
export async function openBigQuery(connection: BigQueryConnection): Promise<BigQuerySource> {
  const [{BigQuery}, auth] = await Promise.all([import('@google-cloud/bigquery'), import('google-auth-library')]);
  const emulatorHost = process.env['BIGQUERY_EMULATOR_HOST'];
  // BIGQUERY_EMULATOR_HOST, when set, silently overrides `apiEndpoint` inside the client's
  // constructor; an explicit `bigquery.api_endpoint` must win, and an emulator host alone
  // means "no credentials" just like api_endpoint does.
  const endpoint = connection.apiEndpoint ?? emulatorHost;
  const authClient = endpoint !== undefined ? new auth.PassThroughClient() : await defaultCredentials(auth);
  const retryOptions =
    connection.retryCount > 0
      ? {maxRetries: connection.retryCount, maxRetryDelay: connection.maxRetryDelaySeconds}
      : {autoRetry: false};
  const options = {
    projectId: connection.projectId,
    location: connection.location,
    apiEndpoint: connection.apiEndpoint,
    authClient: authClient as never,
    retryOptions,
  };
  let client;
  if (connection.apiEndpoint !== undefined && emulatorHost !== undefined) {
    delete process.env['BIGQUERY_EMULATOR_HOST'];
    try {
      client = new BigQuery(options);
    } finally {
      process.env['BIGQUERY_EMULATOR_HOST'] = emulatorHost;
    }
  } else {
    client = new BigQuery(options);
  }
  return new ClientSource(client, connection);
}

type Auth = typeof import('google-auth-library');

async function defaultCredentials(auth: Auth): Promise<unknown> {
  const googleAuth = new auth.GoogleAuth({scopes: ['https://www.googleapis.com/auth/bigquery']});
  try {
    return await googleAuth.getClient();
  } catch (error) {
    const file = process.env['GOOGLE_APPLICATION_CREDENTIALS'];
    throw new ConfigurationError(
      'No Google credentials found for BigQuery. Tried, in order: ' +
        (file !== undefined ? `GOOGLE_APPLICATION_CREDENTIALS (${file}: ${(error as Error).message}), ` : 'GOOGLE_APPLICATION_CREDENTIALS (not set), ') +
        'the gcloud application-default login (~/.config/gcloud/application_default_credentials.json), ' +
        'and the metadata server (only on Google Cloud).',
      {
        hint:
          'Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service ' +
          'account key file; for an emulator or a local server set bigquery.api_endpoint.',
      },
    );
  }
}

// The client's types are loose (`any` rows, untyped responses); this is the one place that
// knows their shapes.
type Client = InstanceType<typeof import('@google-cloud/bigquery').BigQuery>;

interface QueryResponse {
  jobComplete?: boolean;
  schema?: {fields?: BigQueryField[]};
  totalRows?: string;
  pageToken?: string;
  jobReference?: {jobId?: string; location?: string};
}

/**
 * Reasons a job fails with that BigQuery asks to retry under a new job id (the failed job's
 * id cannot be reused; the client's own retries are of requests, not of jobs).
 */
const RETRIED_JOB_REASONS = new Set(['backendError', 'internalError', 'rateLimitExceeded', 'jobBackendError', 'jobInternalError']);

/** The first wait between asks about a job not complete yet, doubled each time up to the second. */
const POLL_DELAY_MS = [50, 1_000];

class ClientSource implements BigQuerySource {
  readonly #client: Client;
  readonly #location: string;
  readonly #retryCount: number;
  readonly #maxRetryDelayMs: number;

  constructor(client: Client, connection: BigQueryConnection) {
    this.#client = client;
    this.#location = connection.location;
    this.#retryCount = connection.retryCount;
    this.#maxRetryDelayMs = (connection.maxRetryDelaySeconds ?? 64) * 1000;
  }

  async tableMetadata(dataset: string, table: string): Promise<BigQueryTableMetadata> {
    const [metadata] = (await this.#client.dataset(dataset).table(table).getMetadata()) as unknown as [
      {type?: string; numRows?: string; lastModifiedTime?: string; etag?: string; schema?: {fields?: BigQueryField[]}},
    ];
    return {
      type: metadata.type ?? 'TABLE',
      numRows: metadata.numRows,
      lastModifiedTime: metadata.lastModifiedTime,
      etag: metadata.etag,
      fields: metadata.schema?.fields ?? [],
    };
  }

  async dryRun(query: BigQueryQuery, signal?: AbortSignal): Promise<number> {
    const [, response] = (await this.#retryingJobs(
      () =>
        this.#client.createQueryJob({...this.#job(query), dryRun: true}).catch((error: unknown) => {
          throw withJobStatus(error);
        }),
      signal,
    )) as unknown as [unknown, {statistics?: {totalBytesProcessed?: string; query?: {totalBytesProcessed?: string}}}];
    const bytes = response.statistics?.query?.totalBytesProcessed ?? response.statistics?.totalBytesProcessed ?? '0';
    return Number(bytes);
  }

  /**
   * jobs.insert under a job id of ours, then jobs.getQueryResults for the first page (rather
   * than the one-request jobs.query, whose job id arrives only with its answer): an
   * interruption at any moment knows which job to cancel.
   */
  firstPage(query: BigQueryQuery, pageSize: number, signal?: AbortSignal): Promise<BigQueryPage> {
    return this.#retryingJobs(() => this.#run(query, pageSize, signal), signal);
  }

  /**
   * `attempt`, made again while its job fails for a reason of BigQuery's own (not the query's),
   * up to the retry count: as a new job, since a failed job's id cannot be reused.
   */
  async #retryingJobs<T>(attempt: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    for (let tried = 0; ; tried++) {
      try {
        return await attempt();
      } catch (error) {
        const reason = (error as JobFailure).jobFailed === true ? (error as JobFailure).errors?.[0]?.reason : undefined;
        if (reason === undefined || !RETRIED_JOB_REASONS.has(reason) || tried >= this.#retryCount) throw error;
        const wait = Math.min(1000 * 2 ** tried * (1 + Math.random()), this.#maxRetryDelayMs);
        await abortable(sleep(wait, undefined, {signal}), signal, 'The BigQuery query was interrupted; its job had failed and was to be run again.');
      }
    }
  }

  /** One job of `firstPage`. */
  async #run(query: BigQueryQuery, pageSize: number, signal: AbortSignal | undefined): Promise<BigQueryPage> {
    if (signal?.aborted) throw new InterruptedError('The BigQuery query was interrupted before it started.', {cause: signal.reason});
    const jobId = `pipeline_${randomUUID().replaceAll('-', '')}`;
    const created = this.#insert(query, jobId);
    created.catch(() => undefined); // awaited below, or by the cancellation
    let isCreated = false;
    void created.then(() => (isCreated = true), () => undefined);
    // A job not known to be created yet may exist (its creation's answer lost) or come to
    // exist (the client still retrying): it is cancelled at once and once created, however
    // late, and the interruption waits for that a while.
    const cancel = async (): Promise<void> => {
      if (isCreated) return this.#cancel(jobId);
      await Promise.all([this.#cancel(jobId), settledWithin(created.then(() => this.#cancel(jobId), () => undefined), 2 * CANCEL_WAIT_MS)]);
    };
    const cancelled = 'The BigQuery query was interrupted; its job was cancelled.';
    let job: Job | undefined;
    try {
      job = await abortable(created, signal, cancelled, cancel);
      for (let delay = POLL_DELAY_MS[0]!; ; delay = Math.min(2 * delay, POLL_DELAY_MS[1]!)) {
        const asked = Date.now();
        const [rows, , response] = (await abortable(
          job.getQueryResults({maxResults: pageSize, autoPaginate: false, skipParsing: true} as never) as Promise<unknown>,
          signal,
          cancelled,
          cancel,
        )) as [WireRow[], unknown, QueryResponse];
        // BigQuery answers after ~10 s that the job is not complete yet (no rows, no schema), and
        // without autoPaginate the client does not ask again: ask until it is.
        if (response.jobComplete !== false) return toPage(rows, response, jobId, response.jobReference?.location ?? job.location ?? this.#location);
        // A pause when the answer came at once (an emulator's), none after BigQuery's own wait.
        if (Date.now() - asked < POLL_DELAY_MS[1]!) await abortable(sleep(delay, undefined, {signal}), signal, cancelled, cancel);
      }
    } catch (error) {
      // Its results refused for a reason of BigQuery's own: the job may have failed while running.
      if (job !== undefined && RETRIED_JOB_REASONS.has((error as JobFailure).errors?.[0]?.reason ?? '')) await this.#markIfFailed(job, error as JobFailure);
      // Given up on without an interruption (the network lost, server errors retried to the
      // end): the job may be running still, and billing.
      if (mayBeRunning(error)) await cancel();
      throw error;
    }
  }

  /** Marks `error` as its job's failure (see JobFailure) when jobs.get says the job failed. */
  async #markIfFailed(job: Job, error: JobFailure): Promise<void> {
    try {
      const [metadata] = (await job.getMetadata()) as unknown as [{status?: {state?: string; errorResult?: unknown}}];
      if (metadata.status?.state === 'DONE' && metadata.status.errorResult !== undefined) error.jobFailed = true;
    } catch {
      // Unknown: the job is taken as maybe running (and cancelled), not run again.
    }
  }

  /** What a query job is created with: the query, its parameters and where it runs. */
  #job(query: BigQueryQuery): {query: string; params: Record<string, unknown>; types?: Record<string, string>; location: string} {
    return {query: query.sql, params: wireParams(query), ...(query.types !== undefined ? {types: query.types} : {}), location: this.#location};
  }

  /** Asks BigQuery to cancel a job, waiting for the answer a while. */
  #cancel(jobId: string): Promise<void> {
    return settledWithin(new Promise<void>((resolve) => this.#client.job(jobId, {location: this.#location}).cancel(() => resolve())), CANCEL_WAIT_MS);
  }

  /**
   * Creates the query job. A retry of an insert whose answer was lost finds the job created
   * (409): the client gives up on that for a job id it was given, so it is taken as created here.
   */
  async #insert(query: BigQueryQuery, jobId: string): Promise<Job> {
    try {
      const [job] = (await this.#client.createQueryJob({
        ...this.#job(query),
        jobId,
        ...(query.maximumBytesBilled !== undefined ? {maximumBytesBilled: query.maximumBytesBilled} : {}),
      })) as unknown as [Job];
      return job;
    } catch (error) {
      if ((error as JobFailure).code === 409) return this.#client.job(jobId, {location: this.#location});
      throw withJobStatus(error);
    }
  }

  async nextPage(previous: BigQueryPage, pageSize: number): Promise<BigQueryPage> {
    const job = this.#client.job(previous.jobId, {location: previous.location ?? this.#location});
    const [rows, , response] = (await job.getQueryResults({
      maxResults: pageSize,
      pageToken: previous.pageToken,
      autoPaginate: false,
      skipParsing: true,
    } as never)) as unknown as [WireRow[], unknown, QueryResponse];
    const page = toPage(rows, response, previous.jobId, previous.location);
    // getQueryResults may omit the schema on later pages; it cannot change within a job.
    return page.fields.length > 0 ? page : {...page, fields: previous.fields};
  }
}

type Job = ReturnType<Client['job']>;

/** An error of the client; `jobFailed` when its job was created and failed (withJobStatus, #markIfFailed). */
interface JobFailure {
  code?: unknown;
  errors?: {reason?: string}[];
  jobFailed?: boolean;
}

/**
 * A job that failed as it was created comes back without an HTTP status: it is given the one
 * BigQuery answers its reason with, so that it reads as a refusal, not a lost network.
 */
function withJobStatus(error: unknown): unknown {
  const failure = error as JobFailure;
  if (failure.code === undefined && Array.isArray(failure.errors)) {
    failure.code = JOB_ERROR_STATUS[failure.errors[0]?.reason ?? ''] ?? 400;
    failure.jobFailed = true;
  }
  return error;
}

/** Whether a query given up on with `error` may have left its job running. */
function mayBeRunning(error: unknown): boolean {
  if (error instanceof InterruptedError) return false; // cancelled already
  const {code, errors, jobFailed} = error as JobFailure;
  if (jobFailed === true) return false;
  return typeof code !== 'number' || code >= 500 || code === 408 || code === 429 || errors?.[0]?.reason === 'rateLimitExceeded';
}

/**
 * `promise`, or an InterruptedError saying `message` once `signal` aborts and `onAbort` (a
 * job's cancellation) has done what it can; what `promise` settles to then is left alone.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, message: string, onAbort: () => Promise<void> = async () => undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    let aborted = false;
    const interrupted = (): void => {
      aborted = true; // what `promise` settles to from now on is not wanted
      void onAbort().finally(() => reject(new InterruptedError(message, {cause: signal.reason})));
    };
    if (signal.aborted) return interrupted();
    signal.addEventListener('abort', interrupted, {once: true});
    const settle = (done: () => void) => {
      if (aborted) return;
      signal.removeEventListener('abort', interrupted);
      done();
    };
    promise.then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error)),
    );
  });
}

/** Waits for `promise` to settle, at most `ms`. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.then(() => undefined, () => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function toPage(rows: WireRow[] | null, response: QueryResponse, jobId: string, location: string | undefined): BigQueryPage {
  return {
    rows: rows ?? [],
    fields: response.schema?.fields ?? [],
    totalRows: Number(response.totalRows ?? 0),
    pageToken: response.pageToken || undefined,
    jobId,
    location,
  };
}

/** Every row of a query's result, with its schema. */
export interface BigQueryResult {
  fields: BigQueryField[];
  rows: WireRow[];
}

/**
 * Runs a query with named parameters and reads all its result rows, page by page. For
 * results known to be small (aggregates, bounded samples): they are held in memory.
 */
export async function queryAll(source: BigQuerySource, query: BigQueryQuery, signal?: AbortSignal, pageSize = 10_000): Promise<BigQueryResult> {
  let page = await source.firstPage(query, pageSize, signal);
  const fields = page.fields;
  const rows = [...page.rows];
  while (page.pageToken !== undefined) {
    // The job is done: an interruption gives the page up at once.
    page = await abortable(source.nextPage(page, pageSize), signal, 'The BigQuery query was interrupted.');
    rows.push(...page.rows);
  }
  return {fields, rows};
}

/**
 * A wire value as JavaScript: INT64 and FLOAT64 as numbers (NaN, Infinity included; an
 * INT64 past 2^53 as its digits), null as null, the rest as text.
 */
export function decodeScalar(field: BigQueryField, value: unknown): string | number | boolean | null {
  if (value === null || value === undefined) return null;
  switch (field.type) {
    case 'INTEGER':
    case 'INT64':
      // Past 2^53 a number would be its neighbour's: kept as its digits.
      return Number.isSafeInteger(Number(value)) ? Number(value) : String(value);
    case 'FLOAT':
    case 'FLOAT64':
    case 'NUMERIC':
      return Number(value);
    case 'BOOLEAN':
    case 'BOOL':
      return value === true || value === 'true';
    default:
      return String(value);
  }
}

/**
 * The parameters as the client sends them: it reads the value of a DATE, DATETIME, TIME or
 * TIMESTAMP parameter from `.value` (of its BigQuery.date(...) objects), so a plain string
 * of those types is wrapped; otherwise it would be sent empty (NULL) and match nothing.
 */
function wireParams(query: BigQueryQuery): Record<string, unknown> {
  const params: Record<string, unknown> = {...query.params};
  for (const [name, type] of Object.entries(query.types ?? {})) {
    if (/DATE|TIME/.test(type) && typeof params[name] === 'string') params[name] = {value: params[name]};
  }
  return params;
}
