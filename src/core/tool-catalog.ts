/**
 * What the MCP front needs from the rest of the daemon: the aggregated tool list of every running
 * (approved) server, routing of a call to its owner, and a change signal. Implemented by the daemon
 * over the supervisor; the front never sees actors or processes.
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
  /** Present when the downstream request carried a progressToken. */
  onprogress?: (update: ProgressUpdate) => void;
}

/** The raw upstream CallToolResult (content, structuredContent, isError, ...), passed through. */
export type CatalogCallResult = Record<string, unknown>;

export interface ToolCatalog {
  listTools(): CatalogTool[];
  /**
   * Rejects with a WardenError: UNKNOWN_TOOL, SERVER_UNAVAILABLE, QUARANTINED, UPSTREAM_TIMEOUT, or
   * UPSTREAM_ERROR (detail.upstream holds the upstream JSON-RPC code, message and data), SHUTTING_DOWN.
   */
  callTool(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions): Promise<CatalogCallResult>;
  /** Called whenever listTools() may have changed. Returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

/** Tool names on the front are `<server>__<tool>`; server names can't contain `__`. */
export const TOOL_SEPARATOR = '__';

export function splitToolName(name: string): { server: string; tool: string } | undefined {
  const i = name.indexOf(TOOL_SEPARATOR);
  if (i <= 0 || i + TOOL_SEPARATOR.length >= name.length) return undefined;
  return { server: name.slice(0, i), tool: name.slice(i + TOOL_SEPARATOR.length) };
}
