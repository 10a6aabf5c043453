/**
 * `serve`: the HTTP API (src/server/) on a port, until SIGTERM or SIGINT. Shutting down stops
 * accepting connections, cancels queued runs and lets the running one finish within a grace
 * period (`PIPELINE_API_GRACE_SECONDS`, 10 by default) before interrupting it.
 */
import type {AddressInfo} from 'node:net';
import {join, resolve} from 'node:path';
import {ConfigurationError} from '../errors.js';
import {ValidationRunner} from '../runner.js';
import {createApp} from '../server/app.js';
import {isLoopback} from '../server/auth.js';
import {RunQueue} from '../server/queue.js';
import {redact} from '../util/redact.js';

interface ServeFlags {
  host?: string;
  port?: string;
  config?: string;
  pipeline?: string;
}

const MIN_TOKEN_LENGTH = 16;

/** Serves until `signal` aborts; 0 after a clean stop, 130 when a run had to be interrupted. */
export async function serveCommand(flags: ServeFlags, signal: AbortSignal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const host = flags.host ?? '127.0.0.1';
  const port = parsePort(flags.port ?? '8787');
  const grace = parseGrace(env['PIPELINE_API_GRACE_SECONDS']);
  const token = env['PIPELINE_API_TOKEN'] === '' ? undefined : env['PIPELINE_API_TOKEN'];
  if (token === undefined && !isLoopback(host)) {
    throw new ConfigurationError(`Refusing to listen on ${host} without PIPELINE_API_TOKEN: anyone who can reach it could start runs.`, {
      hint: 'Set PIPELINE_API_TOKEN to a long random secret (e.g. `openssl rand -hex 32`), which clients send as "Authorization: Bearer <token>"; or listen on 127.0.0.1.',
    });
  }
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigurationError(`PIPELINE_API_TOKEN is too short: expected at least ${MIN_TOKEN_LENGTH} characters, got ${token.length}.`, {
      hint: 'Use a long random secret, e.g. `openssl rand -hex 32`.',
    });
  }

  const runner = new ValidationRunner(flags.config, flags.pipeline === undefined ? {} : {pipelineFile: flags.pipeline});
  // Configuration problems stop the server now, not every run later.
  const pipeline = await runner.load();
  const log = (message: string) => process.stderr.write(`${new Date().toISOString()} ${message}\n`);
  // Task code may throw after its run has ended (a timer left behind): between runs, as during
  // one, such an error is said, not the end of the server and its queue.
  const stray = (error: unknown) => log(`an error escaped task code: ${redact(error instanceof Error ? error.message : String(error))}`);
  process.on('unhandledRejection', stray);
  process.on('uncaughtException', stray);
  const queue = new RunQueue(runner, {dir: join(resolve(pipeline.projectDir, pipeline.settings.cache.dir), 'server-runs'), notify: log});
  await queue.restore();

  const {createServer} = await import('node:http');
  const server = createServer(createApp({runner, queue, token, loopbackHostsOnly: token === undefined, report: log}));
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code === 'EADDRINUSE' ? 'the port is in use' : error.code === 'EADDRNOTAVAIL' ? 'no such address on this machine' : error.message;
      reject(new ConfigurationError(`Cannot listen on ${host}:${port}: ${reason}.`, {hint: 'Pass another --port (0 picks a free one) or --host.'}));
    });
    server.listen(port, host, () => resolveListen());
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  process.stdout.write(`Listening on http://${shown}:${address.port}\n`);

  if (!signal.aborted) await new Promise((resolveStop) => signal.addEventListener('abort', resolveStop, {once: true}));
  log(`shutting down: no new connections; a running validation has ${grace / 1000} s to finish`);
  server.close();
  server.closeIdleConnections();
  const interrupted = await queue.shutdown(grace);
  server.closeAllConnections();
  log(interrupted ? 'stopped; the running validation was interrupted' : 'stopped');
  return interrupted ? 130 : 0;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new ConfigurationError(`Expected --port to be a port number from 0 to 65535 (0 picks a free one), got "${text}".`);
  }
  return port;
}

function parseGrace(text: string | undefined): number {
  if (text === undefined || text === '') return 10_000;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new ConfigurationError(`Expected PIPELINE_API_GRACE_SECONDS to be a number of seconds, got "${text}".`);
  }
  return seconds * 1000;
}
