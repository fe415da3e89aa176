/**
 * A `fetch` for one remote upstream over its own connection pool (a `node:http` and a `node:https`
 * Agent), so that closing the upstream closes every socket to it at once, instead of leaving them
 * in a process-wide keep-alive pool. The SDK's client transports take it as their `fetch`.
 *
 * - Every socket the pool opens is a ledger resource of the owner (kind `socket`) from the moment it
 *   exists; its release closes the whole pool (`onRelease`, the upstream's own close: DELETE first)
 *   and it settles when the socket has closed.
 * - Redirects are never followed here (the SDK follows same-origin ones itself); a redirect to
 *   another origin is refused with E_REMOTE_REDIRECT, so headers and tokens never travel elsewhere.
 * - Bad input becomes coded errors at the source: refused/unresolvable/reset → E_REMOTE_UNREACHABLE,
 *   TLS failures → E_REMOTE_TLS, an HTML page (or other non-MCP body) → E_REMOTE_NOT_MCP. The last
 *   failure and the last `Retry-After` are remembered for the error mapping (remote-errors.ts).
 */
import http from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import type { ResourceLedger } from '../../core/resource-ledger.js';

/** node:https (and node:tls under it: ~1 MiB RSS) loads with the first remote upstream, not in every daemon. */
let httpsModule: typeof Https | undefined;
const loadHttps = (): typeof Https => (httpsModule ??= createRequire(import.meta.url)('node:https') as typeof Https);

export interface RemoteFetchOptions {
  /** Server name (errors, descriptions). */
  name: string;
  /** Ledger owner of the sockets. */
  owner: string;
  ledger: ResourceLedger;
  logger: Logger;
  /** Deadline of one TCP (and TLS) connect. */
  connectTimeoutMs: number;
  /** Largest honoured Retry-After. */
  retryAfterMaxMs: number;
  /** What releasing one of the sockets does: close the upstream (which closes this pool). */
  onRelease: () => Promise<void>;
  /**
   * OAuth is in use: an error answer to a request with a bearer token whose body is an OAuth error
   * object (`{"error": "…"}`, not JSON-RPC) is the bearer check refusing the token, whatever its
   * status (the SDK's own example answers 500 `server_error` for a token it does not know). It is
   * passed on as 401, so the SDK's refresh-or-login handling runs instead of a retry loop.
   */
  bearerErrorsAsUnauthorized?: boolean;
}

/** Largest error body inspected for an OAuth error object. */
const MAX_ERROR_BODY = 64 * 1024;

/** `{"error": "…"}` without `jsonrpc`: an OAuth (RFC 6749/6750) error response. */
function isOAuthErrorBody(text: string): boolean {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && typeof (v as { error?: unknown }).error === 'string' && !('jsonrpc' in v);
  } catch {
    return false;
  }
}

type FetchInput = string | URL | { url: string };

export interface RemoteFetch {
  readonly fetch: (input: FetchInput, init?: RequestInit) => Promise<Response>;
  /** The last coded failure this fetch produced (for errors the SDK re-wraps). */
  lastFailure(): WardenError | undefined;
  /** `Retry-After` of the last error response, in ms (capped), if it had one. */
  lastRetryAfterMs(): number | undefined;
  /** Open sockets right now. */
  socketCount(): number;
  /** Refuse new requests, destroy every socket; resolves when all have closed. Idempotent. */
  close(): Promise<void>;
}

const NET_UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/** A socket-level failure as a coded error (undefined: not a network error). */
export function networkError(name: string, url: URL, err: unknown): WardenError | undefined {
  if (err instanceof WardenError) return err;
  const e = err as NodeJS.ErrnoException & { library?: string; reason?: string };
  const code = typeof e?.code === 'string' ? e.code : '';
  const where = `${url.protocol}//${url.host}`;
  if (
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_TLS') ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code) ||
    e?.library === 'SSL routines' ||
    (code === 'EPROTO' && /SSL|TLS/.test(String(e?.message)))
  ) {
    return new WardenError(ErrorCodes.REMOTE_TLS, `${name}: TLS with ${where} failed: ${e.message}`, {
      server: name,
      errno: code || undefined,
    });
  }
  if (NET_UNREACHABLE.has(code) || /socket hang up|connect timeout/i.test(String(e?.message))) {
    return new WardenError(ErrorCodes.REMOTE_UNREACHABLE, `${name}: cannot reach ${where}: ${code || e.message}`, {
      server: name,
      errno: code || undefined,
    });
  }
  return undefined;
}

/** `Retry-After` as ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1_000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

function bodyOf(init: RequestInit | undefined, headers: Headers): string | Buffer | undefined {
  const body = init?.body;
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) {
    if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    return body.toString();
  }
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  return String(body as unknown);
}

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

export function createRemoteFetch(opts: RemoteFetchOptions): RemoteFetch {
  const sockets = new Set<Socket>();
  let closed = false;
  let failure: WardenError | undefined;
  let retryAfter: number | undefined;
  const closeWaiters = new Set<() => void>();

  const track = (socket: Socket, tls: boolean) => {
    sockets.add(socket);
    const entry = opts.ledger.acquire(opts.owner, {
      kind: 'socket',
      description: `connection of ${opts.name} to its remote server`,
      release: opts.onRelease,
      forceRelease: async () => {
        socket.destroy();
      },
      isGone: () => socket.destroyed && !sockets.has(socket),
    });
    socket.once('close', () => {
      sockets.delete(socket);
      entry.settle();
      if (sockets.size === 0) for (const w of [...closeWaiters]) w();
    });
    // A connect that takes longer than the deadline is abandoned (the socket's own timer, cleared on connect).
    socket.setTimeout(opts.connectTimeoutMs, () => socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.setTimeout(0));
    if (closed) socket.destroy();
  };

  const makeAgent = <A extends http.Agent>(agent: A, tls: boolean): A => {
    const create = (agent as unknown as { createConnection: (...a: unknown[]) => Socket }).createConnection.bind(agent);
    (agent as unknown as { createConnection: (...a: unknown[]) => Socket }).createConnection = (...args: unknown[]) => {
      const socket = create(...args);
      track(socket, tls);
      return socket;
    };
    return agent;
  };
  const https = loadHttps();
  const httpAgent = makeAgent(new http.Agent({ keepAlive: true, maxSockets: 16 }), false);
  const httpsAgent = makeAgent(new https.Agent({ keepAlive: true, maxSockets: 16 }), true);

  const fail = (err: WardenError): WardenError => {
    failure = err;
    return err;
  };

  const fetchImpl = (input: FetchInput, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (closed) return Promise.reject(new WardenError(ErrorCodes.REMOTE_UNREACHABLE, `${opts.name}: the connection pool is closed`));
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.reject(fail(new WardenError(ErrorCodes.REMOTE_UNREACHABLE, `${opts.name}: unsupported URL scheme ${url.protocol}`)));
    }
    const headers = new Headers(init?.headers);
    const body = bodyOf(init, headers);
    const method = (init?.method ?? 'GET').toUpperCase();
    const signal = init?.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(
        url,
        {
          method,
          headers: Object.fromEntries(headers.entries()),
          agent: url.protocol === 'https:' ? httpsAgent : httpAgent,
          signal,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (v === undefined) continue;
            if (Array.isArray(v)) for (const x of v) out.append(k, x);
            else out.set(k, v);
          }
          const location = out.get('location');
          if (status >= 300 && status < 400 && location) {
            let target: URL | undefined;
            try {
              target = new URL(location, url);
            } catch {
              target = undefined;
            }
            if (!target || target.origin !== url.origin) {
              res.resume();
              return reject(
                fail(
                  new WardenError(
                    ErrorCodes.REMOTE_REDIRECT,
                    `${opts.name}: ${url.origin} redirected (${status}) to another origin${target ? ` (${target.origin})` : ''}; not followed`,
                    { server: opts.name, statusCode: status },
                  ),
                ),
              );
            }
          }
          const type = (out.get('content-type') ?? '').toLowerCase();
          if (status >= 200 && status < 300 && type.startsWith('text/html')) {
            res.resume();
            return reject(
              fail(
                new WardenError(
                  ErrorCodes.REMOTE_NOT_MCP,
                  `${opts.name}: ${url.origin}${url.pathname} answered an HTML page (${status}), not MCP; is the URL the server's MCP endpoint?`,
                  { server: opts.name, statusCode: status },
                ),
              ),
            );
          }
          if (status >= 400) {
            const ra = retryAfterMs(out.get('retry-after'));
            retryAfter = ra === undefined ? undefined : Math.min(ra, opts.retryAfterMaxMs);
          }
          if (
            opts.bearerErrorsAsUnauthorized &&
            status >= 400 &&
            status !== 401 &&
            /^bearer /i.test(headers.get('authorization') ?? '') &&
            type.includes('json')
          ) {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (c: Buffer) => {
              size += c.length;
              if (size <= MAX_ERROR_BODY) chunks.push(c);
            });
            res.on('error', (err) => reject(networkError(opts.name, url, err) ?? err));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              const refused = isOAuthErrorBody(text);
              resolve(
                new Response(text, {
                  status: refused ? 401 : status,
                  statusText: refused ? 'Unauthorized' : (res.statusMessage ?? ''),
                  headers: out,
                }),
              );
            });
            return;
          }
          const nullBody = NULL_BODY_STATUS.has(status) || method === 'HEAD';
          if (nullBody) res.resume();
          try {
            resolve(
              new Response(nullBody ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>), {
                status: status < 200 || status > 599 ? 502 : status,
                statusText: res.statusMessage ?? '',
                headers: out,
              }),
            );
          } catch (err) {
            res.destroy();
            reject(err);
          }
        },
      );
      req.on('error', (err) => {
        if (signal?.aborted) return reject(signal.reason);
        const coded = networkError(opts.name, url, err);
        reject(coded ? fail(coded) : err);
      });
      req.end(body);
    });
  };

  return {
    fetch: fetchImpl,
    lastFailure: () => failure,
    lastRetryAfterMs: () => retryAfter,
    socketCount: () => sockets.size,
    close() {
      closed = true;
      httpAgent.destroy();
      httpsAgent.destroy();
      for (const s of sockets) s.destroy();
      if (sockets.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          closeWaiters.delete(done);
          resolve();
        };
        closeWaiters.add(done);
      });
    },
  };
}
