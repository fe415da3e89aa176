/**
 * Search mode of the MCP front (settings.toolMode / `/mcp?toolMode=search`, docs/mcp-endpoint.md#tool-search):
 * tools/list offers `retrieve_tools` and `call_tool` (plus tools the config pins) instead of every
 * federated tool. `retrieve_tools` ranks the federated tools for a query (src/core/tool-search/);
 * `call_tool` hands its `name`/`arguments` to the ordinary tools/call path (front-call-tool.ts), so a
 * call through it gets every check a direct one gets: quarantine, tool filters, deadlines, progress,
 * cancellation.
 *
 * The MCP front imports this module dynamically, on the first search-mode session: in `all` mode
 * neither it nor MiniSearch is loaded. One index serves every search session; each retrieve_tools
 * call first brings it up to the catalog (only servers whose tools changed are re-indexed), so a tool
 * that arrives by list_changed or approval, or leaves by quarantine, is seen by the next search.
 */
import { ErrorCode as McpErrorCode, McpError, type ServerResult } from '@modelcontextprotocol/sdk/types.js';
import { isPlainObject } from '../../core/plain-object.js';
import { splitToolName, TOOL_SEPARATOR, type CatalogTool, type ToolCatalog, type ToolGroup } from '../../core/tool-catalog.js';
import { ToolSearchIndex } from '../../core/tool-search/tool-search-index.js';
import { callTool, type CallingSession, type CallToolDeps, type CallToolWire, type Extra } from './front-call-tool.js';

export const RETRIEVE_TOOLS = 'retrieve_tools';
/** Extra hits asked of the index, in case some belong to a server that left while it was refreshed. */
const LIVE_MARGIN = 10;
export const CALL_TOOL = 'call_tool';

export interface SearchToolsOptions {
  catalog: ToolCatalog;
  defaultLimit: number;
  maxLimit: number;
}

export interface SearchTools {
  /** What tools/list answers in search mode. */
  listTools(): CatalogTool[];
  /** tools/call in search mode: the two meta-tools, or (as in `all` mode) any federated tool by name. */
  callTool(deps: CallToolDeps, s: CallingSession, request: CallToolWire, extra: Extra): Promise<ServerResult>;
  /** The best `limit` tools for `query` (what retrieve_tools returns). */
  retrieve(query: string, limit: number): Promise<RetrievedTool[]>;
}

export interface RetrievedTool {
  name: string;
  description: string;
  score: number;
  inputSchema: Record<string, unknown>;
}

function metaTools(maxLimit: number, defaultLimit: number): CatalogTool[] {
  return [
    {
      name: RETRIEVE_TOOLS,
      description:
        'Find the tools that can do what you need. Describe the task in plain words; returns the best-matching tools, ' +
        'best first, each with its name, description and input schema. Then call one with call_tool.',
      inputSchema: {
        type: 'object',
        properties: {
          query: { type: 'string', description: 'What you want to do, e.g. "post a message to the team chat"' },
          limit: { type: 'integer', minimum: 1, maximum: maxLimit, description: `How many tools to return (default ${defaultLimit})` },
        },
        required: ['query'],
      },
      outputSchema: {
        type: 'object',
        properties: {
          tools: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                name: { type: 'string' },
                description: { type: 'string' },
                score: { type: 'number' },
                inputSchema: { type: 'object' },
              },
              required: ['name', 'description', 'score', 'inputSchema'],
            },
          },
        },
        required: ['tools'],
      },
    },
    {
      name: CALL_TOOL,
      description: 'Call a tool found with retrieve_tools: give its exact name and its arguments (an object matching its input schema).',
      inputSchema: {
        type: 'object',
        properties: {
          name: { type: 'string', description: 'The tool name retrieve_tools returned (server__tool)' },
          arguments: { type: 'object', description: "The tool's arguments" },
        },
        required: ['name'],
      },
    },
  ];
}

/** Groups of listTools() by server, for a catalog without toolGroups() (new arrays: re-indexed on every search). */
function groupsFromList(catalog: ToolCatalog): ToolGroup[] {
  const by = new Map<string, CatalogTool[]>();
  for (const t of catalog.listTools()) {
    const parts = splitToolName(t.name);
    if (!parts) continue;
    let list = by.get(parts.server);
    if (!list) by.set(parts.server, (list = []));
    list.push({ ...t, name: parts.tool });
  }
  return [...by].map(([server, tools]) => ({ server, tools, pinned: [] }));
}

function invalid(message: string): McpError {
  return new McpError(McpErrorCode.InvalidParams, message);
}

export function createSearchTools(opts: SearchToolsOptions): SearchTools {
  const { catalog, defaultLimit, maxLimit } = opts;
  const index = new ToolSearchIndex();
  const meta = metaTools(maxLimit, defaultLimit);
  const groups = () => catalog.toolGroups?.() ?? groupsFromList(catalog);

  /**
   * Brings the index up to the catalog one server at a time, yielding to the event loop after each
   * server it had to (re-)index: indexing thousands of tools must not stall other sessions' requests.
   * One refresh at a time (concurrent ones queue), so a server is never indexed twice at once.
   */
  let refreshing: Promise<void> = Promise.resolve();
  function refresh(): Promise<void> {
    const run = refreshing.then(async () => {
      const gs = groups();
      index.keepOnly(new Set(gs.map((g) => g.server)));
      for (const g of gs) {
        const r = index.syncServer(g);
        if (r.added + r.removed > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    });
    refreshing = run.catch(() => undefined);
    return run;
  }

  async function retrieve(query: string, limit: number): Promise<RetrievedTool[]> {
    await refresh();
    // What a client may call right now: a server quarantined while the refresh yielded is left out.
    const live = new Set<string>();
    for (const g of groups()) for (const t of g.tools) live.add(`${g.server}${TOOL_SEPARATOR}${t.name}`);
    const out: RetrievedTool[] = [];
    for (const h of index.search(query, limit + LIVE_MARGIN)) {
      if (!live.has(h.name)) continue;
      out.push({
        name: h.name,
        description: typeof h.tool.description === 'string' ? h.tool.description : '',
        score: Math.round(h.score * 1e4) / 1e4,
        inputSchema: h.tool.inputSchema,
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  async function retrieveCall(params: Record<string, unknown>): Promise<ServerResult> {
    const args = params['arguments'];
    if (!isPlainObject(args) || typeof args['query'] !== 'string' || args['query'].trim() === '') {
      throw invalid('retrieve_tools: arguments.query must be a non-empty string');
    }
    const rawLimit = args['limit'];
    if (rawLimit !== undefined && !(Number.isInteger(rawLimit) && (rawLimit as number) >= 1 && (rawLimit as number) <= maxLimit)) {
      throw invalid(`retrieve_tools: arguments.limit must be an integer from 1 to ${maxLimit}`);
    }
    const tools = await retrieve(args['query'], (rawLimit as number | undefined) ?? defaultLimit);
    const structuredContent = { tools };
    return { content: [{ type: 'text', text: JSON.stringify(structuredContent) }], structuredContent } as ServerResult;
  }

  return {
    retrieve,
    listTools() {
      const pinned: CatalogTool[] = [];
      for (const g of groups()) {
        if (g.pinned.length === 0) continue;
        for (const t of g.tools) if (g.pinned.includes(t.name)) pinned.push({ ...t, name: `${g.server}${TOOL_SEPARATOR}${t.name}` });
      }
      return [...meta.map((t) => ({ ...t })), ...pinned];
    },
    async callTool(deps, s, request, extra) {
      const params = request.params;
      const name = isPlainObject(params) ? params['name'] : undefined;
      if (name === RETRIEVE_TOOLS) return retrieveCall(params as Record<string, unknown>);
      if (name !== CALL_TOOL) return callTool(deps, s, request, extra);
      const args = (params as Record<string, unknown>)['arguments'];
      if (!isPlainObject(args) || typeof args['name'] !== 'string') throw invalid('call_tool: arguments.name must be a string');
      if (args['name'] === RETRIEVE_TOOLS || args['name'] === CALL_TOOL) {
        throw invalid(`call_tool: ${args['name']} is called directly, not through call_tool`);
      }
      const inner = args['arguments'];
      if (inner !== undefined && !isPlainObject(inner)) throw invalid('call_tool: arguments.arguments must be an object');
      // The ordinary path: progress (extra._meta.progressToken), cancellation (extra.signal) and deadlines as for any call.
      const forwarded: CallToolWire = {
        method: 'tools/call',
        params: inner === undefined ? { name: args['name'] } : { name: args['name'], arguments: inner },
      };
      return callTool(deps, s, forwarded, extra);
    },
  };
}
