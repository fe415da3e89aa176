/**
 * Other MCP clients' config files, for `mcp-warden import` and `mcp-warden connect` (docs/cli.md):
 * where each client keeps its file on Linux, how to read its server list into mcp-warden entries,
 * and the entry that points the client at mcp-warden. Pure: no I/O.
 */
import { validateServerName } from './config-schema.js';

export const CLIENTS = ['claude-desktop', 'cursor', 'windsurf', 'vscode', 'claude-code'] as const;
export type ClientId = (typeof CLIENTS)[number];

export function isClientId(s: string): s is ClientId {
  return (CLIENTS as readonly string[]).includes(s);
}

/** The client's user-level config file at its usual Linux location. */
export function clientConfigPath(client: ClientId, home: string, xdgConfigHome = `${home}/.config`): string {
  switch (client) {
    case 'claude-desktop':
      return `${xdgConfigHome}/Claude/claude_desktop_config.json`;
    case 'cursor':
      return `${home}/.cursor/mcp.json`;
    case 'windsurf':
      return `${home}/.codeium/windsurf/mcp_config.json`;
    case 'vscode':
      return `${xdgConfigHome}/Code/User/mcp.json`;
    case 'claude-code':
      return `${home}/.claude.json`;
  }
}

/** One server found in another client's file, converted to a raw mcp-warden entry. */
export interface FoundServer {
  /** The name it gets here (sanitized, prefixed). */
  name: string;
  /** Its name in the client's file. */
  originalName: string;
  /** Where it was found, e.g. `mcpServers.memory` or `projects["/home/me/app"].mcpServers.db`. */
  source: string;
  entry: Record<string, unknown>;
  /** What was changed or dropped on the way (keys other clients use, `${input:…}` references). */
  notes: string[];
}

export interface Extracted {
  /** Which layouts were found: `mcpServers`, `servers` (VS Code), `projects` (Claude Code). */
  layouts: string[];
  servers: FoundServer[];
  /** Entries that could not be imported, each with its source and why. */
  problems: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const KEPT = ['command', 'args', 'env', 'cwd', 'url', 'headers', 'disabled'] as const;
const TYPES = ['stdio', 'http', 'sse', 'streamable-http', 'streamableHttp'];

/** A name other clients allow but ours does not (dots, spaces, `__`, too long) made valid. */
export function sanitizeName(name: string): string {
  let n = name
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/_{2,}/g, '_')
    .replace(/^[_-]+|[_]+$/g, '');
  if (n.length > 32) n = n.slice(0, 32).replace(/_+$/, '');
  return n || 'server';
}

/** VS Code `${input:id}` has no meaning here; it becomes an environment reference the user can set. */
function inputToEnv(value: string, notes: string[]): string {
  return value.replace(/\$\{input:([^}]+)\}/g, (_m, id: string) => {
    const env = id.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    notes.push(`\${input:${id}} became \${env:${env}} (set ${env} in the daemon's environment)`);
    return `\${env:${env}}`;
  });
}

function convertEntry(raw: Record<string, unknown>, notes: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KEPT) if (raw[k] !== undefined) out[k] = raw[k];
  if (raw.serverUrl !== undefined && raw.url === undefined) {
    out.url = raw.serverUrl;
    notes.push('"serverUrl" (Windsurf) became "url"');
  }
  if (typeof raw.type === 'string') {
    if (TYPES.includes(raw.type)) out.type = raw.type;
    else notes.push(`dropped "type": ${JSON.stringify(raw.type)} (not a type mcp-warden knows)`);
  }
  const dropped = Object.keys(raw).filter((k) => !(KEPT as readonly string[]).includes(k) && k !== 'serverUrl' && k !== 'type');
  if (dropped.length > 0)
    notes.push(
      `dropped ${dropped.map((k) => `"${k}"`).join(', ')}${dropped.includes('envFile') ? ' (copy the envFile variables into "env")' : ''}`,
    );
  for (const key of ['env', 'headers'] as const) {
    const rec = out[key];
    if (isObject(rec))
      out[key] = Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, typeof v === 'string' ? inputToEnv(v, notes) : v]));
  }
  if (Array.isArray(out.args)) out.args = out.args.map((a: unknown) => (typeof a === 'string' ? inputToEnv(a, notes) : a));
  if (typeof out.url === 'string') out.url = inputToEnv(out.url, notes);
  return out;
}

/**
 * Reads every server list of a client's config document: top-level `mcpServers` (Claude Desktop,
 * Cursor, Windsurf, Claude Code), `servers` (VS Code's mcp.json, with `type` and `inputs`) and Claude
 * Code's per-project `projects[path].mcpServers`. `prefix` goes before every name.
 */
export function extractServers(doc: unknown, prefix = ''): Extracted {
  const result: Extracted = { layouts: [], servers: [], problems: [] };
  if (!isObject(doc)) {
    result.problems.push('$: expected a JSON object');
    return result;
  }
  const lists: { source: string; list: unknown }[] = [];
  if (doc.mcpServers !== undefined) {
    result.layouts.push('mcpServers');
    lists.push({ source: 'mcpServers', list: doc.mcpServers });
  }
  if (doc.servers !== undefined) {
    result.layouts.push('servers');
    lists.push({ source: 'servers', list: doc.servers });
  }
  if (isObject(doc.projects)) {
    let any = false;
    for (const [project, p] of Object.entries(doc.projects)) {
      if (isObject(p) && isObject(p.mcpServers) && Object.keys(p.mcpServers).length > 0) {
        any = true;
        lists.push({ source: `projects[${JSON.stringify(project)}].mcpServers`, list: p.mcpServers });
      }
    }
    if (any) result.layouts.push('projects');
  }
  if (Array.isArray(doc.inputs) && doc.inputs.length > 0) {
    // Noted on the servers that use them (inputToEnv); listed here so nothing is silent.
    result.problems.push(
      `inputs: ${doc.inputs.length} VS Code input(s) are prompts mcp-warden cannot show; their references become \${env:…}`,
    );
  }
  const byName = new Map<string, FoundServer>();
  for (const { source, list } of lists) {
    if (!isObject(list)) {
      result.problems.push(`${source}: expected an object of servers`);
      continue;
    }
    for (const [originalName, raw] of Object.entries(list)) {
      const at = `${source}.${/^[A-Za-z0-9_-]+$/.test(originalName) ? originalName : JSON.stringify(originalName)}`;
      if (!isObject(raw)) {
        result.problems.push(`${at}: expected an object`);
        continue;
      }
      const notes: string[] = [];
      const entry = convertEntry(raw, notes);
      const sane = sanitizeName(originalName);
      if (sane !== originalName) notes.push(`renamed from ${JSON.stringify(originalName)} (server names allow A-Z a-z 0-9 _ -)`);
      const name = prefix + sane;
      const bad = validateServerName(name);
      if (bad) {
        result.problems.push(`${at}: the name ${JSON.stringify(name)} is not usable: ${bad}`);
        continue;
      }
      const seen = byName.get(name);
      if (seen) {
        if (JSON.stringify(seen.entry) !== JSON.stringify(entry)) {
          result.problems.push(`${at}: conflicts with ${seen.source} (same name "${name}", different entry); only the first is imported`);
        }
        continue;
      }
      const found = { name, originalName, source: at, entry, notes };
      byName.set(name, found);
      result.servers.push(found);
    }
  }
  return result;
}

/** What `connect` writes into a client's file: where, and the entry. */
export function connectEntry(
  client: ClientId,
  target: { kind: 'stdio'; command: string; args: string[] } | { kind: 'http'; url: string },
): { listKey: 'mcpServers' | 'servers'; entry: Record<string, unknown> } {
  const listKey = client === 'vscode' ? 'servers' : 'mcpServers';
  if (target.kind === 'stdio') {
    const base = { command: target.command, args: target.args };
    return { listKey, entry: client === 'vscode' || client === 'claude-code' ? { type: 'stdio', ...base } : base };
  }
  switch (client) {
    case 'windsurf':
      return { listKey, entry: { serverUrl: target.url } };
    case 'cursor':
      return { listKey, entry: { url: target.url } };
    default:
      return { listKey, entry: { type: 'http', url: target.url } };
  }
}

/** Whether the client's config file can point at an HTTP endpoint (Claude Desktop's only takes commands). */
export function clientSupportsHttp(client: ClientId): boolean {
  return client !== 'claude-desktop';
}
