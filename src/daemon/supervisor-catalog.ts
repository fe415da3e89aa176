/**
 * The ToolCatalog the MCP front serves, read from the live actor system: only servers in `running`
 * contribute tools, resources and prompts; a request is routed by its `<server>__` prefix (or the
 * `mcp-warden://<server>/` of a URI, or the scope of `/mcp/<server>`) to that server's connection.
 * Change notifications come from `notify()`, which the server event stream (server-events.ts) calls on
 * every server change; a cheap signature keeps `list_changed` to real changes.
 *
 * Per running server it keeps a ServerLink: the connection it listens to (notifications, server-to-
 * client requests), the cached resource/prompt lists (dropped on the upstream's list_changed or a new
 * connection), the calls in flight (to route sampling/elicitation/roots requests) and the resource
 * subscriptions held upstream (reference-counted over sessions, renewed on a new connection).
 */
import type { Logger } from 'pino';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCodes, WardenError, rpcCodeOf } from '../core/error-codes.js';
import {
  proxyUri,
  resolveUri,
  splitToolName,
  TOOL_SEPARATOR,
  type CatalogCallOptions,
  type CatalogCallResult,
  type CallSink,
  type CatalogCapabilities,
  type CatalogEvent,
  type CatalogRequestOptions,
  type CatalogTool,
  type DownstreamPeer,
  type ToolCatalog,
  type ToolGroup,
} from '../core/tool-catalog.js';
import { compileToolFilter, filtersNothing, type CompiledToolFilter, type ToolFilterSpec } from '../core/tool-filter.js';
import type { UpstreamToolInfo } from '../machines/server-machine.js';
import type { UpstreamConnection } from '../adapters/mcp/upstream-client.js';
import { fetchAllPages } from '../adapters/mcp/upstream-lists.js';
import { isPlainObject } from '../core/plain-object.js';
import { serverActorsOf, serverSnapshotOf, type ServerSnapshot, type SupervisorActorRef } from './server-actors.js';
import { stateString } from './server-view.js';

type JsonObject = Record<string, unknown>;
const EXPOSE_ALL = compileToolFilter(undefined);
type ListKind = 'resources' | 'resourceTemplates' | 'prompts';
const LIST_METHODS: Record<ListKind, { method: string; field: string }> = {
  resources: { method: 'resources/list', field: 'resources' },
  resourceTemplates: { method: 'resources/templates/list', field: 'resourceTemplates' },
  prompts: { method: 'prompts/list', field: 'prompts' },
};

/** What the catalog holds for one server's current connection. */
interface ServerLink {
  readonly name: string;
  readonly connection: UpstreamConnection;
  readonly off: Array<() => void>;
  readonly lists: Partial<Record<ListKind, Promise<JsonObject[]>>>;
  /** Calls and routed requests in flight that carry a peer, in start order (the last is the most recent). */
  readonly inflight: Set<{ peer?: DownstreamPeer }>;
}

export interface SupervisorCatalogOptions {
  logger?: Logger;
}

export class SupervisorCatalog implements ToolCatalog {
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(e: CatalogEvent) => void>();
  private readonly links = new Map<string, ServerLink>();
  /** Upstream resource subscriptions: server → upstream URI → number of sessions subscribed. */
  private readonly subscriptions = new Map<string, Map<string, number>>();
  /** Running servers' tools and withheld-tool arrays by name, as of the last notification. */
  private signature = new Map<string, Signature>();
  /** Running servers' checked prompt and template arrays, as of the last notification. */
  private offered = new Map<string, { prompts: unknown; resourceTemplates: unknown }>();
  private closing = false;
  private readonly logger: Logger | undefined;
  /** Each server's `tools` filter from its config entry (docs/config.md#tool-filters); none until set. */
  private filterSpecOf: (server: string) => ToolFilterSpec | undefined = () => undefined;
  /** Compiled filters and filtered arrays, per spec object and tools array: stable references for the search index. */
  private readonly compiled = new WeakMap<ToolFilterSpec, CompiledToolFilter>();
  /** listTools' last answer per scope (undefined: federated): built at `version`, with these servers' filters. */
  private readonly toolLists = new Map<string | undefined, { version: number; names: string[]; specs: unknown[]; tools: CatalogTool[] }>();
  /** Bumped by every notify() and setToolFilters(): cached tool lists older than it are rebuilt. */
  private listVersion = 0;
  private readonly exposedCache = new WeakMap<
    readonly UpstreamToolInfo[],
    { spec: ToolFilterSpec | undefined; tools: UpstreamToolInfo[] }
  >();

  constructor(
    private readonly root: () => SupervisorActorRef | undefined,
    private readonly toolCallTimeoutMs: () => number,
    options: SupervisorCatalogOptions = {},
  ) {
    this.logger = options.logger;
  }

  /** A server's live upstream connection: it travels with the server actor, in its context. */
  private connectionOf(name: string): UpstreamConnection | undefined {
    return serverSnapshotOf(this.root(), name)?.context.session?.connection;
  }

  private servers(): ServerSnapshot[] {
    return serverActorsOf(this.root()).map(({ ref }) => ref.getSnapshot());
  }

  private server(name: string): ServerSnapshot | undefined {
    return serverSnapshotOf(this.root(), name);
  }

  /** Where the per-server tool filters come from (the daemon passes the registry's entries). */
  setToolFilters(specOf: (server: string) => ToolFilterSpec | undefined): void {
    this.filterSpecOf = specOf;
    this.listVersion++;
  }

  private filterOf(server: string): { spec: ToolFilterSpec | undefined; filter: CompiledToolFilter } {
    const spec = this.filterSpecOf(server);
    if (!spec) return { spec, filter: EXPOSE_ALL };
    let filter = this.compiled.get(spec);
    if (!filter) this.compiled.set(spec, (filter = compileToolFilter(spec)));
    return { spec, filter };
  }

  /** The tools of `s` its filter exposes; the same array while tools and filter stay the same. */
  /** The tools a client sees: not withheld (quarantine scope "tool"), and let through the config's filter. */
  private exposed(s: ServerSnapshot): UpstreamToolInfo[] {
    const all = servedTools(s);
    const { spec, filter } = this.filterOf(s.context.name);
    if (filtersNothing(spec)) return all;
    const hit = this.exposedCache.get(all);
    if (hit && hit.spec === spec) return hit.tools;
    const tools = all.filter((t) => filter.exposes(t.name));
    this.exposedCache.set(all, { spec, tools });
    return tools;
  }

  /**
   * The same frozen array until notify() hears of a server change or a listed server's filter changes,
   * so the front can reuse its serialization: building the list of 500 servers' tools and serializing
   * it took about a millisecond each per tools/list. notify() runs a microtask after every server
   * snapshot (server-events.ts), so a cached list is never older than the change being announced.
   */
  listTools(scope?: string): CatalogTool[] {
    const hit = this.toolLists.get(scope);
    if (hit && hit.version === this.listVersion && hit.names.every((n, i) => this.filterSpecOf(n) === hit.specs[i])) return hit.tools;
    const names: string[] = [];
    const specs: unknown[] = [];
    const out: CatalogTool[] = [];
    for (const s of scope !== undefined ? [this.server(scope)] : this.servers()) {
      if (!s || s.value !== 'running') continue;
      const name = s.context.name;
      names.push(name);
      specs.push(this.filterSpecOf(name));
      for (const t of this.exposed(s)) {
        out.push(Object.freeze(scope !== undefined ? { ...t } : { ...t, name: `${name}${TOOL_SEPARATOR}${t.name}` }));
      }
    }
    Object.freeze(out);
    if (names.length === 0) this.toolLists.delete(scope);
    else this.toolLists.set(scope, { version: this.listVersion, names, specs, tools: out });
    return out;
  }

  toolGroups(): ToolGroup[] {
    const out: ToolGroup[] = [];
    for (const s of this.servers()) {
      if (s.value !== 'running') continue;
      const tools = this.exposed(s);
      const { filter } = this.filterOf(s.context.name);
      out.push({ server: s.context.name, tools, pinned: tools.filter((t) => filter.pins(t.name)).map((t) => t.name) });
    }
    return out;
  }

  callTool(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions): Promise<CatalogCallResult> {
    return new Promise((resolve, reject) => this.callToolThen(name, args, opts, { succeed: resolve, fail: reject }));
  }

  /**
   * callTool reporting to `sink`: on a stdio upstream no promise per call at all (the hot path,
   * docs/benchmarks.md "Throughput"); a refusal is reported at once.
   */
  callToolThen(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions, sink: CallSink<CatalogCallResult>): void {
    const scope = opts.scope;
    let parts: { server: string; tool: string; connection: UpstreamConnection };
    try {
      parts = this.callable(name, scope);
    } catch (err) {
      return sink.fail(err);
    }
    const connection = parts.connection;
    // The options object itself marks the call in flight.
    const link = opts.peer ? this.link(parts.server, connection) : undefined;
    link?.inflight.add(opts);
    const call = new CatalogCall(link, opts, scope === undefined ? parts.server : undefined, sink);
    const upstreamOpts = {
      signal: opts.signal,
      signalPerCall: opts.signalPerCall,
      timeoutMs: this.toolCallTimeoutMs(),
      onprogress: opts.onprogress,
    };
    try {
      if (connection.callToolThen) connection.callToolThen(parts.tool, args, upstreamOpts, call);
      else {
        connection.callTool(parts.tool, args, upstreamOpts).then(
          (result) => call.succeed(result),
          (err: unknown) => call.fail(err),
        );
      }
    } catch (err) {
      call.fail(err);
    }
  }

  /** The server, upstream tool and connection a tools/call names, when it may be called now; throws the refusal otherwise. */
  private callable(name: string, scope: string | undefined): { server: string; tool: string; connection: UpstreamConnection } {
    if (this.closing) throw new WardenError(ErrorCodes.SHUTTING_DOWN, 'mcp-warden is shutting down');
    const parts = scope === undefined ? splitToolName(name) : { server: scope, tool: name };
    if (!parts) throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `Unknown tool: ${name}`);
    const s = this.server(parts.server);
    if (!s) throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `Unknown tool: ${name} (no server "${parts.server}")`);
    if (s.value === 'quarantined') {
      throw new WardenError(ErrorCodes.QUARANTINED, `server "${parts.server}" is quarantined until a person approves it`);
    }
    const connection = s.context.session?.connection;
    if (s.value !== 'running' || !connection) {
      const state = s.status === 'done' ? 'stopped' : stateString(s.value);
      const why = s.context.lastError ? `: ${s.context.lastError.message}` : '';
      throw new WardenError(ErrorCodes.SERVER_UNAVAILABLE, `server "${parts.server}" is not running (${state})${why}`);
    }
    if (!hasTool(s.context.tools, parts.tool)) {
      throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `Unknown tool: ${name}`);
    }
    if (!this.filterOf(parts.server).filter.exposes(parts.tool)) {
      throw new WardenError(
        ErrorCodes.TOOL_FILTERED,
        `tool "${parts.tool}" of server "${parts.server}" is not exposed: the server's "tools" filter in the config hides it`,
      );
    }
    if (isWithheld(s, parts.tool)) {
      throw new WardenError(
        ErrorCodes.QUARANTINED,
        `tool "${parts.tool}" of server "${parts.server}" changed since it was approved and is withheld until a person approves it`,
      );
    }
    return { server: parts.server, tool: parts.tool, connection };
  }

  // ---- resources, prompts, completion, logging ---------------------------------------------------

  hasServer(name: string): boolean {
    return this.server(name) !== undefined;
  }

  /** Running servers with a connection (the scoped one only, when given), links attached. */
  private targets(scope?: string): ServerLink[] {
    const out: ServerLink[] = [];
    for (const s of scope === undefined ? this.servers() : [this.server(scope)]) {
      if (!s || s.value !== 'running') continue;
      const c = this.connectionOf(s.context.name);
      if (c) out.push(this.link(s.context.name, c));
    }
    return out;
  }

  capabilities(scope?: string): CatalogCapabilities {
    const caps: CatalogCapabilities = {};
    for (const l of this.targets(scope)) {
      const up = l.connection.capabilities;
      const res = up['resources'];
      if (isPlainObject(res)) {
        caps.resources ??= { listChanged: true };
        if (res['subscribe'] === true) caps.resources.subscribe = true;
      }
      if (isPlainObject(up['prompts'])) caps.prompts = { listChanged: true };
      if (isPlainObject(up['completions'])) caps.completions = {};
      if (isPlainObject(up['logging'])) caps.logging = {};
    }
    return caps;
  }

  instructions(scope?: string): string | undefined {
    const targets = this.targets(scope);
    if (scope !== undefined) return targets[0]?.connection.instructions;
    const parts = targets.flatMap((l) => (l.connection.instructions ? [`## ${l.name}\n\n${l.connection.instructions}`] : []));
    return parts.length > 0 ? parts.join('\n\n') : undefined;
  }

  listResources(scope?: string): Promise<JsonObject[]> {
    return this.collect('resources', scope, 'resources', (server, r) =>
      typeof r['uri'] === 'string' ? { ...r, uri: proxyUri(server, r['uri']) } : undefined,
    );
  }

  listResourceTemplates(scope?: string): Promise<JsonObject[]> {
    return Promise.resolve(
      this.checkedList('resourceTemplates', scope, (server, t) =>
        typeof t['uriTemplate'] === 'string' ? { ...t, uriTemplate: proxyUri(server, t['uriTemplate']) } : undefined,
      ),
    );
  }

  listPrompts(scope?: string): Promise<JsonObject[]> {
    return Promise.resolve(
      this.checkedList('prompts', scope, (server, p) =>
        typeof p['name'] === 'string' ? { ...p, name: `${server}${TOOL_SEPARATOR}${p['name']}` } : undefined,
      ),
    );
  }

  /**
   * Prompts and resource templates are served from the server actor's context: the lists its
   * integrity check saw (src/actors/launch-upstream.ts, watch-upstream.ts), never fetched again here,
   * so a server cannot show one list to the check and another to clients.
   */
  private checkedList(
    kind: 'prompts' | 'resourceTemplates',
    scope: string | undefined,
    federate: (server: string, item: JsonObject) => JsonObject | undefined,
  ): JsonObject[] {
    const out: JsonObject[] = [];
    for (const s of scope === undefined ? this.servers() : [this.server(scope)]) {
      if (!s || s.value !== 'running') continue;
      for (const item of s.context[kind]) {
        if (scope !== undefined) out.push({ ...item });
        else {
          const t = federate(s.context.name, item);
          if (t) out.push(t);
        }
      }
    }
    return out;
  }

  /** Every target's cached list, translated for the federated view (items it cannot translate are dropped). */
  private async collect(
    kind: ListKind,
    scope: string | undefined,
    capability: string,
    federate: (server: string, item: JsonObject) => JsonObject | undefined,
  ): Promise<JsonObject[]> {
    const targets = this.targets(scope).filter((l) => isPlainObject(l.connection.capabilities[capability]));
    const lists = await Promise.all(targets.map((l) => this.cachedList(l, kind)));
    if (scope !== undefined) return lists[0] ?? [];
    const out: JsonObject[] = [];
    lists.forEach((list, i) => {
      for (const item of list) {
        const t = federate(targets[i]!.name, item);
        if (t) out.push(t);
      }
    });
    return out;
  }

  /** All pages of one list, fetched once per connection until the upstream says it changed. */
  private cachedList(link: ServerLink, kind: ListKind): Promise<JsonObject[]> {
    const cached = link.lists[kind];
    if (cached) return cached;
    const { method, field } = LIST_METHODS[kind];
    const p = fetchAllPages(link.connection, method, field, { timeoutMs: this.toolCallTimeoutMs() });
    link.lists[kind] = p;
    // A failure is not cached: the next list asks again.
    p.catch((err: unknown) => {
      if (link.lists[kind] === p) delete link.lists[kind];
      this.logger?.warn({ server: link.name, method, err: String(err) }, 'upstream list failed; listed as empty');
    });
    return p.catch(() => []);
  }

  async route(method: string, params: JsonObject, opts: CatalogRequestOptions): Promise<JsonObject> {
    if (this.closing) throw new WardenError(ErrorCodes.SHUTTING_DOWN, 'mcp-warden is shutting down');
    const scope = opts.scope;
    let server: string;
    let upstreamParams: JsonObject;
    if (method === 'prompts/get') {
      const name = typeof params['name'] === 'string' ? params['name'] : '';
      const parts = scope === undefined ? splitToolName(name) : { server: scope, tool: name };
      if (!parts) throw new WardenError(ErrorCodes.UNKNOWN_PROMPT, `Unknown prompt: ${name}`);
      server = parts.server;
      upstreamParams = { ...params, name: parts.tool };
    } else if (method === 'completion/complete') {
      const ref = isPlainObject(params['ref']) ? params['ref'] : {};
      if (ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string') {
        const parts = scope === undefined ? splitToolName(ref['name']) : { server: scope, tool: ref['name'] };
        if (!parts) throw new WardenError(ErrorCodes.UNKNOWN_PROMPT, `Unknown prompt: ${ref['name']}`);
        server = parts.server;
        upstreamParams = { ...params, ref: { ...ref, name: parts.tool } };
      } else if (ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string') {
        const r = resolveUri(ref['uri'], scope);
        if (!r) throw new WardenError(ErrorCodes.UNKNOWN_RESOURCE, `Unknown resource: ${ref['uri']}`);
        server = r.server;
        upstreamParams = { ...params, ref: { ...ref, uri: r.uri } };
      } else {
        throw new McpError(
          rpcCodeOf(ErrorCodes.UNKNOWN_PROMPT),
          'completion/complete: ref must be a ref/prompt with a name or a ref/resource with a uri',
        );
      }
    } else {
      const uri = typeof params['uri'] === 'string' ? params['uri'] : '';
      const r = resolveUri(uri, scope);
      if (!r) throw new WardenError(ErrorCodes.UNKNOWN_RESOURCE, `Unknown resource: ${uri}`);
      server = r.server;
      upstreamParams = { ...params, uri: r.uri };
    }
    const s = this.server(server);
    if (!s) {
      const code = method === 'prompts/get' ? ErrorCodes.UNKNOWN_PROMPT : ErrorCodes.UNKNOWN_RESOURCE;
      throw new WardenError(code, `no server "${server}"`);
    }
    if (s.value === 'quarantined')
      throw new WardenError(ErrorCodes.QUARANTINED, `server "${server}" is quarantined until a person approves it`);
    const connection = this.connectionOf(server);
    if (s.value !== 'running' || !connection) throw new WardenError(ErrorCodes.SERVER_UNAVAILABLE, `server "${server}" is not running`);
    const link = this.link(server, connection);
    if (method === 'resources/subscribe' || method === 'resources/unsubscribe') {
      return this.changeSubscription(link, method, upstreamParams, opts.signal);
    }
    link.inflight.add(opts);
    try {
      const result = await connection.request(method, upstreamParams, {
        signal: opts.signal,
        timeoutMs: this.toolCallTimeoutMs(),
        onprogress: opts.onprogress,
      });
      if (scope === undefined) {
        if (method === 'resources/read') translateUris(server, result['contents']);
        else if (method === 'prompts/get' && Array.isArray(result['messages'])) {
          for (const m of result['messages']) if (isPlainObject(m)) translateContentUris(server, { content: [m['content']] });
        }
      }
      return result;
    } finally {
      link.inflight.delete(opts);
    }
  }

  /** Subscriptions are counted per (server, URI): upstream hears the first subscribe and the last unsubscribe. */
  private async changeSubscription(link: ServerLink, method: string, params: JsonObject, signal: AbortSignal): Promise<JsonObject> {
    const uri = params['uri'] as string;
    let counts = this.subscriptions.get(link.name);
    if (!counts) this.subscriptions.set(link.name, (counts = new Map()));
    const n = counts.get(uri) ?? 0;
    if (method === 'resources/subscribe') {
      counts.set(uri, n + 1);
      if (n > 0) return {};
      try {
        return await link.connection.request(method, params, { signal, timeoutMs: this.toolCallTimeoutMs() });
      } catch (err) {
        this.dropSubscription(link.name, uri);
        throw err;
      }
    }
    if (n === 0) return {};
    this.dropSubscription(link.name, uri);
    if (n > 1) return {};
    return link.connection.request(method, params, { signal, timeoutMs: this.toolCallTimeoutMs() });
  }

  private dropSubscription(server: string, uri: string): void {
    const counts = this.subscriptions.get(server);
    const n = counts?.get(uri) ?? 0;
    if (n <= 1) counts?.delete(uri);
    else counts!.set(uri, n - 1);
  }

  async setLoggingLevel(level: string, scope?: string): Promise<void> {
    const targets = this.targets(scope).filter((l) => isPlainObject(l.connection.capabilities['logging']));
    await Promise.all(
      targets.map((l) =>
        l.connection.request('logging/setLevel', { level }, { timeoutMs: this.toolCallTimeoutMs() }).catch((err: unknown) => {
          this.logger?.warn({ server: l.name, err: String(err) }, 'logging/setLevel failed upstream');
        }),
      ),
    );
  }

  rootsChanged(scope?: string): void {
    for (const l of this.targets(scope)) l.connection.notify('notifications/roots/list_changed');
  }

  onEvent(listener: (e: CatalogEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  private emit(e: CatalogEvent): void {
    for (const l of this.eventListeners) {
      try {
        l(e);
      } catch {
        // a subscriber's failure is its own
      }
    }
  }

  /** The link of `name`'s current connection, attached on first use; a new connection replaces the old link. */
  private link(name: string, connection: UpstreamConnection): ServerLink {
    const old = this.links.get(name);
    if (old && old.connection === connection) return old;
    if (old) this.unlink(old);
    const link: ServerLink = { name, connection, off: [], lists: {}, inflight: new Set() };
    this.links.set(name, link);
    link.off.push(
      connection.onNotification((method, params) => this.onUpstreamNotification(link, method, params)),
      connection.setClientRequestHandler((method, params, signal) => this.clientRequest(link, method, params, signal)),
      connection.onClose(() => {
        if (this.links.get(name) === link) this.unlink(link);
      }),
    );
    // A restarted upstream lost its subscriptions: renew them.
    for (const uri of this.subscriptions.get(name)?.keys() ?? []) {
      connection.request('resources/subscribe', { uri }, { timeoutMs: this.toolCallTimeoutMs() }).catch((err: unknown) => {
        this.logger?.warn({ server: name, uri, err: String(err) }, 'renewing a resource subscription failed');
      });
    }
    if (old) {
      this.emit({ kind: 'resources-changed', server: name });
      this.emit({ kind: 'prompts-changed', server: name });
    }
    return link;
  }

  private unlink(link: ServerLink): void {
    if (this.links.get(link.name) === link) this.links.delete(link.name);
    for (const off of link.off.splice(0)) off();
    link.inflight.clear();
  }

  private onUpstreamNotification(link: ServerLink, method: string, params: JsonObject): void {
    switch (method) {
      case 'notifications/resources/list_changed':
        delete link.lists.resources;
        return this.emit({ kind: 'resources-changed', server: link.name });
      case 'notifications/prompts/list_changed':
        // Told to clients once the server actor holds the checked list (notify below).
        return;
      case 'notifications/resources/updated':
        if (typeof params['uri'] === 'string') this.emit({ kind: 'resource-updated', server: link.name, uri: params['uri'], params });
        return;
      case 'notifications/message':
        return this.emit({ kind: 'log', server: link.name, params });
    }
  }

  /**
   * A server-to-client request of the upstream (stdio carries no related request id): one call of a
   * session in flight → that session; several → the most recently started; none → a JSON-RPC error.
   */
  private clientRequest(link: ServerLink, method: string, params: JsonObject | undefined, signal: AbortSignal): Promise<JsonObject> {
    let peer: DownstreamPeer | undefined;
    for (const call of link.inflight) if (call.peer) peer = call.peer;
    if (!peer) {
      return Promise.reject(
        new McpError(rpcCodeOf(ErrorCodes.NO_CLIENT_REQUEST), `${method}: no client request to this server is in flight to answer it`, {
          code: ErrorCodes.NO_CLIENT_REQUEST,
        }),
      );
    }
    return peer.clientRequest(method, params, signal);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Re-check the list; tell subscribers if it changed. Never throws. Cheap on purpose (it runs on
   * every server snapshot): the list can only change when a server enters or leaves `running` or
   * its context gets a new `tools` (or `toolChanges`: withheld tools) array, so comparing those
   * references is enough. With `changed` (the servers whose actors changed, from server-events.ts)
   * only those are looked at, so a change costs the same with 500 servers as with one; without it,
   * every server.
   */
  notify(changed?: Iterable<string>): void {
    // Closed (the daemon is shutting down): no session is told any more, and no link is made again
    // for a server still running; each of 500 stopping servers' snapshots came here for nothing.
    if (this.closing) return;
    this.listVersion++;
    let differs = false;
    const same = (x: Signature | undefined, y: Signature) => x !== undefined && x[0] === y[0] && x[1] === y[1] && x[2] === y[2];
    if (changed === undefined) {
      const next = new Map<string, Signature>();
      try {
        for (const s of this.servers())
          if (s.value === 'running') next.set(s.context.name, [s.context.tools, s.context.toolChanges, this.filterSpecOf(s.context.name)]);
      } catch {
        next.set('', [Symbol('unknown'), undefined, undefined]);
      }
      this.syncLinks();
      const prev = this.signature;
      differs = prev.size !== next.size || [...next].some(([name, sig]) => !same(prev.get(name), sig));
      this.signature = next;
    } else {
      for (const name of changed) {
        const s = this.server(name);
        const sig =
          s?.value === 'running' ? ([s.context.tools, s.context.toolChanges, this.filterSpecOf(s.context.name)] as const) : undefined;
        this.syncLink(name, sig !== undefined);
        if (sig === undefined ? !this.signature.has(name) : same(this.signature.get(name), sig)) continue;
        differs = true;
        if (sig === undefined) this.signature.delete(name);
        else this.signature.set(name, sig);
      }
    }
    this.offeredChanged(changed);
    if (!differs) return;
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a subscriber's failure is its own
      }
    }
  }

  /** syncLinks for one server. */
  private syncLink(name: string, running: boolean): void {
    try {
      const c = running ? this.connectionOf(name) : undefined;
      if (c) this.link(name, c);
      else if (!running) {
        const link = this.links.get(name);
        if (link) this.unlink(link);
      }
    } catch (err) {
      this.logger?.warn({ err: String(err) }, 'catalog link sync failed');
    }
  }

  /**
   * A running server's checked prompts or templates changed (by reference: the actor replaces an
   * array only when it refetched it), or the server entered or left `running`: tell the sessions.
   */
  private offeredChanged(changed?: Iterable<string>): void {
    if (changed !== undefined) {
      // Only the servers whose actors changed (server-events.ts): the same cost with 500 servers as with one.
      for (const name of changed) {
        const s = this.server(name);
        const b = s?.value === 'running' ? s.context : undefined;
        const a = this.offered.get(name);
        if ((a?.prompts ?? NONE) !== (b?.prompts ?? NONE)) this.emit({ kind: 'prompts-changed', server: name });
        if ((a?.resourceTemplates ?? NONE) !== (b?.resourceTemplates ?? NONE)) this.emit({ kind: 'resources-changed', server: name });
        if (b) this.offered.set(name, { prompts: b.prompts, resourceTemplates: b.resourceTemplates });
        else this.offered.delete(name);
      }
      return;
    }
    let now: Map<string, ServerSnapshot['context']>;
    try {
      now = new Map(this.servers().flatMap((s) => (s.value === 'running' ? [[s.context.name, s.context] as const] : [])));
    } catch {
      return;
    }
    for (const name of new Set([...now.keys(), ...this.offered.keys()])) {
      const a = this.offered.get(name);
      const b = now.get(name);
      if ((a?.prompts ?? NONE) !== (b?.prompts ?? NONE)) this.emit({ kind: 'prompts-changed', server: name });
      if ((a?.resourceTemplates ?? NONE) !== (b?.resourceTemplates ?? NONE)) this.emit({ kind: 'resources-changed', server: name });
    }
    this.offered = new Map([...now].map(([name, c]) => [name, { prompts: c.prompts, resourceTemplates: c.resourceTemplates }]));
  }

  /** Attach running servers' connections (so their notifications are heard before anyone lists), drop gone ones. */
  private syncLinks(): void {
    try {
      const running = new Set<string>();
      for (const s of this.servers()) if (s.value === 'running') running.add(s.context.name);
      for (const name of running) {
        const c = this.connectionOf(name);
        if (c) this.link(name, c);
      }
      for (const link of [...this.links.values()]) if (!running.has(link.name)) this.unlink(link);
    } catch (err) {
      this.logger?.warn({ err: String(err) }, 'catalog link sync failed');
    }
  }

  /** New calls fail with SHUTTING_DOWN from now on. */
  close(): void {
    this.closing = true;
    for (const link of [...this.links.values()]) this.unlink(link);
  }
}

/**
 * In `running`, the server's tool changes are the tools withheld alone (quarantineScope "tool",
 * docs/quarantine.md); they are neither listed nor callable until a person approves them.
 */
function isWithheld(s: ServerSnapshot, tool: string): boolean {
  return s.context.toolChanges.some((c) => c.tool === tool && c.item === undefined);
}

/** What a server's list depends on: its tools, its withheld tools and its tool filter (compared by reference). */
type Signature = readonly [unknown, unknown, unknown];

function servedTools(s: ServerSnapshot): ServerSnapshot['context']['tools'] {
  const changes = s.context.toolChanges;
  return changes.length === 0 ? s.context.tools : s.context.tools.filter((t) => !isWithheld(s, t.name));
}

const NONE: unknown[] = [];

/** In place: `uri` of each item (resource contents) → the federated form. */
function translateUris(server: string, items: unknown): void {
  if (!Array.isArray(items)) return;
  for (const item of items) if (isPlainObject(item) && typeof item['uri'] === 'string') item['uri'] = proxyUri(server, item['uri']);
}

/**
 * In place: resource_link and embedded resource items of a result's `content` → federated URIs, so a
 * client can read them through the proxy. A loop over content, no allocation unless a link is found.
 */
/** One tools/call between the catalog and its upstream: the call no longer in flight, URIs translated, then the caller told. */
class CatalogCall implements CallSink<CatalogCallResult> {
  private settled = false;

  constructor(
    private readonly link: ServerLink | undefined,
    private readonly opts: CatalogCallOptions,
    /** The server whose content URIs are translated (federated /mcp); undefined on /mcp/<server>. */
    private readonly translateFor: string | undefined,
    private readonly sink: CallSink<CatalogCallResult>,
  ) {}

  succeed(result: CatalogCallResult): void {
    if (this.settled) return;
    this.settled = true;
    this.link?.inflight.delete(this.opts);
    if (this.translateFor !== undefined) {
      try {
        translateContentUris(this.translateFor, result);
      } catch (err) {
        return this.sink.fail(err);
      }
    }
    this.sink.succeed(result);
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.link?.inflight.delete(this.opts);
    this.sink.fail(err);
  }
}

/** `tools` has one named `name` (a loop: no closure per call as some() would take). */
function hasTool(tools: readonly { name: string }[], name: string): boolean {
  for (let i = 0; i < tools.length; i++) if (tools[i]!.name === name) return true;
  return false;
}

function translateContentUris(server: string, result: JsonObject): void {
  const content = result['content'];
  if (!Array.isArray(content)) return;
  for (const item of content) {
    if (!isPlainObject(item)) continue;
    if (item['type'] === 'resource_link' && typeof item['uri'] === 'string') item['uri'] = proxyUri(server, item['uri']);
    else if (item['type'] === 'resource' && isPlainObject(item['resource']) && typeof item['resource']['uri'] === 'string') {
      item['resource']['uri'] = proxyUri(server, item['resource']['uri']);
    }
  }
}
