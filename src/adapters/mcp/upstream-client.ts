/**
 * An MCP client session with one upstream server process.
 *
 * Uses the SDK's `Client` for the protocol (initialize, request ids, timeouts, progress,
 * `notifications/cancelled`), but not its `listTools()`/`callTool()`: those compile every tool's
 * outputSchema with Ajv, so one broken upstream schema would fail the whole list. Instead we send raw
 * requests with permissive result schemas, follow `nextCursor` ourselves, drop malformed tools one by
 * one, and pass everything else through unchanged (JSON Schemas byte-identical).
 *
 * The connection never owns the process: closing it ends stdin; the ProcessGroupHandle stops it.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { ErrorCode, McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ErrorCodes, WardenError, type WardenErrorDetail } from '../../core/error-codes.js';
import type { Upstream } from '../upstream-handle.js';
import { passThroughSchemaValidator } from './pass-through-schema-validator.js';
import { ProcessStdioTransport, isSynthesizedErrorData, type TransportProcess } from '../process/process-stdio-transport.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { isPlainObject } from '../../core/plain-object.js';
import { upstreamRpcErrorOf } from './upstream-rpc-error.js';
import { attachDirectRequests, type RequestSink } from './upstream-direct-request.js';
import { DEFAULT_SETTINGS } from '../../core/settings.js';
import { lazyChild } from '../log/lazy-child.js';

interface UpstreamTool {
  name: string;
  description?: string;
  /** The upstream JSON Schema object, unchanged. */
  inputSchema: Record<string, unknown>;
  [key: string]: unknown;
}

export interface UpstreamProgress {
  progress: number;
  total?: number;
  message?: string;
}

interface UpstreamCallOptions {
  signal?: AbortSignal;
  /** `signal` serves this call alone: the SDK's listener on it goes with it, so it needs no throwaway copy. */
  signalPerCall?: boolean | undefined;
  /** Request deadline; reset by every progress notification. */
  timeoutMs: number;
  onprogress?: (p: UpstreamProgress) => void;
}

export interface UpstreamConnection {
  serverInfo?: { name: string; version: string };
  instructions?: string;
  /** All pages of tools/list, malformed tools dropped (with a warning). */
  listTools(signal?: AbortSignal): Promise<UpstreamTool[]>;
  /**
   * The raw CallToolResult. Rejects with WardenError(E_UPSTREAM_TIMEOUT | E_UPSTREAM_ERROR), the latter
   * with the upstream's JSON-RPC error as `detail.upstream` when it answered with one,
   * or with `signal.reason` when aborted (the SDK then sends notifications/cancelled upstream).
   */
  callTool(name: string, args: Record<string, unknown> | undefined, opts: UpstreamCallOptions): Promise<Record<string, unknown>>;
  /**
   * callTool reporting to `sink` instead of a promise (stdio connections: the tools/call hot path makes
   * no promise per call); absent on connections without it (remote ones).
   */
  callToolThen?(name: string, args: Record<string, unknown> | undefined, opts: UpstreamCallOptions, sink: RequestSink): void;
  /** `notifications/tools/list_changed` from the upstream. Returns an unsubscribe function. */
  onToolsChanged(listener: () => void): () => void;
  /** The upstream's `capabilities` from initialize (resources, prompts, completions, logging, …). */
  readonly capabilities: Record<string, unknown>;
  /**
   * Any other request (resources/*, prompts/*, completion/complete, logging/setLevel), raw result.
   * Rejects like callTool.
   */
  request(method: string, params: Record<string, unknown> | undefined, opts: UpstreamCallOptions): Promise<Record<string, unknown>>;
  /** Sends a notification upstream (e.g. notifications/roots/list_changed); never throws. */
  notify(method: string, params?: Record<string, unknown>): void;
  /**
   * The upstream's notifications that a proxy relays (RELAYED_UPSTREAM_NOTIFICATIONS), params as they
   * came. Returns an unsubscribe function.
   */
  onNotification(listener: (method: string, params: Record<string, unknown>) => void): () => void;
  /**
   * Answers the upstream's server-to-client requests (sampling/createMessage, elicitation/create,
   * roots/list). Until one is set, and after the returned function is called, they get a JSON-RPC error.
   */
  setClientRequestHandler(handler: ClientRequestHandler): () => void;
  /** The session ended (process exited, stdout closed, or close()). Called once. */
  onClose(listener: () => void): () => void;
  /**
   * Why the connection failed on its own, when it did: E_UPSTREAM_MESSAGE_TOO_LARGE or
   * E_UPSTREAM_PROTOCOL (process-stdio-transport.ts). Undefined while it is fine or after a plain close.
   */
  failure?(): WardenError | undefined;
  /** Ends the session (stdin EOF). Does not stop the process. Idempotent. */
  close(): Promise<void>;
}

/** Answers one server-to-client request; rejecting (McpError or WardenError) sends the upstream an error. */
type ClientRequestHandler = (
  method: string,
  params: Record<string, unknown> | undefined,
  signal: AbortSignal,
) => Promise<Record<string, unknown>>;

/** Server-to-client requests the proxy answers on its clients' behalf (docs/mcp-endpoint.md). */
const CLIENT_REQUEST_METHODS = ['sampling/createMessage', 'elicitation/create', 'roots/list'] as const;

/** Upstream notifications relayed to clients (besides tools/list_changed and progress). */
const RELAYED_UPSTREAM_NOTIFICATIONS = [
  'notifications/resources/updated',
  'notifications/resources/list_changed',
  'notifications/prompts/list_changed',
  'notifications/message',
] as const;

/**
 * The registration schemas of the methods above, made once per process: made per connection, these
 * seven zod schemas (with their compiled fast paths) were ~30 KiB of each upstream's ~74 KiB of heap.
 */
const METHOD_SCHEMAS = Object.fromEntries(
  [...RELAYED_UPSTREAM_NOTIFICATIONS, ...CLIENT_REQUEST_METHODS].map((method) => [
    method,
    z.object({ method: z.literal(method), params: z.unknown().optional() }),
  ]),
) as unknown as Record<
  (typeof RELAYED_UPSTREAM_NOTIFICATIONS)[number] | (typeof CLIENT_REQUEST_METHODS)[number],
  z.ZodType<{ method: string; params?: unknown }>
>;

/**
 * Declared at initialize so upstreams offer their sampling/elicitation/roots features; each request is
 * answered by a client session that has the capability, or refused (mcp-front.ts).
 */
const PROXY_CLIENT_CAPABILITIES = { sampling: {}, elicitation: {}, roots: { listChanged: true } };

/** No client session to answer a server-to-client request: the error the upstream gets. */
const NO_CLIENT_HANDLER_RPC_CODE = ErrorCode.MethodNotFound;

export interface ConnectUpstreamOptions {
  /** Server name, for logs and errors. */
  name: string;
  logger: Logger;
  /** Deadline of `initialize` and of each tools/list page. */
  requestTimeoutMs: number;
  /** Aborts the connection attempt (initialize). */
  signal?: AbortSignal;
  clientInfo?: { name: string; version: string };
  /** Largest message accepted on the upstream's stdout (upstreamMaxMessageBytes). Default: DEFAULT_SETTINGS'. */
  maxMessageBytes?: number;
  /** upstreamGarbageLinesMax / upstreamGarbageWindowMs: sustained non-JSON-RPC stdout fails the connection. */
  maxGarbageLines?: number;
  garbageWindowMs?: number;
  /** A coded error for a transport's own failure (HTTP status, auth), or undefined to map it as usual. */
  classifyError?: (err: unknown) => WardenError | undefined;
}

/** Pages of tools/list followed at most; a server paginating forever is cut off here. */
export const MAX_TOOL_PAGES = 100;

const DEFAULT_CLIENT_INFO = { name: 'mcp-warden', version: '0.1.0' };

/** Accepts any JSON object and returns it as is (no copying, no stripping). */
const AnyObjectResult = z.custom<Record<string, unknown>>(isPlainObject, { message: 'result is not a JSON object' });

/**
 * Connect an MCP client to the process behind `handle` and run `initialize`.
 * Rejects with WardenError(E_INIT_TIMEOUT | E_INIT_FAILED), or with `signal.reason` when aborted.
 * On failure the transport is closed (stdin ended); stopping the process stays with the caller.
 */
export async function connectUpstream(handle: TransportProcess | Upstream, opts: ConnectUpstreamOptions): Promise<UpstreamConnection> {
  return connectTransport(
    new ProcessStdioTransport(handle, {
      maxBufferSize: opts.maxMessageBytes ?? DEFAULT_SETTINGS.upstreamMaxMessageBytes,
      maxGarbageLines: opts.maxGarbageLines ?? DEFAULT_SETTINGS.upstreamGarbageLinesMax,
      garbageWindowMs: opts.garbageWindowMs ?? DEFAULT_SETTINGS.upstreamGarbageWindowMs,
    }),
    opts,
  );
}

/**
 * The same over any SDK client transport (the remote kinds: Streamable HTTP, SSE; src/adapters/remote/).
 * A WardenError thrown by the transport (e.g. its fetch) is passed on as it is; `classifyError` turns
 * the transport's own errors into coded ones first.
 */
export async function connectTransport(transport: Transport, opts: ConnectUpstreamOptions): Promise<UpstreamConnection> {
  const log = lazyChild(opts.logger, { component: 'upstream-client', server: opts.name });
  /** The stdio transport's own failure (oversized message, garbage), as a WardenError naming the server (and the request's method). */
  const failureOf = (method?: string): WardenError | undefined => {
    const f = transport instanceof ProcessStdioTransport ? transport.failure() : undefined;
    if (!f) return undefined;
    return new WardenError(f.code, `${opts.name}: ${method ? `${method}: ` : ''}${f.message}`, { ...f.detail, server: opts.name });
  };
  const client = new Client(opts.clientInfo ?? DEFAULT_CLIENT_INFO, {
    capabilities: PROXY_CLIENT_CAPABILITIES,
    jsonSchemaValidator: passThroughSchemaValidator,
  });

  const toolsChanged = new Set<() => void>();
  const notificationListeners = new Set<(method: string, params: Record<string, unknown>) => void>();
  let clientRequestHandler: ClientRequestHandler | undefined;
  const closeListeners = new Set<() => void>();
  let closed = false;

  client.onerror = (err) => {
    log.warn({ err: err.message }, 'upstream protocol error');
  };
  client.onclose = () => {
    if (closed) return;
    closed = true;
    log.debug('upstream session closed');
    const listeners = [...closeListeners];
    closeListeners.clear();
    toolsChanged.clear();
    notificationListeners.clear();
    clientRequestHandler = undefined;
    for (const l of listeners) safeCall(l);
  };
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    log.debug('tools/list_changed');
    for (const l of [...toolsChanged]) safeCall(l);
  });

  // Base registrations (no re-validation, params passed through as they came): see the header.
  const baseSetNotification = Protocol.prototype.setNotificationHandler as (
    this: Client,
    schema: z.ZodType<{ method: string; params?: unknown }>,
    h: (n: { method: string; params?: unknown }) => void,
  ) => void;
  for (const method of RELAYED_UPSTREAM_NOTIFICATIONS) {
    baseSetNotification.call(client, METHOD_SCHEMAS[method], (n) => {
      const params = isPlainObject(n.params) ? n.params : {};
      for (const l of [...notificationListeners]) safeCall(() => l(method, params));
    });
  }
  const baseSetRequest = Protocol.prototype.setRequestHandler as (
    this: Client,
    schema: z.ZodType<{ method: string; params?: unknown }>,
    h: (r: { method: string; params?: unknown }, extra: { signal: AbortSignal }) => Promise<Record<string, unknown>>,
  ) => void;
  for (const method of CLIENT_REQUEST_METHODS) {
    baseSetRequest.call(client, METHOD_SCHEMAS[method], async (r, extra) => {
      const h = clientRequestHandler;
      if (!h) throw new McpError(NO_CLIENT_HANDLER_RPC_CODE, `${method}: no client session of mcp-warden can answer it now`);
      return h(method, isPlainObject(r.params) ? r.params : undefined, extra.signal);
    });
  }

  const init = linkSignal(opts.signal);
  try {
    await client.connect(transport, { timeout: opts.requestTimeoutMs, signal: init.signal });
  } catch (err) {
    await transport.close().catch(() => undefined);
    if (opts.signal?.aborted) throw opts.signal.reason;
    const failed = failureOf('initialize');
    if (failed) throw failed;
    const classified = opts.classifyError?.(err);
    if (classified) throw classified;
    if (err instanceof WardenError) throw err;
    if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) {
      throw new WardenError(ErrorCodes.INIT_TIMEOUT, `${opts.name}: no answer to initialize within ${opts.requestTimeoutMs} ms`, {
        server: opts.name,
        timeoutMs: opts.requestTimeoutMs,
      });
    }
    if (err instanceof McpError) {
      const upstream = upstreamRpcErrorOf(err);
      throw new WardenError(ErrorCodes.INIT_FAILED, `${opts.name}: initialize failed: ${upstream.message} (JSON-RPC ${upstream.code})`, {
        server: opts.name,
        upstream,
      });
    }
    throw new WardenError(ErrorCodes.INIT_FAILED, `${opts.name}: initialize failed: ${messageOf(err)}`, { server: opts.name });
  } finally {
    init.dispose();
  }

  // Requests without progress go past the SDK's request() on stdio (upstream-direct-request.ts).
  const direct =
    transport instanceof ProcessStdioTransport
      ? attachDirectRequests(client, transport, AnyObjectResult, (err) => client.onerror?.(err))
      : undefined;

  const serverVersion = client.getServerVersion();
  const serverInfo =
    serverVersion && typeof serverVersion.name === 'string'
      ? { name: serverVersion.name, version: String(serverVersion.version ?? '') }
      : undefined;
  const instructions = client.getInstructions();
  const capabilities = (client.getServerCapabilities() ?? {}) as Record<string, unknown>;
  log.debug({ serverInfo }, 'upstream initialized');

  /**
   * client.request with a per-request AbortSignal: the SDK adds an 'abort' listener to the signal it
   * is given and never removes it, so passing a long-lived caller signal would leak one listener per
   * request. We give it a throwaway signal linked to the caller's and unlink when the request settles.
   */
  type RequestOptions = {
    signal?: AbortSignal;
    signalPerCall?: boolean | undefined;
    timeoutMs: number;
    onprogress?: (p: UpstreamProgress) => void;
  };

  function request(req: { method: string; params?: Record<string, unknown> }, options: RequestOptions): Promise<Record<string, unknown>> {
    // The hot path (a tools/call without progress whose signal is its own): no async frame of ours
    // between the caller and the direct request, only the error mapping below.
    if (direct && options.onprogress === undefined && options.signalPerCall === true && options.signal) {
      return direct.request(req, options.signal, options.timeoutMs, (err) => requestFailure(err, req.method, options));
    }
    return linkedRequest(req, options);
  }

  async function linkedRequest(
    req: { method: string; params?: Record<string, unknown> },
    options: RequestOptions,
  ): Promise<Record<string, unknown>> {
    // The direct path removes its own abort listener when the request settles: the caller's signal as it is.
    const viaDirect = direct !== undefined && options.onprogress === undefined;
    const link =
      viaDirect || (options.signalPerCall === true && options.signal)
        ? { signal: options.signal, dispose: () => undefined }
        : linkSignal(options.signal);
    try {
      if (viaDirect) return await direct.request(req, link.signal, options.timeoutMs);
      return await client.request(req as Parameters<typeof client.request>[0], AnyObjectResult, {
        signal: link.signal,
        timeout: options.timeoutMs,
        resetTimeoutOnProgress: options.onprogress !== undefined,
        onprogress: options.onprogress
          ? (p) => {
              const update: UpstreamProgress = { progress: p.progress };
              if (typeof p.total === 'number') update.total = p.total;
              if (typeof p.message === 'string') update.message = p.message;
              safeCall(() => options.onprogress!(update));
            }
          : undefined,
      });
    } catch (err) {
      throw requestFailure(err, req.method, options);
    } finally {
      link.dispose();
    }
  }

  /** What a failed request rejects with. */
  function requestFailure(err: unknown, method: string, options: RequestOptions): unknown {
    if (options.signal?.aborted) return options.signal.reason;
    // A connection the transport failed (oversized message, garbage): its coded reason, not "Connection closed".
    const failed = failureOf(method);
    if (failed) return failed;
    // An answer the transport dropped for its size: the error answer it made up in its place.
    if (err instanceof McpError && isSynthesizedErrorData(err.data)) {
      return new WardenError(ErrorCodes.UPSTREAM_MESSAGE_TOO_LARGE, `${opts.name}: ${method}: ${upstreamRpcErrorOf(err).message}`, {
        server: opts.name,
        method,
      });
    }
    return opts.classifyError?.(err) ?? mapRequestError(err, opts.name, method, options.timeoutMs, closed);
  }

  async function listTools(signal?: AbortSignal): Promise<UpstreamTool[]> {
    const tools: UpstreamTool[] = [];
    const names = new Set<string>();
    const seenCursors = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; ; page++) {
      if (page >= MAX_TOOL_PAGES) {
        log.warn({ pages: page }, `tools/list: more than ${MAX_TOOL_PAGES} pages, ignoring the rest`);
        break;
      }
      const result = await request(
        { method: 'tools/list', params: cursor !== undefined ? { cursor } : {} },
        { signal, timeoutMs: opts.requestTimeoutMs },
      );
      const list = result.tools;
      if (!Array.isArray(list)) {
        throw new WardenError(ErrorCodes.UPSTREAM_ERROR, `${opts.name}: tools/list result has no tools array`, {
          server: opts.name,
        });
      }
      list.forEach((tool: unknown, index: number) => {
        const problem = toolProblem(tool);
        if (problem) {
          log.warn({ page, index, problem, tool: describeTool(tool) }, `dropping malformed upstream tool: ${problem}`);
          return;
        }
        const t = tool as UpstreamTool;
        if (names.has(t.name)) {
          log.warn({ page, tool: t.name }, 'dropping duplicate upstream tool name');
          return;
        }
        names.add(t.name);
        tools.push(t);
      });
      const next = result.nextCursor;
      if (next === undefined || next === null) break;
      if (typeof next !== 'string') {
        log.warn({ page, nextCursor: typeof next }, 'tools/list: nextCursor is not a string, stopping pagination');
        break;
      }
      if (seenCursors.has(next)) {
        log.warn({ page }, 'tools/list: repeating cursor, stopping pagination');
        break;
      }
      seenCursors.add(next);
      cursor = next;
    }
    return tools;
  }

  /** callTool reporting to `sink`: on the direct path no promise at all (the tools/call hot path). */
  function callToolThen(name: string, args: Record<string, unknown> | undefined, callOpts: UpstreamCallOptions, sink: RequestSink): void {
    if (direct && callOpts.onprogress === undefined && callOpts.signalPerCall === true && callOpts.signal) {
      const params: Record<string, unknown> = { name };
      if (args !== undefined) params.arguments = args;
      const options: RequestOptions = callOpts;
      direct.start(
        { method: 'tools/call', params },
        callOpts.signal,
        callOpts.timeoutMs,
        (err) => requestFailure(err, 'tools/call', options),
        sink,
      );
      return;
    }
    callTool(name, args, callOpts).then(
      (result) => sink.succeed(result),
      (err: unknown) => sink.fail(err),
    );
  }

  function callTool(
    name: string,
    args: Record<string, unknown> | undefined,
    callOpts: UpstreamCallOptions,
  ): Promise<Record<string, unknown>> {
    const params: Record<string, unknown> = { name };
    if (args !== undefined) params.arguments = args;
    return request(
      { method: 'tools/call', params },
      {
        signal: callOpts.signal,
        signalPerCall: callOpts.signalPerCall,
        timeoutMs: callOpts.timeoutMs,
        onprogress: callOpts.onprogress,
      },
    );
  }

  return {
    serverInfo,
    instructions,
    capabilities,
    listTools,
    callTool,
    callToolThen,
    request(method, params, callOpts) {
      return request(params === undefined ? { method } : { method, params }, {
        signal: callOpts.signal,
        timeoutMs: callOpts.timeoutMs,
        onprogress: callOpts.onprogress,
      });
    },
    notify(method, params) {
      if (closed) return;
      client
        .notification((params === undefined ? { method } : { method, params }) as Parameters<typeof client.notification>[0])
        .catch((err: unknown) => log.debug({ method, err: messageOf(err) }, 'notification not delivered upstream'));
    },
    onNotification(listener) {
      if (closed) return () => undefined;
      notificationListeners.add(listener);
      return () => {
        notificationListeners.delete(listener);
      };
    },
    setClientRequestHandler(handler) {
      if (closed) return () => undefined;
      clientRequestHandler = handler;
      return () => {
        if (clientRequestHandler === handler) clientRequestHandler = undefined;
      };
    },
    onToolsChanged(listener) {
      if (closed) return () => undefined;
      toolsChanged.add(listener);
      return () => {
        toolsChanged.delete(listener);
      };
    },
    failure: () => failureOf(),
    onClose(listener) {
      if (closed) {
        let cancelled = false;
        queueMicrotask(() => {
          if (!cancelled) safeCall(listener);
        });
        return () => {
          cancelled = true;
        };
      }
      closeListeners.add(listener);
      return () => {
        closeListeners.delete(listener);
      };
    },
    async close() {
      client.removeNotificationHandler('notifications/tools/list_changed');
      try {
        await client.close();
      } catch (err) {
        log.debug({ err: messageOf(err) }, 'closing the upstream client failed');
      }
      // client.close() closes the transport, which reports onclose; make sure either way.
      await transport.close().catch(() => undefined);
      client.onclose?.();
    },
  };
}

function toolProblem(tool: unknown): string | undefined {
  if (!isPlainObject(tool)) return 'not an object';
  if (typeof tool.name !== 'string' || tool.name.length === 0) return 'no string name';
  if (!isPlainObject(tool.inputSchema)) return 'inputSchema is not an object';
  return undefined;
}

function describeTool(tool: unknown): string {
  if (isPlainObject(tool) && typeof tool.name === 'string') return tool.name.slice(0, 100);
  return typeof tool;
}

function mapRequestError(err: unknown, server: string, method: string, timeoutMs: number, closed: boolean): unknown {
  if (err instanceof WardenError) return err;
  if (err instanceof McpError) {
    // The SDK's own deadline, not an answer of the upstream.
    if (err.code === ErrorCode.RequestTimeout) {
      return new WardenError(ErrorCodes.UPSTREAM_TIMEOUT, `${server}: ${method} timed out after ${timeoutMs} ms`, {
        server,
        method,
        timeoutMs,
      });
    }
    const upstream = upstreamRpcErrorOf(err);
    const detail: WardenErrorDetail = { server, method, upstream };
    if (err.code === ErrorCode.ConnectionClosed && closed) detail.connectionClosed = true;
    // The log line names the server; the client gets `upstream` as it was (mcp-front.ts).
    return new WardenError(ErrorCodes.UPSTREAM_ERROR, `${server}: ${upstream.message} (JSON-RPC ${upstream.code})`, detail);
  }
  return new WardenError(ErrorCodes.UPSTREAM_ERROR, `${server}: ${method} failed: ${messageOf(err)}`, { server, method });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function safeCall(fn: () => void): void {
  try {
    fn();
  } catch {
    // observers must not break the session
  }
}

/** A throwaway AbortSignal that follows `outer`; dispose() unlinks it. */
function linkSignal(outer?: AbortSignal): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  if (!outer) return { signal: controller.signal, dispose: () => undefined };
  if (outer.aborted) {
    controller.abort(outer.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
  const onAbort = () => controller.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  return { signal: controller.signal, dispose: () => outer.removeEventListener('abort', onAbort) };
}
