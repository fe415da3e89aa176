/**
 * The MCP front: one Streamable HTTP endpoint (`/mcp`, stateful sessions) that serves the federated
 * tool catalog. Mounted by the daemon on GET/POST/DELETE /mcp through `front.handle(req, res)`.
 *
 * One StreamableHttpTransport (ours, streamable-http-transport.ts: JSON answers, SSE for progress) + one
 * low-level SDK `Server` per session. Every session is a
 * ledger resource (kind 'mcp-session', owner 'front'), settled whatever closes it: client DELETE, the
 * idle sweep, the transport closing, front.close(). Nothing per session survives it: the session maps,
 * its in-flight calls (aborted), its streams (closed by the transport), its ledger entry.
 *
 * Error mapping of `tools/call` (JSON-RPC `error.code`, and always `error.data.code`):
 *
 *   | WardenError code       | JSON-RPC code                 | message                        |
 *   |------------------------|-------------------------------|--------------------------------|
 *   | E_UNKNOWN_TOOL         | -32602 InvalidParams          | `Unknown tool: <name>`         |
 *   | E_SERVER_UNAVAILABLE   | -32003                        | the catalog's message          |
 *   | E_QUARANTINED          | -32004                        | the catalog's message          |
 *   | E_UPSTREAM_TIMEOUT     | -32001 RequestTimeout         | the catalog's message          |
 *   | E_UPSTREAM_ERROR       | upstream's code (detail.mcpCode, else -32603) | upstream's message |
 *   | E_SHUTTING_DOWN        | -32005                        | the catalog's message          |
 *   | anything else          | -32603 InternalError          | data.code = the WardenError's code, or E_INTERNAL |
 *
 * HTTP-level refusals (before any MCP processing), all with a JSON-RPC error body, `id: null`:
 *
 *   | status | JSON-RPC code | data.code            | when                                          |
 *   |--------|---------------|----------------------|-----------------------------------------------|
 *   | 403    | -32000        | E_FORBIDDEN_HOST     | Host header not in allowedHosts               |
 *   | 403    | -32000        | E_FORBIDDEN_ORIGIN   | Origin present, not loopback, not allowlisted |
 *   | 401    | -32000        | E_UNAUTHORIZED       | auth configured, bearer token missing/wrong   |
 *   | 400    | -32700        | —                    | body is not JSON                              |
 *   | 413    | -32600        | —                    | body larger than maxBodyBytes                 |
 *   | 400    | -32000        | —                    | no mcp-session-id on a non-initialize request |
 *   | 404    | -32001        | —                    | unknown or expired mcp-session-id             |
 *   | 503    | -32000        | E_TOO_MANY_SESSIONS  | initialize while maxSessions are open         |
 *   | 503    | -32005        | E_SHUTTING_DOWN      | the front is closing                          |
 *
 * Behaviour this relies on (SDK 1.32.2 and our transport, checked in test/integration/mcp-front.test.ts):
 * - `transport.close()` answers open requests with -32000 and runs Protocol._onclose, which aborts every
 *   in-flight handler's `extra.signal`, so front.close() aborts tool calls; we still abort our own
 *   per-call controller as well.
 * - A client dropping its POST does NOT abort the handler (the spec says disconnection is not
 *   cancellation); the call runs to its deadline and the result is dropped.
 * - `Server.setRequestHandler` re-validates tools/call results with CallToolResultSchema, stripping
 *   unknown fields and turning a non-conforming upstream result into a misleading InvalidParams. The
 *   catalog's result is passed through unchanged instead (the base `Protocol` registration).
 * - tools/list results are not validated server-side: upstream JSON Schemas go out as they came.
 */
import { passThroughSchemaValidator } from './pass-through-schema-validator.js';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { Protocol, type RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  ErrorCode as McpErrorCode,
  ListToolsRequestSchema,
  McpError,
  isInitializeRequest,
  type ServerNotification,
  type ServerRequest,
  type ServerResult,
} from '@modelcontextprotocol/sdk/types.js';
import { systemClock, unrefHandle, type Clock } from '../../core/clock.js';
import { ErrorCodes, WardenError, type ErrorCode } from '../../core/error-codes.js';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import { DEFAULT_SETTINGS, type Settings } from '../../core/settings.js';
import type { CatalogCallResult, ProgressUpdate, ToolCatalog } from '../../core/tool-catalog.js';
import { readBody, sendJson } from '../http/http-server.js';
import { guardRequest } from '../http/request-guards.js';
import { StreamableHttpTransport } from './streamable-http-transport.js';
import { isPlainObject } from '../../core/plain-object.js';

export const FRONT_LEDGER_OWNER = 'front';

/** JSON-RPC error codes used by the front beyond the standard ones. */
export const FrontRpcCodes = {
  /** Generic HTTP-level refusal (forbidden host/origin, unauthorized, too many sessions, no session id). */
  SERVER_ERROR: -32000,
  UPSTREAM_TIMEOUT: McpErrorCode.RequestTimeout, // -32001
  SESSION_NOT_FOUND: -32001,
  SERVER_UNAVAILABLE: -32003,
  QUARANTINED: -32004,
  SHUTTING_DOWN: -32005,
  INVALID_PARAMS: McpErrorCode.InvalidParams, // -32602
  INTERNAL: McpErrorCode.InternalError, // -32603
  PARSE_ERROR: McpErrorCode.ParseError, // -32700
  INVALID_REQUEST: McpErrorCode.InvalidRequest, // -32600
} as const;

/** Added to toolCallTimeoutMs: the front's own deadline only fires if the catalog never settles. */
const BACKSTOP_MARGIN_MS = 2_000;
const MAX_SWEEP_INTERVAL_MS = 30_000;

export interface McpFrontOptions {
  catalog: ToolCatalog;
  settings: Pick<Settings, 'sessionIdleTtlMs' | 'maxSessions' | 'toolCallTimeoutMs' | 'mcpKeepAliveMs'>;
  logger: Logger;
  ledger: ResourceLedger;
  clock?: Clock;
  serverInfo: { name: string; version: string };
  /** When set, every request needs `Authorization: Bearer <token>`. */
  auth?: { bearerToken: string };
  /**
   * Accepted Host header values, e.g. loopbackAllowedHosts(port). `*` accepts any Host. An empty list
   * means "no Host restriction" only together with `auth` (a non-loopback bind protected by the bearer
   * token); without `auth` an empty list refuses every request (fail closed).
   */
  allowedHosts: string[];
  /** Browser origins accepted besides loopback ones (e.g. `https://app.example`). */
  allowedOrigins?: string[];
  /** Largest accepted POST body. Default: DEFAULT_SETTINGS.httpMaxBodyBytes. */
  maxBodyBytes?: number;
}

export interface McpFront {
  /** Handles GET/POST/DELETE /mcp. Never rejects. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Open sessions, including ones whose initialize is still in flight. */
  sessionCount(): number;
  /** Stops accepting, aborts in-flight tool calls, closes every session. Idempotent. */
  close(): Promise<void>;
}

/** An McpError whose wire message is exactly `message` (McpError itself prefixes "MCP error <code>: "). */
export class FrontMcpError extends McpError {
  constructor(code: number, message: string, data: { code: string; [k: string]: unknown }) {
    super(code, message, data);
    this.message = message;
  }
}

/** Maps anything `catalog.callTool` rejects with to the MCP error sent downstream. */
export function toMcpError(err: unknown, toolName: string): McpError {
  if (err instanceof WardenError) {
    const data = { code: err.code };
    switch (err.code) {
      case ErrorCodes.UNKNOWN_TOOL:
        return new FrontMcpError(FrontRpcCodes.INVALID_PARAMS, `Unknown tool: ${toolName}`, data);
      case ErrorCodes.SERVER_UNAVAILABLE:
        return new FrontMcpError(FrontRpcCodes.SERVER_UNAVAILABLE, err.message, data);
      case ErrorCodes.QUARANTINED:
        return new FrontMcpError(FrontRpcCodes.QUARANTINED, err.message, data);
      case ErrorCodes.UPSTREAM_TIMEOUT:
        return new FrontMcpError(FrontRpcCodes.UPSTREAM_TIMEOUT, err.message, data);
      case ErrorCodes.SHUTTING_DOWN:
        return new FrontMcpError(FrontRpcCodes.SHUTTING_DOWN, err.message, data);
      case ErrorCodes.UPSTREAM_ERROR: {
        const mcpCode = err.detail?.['mcpCode'];
        const mcpMessage = err.detail?.['mcpMessage'];
        const mcpData = err.detail?.['mcpData'];
        const code = typeof mcpCode === 'number' && Number.isSafeInteger(mcpCode) ? mcpCode : FrontRpcCodes.INTERNAL;
        const message = typeof mcpMessage === 'string' ? mcpMessage : err.message;
        return new FrontMcpError(code, message, mcpData === undefined ? data : { ...data, upstream: mcpData });
      }
      default:
        return new FrontMcpError(FrontRpcCodes.INTERNAL, err.message, data);
    }
  }
  if (err instanceof McpError) {
    const d = err.data;
    if (d && typeof d === 'object' && typeof (d as { code?: unknown }).code === 'string') return err;
    const message = err.message.replace(/^MCP error -?\d+: /, '');
    return new FrontMcpError(err.code, message, { code: ErrorCodes.UPSTREAM_ERROR, ...(d === undefined ? {} : { upstream: d }) });
  }
  return new FrontMcpError(FrontRpcCodes.INTERNAL, 'Internal error', { code: ErrorCodes.INTERNAL });
}

/**
 * tools/call as it comes off the wire: validated by hand (InvalidParams on failure), never stripped.
 * Registered through Protocol.prototype.setRequestHandler so Server does not re-validate the result.
 */
const CallToolWireSchema = z.object({ method: z.literal('tools/call'), params: z.unknown().optional() });
type CallToolWire = z.infer<typeof CallToolWireSchema>;
type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

interface Session {
  readonly seq: number;
  id: string | undefined;
  readonly transport: StreamableHttpTransport;
  readonly server: Server;
  readonly ledger: LedgerHandle;
  lastActivity: number;
  /** HTTP exchanges (POST streams, the GET stream, DELETE) currently open on this session. */
  openExchanges: number;
  initialized: boolean;
  closed: boolean;
  closing: Promise<void> | undefined;
  /** Our own controller per in-flight tools/call (the catalog's signal). */
  readonly calls: Set<AbortController>;
}


function shortId(id: string | undefined): string {
  return id ? id.slice(0, 8) : '(initializing)';
}


function rpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  dataCode?: ErrorCode,
  headers?: Record<string, string>,
): void {
  const error: Record<string, unknown> = { code, message };
  if (dataCode) error['data'] = { code: dataCode };
  sendJson(res, status, { jsonrpc: '2.0', error, id: null }, headers);
}

function headerValue(v: string | string[] | undefined): string | undefined | null {
  if (Array.isArray(v)) return null; // duplicated header: refuse
  return v;
}

export function createMcpFront(opts: McpFrontOptions): McpFront {
  const { catalog, ledger, serverInfo } = opts;
  const logger = opts.logger;
  const clock = opts.clock ?? systemClock;
  const ttl = opts.settings.sessionIdleTtlMs;
  const maxSessions = opts.settings.maxSessions;
  const callDeadlineMs = opts.settings.toolCallTimeoutMs + BACKSTOP_MARGIN_MS;
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_SETTINGS.httpMaxBodyBytes;
  const sweepIntervalMs = Math.max(1, Math.min(Math.floor(ttl / 2), MAX_SWEEP_INTERVAL_MS));
  const anyHost = opts.allowedHosts.length === 0 && opts.auth !== undefined;
  if (opts.allowedHosts.length === 0 && !opts.auth) {
    logger.warn('allowedHosts is empty and no bearer token is set: every /mcp request will be refused');
  }
  const guard = {
    allowedHosts: Object.freeze(anyHost ? ['*'] : [...opts.allowedHosts]),
    allowedOrigins: opts.allowedOrigins ?? [],
    ...(opts.auth ? { bearerToken: opts.auth.bearerToken } : {}),
  };

  /** Every live session, including ones still initializing (they count against maxSessions). */
  const sessions = new Set<Session>();
  const byId = new Map<string, Session>();
  let seq = 0;
  let closed = false;
  let closePromise: Promise<void> | undefined;
  let sweepTimer: unknown;

  const unsubscribe = catalog.subscribe(() => {
    for (const s of sessions) {
      if (!s.initialized || s.closed) continue;
      try {
        // Debounced per session by the SDK (debouncedNotificationMethods); a closed stream just drops it.
        s.server.sendToolListChanged().catch((err: unknown) => {
          logger.debug({ session: shortId(s.id), err: String(err) }, 'list_changed not delivered');
        });
      } catch (err) {
        logger.debug({ session: shortId(s.id), err: String(err) }, 'list_changed not delivered');
      }
    }
  });

  // ---- idle sweep: one timer for all sessions, armed only while sessions exist -------------------

  function scheduleSweep(): void {
    if (sweepTimer !== undefined || closed || sessions.size === 0) return;
    sweepTimer = clock.setTimeout(runSweep, sweepIntervalMs);
    unrefHandle(sweepTimer);
  }

  function runSweep(): void {
    sweepTimer = undefined;
    const now = clock.now();
    for (const s of sessions) {
      if (s.closed || s.closing || s.openExchanges > 0) continue;
      if (now - s.lastActivity >= ttl) void closeSession(s, 'idle ttl expired');
    }
    scheduleSweep();
  }

  // ---- sessions -----------------------------------------------------------------------------------

  function detach(s: Session): void {
    sessions.delete(s);
    if (s.id !== undefined && byId.get(s.id) === s) byId.delete(s.id);
  }

  /** Terminal bookkeeping; runs once, whichever path closed the session. */
  function finalize(s: Session, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    detach(s);
    for (const c of s.calls) c.abort(new WardenError(ErrorCodes.SHUTTING_DOWN, `session closed: ${reason}`));
    s.calls.clear();
    s.ledger.settle();
    logger.debug({ session: shortId(s.id), reason, open: sessions.size }, 'mcp session closed');
  }

  function closeSession(s: Session, reason: string): Promise<void> {
    if (s.closing) return s.closing;
    detach(s);
    s.closing = (async () => {
      try {
        // Closes the transport: its SSE streams end, Protocol aborts every handler's extra.signal, and
        // server.onclose → finalize runs.
        await s.server.close();
      } catch (err) {
        logger.warn({ session: shortId(s.id), err: String(err) }, 'closing mcp session failed');
      } finally {
        finalize(s, reason);
      }
    })();
    return s.closing;
  }

  async function createSession(): Promise<Session> {
    const n = ++seq;
    const calls = new Set<AbortController>();
    // `s` is completed below; the callbacks only run once it is.
    let s!: Session;
    const transport = new StreamableHttpTransport({
      sessionIdGenerator: () => randomUUID(),
      keepAliveMs: opts.settings.mcpKeepAliveMs,
      clock,
      onsessioninitialized: (id) => {
        s.id = id;
        if (!s.closed && !s.closing) byId.set(id, s);
        logger.debug({ session: shortId(id), open: sessions.size }, 'mcp session opened');
      },
    });
    const server = new Server(
      { name: serverInfo.name, version: serverInfo.version },
      {
        capabilities: { tools: { listChanged: true } },
        debouncedNotificationMethods: ['notifications/tools/list_changed'],
        jsonSchemaValidator: passThroughSchemaValidator,
      },
    );
    const handle = ledger.acquire(FRONT_LEDGER_OWNER, {
      kind: 'mcp-session',
      description: `mcp session #${n} on /mcp`,
      release: () => closeSession(s, 'released by ledger'),
      isGone: () => s.closed,
      facts: { seq: n },
    });
    s = {
      seq: n,
      id: undefined,
      transport,
      server,
      ledger: handle,
      lastActivity: clock.now(),
      openExchanges: 0,
      initialized: false,
      closed: false,
      closing: undefined,
      calls,
    };
    sessions.add(s);

    server.oninitialized = () => {
      s.initialized = true;
    };
    server.onclose = () => finalize(s, 'transport closed');
    server.onerror = (err) => logger.debug({ session: shortId(s.id), err: err.message }, 'mcp session protocol error');
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: catalog.listTools() }) as unknown as ServerResult);
    // Base registration on purpose: see the header comment (no re-validation of upstream results).
    (Protocol.prototype.setRequestHandler as (this: Server, schema: typeof CallToolWireSchema, h: (r: CallToolWire, e: Extra) => Promise<ServerResult>) => void).call(
      server,
      CallToolWireSchema,
      (request, extra) => callTool(s, request, extra),
    );

    try {
      await server.connect(transport);
    } catch (err) {
      await closeSession(s, 'connect failed');
      throw err;
    }
    scheduleSweep();
    return s;
  }

  async function callTool(s: Session, request: CallToolWire, extra: Extra): Promise<ServerResult> {
    const params = request.params;
    if (!isPlainObject(params) || typeof params['name'] !== 'string') {
      throw new McpError(McpErrorCode.InvalidParams, 'Invalid tools/call request: params.name must be a string');
    }
    const name = params['name'];
    const args = params['arguments'];
    if (args !== undefined && !isPlainObject(args)) {
      throw new McpError(McpErrorCode.InvalidParams, 'Invalid tools/call request: params.arguments must be an object');
    }
    const token = extra._meta?.progressToken;
    const progressToken = typeof token === 'string' || typeof token === 'number' ? token : undefined;

    const ctl = new AbortController();
    const onDownstreamAbort = () => ctl.abort(extra.signal.reason);
    if (extra.signal.aborted) ctl.abort(extra.signal.reason);
    else extra.signal.addEventListener('abort', onDownstreamAbort, { once: true });
    s.calls.add(ctl);
    if (s.closed) ctl.abort(new WardenError(ErrorCodes.SHUTTING_DOWN, 'session closed'));

    try {
      const result = await new Promise<CatalogCallResult>((resolve, reject) => {
        let settled = false;
        let timer: unknown;
        const settle = (fn: () => void) => {
          if (settled) return;
          settled = true;
          clock.clearTimeout(timer);
          ctl.signal.removeEventListener('abort', onAbort);
          fn();
        };
        const arm = () => {
          clock.clearTimeout(timer);
          timer = clock.setTimeout(() => {
            const err = new WardenError(ErrorCodes.UPSTREAM_TIMEOUT, `Tool call ${name} did not complete within ${callDeadlineMs} ms`);
            settle(() => reject(err));
            ctl.abort(err);
          }, callDeadlineMs);
          unrefHandle(timer);
        };
        // Once aborted nobody will read the answer: stop waiting even if the catalog ignores the signal.
        const onAbort = () => settle(() => reject(ctl.signal.reason));
        if (ctl.signal.aborted) return onAbort();
        ctl.signal.addEventListener('abort', onAbort, { once: true });
        arm();

        const onprogress =
          progressToken === undefined
            ? undefined
            : (u: ProgressUpdate) => {
                if (settled) return;
                arm(); // progress proves liveness, as resetTimeoutOnProgress does upstream
                const p: Record<string, unknown> = { progressToken, progress: u.progress };
                if (u.total !== undefined) p['total'] = u.total;
                if (u.message !== undefined) p['message'] = u.message;
                extra
                  .sendNotification({ method: 'notifications/progress', params: p } as ServerNotification)
                  .catch((err: unknown) => logger.debug({ err: String(err) }, 'progress not delivered'));
              };

        let pending: Promise<CatalogCallResult>;
        try {
          pending = Promise.resolve(catalog.callTool(name, args, onprogress ? { signal: ctl.signal, onprogress } : { signal: ctl.signal }));
        } catch (err) {
          pending = Promise.reject(err);
        }
        pending.then(
          (r) => settle(() => resolve(r)),
          (e) => settle(() => reject(e)),
        );
      });
      if (!isPlainObject(result)) throw new WardenError(ErrorCodes.INTERNAL, 'catalog returned a non-object tool result');
      return result as ServerResult;
    } catch (err) {
      const mapped = toMcpError(err, name);
      if (!(err instanceof WardenError) && !(err instanceof McpError) && !ctl.signal.aborted) {
        logger.warn({ err, tool: name }, 'tool call failed unexpectedly');
      }
      throw mapped;
    } finally {
      s.calls.delete(ctl);
      extra.signal.removeEventListener('abort', onDownstreamAbort);
    }
  }

  // ---- HTTP entry point ---------------------------------------------------------------------------

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await handleInner(req, res);
    } catch (err) {
      logger.error({ err }, 'mcp request failed');
      if (!res.headersSent) rpcError(res, 500, FrontRpcCodes.INTERNAL, 'Internal error', ErrorCodes.INTERNAL);
      else res.destroy();
    }
  }

  async function handleInner(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (closed) {
      return rpcError(res, 503, FrontRpcCodes.SHUTTING_DOWN, 'Server is shutting down', ErrorCodes.SHUTTING_DOWN);
    }
    const refused = guardRequest(req, guard);
    if (refused) {
      logger.debug({ code: refused.code, host: req.headers.host, origin: req.headers.origin }, 'mcp request refused');
      return rpcError(
        res,
        refused.status,
        FrontRpcCodes.SERVER_ERROR,
        refused.message,
        refused.code,
        refused.status === 401 ? { 'www-authenticate': 'Bearer realm="mcp-warden"' } : undefined,
      );
    }
    const method = (req.method ?? '').toUpperCase();
    if (method !== 'GET' && method !== 'POST' && method !== 'DELETE') {
      return rpcError(res, 405, FrontRpcCodes.SERVER_ERROR, 'Method not allowed', undefined, { allow: 'GET, POST, DELETE' });
    }

    let parsedBody: unknown;
    if (method === 'POST') {
      const body = await readBody(req, maxBodyBytes);
      if (!body.ok) {
        if (body.reason === 'aborted') return void res.destroy();
        return rpcError(res, 413, FrontRpcCodes.INVALID_REQUEST, `Request body exceeds ${maxBodyBytes} bytes`, undefined, {
          connection: 'close',
        });
      }
      try {
        parsedBody = JSON.parse(body.body.toString('utf8'));
      } catch {
        return rpcError(res, 400, FrontRpcCodes.PARSE_ERROR, 'Parse error: invalid JSON');
      }
      if (closed) {
        return rpcError(res, 503, FrontRpcCodes.SHUTTING_DOWN, 'Server is shutting down', ErrorCodes.SHUTTING_DOWN);
      }
    }

    const sid = headerValue(req.headers['mcp-session-id']);
    if (sid === null) return rpcError(res, 400, FrontRpcCodes.SERVER_ERROR, 'Bad Request: duplicated mcp-session-id header');

    let session: Session;
    let created = false;
    if (sid !== undefined) {
      const found = byId.get(sid);
      if (!found || found.closed || found.closing) {
        return rpcError(res, 404, FrontRpcCodes.SESSION_NOT_FOUND, 'Session not found');
      }
      session = found;
    } else {
      const isInit = Array.isArray(parsedBody) ? parsedBody.some((m) => isInitializeRequest(m)) : isInitializeRequest(parsedBody);
      if (method !== 'POST' || !isInit) {
        return rpcError(res, 400, FrontRpcCodes.SERVER_ERROR, 'Bad Request: Mcp-Session-Id header is required');
      }
      if (sessions.size >= maxSessions) {
        logger.warn({ maxSessions }, 'mcp session refused: too many sessions');
        return rpcError(
          res,
          503,
          FrontRpcCodes.SERVER_ERROR,
          `Too many MCP sessions (at most ${maxSessions}); close one and retry`,
          ErrorCodes.TOO_MANY_SESSIONS,
        );
      }
      session = await createSession();
      created = true;
    }

    // Activity: an open exchange keeps the session alive; its end restarts the idle clock.
    session.openExchanges++;
    session.lastActivity = clock.now();
    let counted = true;
    res.once('close', () => {
      if (!counted) return;
      counted = false;
      session.openExchanges--;
      session.lastActivity = clock.now();
    });

    try {
      session.transport.handleRequest(req, res, parsedBody);
    } finally {
      // An initialize the transport refused (406, 415, batch, …) leaves a session nobody can reach.
      if (created && session.id === undefined) await closeSession(session, 'initialize refused');
    }
  }

  return {
    handle,
    sessionCount: () => sessions.size,
    close() {
      if (closePromise) return closePromise;
      closed = true;
      closePromise = (async () => {
        unsubscribe();
        if (sweepTimer !== undefined) clock.clearTimeout(sweepTimer);
        sweepTimer = undefined;
        await Promise.allSettled([...sessions].map((s) => closeSession(s, 'front closing')));
        logger.debug('mcp front closed');
      })();
      return closePromise;
    },
  };
}
