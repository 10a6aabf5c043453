/**
 * The HTTP API over `node:http`: routes, authentication, request bodies and error bodies.
 * Every error is JSON `{error: {field?, message, hint?}}`; nothing ever carries a stack trace.
 */
import {createReadStream} from 'node:fs';
import type {IncomingMessage, ServerResponse} from 'node:http';
import {DiagnosticsError} from '../config/diagnostics.js';
import {ValidationError} from '../errors.js';
import type {ValidationRunner} from '../runner.js';
import {redact} from '../util/redact.js';
import {hasToken, isLoopbackHost} from './auth.js';
import type {RunFile, RunQueue} from './queue.js';
import {overrideField, parseRunRequest} from './requests.js';
import {listVersions, NotImplementedError} from './versions.js';

/** What the app serves and how it is guarded. */
export interface AppOptions {
  runner: ValidationRunner;
  queue: RunQueue;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token: string | undefined;
  /** Serve only requests whose Host header is a loopback address (loopback without a token). */
  loopbackHostsOnly: boolean;
  /** Largest request body in bytes (64 KiB by default). */
  bodyLimit?: number;
  /** Where unexpected errors are reported (the server's stderr). */
  report?(message: string): void;
}

/** A request the app refuses, with the HTTP status and the error body's fields. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: {field?: string; hint?: string; headers?: Record<string, string>} = {},
  ) {
    super(message);
  }
}

type Handler = (request: IncomingMessage, response: ServerResponse, params: string[]) => Promise<void>;

const FILE_ROUTES: Record<string, {file: RunFile; type: string}> = {
  'summary.json': {file: 'summary.json', type: 'application/json; charset=utf-8'},
  'validation.json': {file: 'validation.json', type: 'application/json; charset=utf-8'},
  'analysis.json': {file: 'analysis.json', type: 'application/json; charset=utf-8'},
  report: {file: 'report.html', type: 'text/html; charset=utf-8'},
};

/** The request handler for `http.createServer`. */
export function createApp(options: AppOptions): (request: IncomingMessage, response: ServerResponse) => void {
  const {runner, queue} = options;
  const bodyLimit = options.bodyLimit ?? 64 * 1024;
  const report = options.report ?? (() => undefined);
  // One DuckDB instance at a time for /versions, however many clients ask.
  let versionsTurn: Promise<unknown> = Promise.resolve();

  const routes: {path: RegExp; methods: Record<string, Handler>}[] = [
    {path: /^\/healthz$/, methods: {GET: async (_request, response) => send(response, 200, {ok: true})}},
    {
      path: /^\/versions$/,
      methods: {
        GET: async (_request, response) => {
          const listing = versionsTurn.then(() => listVersions(runner));
          versionsTurn = listing.catch(() => undefined);
          try {
            send(response, 200, await listing);
          } catch (error) {
            if (error instanceof NotImplementedError) throw new HttpError(501, error.message, error.hint === undefined ? {} : {hint: error.hint});
            if (error instanceof ValidationError) {
              throw new HttpError(500, `Cannot list the versions of the configured source: ${error.message}`, error.hint === undefined ? {} : {hint: error.hint});
            }
            throw error;
          }
        },
      },
    },
    {
      path: /^\/runs$/,
      methods: {
        GET: async (_request, response) => send(response, 200, {runs: queue.list()}),
        POST: async (request, response) => {
          const body = await readJson(request, bodyLimit);
          const parsed = parseRunRequest(body);
          if ('field' in parsed) throw new HttpError(400, parsed.message, {field: parsed.field});
          if (parsed.set.length > 0) await checkOverrides(runner, parsed.set);
          const run = queue.submit(parsed);
          if (run === undefined) {
            throw new HttpError(503, 'The server is not taking runs now: the queue is full or the server is shutting down.', {headers: {'Retry-After': '30'}});
          }
          send(response, 202, run, {Location: `/runs/${run.id}`});
        },
      },
    },
    {
      path: /^\/runs\/([^/]+)$/,
      methods: {
        GET: async (_request, response, [id]) => send(response, 200, known(queue.view(id!), id!)),
        DELETE: async (_request, response, [id]) => {
          const {view, refused} = known(queue.cancel(id!), id!);
          if (refused !== undefined) throw new HttpError(409, refused);
          send(response, 202, view);
        },
      },
    },
    {
      path: /^\/runs\/([^/]+)\/(summary\.json|validation\.json|analysis\.json|report)$/,
      methods: {
        GET: async (_request, response, [id, name]) => {
          const run = known(queue.view(id!), id!);
          const {file, type} = FILE_ROUTES[name!]!;
          if (run.state === 'queued' || run.state === 'running') {
            throw new HttpError(409, `Run ${id} is ${run.state}; its files are available once it has finished.`);
          }
          const path = queue.file(id!, file);
          if (path === undefined) throw new HttpError(404, `Run ${id} (${run.state}) has no ${file}.`);
          await sendFile(response, path, type);
        },
      },
    },
  ];

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (options.token !== undefined && !hasToken(request.headers.authorization, options.token)) {
      throw new HttpError(401, 'Missing or wrong bearer token: send the header "Authorization: Bearer <PIPELINE_API_TOKEN>".', {
        headers: {'WWW-Authenticate': 'Bearer realm="pipeline"'},
      });
    }
    if (options.loopbackHostsOnly && !isLoopbackHost(request.headers.host)) {
      // A web page that rebinds its own name to 127.0.0.1 sends its own name as Host.
      throw new HttpError(403, 'This server answers only requests addressed to a loopback host (127.0.0.1, localhost or [::1]).', {
        hint: 'To serve other hosts, bind to their address and set PIPELINE_API_TOKEN.',
      });
    }
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const route = routes.map((candidate) => ({candidate, match: candidate.path.exec(path)})).find(({match}) => match !== null);
    if (route === undefined) throw new HttpError(404, `No such endpoint: ${path}.`);
    const method = request.method === 'HEAD' ? 'GET' : (request.method ?? 'GET');
    const handler = route.candidate.methods[method];
    if (handler === undefined) {
      const allowed = Object.keys(route.candidate.methods).join(', ');
      throw new HttpError(405, `${request.method} is not allowed on ${path}; allowed: ${allowed}.`, {headers: {Allow: allowed}});
    }
    await handler(request, response, route.match!.slice(1));
  };

  return (request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof HttpError) {
        const {field, hint, headers} = error.extra;
        send(response, error.status, {error: {...(field === undefined ? {} : {field}), message: error.message, ...(hint === undefined ? {} : {hint})}}, headers);
        return;
      }
      report(`Unexpected error on ${request.method} ${request.url}: ${redact(error instanceof Error ? error.message : String(error))}`);
      send(response, 500, {error: {message: 'Internal server error; the server log says more.'}});
    });
  };
}

function known<T>(value: T | undefined, id: string): T {
  if (value === undefined) throw new HttpError(404, `No run ${JSON.stringify(id)}: it never existed or is no longer kept (GET /runs lists the runs kept).`);
  return value;
}

/**
 * The overrides, loaded with pipeline.yaml as `--set` flags would be, so a wrong name or
 * value is refused now (400) rather than failing the run later. Problems elsewhere (the
 * server's own configuration) are not the client's: the run reports them.
 */
async function checkOverrides(runner: ValidationRunner, sets: string[]): Promise<void> {
  try {
    await runner.load({set: sets});
  } catch (error) {
    if (!(error instanceof DiagnosticsError)) return;
    for (const diagnostic of error.diagnostics) {
      const field = overrideField(diagnostic.location.source, sets);
      if (field !== undefined) throw new HttpError(400, diagnostic.message, {field});
    }
  }
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  response.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  response.end(text);
}

async function sendFile(response: ServerResponse, path: string, type: string): Promise<void> {
  const {stat} = await import('node:fs/promises');
  const size = (await stat(path)).size;
  response.writeHead(200, {'Content-Type': type, 'Content-Length': size, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff'});
  await new Promise<void>((resolve, reject) => {
    createReadStream(path).on('error', reject).pipe(response).on('finish', resolve).on('error', reject);
  });
}

/**
 * Reads a JSON body of at most `limit` bytes. A larger body is still read to its end (up to
 * a bound), so the client gets the 413 rather than a reset connection.
 */
async function readJson(request: IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = () => new HttpError(413, `The request body is larger than ${limit / 1024} KiB.`, {field: 'body', headers: {Connection: 'close'}});
  if (Number(request.headers['content-length'] ?? 0) > 16 * limit) throw tooLarge();
  const body = await new Promise<Buffer | undefined>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > 16 * limit) request.destroy();
    });
    request.on('end', () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    request.on('error', reject);
  });
  if (body === undefined) throw tooLarge();
  const type = request.headers['content-type'] ?? '';
  // Browsers send cross-site forms without a preflight only for form and text types.
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(415, `Expected Content-Type: application/json, got ${type === '' ? 'none' : JSON.stringify(type)}.`, {field: 'body'});
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `The body is not valid JSON: ${(error as Error).message}.`, {field: 'body'});
  }
}
