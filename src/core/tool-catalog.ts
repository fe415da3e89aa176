/**
 * What the MCP front needs from the rest of the daemon: the aggregated tools, resources, prompts of
 * every running (approved) server, routing of a request to its owner, the upstreams' notifications and
 * change signals. Implemented by the daemon over the supervisor (src/daemon/supervisor-catalog.ts);
 * the front never sees actors or processes.
 *
 * A `scope` names one server (the per-server endpoint `/mcp/<server>`): names and URIs are then the
 * upstream's own. Without a scope (federated `/mcp`) names are `<server>__<name>` and resource URIs
 * `mcp-warden://<server>/<upstream uri>` (proxyUri below; docs/mcp-endpoint.md).
 */
export interface CatalogTool {
  /** `<server>__<tool>` */
  name: string;
  description?: string;
  /** Upstream JSON Schema, passed through unchanged. */
  inputSchema: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ProgressUpdate {
  progress: number;
  total?: number;
  message?: string;
}

export interface CatalogCallOptions {
  /** Aborted when the downstream client cancels or the session closes: forwarded upstream as cancellation. */
  signal: AbortSignal;
  /** `signal` serves this call alone (nothing else listens to it later): no per-call copy is needed upstream. */
  signalPerCall?: boolean;
  /** Present when the downstream request carried a progressToken. */
  onprogress?: (update: ProgressUpdate) => void;
  /** The calling session: server-to-client requests of the upstream are routed to it while this call runs. */
  peer?: DownstreamPeer;
  /** Set on `/mcp/<server>`: `name` is then the upstream's own tool name. */
  scope?: string;
}

/** A downstream client session, as the catalog sees it to route server-to-client requests to it. */
export interface DownstreamPeer {
  /**
   * Sends sampling/createMessage, elicitation/create or roots/list to this client; rejects (promptly)
   * when the client did not declare the capability, its session is gone, or it answers with an error.
   */
  clientRequest(method: string, params: Record<string, unknown> | undefined, signal: AbortSignal): Promise<Record<string, unknown>>;
}

/** A request routed to one upstream, with names and URIs already translated back. */
export interface CatalogRequestOptions {
  signal: AbortSignal;
  onprogress?: (update: ProgressUpdate) => void;
  peer?: DownstreamPeer;
  scope?: string;
}

/** What the upstreams offer together (or the scoped one alone), as MCP server capabilities. */
export interface CatalogCapabilities {
  resources?: { subscribe?: boolean; listChanged?: boolean };
  prompts?: { listChanged?: boolean };
  completions?: Record<string, never>;
  logging?: Record<string, never>;
}

/** Something happened upstream that sessions may need to hear of. `uri` is the upstream's own. */
export type CatalogEvent =
  | { kind: 'resources-changed'; server: string }
  | { kind: 'prompts-changed'; server: string }
  | { kind: 'resource-updated'; server: string; uri: string; params: Record<string, unknown> }
  | { kind: 'log'; server: string; params: Record<string, unknown> };

/** The raw upstream CallToolResult (content, structuredContent, isError, ...), passed through. */
export type CatalogCallResult = Record<string, unknown>;

/** One running server's exposed tools (its own names), for the tool-search index (src/core/tool-search/). */
export interface ToolGroup {
  server: string;
  /** The same array as long as the server's exposed tools did not change (the index re-reads a server only then). */
  tools: readonly CatalogTool[];
  /** Tools the config pins in search mode (their own names, all exposed). */
  pinned: readonly string[];
}

/** Where an outcome goes when no promise is wanted: exactly one of the two, once. */
export interface CallSink<T> {
  succeed(value: T): void;
  fail(err: unknown): void;
}

export interface ToolCatalog {
  /** Without a scope: every running server's tools, prefixed. With one: that server's, unprefixed (none if not running). */
  listTools(scope?: string): CatalogTool[];
  /** Every running server's exposed tools, grouped by server; absent: search derives it from listTools(). */
  toolGroups?(): ToolGroup[];
  /**
   * Rejects with a WardenError: UNKNOWN_TOOL, SERVER_UNAVAILABLE, QUARANTINED, UPSTREAM_TIMEOUT, or
   * UPSTREAM_ERROR (detail.upstream holds the upstream JSON-RPC code, message and data), SHUTTING_DOWN.
   */
  callTool(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions): Promise<CatalogCallResult>;
  /**
   * callTool reporting to `sink` instead of a promise (the front's tools/call hot path: no promise per
   * call on a stdio upstream). A refusal may be reported before it returns.
   */
  callToolThen?(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions, sink: CallSink<CatalogCallResult>): void;
  /** Called whenever listTools() may have changed. Returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;

  /** Servers known to the supervisor (running or not): `/mcp/<server>` exists for these. */
  hasServer(name: string): boolean;
  capabilities(scope?: string): CatalogCapabilities;
  /** Each running upstream's `instructions` under a `## <server>` heading; the scoped upstream's as is. */
  instructions(scope?: string): string | undefined;
  /**
   * Complete lists (every upstream page followed, cached until the upstream's list_changed), names and
   * URIs translated for the scope. The front pages them.
   */
  listResources(scope?: string): Promise<Record<string, unknown>[]>;
  listResourceTemplates(scope?: string): Promise<Record<string, unknown>[]>;
  listPrompts(scope?: string): Promise<Record<string, unknown>[]>;
  /**
   * resources/read, resources/subscribe, resources/unsubscribe, prompts/get, completion/complete: routed
   * by the name, URI or completion ref in `params`, translated back for the upstream, the result's URIs
   * translated for the scope. Rejects like callTool (UNKNOWN_RESOURCE / UNKNOWN_PROMPT when not routable).
   */
  route(method: string, params: Record<string, unknown>, opts: CatalogRequestOptions): Promise<Record<string, unknown>>;
  /** logging/setLevel to every running upstream with logging (or the scoped one); errors are logged, not thrown. */
  setLoggingLevel(level: string, scope?: string): Promise<void>;
  /** A client's notifications/roots/list_changed (or a new session declaring roots): told to every running upstream. */
  rootsChanged(scope?: string): void;
  /** Upstream notifications (see CatalogEvent). Returns an unsubscribe function. */
  onEvent(listener: (event: CatalogEvent) => void): () => void;
}

/** Tool names on the front are `<server>__<tool>`; server names can't contain `__`. */
export const TOOL_SEPARATOR = '__';

export function splitToolName(name: string): { server: string; tool: string } | undefined {
  const i = name.indexOf(TOOL_SEPARATOR);
  if (i <= 0 || i + TOOL_SEPARATOR.length >= name.length) return undefined;
  return { server: name.slice(0, i), tool: name.slice(i + TOOL_SEPARATOR.length) };
}

/** Federated resource URIs: `mcp-warden://<server>/<upstream uri, unencoded>` (docs/mcp-endpoint.md). */
const PROXY_URI_PREFIX = 'mcp-warden://';

export function proxyUri(server: string, uri: string): string {
  return `${PROXY_URI_PREFIX}${server}/${uri}`;
}

/** The inverse of proxyUri; undefined for a URI that is not of that form. */
function splitProxyUri(uri: string): { server: string; uri: string } | undefined {
  if (!uri.startsWith(PROXY_URI_PREFIX)) return undefined;
  const slash = uri.indexOf('/', PROXY_URI_PREFIX.length);
  if (slash <= PROXY_URI_PREFIX.length) return undefined;
  return { server: uri.slice(PROXY_URI_PREFIX.length, slash), uri: uri.slice(slash + 1) };
}

/** A URI as a client of `scope` sees it → the owning server and the upstream's URI; undefined if not routable. */
export function resolveUri(uri: string, scope: string | undefined): { server: string; uri: string } | undefined {
  return scope === undefined ? splitProxyUri(uri) : { server: scope, uri };
}
