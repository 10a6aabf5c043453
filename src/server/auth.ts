/**
 * Who may talk to the server. On loopback without a token, only this machine can connect,
 * but a web page in a local browser can still reach it (DNS rebinding, form posts): the Host
 * header must then name the loopback address. Beyond loopback a bearer token is required.
 */
import {createHash, timingSafeEqual} from 'node:crypto';
import {isIP} from 'node:net';

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/** The `Authorization` header carries `Bearer <token>`, compared in constant time. */
export function hasToken(header: string | undefined, token: string): boolean {
  const match = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
  // Digests have equal lengths, so neither the comparison nor its length check leaks the token.
  const digest = (text: string) => createHash('sha256').update(text).digest();
  const given = digest(match?.[1] ?? '');
  return timingSafeEqual(given, digest(token)) && match !== null;
}

/** True when the Host header names a loopback address (any port is the one we listen on). */
export function isLoopbackHost(header: string | undefined): boolean {
  if (header === undefined) return false;
  const host = /^(\[[^\]]+\]|[^:]+)(:\d+)?$/.exec(header.trim().toLowerCase())?.[1];
  return host !== undefined && isLoopback(host);
}
