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
 * Beside this file: the tools/call hot path (front-call-tool.ts), list paging (front-paging.ts) and error
 * mapping (front-errors.ts).
 *
 * Errors: every status and JSON-RPC code comes from the error catalogue (src/core/error-catalogue.ts);
 * docs/mcp-endpoint.md has the tables. A `tools/call` that fails gets the catalogue's JSON-RPC code for
 * the WardenError's code and `error.data.code`; an upstream's own JSON-RPC error (E_UPSTREAM_ERROR with
 * `detail.upstream`) goes out with the upstream's code and message as they were and its data in
 * `error.data.upstream`. HTTP-level refusals (before any MCP processing) are JSON-RPC error bodies with
 * `id: null`, the catalogue's HTTP status and `error.data.code`.
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
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  LoggingLevelSchema,
  McpError,
  ReadResourceRequestSchema,
  RootsListChangedNotificationSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  isInitializeRequest,
  type ServerNotification,
  type ServerRequest,
  type ServerResult,
} from '@modelcontextprotocol/sdk/types.js';
import { systemClock, unrefHandle, type Clock } from '../../core/clock.js';
import { ErrorCodes, RpcCodes, WardenError, rpcCodeOf, type ErrorCode } from '../../core/error-codes.js';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import { DEFAULT_SETTINGS, type Settings } from '../../core/settings.js';
import { proxyUri, resolveUri, type CatalogEvent, type DownstreamPeer, type ToolCatalog } from '../../core/tool-catalog.js';
import { readBodyThen } from '../http/http-server.js';
import { guardRequest } from '../http/request-guards.js';
import type { PeerCheck } from '../http/peer-guard.js';
import { headerValue } from '../http/headers.js';
import { StreamableHttpTransport } from './streamable-http-transport.js';
import { isPlainObject } from '../../core/plain-object.js';
import { upstreamRpcErrorOf } from './upstream-rpc-error.js';
import { FrontMcpError, refuse, toMcpError, upstreamMcpError } from './front-errors.js';
import { paged } from './front-paging.js';
import { jsonDepthExceeds, mayNestDeeperThan } from './json-depth.js';
import { CallToolWireSchema, callTool, type CallObserver, type CallToolWire, type Extra } from './front-call-tool.js';
import { toolModeOf, type ToolMode } from './front-tool-mode.js';
import { createFastCalls } from './front-fast-call.js';
import { DeadlineQueue } from './deadline-queue.js';
// Types only: the search module (and MiniSearch) is imported dynamically, by the first search-mode session.
import type { SearchTools } from './front-search-tools.js';

const FRONT_LEDGER_OWNER = 'front';

/** Added to toolCallTimeoutMs: the front's own deadline only fires if the catalog never settles. */
const BACKSTOP_MARGIN_MS = 2_000;
const MAX_SWEEP_INTERVAL_MS = 30_000;

export interface McpFrontOptions {
  catalog: ToolCatalog;
  settings: Pick<Settings, 'sessionIdleTtlMs' | 'maxSessions' | 'toolCallTimeoutMs' | 'mcpKeepAliveMs'> &
    Partial<
      Pick<
        Settings,
        | 'clientRequestTimeoutMs'
        | 'mcpListPageSize'
        | 'mcpMaxResponseBytes'
        | 'mcpMaxBufferedBytes'
        | 'mcpMaxJsonDepth'
        | 'toolMode'
        | 'toolSearchDefaultLimit'
        | 'toolSearchMaxLimit'
      >
    >;
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
  /** Refuses peers that are supervised processes (src/adapters/http/peer-guard.ts); none: no such check. */
  peerCheck?: PeerCheck;
  /** Metrics, call log and traces per tools/call (src/adapters/observability/call-observer.ts). */
  callObserver?: CallObserver;
}

export interface McpFront {
  /** Handles GET/POST/DELETE /mcp and /mcp/<server> (the path says which). Never throws or rejects. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void;
  /** Open sessions, including ones whose initialize is still in flight. */
  sessionCount(): number;
  /** Stops accepting, aborts in-flight tool calls, closes every session. Idempotent. */
  close(): Promise<void>;
}

interface Session {
  readonly seq: number;
  /** The server of `/mcp/<server>`; undefined on the federated `/mcp`. */
  readonly scope: string | undefined;
  /** Routes the upstreams' server-to-client requests to this session (catalog, CatalogCallOptions.peer). */
  readonly peer: DownstreamPeer;
  /** Open POSTs (requests in flight); a session without one may be evicted at maxSessions. */
  openPosts: number;
  /** Resource subscriptions: `<server>\n<upstream uri>` → the URI as this client gave it. */
  readonly subscriptions: Map<string, string>;
  /** Set by logging/setLevel: less severe notifications/message are not relayed to this session. */
  logLevel: number | undefined;
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
  /** Search mode (front-search-tools.ts): tools/list and tools/call go through it; undefined in `all` mode. */
  readonly search: SearchTools | undefined;
}

function shortId(id: string | undefined): string {
  return id ? id.slice(0, 8) : '(initializing)';
}

/** Accepts any JSON object as a client's answer, as is (no stripping: it goes upstream unchanged). */
const AnyObjectResult = z.custom<Record<string, unknown>>(isPlainObject, { message: 'result is not a JSON object' });

const LOG_SEVERITY = new Map<string, number>(LoggingLevelSchema.options.map((l, i) => [l, i]));

/** The capability a client must declare for each server-to-client request. */
const CLIENT_CAPABILITY_OF: Record<string, 'sampling' | 'elicitation' | 'roots'> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** The path's scope: undefined for `/mcp`, the server for `/mcp/<server>`, null for anything else. */
function scopeOfPath(url: string | undefined): string | undefined | null {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (path === '/mcp') return undefined;
  const m = /^\/mcp\/([A-Za-z0-9_-]+)$/.exec(path);
  return m ? m[1]! : null;
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

  const callDeps = {
    catalog,
    clock,
    callDeadlineMs,
    deadlines: new DeadlineQueue(callDeadlineMs, clock, clock === systemClock ? undefined : () => clock.now()),
    logger,
    observer: opts.callObserver,
  };
  const clientRequestTimeoutMs = opts.settings.clientRequestTimeoutMs ?? DEFAULT_SETTINGS.clientRequestTimeoutMs;
  const pageSize = opts.settings.mcpListPageSize ?? DEFAULT_SETTINGS.mcpListPageSize;
  const maxResponseBytes = opts.settings.mcpMaxResponseBytes ?? DEFAULT_SETTINGS.mcpMaxResponseBytes;
  const maxBufferedBytes = opts.settings.mcpMaxBufferedBytes ?? DEFAULT_SETTINGS.mcpMaxBufferedBytes;
  const maxJsonDepth = opts.settings.mcpMaxJsonDepth ?? DEFAULT_SETTINGS.mcpMaxJsonDepth;
  const defaultToolMode = opts.settings.toolMode ?? DEFAULT_SETTINGS.toolMode;
  let searchTools: Promise<SearchTools> | undefined;
  /** The search tools, loaded on first use (docs/mcp-endpoint.md#tool-search); one index for every session. */
  const loadSearchTools = () =>
    (searchTools ??= import('./front-search-tools.js').then((m) =>
      m.createSearchTools({
        catalog,
        defaultLimit: opts.settings.toolSearchDefaultLimit ?? DEFAULT_SETTINGS.toolSearchDefaultLimit,
        maxLimit: opts.settings.toolSearchMaxLimit ?? DEFAULT_SETTINGS.toolSearchMaxLimit,
      }),
    ));
  /** Resource subscriptions: `<server>\n<upstream uri>` → sessions subscribed to it. */
  const subscribers = new Map<string, Set<Session>>();

  const unsubscribeTools = catalog.subscribe(() => {
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

  const unsubscribeEvents = catalog.onEvent((e) => relay(e));

  /** An upstream's notification → the sessions it concerns (federated ones, and those of `/mcp/<server>`). */
  function relay(e: CatalogEvent): void {
    if (e.kind === 'resource-updated') {
      for (const s of subscribers.get(`${e.server}\n${e.uri}`) ?? []) {
        const uri = s.scope === undefined ? proxyUri(e.server, e.uri) : e.uri;
        deliver(s, { method: 'notifications/resources/updated', params: { ...e.params, uri } });
      }
      return;
    }
    for (const s of sessions) {
      if (!s.initialized || s.closed || (s.scope !== undefined && s.scope !== e.server)) continue;
      if (e.kind === 'resources-changed') deliver(s, { method: 'notifications/resources/list_changed' });
      else if (e.kind === 'prompts-changed') deliver(s, { method: 'notifications/prompts/list_changed' });
      else {
        const level = LOG_SEVERITY.get(String(e.params['level']));
        if (s.logLevel !== undefined && level !== undefined && level < s.logLevel) continue;
        let params = e.params;
        if (s.scope === undefined) {
          const lg = params['logger'];
          params = { ...params, logger: typeof lg === 'string' && lg.length > 0 ? `${e.server}/${lg}` : e.server };
        }
        deliver(s, { method: 'notifications/message', params });
      }
    }
  }

  /** A notification to one session; one it did not negotiate (capability) or cannot receive is dropped. */
  function deliver(s: Session, n: { method: string; params?: Record<string, unknown> }): void {
    try {
      s.server.notification(n as ServerNotification).catch((err: unknown) => {
        logger.debug({ session: shortId(s.id), method: n.method, err: String(err) }, 'notification not delivered');
      });
    } catch (err) {
      logger.debug({ session: shortId(s.id), method: n.method, err: String(err) }, 'notification not delivered');
    }
  }

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
    for (const [key, uri] of s.subscriptions) dropSubscriber(s, key, uri);
    s.subscriptions.clear();
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

  /** The session no longer wants `key`; the catalog unsubscribes upstream when nobody does. */
  function dropSubscriber(s: Session, key: string, uri: string): void {
    const set = subscribers.get(key);
    set?.delete(s);
    if (set && set.size === 0) subscribers.delete(key);
    catalog
      .route('resources/unsubscribe', { uri }, { signal: AbortSignal.timeout(opts.settings.toolCallTimeoutMs), scope: s.scope })
      .catch((err: unknown) => logger.debug({ uri, err: String(err) }, 'resources/unsubscribe failed upstream'));
  }

  /** A server-to-client request of an upstream, routed to this session by the catalog. */
  async function clientRequest(
    s: Session,
    method: string,
    params: Record<string, unknown> | undefined,
    signal: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const needed = CLIENT_CAPABILITY_OF[method];
    const caps = s.server.getClientCapabilities();
    if (!needed || !caps?.[needed]) {
      throw new FrontMcpError(
        rpcCodeOf(ErrorCodes.CLIENT_CAPABILITY_MISSING),
        `${method}: the client session this request was routed to did not declare the ${needed ?? method} capability`,
        { code: ErrorCodes.CLIENT_CAPABILITY_MISSING },
      );
    }
    if (s.closed || s.closing)
      throw new FrontMcpError(RpcCodes.SERVER_ERROR, `${method}: the client session is gone`, { code: ErrorCodes.SHUTTING_DOWN });
    try {
      return await s.server.request((params === undefined ? { method } : { method, params }) as ServerRequest, AnyObjectResult, {
        signal,
        timeout: clientRequestTimeoutMs,
      });
    } catch (err) {
      // The client's own error goes upstream as it was, without the SDK's "MCP error <code>: " prefix.
      if (err instanceof McpError) throw upstreamMcpError(upstreamRpcErrorOf(err));
      throw err;
    }
  }

  /** A request routed by the catalog; errors mapped like tools/call's. */
  async function routed(s: Session, method: string, params: Record<string, unknown>, extra: Extra): Promise<ServerResult> {
    try {
      return (await catalog.route(method, params, {
        signal: extra.signal,
        peer: s.peer,
        scope: s.scope,
      })) as ServerResult;
    } catch (err) {
      throw toMcpError(err, String(params['name'] ?? params['uri'] ?? method));
    }
  }

  async function subscribe(s: Session, uri: string, extra: Extra, on: boolean): Promise<ServerResult> {
    const r = resolveUri(uri, s.scope);
    if (!r) {
      throw new FrontMcpError(rpcCodeOf(ErrorCodes.UNKNOWN_RESOURCE), `Unknown resource: ${uri}`, { code: ErrorCodes.UNKNOWN_RESOURCE });
    }
    const key = `${r.server}\n${r.uri}`;
    if (on) {
      if (s.subscriptions.has(key)) return {} as ServerResult;
      await routed(s, 'resources/subscribe', { uri }, extra);
      if (s.closed || s.closing) return {} as ServerResult;
      s.subscriptions.set(key, uri);
      let set = subscribers.get(key);
      if (!set) subscribers.set(key, (set = new Set()));
      set.add(s);
    } else if (s.subscriptions.delete(key)) {
      dropSubscriber(s, key, uri);
    }
    return {} as ServerResult;
  }

  function registerHandlers(s: Session, server: Server, caps: ReturnType<ToolCatalog['capabilities']>): void {
    const scope = s.scope;
    if (caps.resources) {
      server.setRequestHandler(ListResourcesRequestSchema, async (r) =>
        paged('resources', await catalog.listResources(scope), r.params?.cursor, pageSize),
      );
      server.setRequestHandler(ListResourceTemplatesRequestSchema, async (r) =>
        paged('resourceTemplates', await catalog.listResourceTemplates(scope), r.params?.cursor, pageSize),
      );
      server.setRequestHandler(ReadResourceRequestSchema, (r, extra) => routed(s, 'resources/read', r.params, extra));
      if (caps.resources.subscribe) {
        server.setRequestHandler(SubscribeRequestSchema, (r, extra) => subscribe(s, r.params.uri, extra, true));
        server.setRequestHandler(UnsubscribeRequestSchema, (r, extra) => subscribe(s, r.params.uri, extra, false));
      }
    }
    if (caps.prompts) {
      server.setRequestHandler(ListPromptsRequestSchema, async (r) =>
        paged('prompts', await catalog.listPrompts(scope), r.params?.cursor, pageSize),
      );
      server.setRequestHandler(GetPromptRequestSchema, (r, extra) => routed(s, 'prompts/get', r.params, extra));
    }
    if (caps.completions) {
      server.setRequestHandler(CompleteRequestSchema, (r, extra) => routed(s, 'completion/complete', r.params, extra));
    }
    if (caps.logging) {
      server.setRequestHandler(SetLevelRequestSchema, async (r) => {
        s.logLevel = LOG_SEVERITY.get(r.params.level);
        await catalog.setLoggingLevel(r.params.level, scope);
        return {} as ServerResult;
      });
    }
    server.setNotificationHandler(RootsListChangedNotificationSchema, () => catalog.rootsChanged(scope));
  }

  async function createSession(scope: string | undefined, mode: ToolMode): Promise<Session> {
    const search = mode === 'search' ? await loadSearchTools() : undefined;
    const n = ++seq;
    const calls = new Set<AbortController>();
    // `s` is completed below; the callbacks only run once it is.
    let s!: Session;
    const transport = new StreamableHttpTransport({
      sessionIdGenerator: () => randomUUID(),
      keepAliveMs: opts.settings.mcpKeepAliveMs,
      maxResponseBytes,
      maxBufferedBytes,
      clock,
      onsessioninitialized: (id) => {
        s.id = id;
        if (!s.closed && !s.closing) byId.set(id, s);
        logger.debug({ session: shortId(id), open: sessions.size }, 'mcp session opened');
      },
    });
    // What the upstreams offer as this session starts (the union, or the one upstream of a scope).
    const caps = catalog.capabilities(scope);
    const instructions = catalog.instructions(scope);
    const server = new Server(
      { name: serverInfo.name, version: serverInfo.version },
      {
        capabilities: { tools: { listChanged: true }, ...caps },
        ...(instructions !== undefined ? { instructions } : {}),
        debouncedNotificationMethods: [
          'notifications/tools/list_changed',
          'notifications/resources/list_changed',
          'notifications/prompts/list_changed',
        ],
        jsonSchemaValidator: passThroughSchemaValidator,
      },
    );
    const handle = ledger.acquire(FRONT_LEDGER_OWNER, {
      kind: 'mcp-session',
      description: `mcp session #${n} on /mcp${scope === undefined ? '' : `/${scope}`}`,
      release: () => closeSession(s, 'released by ledger'),
      isGone: () => s.closed,
      facts: { seq: n },
    });
    s = {
      seq: n,
      scope,
      peer: { clientRequest: (method, params, signal) => clientRequest(s, method, params, signal) },
      openPosts: 0,
      subscriptions: new Map(),
      logLevel: undefined,
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
      search,
    };
    sessions.add(s);

    server.oninitialized = () => {
      s.initialized = true;
      // A new session with roots: upstreams that cached another client's roots ask again.
      if (server.getClientCapabilities()?.roots) catalog.rootsChanged(scope);
    };
    server.onclose = () => finalize(s, 'transport closed');
    server.onerror = (err) => logger.debug({ session: shortId(s.id), err: err.message }, 'mcp session protocol error');
    server.setRequestHandler(
      ListToolsRequestSchema,
      () => ({ tools: search ? search.listTools() : catalog.listTools(scope) }) as unknown as ServerResult,
    );
    registerHandlers(s, server, caps);
    // Base registration on purpose: see the header comment (no re-validation of upstream results).
    (
      Protocol.prototype.setRequestHandler as (
        this: Server,
        schema: typeof CallToolWireSchema,
        h: (r: CallToolWire, e: Extra) => Promise<ServerResult>,
      ) => void
    ).call(server, CallToolWireSchema, (request, extra) =>
      search ? search.callTool(callDeps, s, request, extra) : callTool(callDeps, s, request, extra),
    );

    try {
      await server.connect(transport);
    } catch (err) {
      await closeSession(s, 'connect failed');
      throw err;
    }
    if (!search) {
      // tools/call past Protocol's dispatch (front-fast-call.ts); everything else still goes to Protocol.
      const fast = createFastCalls(
        callDeps,
        s,
        transport,
        (err) => server.onerror?.(err),
        () => catalog.listTools(scope),
      );
      transport.take = fast.take;
    }
    scheduleSweep();
    return s;
  }

  // ---- HTTP entry point ---------------------------------------------------------------------------

  /**
   * One request on /mcp. Synchronous from the guards to the transport while nothing has to be waited
   * for (a body read whole calls back): no promise of ours per request. Only a peer check still running,
   * a new session and an initialize the transport refused return a promise.
   */
  function handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    try {
      const pending = handleInner(req, res);
      if (pending !== undefined) return pending.catch((err: unknown) => failed(res, err));
    } catch (err) {
      failed(res, err);
    }
  }

  function failed(res: ServerResponse, err: unknown): void {
    logger.error({ err }, 'mcp request failed');
    if (!res.headersSent) refuse(res, ErrorCodes.INTERNAL, 'Internal error');
    else res.destroy();
  }

  function handleInner(req: IncomingMessage, res: ServerResponse): Promise<void> | void {
    if (closed) return refuse(res, ErrorCodes.SHUTTING_DOWN, 'Server is shutting down');
    const scope = scopeOfPath(req.url);
    // The peer's verdict is remembered per connection: waited for only while its first lookup runs.
    const refused = guardRequest(req, guard) ?? opts.peerCheck?.(req.socket as Socket);
    if (refused instanceof Promise) return refused.then((r) => admitted(req, res, scope, r));
    return admitted(req, res, scope, refused);
  }

  function admitted(
    req: IncomingMessage,
    res: ServerResponse,
    scope: string | undefined | null,
    refused: { code: ErrorCode; message: string } | undefined,
  ): Promise<void> | void {
    if (refused) {
      logger.debug({ code: refused.code, host: req.headers.host, origin: req.headers.origin }, 'mcp request refused');
      return refuse(
        res,
        refused.code,
        refused.message,
        refused.code === ErrorCodes.UNAUTHORIZED ? { 'www-authenticate': 'Bearer realm="mcp-warden"' } : undefined,
      );
    }
    const method = (req.method ?? '').toUpperCase();
    if (method !== 'GET' && method !== 'POST' && method !== 'DELETE') {
      return refuse(res, ErrorCodes.METHOD_NOT_ALLOWED, 'Method not allowed', { allow: 'GET, POST, DELETE' });
    }
    if (method !== 'POST') return toSession(req, res, scope, method, undefined);
    readBodyThen(req, maxBodyBytes, (body, reason) => {
      try {
        const pending = bodyRead(req, res, scope, body, reason);
        if (pending !== undefined) pending.catch((err: unknown) => failed(res, err));
      } catch (err) {
        failed(res, err);
      }
    });
  }

  /** A POST's body is read (or is not: too large, aborted). */
  function bodyRead(
    req: IncomingMessage,
    res: ServerResponse,
    scope: string | undefined | null,
    body: Buffer | undefined,
    reason: 'too-large' | 'aborted' | undefined,
  ): Promise<void> | void {
    if (body === undefined) {
      if (reason === 'aborted') return void res.destroy();
      // The rest of the body is not read: the connection must not be reused.
      return refuse(res, ErrorCodes.BODY_TOO_LARGE, `Request body exceeds ${maxBodyBytes} bytes`, { connection: 'close' });
    }
    let parsedBody: unknown;
    try {
      parsedBody = JSON.parse(body.toString('utf8'));
    } catch {
      return refuse(res, ErrorCodes.BAD_JSON, 'Parse error: invalid JSON');
    }
    // Deeper bodies would overflow the stack wherever they are walked or re-serialized (json-depth.ts).
    if (mayNestDeeperThan(body, maxJsonDepth) && jsonDepthExceeds(parsedBody, maxJsonDepth)) {
      return refuse(
        res,
        ErrorCodes.NESTING_TOO_DEEP,
        `Invalid Request: the body is nested more than ${maxJsonDepth} levels deep (mcpMaxJsonDepth)`,
      );
    }
    if (closed) return refuse(res, ErrorCodes.SHUTTING_DOWN, 'Server is shutting down');
    return toSession(req, res, scope, 'POST', parsedBody);
  }

  /** Past the guards and the body: the session, then its transport. */
  function toSession(
    req: IncomingMessage,
    res: ServerResponse,
    scope: string | undefined | null,
    method: string,
    parsedBody: unknown,
  ): Promise<void> | void {
    // After the guards: an unauthenticated caller learns nothing about which servers exist.
    if (scope === null || (scope !== undefined && !catalog.hasServer(scope))) {
      return refuse(res, ErrorCodes.NOT_FOUND, 'Not found: no such MCP endpoint');
    }

    const sid = headerValue(req.headers['mcp-session-id']);
    if (sid === null) return refuse(res, ErrorCodes.SESSION_REQUIRED, 'Bad Request: duplicated mcp-session-id header');

    if (sid !== undefined) {
      const found = byId.get(sid);
      if (!found || found.closed || found.closing || found.scope !== scope) {
        return refuse(res, ErrorCodes.SESSION_NOT_FOUND, 'Session not found');
      }
      return exchange(found, req, res, method, parsedBody);
    }
    const isInit = Array.isArray(parsedBody) ? parsedBody.some((m) => isInitializeRequest(m)) : isInitializeRequest(parsedBody);
    if (method !== 'POST' || !isInit) {
      return refuse(res, ErrorCodes.SESSION_REQUIRED, 'Bad Request: Mcp-Session-Id header is required');
    }
    let mode: ToolMode;
    try {
      mode = toolModeOf(req.url, scope, defaultToolMode);
    } catch (err) {
      return refuse(res, ErrorCodes.BAD_TOOL_MODE, err instanceof Error ? err.message : String(err));
    }
    if (sessions.size >= maxSessions && !evictOne()) {
      logger.warn({ maxSessions }, 'mcp session refused: too many sessions, every one with a request in flight');
      return refuse(res, ErrorCodes.TOO_MANY_SESSIONS, `Too many MCP sessions (at most ${maxSessions}); close one and retry`);
    }
    return createSession(scope, mode).then(async (session) => {
      try {
        exchange(session, req, res, method, parsedBody);
      } finally {
        // An initialize the transport refused (406, 415, batch, …) leaves a session nobody can reach.
        if (session.id === undefined) await closeSession(session, 'initialize refused');
      }
    });
  }

  /** One HTTP exchange of `session`, counted while open, handed to its transport. */
  function exchange(session: Session, req: IncomingMessage, res: ServerResponse, method: string, parsedBody: unknown): void {
    // Activity: an open exchange keeps the session alive; its end restarts the idle clock. While a POST
    // is open neither the sweep nor eviction reads lastActivity (openExchanges, openPosts), so only
    // its end sets it: one clock read per call less.
    const post = method === 'POST';
    session.openExchanges++;
    if (post) session.openPosts++;
    else session.lastActivity = clock.now();
    let counted = true;
    // `on`, not `once`: a response closes once, and the listener is idempotent anyway (once() wraps and unwraps per request).
    res.on('close', () => {
      if (!counted) return;
      counted = false;
      session.openExchanges--;
      if (post) session.openPosts--;
      session.lastActivity = clock.now();
    });
    session.transport.handleRequest(req, res, parsedBody);
  }

  /**
   * At maxSessions: close the least recently used session with no POST in flight (an open GET stream
   * does not protect it: clients that never DELETE keep one open). False when every session is busy.
   */
  function evictOne(): boolean {
    let victim: Session | undefined;
    for (const s of sessions) {
      if (s.closed || s.closing || s.openPosts > 0 || s.calls.size > 0) continue;
      if (!victim || s.lastActivity < victim.lastActivity) victim = s;
    }
    if (!victim) return false;
    logger.info({ session: shortId(victim.id), maxSessions }, 'mcp session evicted: least recently used at maxSessions');
    void closeSession(victim, 'evicted at maxSessions');
    return true;
  }

  return {
    handle,
    sessionCount: () => sessions.size,
    close() {
      if (closePromise) return closePromise;
      closed = true;
      closePromise = (async () => {
        unsubscribeTools();
        unsubscribeEvents();
        if (sweepTimer !== undefined) clock.clearTimeout(sweepTimer);
        sweepTimer = undefined;
        await Promise.allSettled([...sessions].map((s) => closeSession(s, 'front closing')));
        callDeps.deadlines.close(); // empty already: every call was aborted with its session
        logger.debug('mcp front closed');
      })();
      return closePromise;
    },
  };
}
