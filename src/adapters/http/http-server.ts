/**
 * A small wrapper over `node:http` that owns its listening socket and every connection:
 *
 * - the listening server is a ledger resource (kind 'socket', owner 'http'), and so is each accepted
 *   connection (settled when the socket closes), so /healthz and tests can see what is open;
 * - exact-path routing (query string ignored): unknown path → 404, known path with another method →
 *   405, a handler that throws → 500; all as JSON `{ error: { code, message } }` without stack traces,
 *   the status taken from the error catalogue (src/core/error-catalogue.ts);
 * - body limits belong to whoever reads a body (`readBody`, so /mcp answers in JSON-RPC as
 *   docs/mcp-endpoint.md promises); the router only makes sure a request announcing more than
 *   `maxBodyBytes` never keeps its connection alive, so an unread oversized body is not drained;
 * - bounds (docs/config.md): a connection that has not completed a request head within
 *   `headersTimeoutMs` is closed (our own timer for the first head, so 200 silent sockets go away on
 *   time rather than at Node's 30 s check interval; Node's `headersTimeout` for later heads), a request
 *   whose body has not arrived within `requestTimeoutMs` gets Node's 408, and beyond `maxConnections`
 *   a new connection gets 503 and is closed. Open SSE streams, upgraded sockets and requests in
 *   flight are never idle: the timers only run while a socket waits for a head;
 * - `close()` stops accepting, destroys idle keep-alive sockets at once, ends sockets as soon as their
 *   in-flight response finishes, destroys whatever is left (open SSE streams, upgraded sockets) after a
 *   short grace, and resolves when the server is fully closed. It never hangs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError, httpStatusOf, pickCodes, type ErrorCode } from '../../core/error-codes.js';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';

const HTTP_LEDGER_OWNER = 'http';

/** The router's own codes: a view of the catalogue (src/core/error-catalogue.ts). */
export const HttpErrorCodes = pickCodes(['NOT_FOUND', 'METHOD_NOT_ALLOWED', 'BODY_TOO_LARGE', 'INTERNAL']);

type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
/** A request check run before routing (Host/Origin/token, request-guards.ts); a failure is answered as is. */
export type RequestGuard = (req: IncomingMessage, path: string) => { code: ErrorCode; message: string } | undefined;
type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpServerOptions {
  host: string;
  /** 0 picks a free port; `handle.port` tells which. */
  port: number;
  logger: Logger;
  ledger: ResourceLedger;
  /**
   * Requests announcing a larger Content-Length still reach their handler (a body reader refuses them
   * in its own protocol, e.g. /mcp's JSON-RPC 413), but their connection is closed after the response.
   */
  maxBodyBytes: number;
  /** How long close() lets in-flight responses finish before destroying their sockets. Default 1000. */
  closeGraceMs?: number;
  /**
   * Idle keep-alive timeout of connections. Default 5000 (Node's default). Keep it a whole number of
   * seconds ≥ 2000: Node announces `Keep-Alive: timeout=<floor(s)>` and undici reuses an idle socket for
   * up to that minus 1 s (its default 4 s when the hint is 0), so a shorter server timeout makes
   * clients send requests into sockets the server is closing (ECONNRESET on POST, not retried).
   */
  keepAliveTimeoutMs?: number;
  /** A connection without a complete request head this long after connecting is closed. Default 10000. */
  headersTimeoutMs?: number;
  /** A whole request (head + body) must arrive within this; Node answers 408 otherwise. Default 30000. */
  requestTimeoutMs?: number;
  /** Concurrent connections beyond this get 503 and are closed. Default 256. */
  maxConnections?: number;
}

/** Counters since start, for /healthz and tests. */
export interface HttpServerStats {
  connections: number;
  /** Connections closed because no request head arrived within headersTimeoutMs. */
  idleClosed: number;
  /** Connections refused because maxConnections were open. */
  refused: number;
  /** Connections closed (408) because a later request head or a body was slower than its deadline. */
  timedOut: number;
}

export interface HttpServerHandle {
  /** e.g. `http://127.0.0.1:54321`, `http://[::1]:54321`, `http://localhost:54321` */
  readonly url: string;
  readonly host: string;
  /** The actually bound port. */
  readonly port: number;
  /**
   * `selfGuarded`: the handler runs its own guard (/mcp answers refusals in JSON-RPC); every other
   * path, unknown ones included, passes the `setGuard` guard first.
   */
  route(method: string, path: string, handler: RouteHandler, opts?: { selfGuarded?: boolean }): void;
  /** Every path that starts with `prefix` (e.g. `/mcp/` for `/mcp/<server>`), unless an exact route matches. */
  routePrefix(method: string, prefix: string, handler: RouteHandler, opts?: { selfGuarded?: boolean }): void;
  /** The guard of every route not registered `selfGuarded` (none until set). */
  setGuard(guard: RequestGuard): void;
  onUpgrade(path: string, handler: UpgradeHandler): void;
  /** Open TCP connections right now (including upgraded ones and idle keep-alive ones). */
  connectionCount(): number;
  /** Requests whose response has not finished yet (open SSE streams included; upgrades excluded). */
  activeRequestCount(): number;
  stats(): HttpServerStats;
  close(): Promise<void>;
}

/** Writes a JSON body (no-op when the response already started). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** sendJson for a body serialised already (the /healthz answer, src/daemon/healthz-body.ts). */
export function sendJsonText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string, headers?: Record<string, string>): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

/** `{ error: { code, message } }` with the status the catalogue gives `code`. */
function sendCodedError(res: ServerResponse, code: ErrorCode, message: string, headers?: Record<string, string>): void {
  sendError(res, httpStatusOf(code), code, message, headers);
}

export type ReadBodyResult = { ok: true; body: Buffer } | { ok: false; reason: 'too-large' | 'aborted' };

/**
 * Reads a request body up to `maxBytes`. Never rejects. On 'too-large' the rest of the body is not
 * read: answer with `Connection: close` so the socket is not reused.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<ReadBodyResult> {
  return new Promise((resolve) =>
    readBodyThen(req, maxBytes, (body, reason) => resolve(body !== undefined ? { ok: true, body } : { ok: false, reason: reason! })),
  );
}

/**
 * readBody with a callback, for the /mcp hot path: `done(body)` once the body is read whole, or
 * `done(undefined, reason)`; called once, from the request's events (or at once for a declared
 * length over `maxBytes`). A body of one chunk is that chunk, not a copy.
 */
export function readBodyThen(
  req: IncomingMessage,
  maxBytes: number,
  done: (body: Buffer | undefined, reason?: 'too-large' | 'aborted') => void,
): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return done(undefined, 'too-large');
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  let size = 0;
  let finished = false;
  const fail = (reason: 'too-large' | 'aborted') => {
    if (finished) return;
    finished = true;
    // A body read whole leaves its listeners on the finished request (they do nothing once finished):
    // removing four listeners per request was measurable under load (docs/benchmarks.md, "Throughput").
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onAbort);
    req.off('close', onClose);
    req.pause();
    done(undefined, reason);
  };
  const onData = (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > maxBytes) return fail('too-large');
    if (first === undefined) first = chunk;
    else (more ??= [first]).push(chunk);
  };
  const onEnd = () => {
    if (finished) return;
    finished = true;
    done(more !== undefined ? Buffer.concat(more, size) : (first ?? Buffer.alloc(0)));
  };
  const onAbort = () => fail('aborted');
  const onClose = () => {
    if (!req.complete) fail('aborted');
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onAbort);
  req.on('close', onClose);
}

function formatUrl(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

function listenFailureReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EACCES':
      return 'permission denied';
    case 'EADDRNOTAVAIL':
      return 'address not available';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    default:
      return err.message;
  }
}

interface ConnState {
  /** Requests on this socket whose response has not finished. */
  active: number;
  upgraded: boolean;
  ledger: LedgerHandle;
  /** Runs until the first request head (or upgrade) arrives. */
  headTimer?: NodeJS.Timeout;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const { logger, ledger } = opts;
  const graceMs = opts.closeGraceMs ?? 1000;
  const routes = new Map<string, Map<string, RouteHandler>>();
  const prefixRoutes: Array<{ prefix: string; byMethod: Map<string, RouteHandler>; selfGuarded: boolean }> = [];
  const upgrades = new Map<string, UpgradeHandler>();
  const selfGuarded = new Set<string>();
  let guard: RequestGuard | undefined;
  const conns = new Map<Socket, ConnState>();
  let closing = false;
  let activeRequests = 0;
  let closePromise: Promise<void> | undefined;

  const headersTimeoutMs = opts.headersTimeoutMs ?? 10_000;
  // Node throws when requestTimeout < headersTimeout (config-schema.ts warns about that setting).
  const requestTimeoutMs = Math.max(opts.requestTimeoutMs ?? 30_000, headersTimeoutMs);
  const maxConnections = opts.maxConnections ?? 256;
  let idleClosed = 0;
  let refused = 0;
  let timedOut = 0;
  const server: Server = createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    // Node checks both deadlines on this interval (default 30 s, which would triple a 10 s deadline).
    connectionsCheckingInterval: Math.min(1_000, headersTimeoutMs),
  });
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5000;

  const pathOf = (req: IncomingMessage): string => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    return q < 0 ? raw : raw.slice(0, q);
  };

  server.on('connection', (socket: Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    if (conns.size >= maxConnections) {
      refused++;
      // One warning per 100 refusals: a flood must not become a log flood.
      if (refused % 100 === 1) logger.warn({ limit: maxConnections, refused }, 'http connection refused: limit reached');
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon();
      return;
    }
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const handle = ledger.acquire(HTTP_LEDGER_OWNER, {
      kind: 'socket',
      description: `http connection from ${remote}`,
      release: async () => {
        socket.destroy();
      },
      isGone: () => socket.destroyed,
      facts: { remote },
    });
    const headTimer = setTimeout(() => {
      const state = conns.get(socket);
      if (!state || state.active > 0 || state.upgraded || socket.destroyed) return;
      idleClosed++;
      socket.destroy();
    }, headersTimeoutMs);
    headTimer.unref();
    conns.set(socket, { active: 0, upgraded: false, ledger: handle, headTimer });
    socket.once('close', () => {
      const state = conns.get(socket);
      if (state?.headTimer) clearTimeout(state.headTimer);
      state?.ledger.settle();
      conns.delete(socket);
    });
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as Socket;
    const state = conns.get(socket);
    if (state) {
      state.active++;
      if (state.headTimer) clearTimeout(state.headTimer);
      state.headTimer = undefined;
    }
    activeRequests++;
    let counted = true;
    const done = () => {
      if (!counted) return;
      counted = false;
      activeRequests--;
      if (state) {
        state.active--;
        // While closing, a connection whose last response finished is not kept alive.
        if (closing && state.active === 0 && !socket.destroyed) socket.end();
      }
    };
    // A response always ends with 'close' (the tick after 'finish', or when its socket goes): one
    // listener, `on` since it comes once (once() built a wrapper per request).
    res.on('close', done);
    if (closing) res.setHeader('connection', 'close');
    dispatch(req, res);
  });

  /** Routes one request. A handler's rejection is answered like its throw; no promise of our own per request. */
  function dispatch(req: IncomingMessage, res: ServerResponse): void {
    const path = pathOf(req);
    const method = (req.method ?? 'GET').toUpperCase();
    const prefixed = routes.has(path) ? undefined : prefixRoutes.find((r) => path.startsWith(r.prefix));
    if (guard && !selfGuarded.has(path) && !prefixed?.selfGuarded) {
      const refused = guard(req, path);
      if (refused) {
        res.setHeader('connection', 'close');
        return sendCodedError(res, refused.code, refused.message);
      }
    }
    const byMethod = routes.get(path) ?? prefixed?.byMethod;
    if (!byMethod) return sendCodedError(res, HttpErrorCodes.NOT_FOUND, `Not found: ${path.slice(0, 200)}`);
    const handler = byMethod.get(method);
    if (!handler) {
      return sendCodedError(res, HttpErrorCodes.METHOD_NOT_ALLOWED, `Method ${method} not allowed on ${path}`, {
        allow: [...byMethod.keys()].join(', '),
      });
    }
    const declared = Number(req.headers['content-length']);
    // Node would otherwise read (and discard) an unread body to reuse the socket.
    if (Number.isFinite(declared) && declared > opts.maxBodyBytes) res.setHeader('connection', 'close');
    try {
      const pending = handler(req, res);
      if (pending !== undefined) pending.catch((err: unknown) => handlerFailed(res, err, method, path));
    } catch (err) {
      handlerFailed(res, err, method, path);
    }
  }

  function handlerFailed(res: ServerResponse, err: unknown, method: string, path: string): void {
    logger.error({ err, method, path }, 'http handler failed');
    if (!res.headersSent) sendCodedError(res, HttpErrorCodes.INTERNAL, 'Internal server error');
    else res.destroy();
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const state = conns.get(socket as Socket);
    if (state) {
      state.upgraded = true;
      state.active++;
      if (state.headTimer) clearTimeout(state.headTimer);
      state.headTimer = undefined;
    }
    const handler = upgrades.get(pathOf(req));
    if (closing || !handler) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    try {
      handler(req, socket, head);
    } catch (err) {
      logger.error({ err, path: pathOf(req) }, 'upgrade handler failed');
      socket.destroy();
    }
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // headersTimeout or requestTimeout expired (a slow head or body).
      timedOut++;
      const res = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
      if (!res || !res.headersSent) socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(
        new WardenError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${opts.host}:${opts.port}: ${listenFailureReason(err)}`, {
          host: opts.host,
          port: opts.port,
          errno: err.code ?? 'unknown',
        }),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: opts.host, port: opts.port, exclusive: true });
  });

  server.on('error', (err) => logger.error({ err }, 'http server error'));

  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const url = formatUrl(opts.host, port);

  const listenLedger = ledger.acquire(HTTP_LEDGER_OWNER, {
    kind: 'socket',
    description: `http listener ${url}`,
    release: () => close(),
    isGone: () => !server.listening && conns.size === 0,
    facts: { host: opts.host, port },
  });

  function close(): Promise<void> {
    if (closePromise) return closePromise;
    closing = true;
    closePromise = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      server.close(() => {
        if (timer) clearTimeout(timer);
        resolve();
      });
      for (const [socket, state] of conns) {
        if (state.active === 0 && !state.upgraded) socket.destroy();
      }
      if (conns.size > 0) {
        timer = setTimeout(() => {
          for (const socket of conns.keys()) socket.destroy();
        }, graceMs);
        timer.unref();
      }
    }).then(() => {
      // All sockets are closed once 'close' fired; settle anything a missed event left behind.
      for (const state of conns.values()) state.ledger.settle();
      conns.clear();
      listenLedger.settle();
      logger.debug({ url }, 'http server closed');
    });
    return closePromise;
  }

  logger.debug({ url }, 'http server listening');

  return {
    url,
    host: opts.host,
    port,
    route(method, path, handler, routeOpts) {
      const m = method.toUpperCase();
      if (routeOpts?.selfGuarded) selfGuarded.add(path);
      let byMethod = routes.get(path);
      if (!byMethod) routes.set(path, (byMethod = new Map()));
      if (byMethod.has(m)) throw new Error(`route ${m} ${path} already registered`);
      byMethod.set(m, handler);
    },
    routePrefix(method, prefix, handler, routeOpts) {
      const m = method.toUpperCase();
      let entry = prefixRoutes.find((r) => r.prefix === prefix);
      if (!entry) prefixRoutes.push((entry = { prefix, byMethod: new Map(), selfGuarded: routeOpts?.selfGuarded ?? false }));
      if (entry.byMethod.has(m)) throw new Error(`route ${m} ${prefix}* already registered`);
      entry.byMethod.set(m, handler);
    },
    setGuard(g) {
      guard = g;
    },
    onUpgrade(path, handler) {
      if (upgrades.has(path)) throw new Error(`upgrade handler for ${path} already registered`);
      upgrades.set(path, handler);
    },
    connectionCount: () => conns.size,
    activeRequestCount: () => activeRequests,
    stats: () => ({ connections: conns.size, idleClosed, refused, timedOut }),
    close,
  };
}
