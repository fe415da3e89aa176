/**
 * The ToolCatalog the MCP front serves, read from the live actor system: only servers in `running`
 * contribute tools; a call is routed by its `<server>__` prefix to the session held in that
 * server actor's context (the actor that owns the connection). Change notifications come from
 * `notify()`, which the server event stream (server-events.ts) calls on every server change; a
 * cheap signature keeps `list_changed` to real changes.
 */
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import {
  splitToolName,
  TOOL_SEPARATOR,
  type CatalogCallOptions,
  type CatalogCallResult,
  type CatalogTool,
  type ToolCatalog,
} from '../core/tool-catalog.js';
import { serverActorsOf, serverSnapshotOf, type ServerSnapshot, type SupervisorActorRef } from './server-actors.js';
import { stateString } from './server-view.js';

export class SupervisorCatalog implements ToolCatalog {
  private readonly listeners = new Set<() => void>();
  /** Running servers' names and tools arrays, in order, as of the last notification. */
  private signature: unknown[] = [];
  private closing = false;

  constructor(
    private readonly root: () => SupervisorActorRef | undefined,
    private readonly toolCallTimeoutMs: () => number,
  ) {}

  private servers(): ServerSnapshot[] {
    return serverActorsOf(this.root()).map(({ ref }) => ref.getSnapshot());
  }

  listTools(): CatalogTool[] {
    const out: CatalogTool[] = [];
    for (const s of this.servers()) {
      if (s.value !== 'running') continue;
      for (const t of s.context.tools) out.push({ ...t, name: `${s.context.name}${TOOL_SEPARATOR}${t.name}` });
    }
    return out;
  }

  async callTool(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions): Promise<CatalogCallResult> {
    if (this.closing) throw new WardenError(ErrorCodes.SHUTTING_DOWN, 'mcp-warden is shutting down');
    const parts = splitToolName(name);
    if (!parts) throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `Unknown tool: ${name}`);
    const s = serverSnapshotOf(this.root(), parts.server);
    if (!s) throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `Unknown tool: ${name} (no server "${parts.server}")`);
    if (s.value === 'quarantined') {
      throw new WardenError(ErrorCodes.QUARANTINED, `server "${parts.server}" is quarantined until a person approves it`);
    }
    const session = s.context.session;
    if (s.value !== 'running' || !session) {
      const state = s.status === 'done' ? 'stopped' : stateString(s.value);
      const why = s.context.lastError ? `: ${s.context.lastError.message}` : '';
      throw new WardenError(ErrorCodes.SERVER_UNAVAILABLE, `server "${parts.server}" is not running (${state})${why}`);
    }
    if (!s.context.tools.some((t) => t.name === parts.tool)) {
      throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `Unknown tool: ${name}`);
    }
    return session.connection.callTool(parts.tool, args, {
      signal: opts.signal,
      timeoutMs: this.toolCallTimeoutMs(),
      onprogress: opts.onprogress,
    });
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Re-check the list; tell subscribers if it changed. Never throws. Cheap on purpose (it runs on
   * every server snapshot): the list can only change when a server enters or leaves `running` or
   * its context gets a new `tools` array, so comparing those references is enough.
   */
  notify(): void {
    let next: unknown[];
    try {
      next = this.servers().flatMap((s) => (s.value === 'running' ? [s.context.name, s.context.tools] : []));
    } catch {
      next = [Symbol('unknown')];
    }
    const prev = this.signature;
    if (prev.length === next.length && prev.every((x, i) => x === next[i])) return;
    this.signature = next;
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a subscriber's failure is its own
      }
    }
  }

  /** New calls fail with SHUTTING_DOWN from now on. */
  close(): void {
    this.closing = true;
  }
}
