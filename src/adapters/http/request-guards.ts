/**
 * DNS-rebinding and access guards for every route of the daemon's HTTP server (/mcp, the control
 * channel, /healthz, the visualizer's files).
 *
 * - Host: a browser tricked by DNS rebinding sends the attacker's name in `Host`; we only accept the
 *   names we are actually reachable as (`127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>`, also
 *   without the port), or an explicit list for non-loopback binds.
 * - Origin: absent → allowed (non-browser clients such as Claude Code send none). Present → its host
 *   must be a loopback name/IP (any port, http or https) or the origin must be in an explicit allowlist.
 *   The literal `null` origin (sandboxed iframes, file://) is refused. That is /mcp's policy (browser MCP
 *   clients such as the Inspector run on other loopback ports). The other routes (`ownOrigin: true`)
 *   accept only the daemon's own origin (`ownOrigins`, e.g. `http://localhost:<port>`; on a remote bind
 *   the origin naming the Host the request was sent to) and the allow-list: another local web app on
 *   another port must not drive the daemon with a token it got hold of.
 * - Bearer token: compared in constant time (SHA-256 digests through `crypto.timingSafeEqual`, so
 *   neither the content nor the length of the token leaks through timing).
 *
 * Pure functions, no I/O; nothing here throws on hostile input.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { ErrorCodes, httpStatusOf, type ErrorCode } from '../../core/error-codes.js';
import { headerValue } from './headers.js';

/** `[::1]` → `::1`; lower-cased; a trailing dot (`localhost.`) removed. */
function normaliseHostname(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/**
 * True for `localhost`, any 127.0.0.0/8 address, `::1` (with or without brackets) and the IPv4-mapped
 * forms `::ffff:127.x.y.z`. Subdomains of localhost are NOT accepted (their resolution is up to DNS).
 */
export function isLoopbackHost(host: string): boolean {
  const h = normaliseHostname(host);
  if (h === 'localhost') return true;
  const kind = isIP(h);
  if (kind === 4) return h.split('.')[0] === '127';
  if (kind === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    if (h.startsWith('::ffff:')) {
      const tail = h.slice('::ffff:'.length);
      if (isIP(tail) === 4) return tail.split('.')[0] === '127';
      return /^7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(tail); // WHATWG URL form: [::ffff:7f00:1]
    }
    return false;
  }
  return false;
}

/**
 * The Host header values accepted for a server bound to a loopback address on `port`:
 * `127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>` and the same three without the port.
 */
export function loopbackAllowedHosts(port: number): string[] {
  const names = ['127.0.0.1', 'localhost', '[::1]'];
  return [...names.map((n) => `${n}:${port}`), ...names];
}

/** Splits a Host header into hostname and port string (port '' when absent). Undefined when malformed. */
function parseHostHeader(hostHeader: string): { hostname: string; port: string } | undefined {
  const v = hostHeader.trim();
  if (v === '' || /[\s/@?#]/.test(v)) return undefined;
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end < 0) return undefined;
    const rest = v.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return { hostname: v.slice(0, end + 1).toLowerCase(), port: rest.slice(1) };
  }
  const parts = v.split(':');
  if (parts.length > 2) return undefined; // an unbracketed IPv6 literal is not a valid Host
  if (parts.length === 2 && !/^\d{1,5}$/.test(parts[1]!)) return undefined;
  return { hostname: parts[0]!.toLowerCase(), port: parts[1] ?? '' };
}

/**
 * True when `hostHeader` matches one entry of `allowed` (case-insensitive, exact host[:port] match).
 * The entry `*` accepts any well-formed Host: only for non-loopback binds protected by a bearer token.
 * Verdicts are cached per `allowed` array: pass one that is never mutated afterwards.
 */
export function checkHostHeader(hostHeader: string | undefined, allowed: readonly string[]): boolean {
  if (typeof hostHeader !== 'string') return false;
  // A client sends the same Host on every request: remember the last few verdicts per allow-list.
  let verdicts = hostVerdicts.get(allowed);
  if (!verdicts) hostVerdicts.set(allowed, (verdicts = new Map()));
  const known = verdicts.get(hostHeader);
  if (known !== undefined) return known;
  const ok = matchHostHeader(hostHeader, allowed);
  if (verdicts.size >= HOST_VERDICT_CACHE_SIZE) verdicts.clear();
  verdicts.set(hostHeader, ok);
  return ok;
}

const HOST_VERDICT_CACHE_SIZE = 64;
const hostVerdicts = new WeakMap<readonly string[], Map<string, boolean>>();

function matchHostHeader(hostHeader: string, allowed: readonly string[]): boolean {
  const parsed = parseHostHeader(hostHeader);
  if (!parsed) return false;
  const candidate = parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
  for (const entry of allowed) {
    if (entry === '*') return true;
    if (entry.trim().toLowerCase() === candidate) return true;
  }
  return false;
}

/** `https://Example.com:443/x` → `https://example.com`; undefined when not an http(s) origin. */
function normaliseOrigin(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

/**
 * No Origin header → allowed (non-browser client). Otherwise the origin must be http(s) with a loopback
 * host on any port, or equal (after normalisation) one of `allowedOrigins` (e.g. `https://app.example`).
 */
export function checkOrigin(origin: string | undefined, allowedOrigins: readonly string[] = []): boolean {
  if (origin === undefined) return true;
  if (typeof origin !== 'string') return false;
  const normalised = normaliseOrigin(origin);
  if (!normalised) return false; // includes the opaque origin "null"
  const host = new URL(normalised).hostname;
  if (isLoopbackHost(host)) return true;
  return allowedOrigins.some((o) => normaliseOrigin(o) === normalised);
}

/** The daemon's own browser origins on a loopback bind: `http://127.0.0.1:<port>`, `http://localhost:<port>`, `http://[::1]:<port>`. */
export function loopbackOrigins(port: number): string[] {
  return ['127.0.0.1', 'localhost', '[::1]'].map((h) => `http://${h}:${port}`);
}

/**
 * The own-origin rule: no Origin → allowed; otherwise it must equal one of `ownOrigins` or
 * `allowedOrigins`, or (when `hostHeader` is given: a remote bind reached by any name) name exactly the
 * host the request was sent to.
 */
export function checkOwnOrigin(
  origin: string | undefined,
  ownOrigins: readonly string[],
  allowedOrigins: readonly string[] = [],
  hostHeader?: string,
): boolean {
  if (origin === undefined) return true;
  if (typeof origin !== 'string') return false;
  const normalised = normaliseOrigin(origin);
  if (!normalised) return false;
  if ([...ownOrigins, ...allowedOrigins].some((o) => normaliseOrigin(o) === normalised)) return true;
  if (hostHeader === undefined) return false;
  return new URL(normalised).host === hostHeader.trim().toLowerCase();
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time comparison of two secrets of any length. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** True when `authorization` is `Bearer <token>` (scheme case-insensitive) with exactly `expected`. */
export function checkBearer(authorization: string | undefined, expected: string): boolean {
  if (typeof authorization !== 'string' || expected.length === 0) return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  const presented = m ? m[1]! : '';
  // Always compare, so a malformed header costs the same as a wrong token.
  const ok = safeEqual(presented, expected);
  return ok && m !== null;
}

export interface GuardOptions {
  allowedHosts: readonly string[];
  allowedOrigins?: readonly string[];
  /** When set, `Authorization: Bearer <token>` is required. */
  bearerToken?: string;
  /**
   * When set, a browser Origin must be one of these (or of `allowedOrigins`; on a host-agnostic bind,
   * `allowedHosts: ['*']`, also the origin of the Host header) instead of any loopback origin.
   */
  ownOrigins?: readonly string[];
}

export interface GuardFailure {
  status: 401 | 403;
  code: ErrorCode;
  message: string;
}

function clip(s: string | undefined | null): string {
  if (s === undefined) return '(none)';
  if (s === null) return '(sent more than once)';
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

/** Host, then Origin, then bearer token. Undefined when the request may proceed. */
export function guardRequest(req: Pick<IncomingMessage, 'headers'>, opts: GuardOptions): GuardFailure | undefined {
  const host = headerValue(req.headers.host);
  if (host === null || !checkHostHeader(host, opts.allowedHosts)) {
    return refusal(ErrorCodes.FORBIDDEN_HOST, `Forbidden: Host ${clip(host)} is not allowed`);
  }
  const origin = headerValue(req.headers.origin);
  const originOk =
    origin !== null &&
    (opts.ownOrigins
      ? checkOwnOrigin(origin, opts.ownOrigins, opts.allowedOrigins, opts.allowedHosts.includes('*') ? host : undefined)
      : checkOrigin(origin, opts.allowedOrigins));
  if (!originOk) {
    return refusal(ErrorCodes.FORBIDDEN_ORIGIN, `Forbidden: Origin ${clip(origin)} is not allowed`);
  }
  const authorization = headerValue(req.headers.authorization);
  if (opts.bearerToken !== undefined && (authorization === null || !checkBearer(authorization, opts.bearerToken))) {
    return refusal(ErrorCodes.UNAUTHORIZED, 'Unauthorized: a valid bearer token is required');
  }
  return undefined;
}

type GuardCode = typeof ErrorCodes.FORBIDDEN_HOST | typeof ErrorCodes.FORBIDDEN_ORIGIN | typeof ErrorCodes.UNAUTHORIZED;

/** The status comes from the catalogue (src/core/error-catalogue.ts): 403 for Host/Origin, 401 for the token. */
function refusal(code: GuardCode, message: string): GuardFailure {
  return { status: httpStatusOf(code) as GuardFailure['status'], code, message };
}
