/**
 * `mcp-warden servers …`: manage the servers of the running daemon over its control channel (/ws).
 * The daemon is found through `<data-dir>/daemon.json` (its URL and pid) and `<data-dir>/token`.
 * Every change goes through the daemon, which validates it, persists it to the config file
 * atomically and applies it; this command never writes the config file itself.
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { locateDaemon } from './daemon-locator.js';
import { connectControl, controlUrlOf, ControlRequestError, type ControlClient } from '../control/control-client.js';
import type { CommandName } from '../control/protocol.js';
import type { ServerView } from '../daemon/server-view.js';
import { defaultDataDir } from '../core/defaults.js';

/** Exit codes of `mcp-warden servers` (0, 2 and 70 as everywhere else in the CLI). */
export const serversExitCodes = {
  ok: 0,
  /** The daemon refused or failed the command; its E_* code is printed. */
  failed: 1,
  usage: 2,
  /** No daemon is running for the data dir (or it cannot be reached). */
  noDaemon: 7,
  internal: 70,
} as const;

export const SERVERS_HELP = `Usage: mcp-warden servers <subcommand> [options]

Manages the servers of the running daemon (through its control channel). Changes are validated by
the daemon, written to its config file atomically (other entries and keys stay untouched) and
applied at once.

Subcommands:
  list                            the configured servers with state, tool count and pid (the default)
  add NAME -- COMMAND [ARG...]    add a local (stdio) server and start it
  add NAME --json-entry JSON      add a server from an entry as written in the config file
  remove NAME                     stop the server and delete its entry
  enable NAME                     persist "disabled": false and start the server
  disable NAME                    persist "disabled": true and stop the server (the entry is kept)
  restart NAME                    stop and start the server again (also leaves a crash-loop halt)
  approve NAME                    show the server's tools (and what changed since the last
                                  approval), then approve exactly those: refused with
                                  E_TOOLS_MISMATCH if they change in between
  quarantine NAME                 persist "quarantined": true and hide its tools (it keeps running)
  tools NAME                      the tools the server lists, with descriptions and input schemas
                                  (also while it is quarantined)

Options:
  --data-dir DIR     data directory of the daemon (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --json             print the daemon's answer as JSON on stdout
  -h, --help         show this help

Options of add:
  --env KEY=VALUE    environment variable for the server (repeatable)
  --cwd DIR          working directory of the server (made absolute here)
  --quarantined      start it quarantined: its tools stay hidden until "approve"
  --disabled         only record the entry; do not start it
  --trusted          start the server trusted; without it a new server starts quarantined
                     (settings.quarantineNewServers) until approved with 'servers approve NAME'

Exit codes: 0 done; 1 the daemon refused the command (its E_* code is printed); 2 usage error;
7 no daemon is running for the data dir.
`;

class UsageError extends Error {}
export class NoDaemonError extends Error {}

const SUBCOMMANDS = ['list', 'add', 'remove', 'enable', 'disable', 'restart', 'approve', 'quarantine', 'tools'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

const NAME_COMMANDS: Record<Exclude<Subcommand, 'list' | 'add'>, CommandName> = {
  remove: 'server.remove',
  enable: 'server.enable',
  disable: 'server.disable',
  restart: 'server.restart',
  approve: 'server.approve',
  quarantine: 'server.quarantine',
  tools: 'server.tools',
};

interface Invocation {
  sub: Subcommand;
  dataDir: string;
  json: boolean;
  command: CommandName;
  args: Record<string, unknown>;
}

function parseInvocation(argv: string[]): Invocation | 'help' {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    tokens: true,
    options: {
      'data-dir': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      env: { type: 'string', multiple: true },
      cwd: { type: 'string' },
      quarantined: { type: 'boolean' },
      disabled: { type: 'boolean' },
      trusted: { type: 'boolean' },
      'json-entry': { type: 'string' },
    },
  });
  if (values.help) return 'help';
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  const before = terminator
    ? tokens.filter((t) => t.kind === 'positional' && t.index < terminator.index).map((t) => (t as { value: string }).value)
    : positionals;
  const after = terminator ? argv.slice(terminator.index + 1) : [];
  const [subRaw = 'list', name, ...extra] = before;
  if (!(SUBCOMMANDS as readonly string[]).includes(subRaw)) {
    throw new UsageError(`unknown subcommand "${subRaw}"; expected one of ${SUBCOMMANDS.join(', ')}`);
  }
  const sub = subRaw as Subcommand;
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  const json = values.json ?? false;
  const addOnly = ['env', 'cwd', 'quarantined', 'disabled', 'trusted', 'json-entry'] as const;
  if (sub !== 'add') {
    for (const k of addOnly) if (values[k] !== undefined) throw new UsageError(`--${k} only applies to "servers add"`);
    if (terminator) throw new UsageError(`"--" only applies to "servers add"`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);

  if (sub === 'list') {
    if (name !== undefined) throw new UsageError(`"servers list" takes no server name`);
    return { sub, dataDir, json, command: 'server.list', args: {} };
  }
  if (name === undefined) throw new UsageError(`"servers ${sub}" needs a server name`);
  if (sub !== 'add') return { sub, dataDir, json, command: NAME_COMMANDS[sub], args: { name } };

  let entry: Record<string, unknown>;
  if (values['json-entry'] !== undefined) {
    if (terminator) throw new UsageError('give either --json-entry or "-- COMMAND ARGS...", not both');
    for (const k of ['env', 'cwd'] as const) {
      if (values[k] !== undefined) throw new UsageError(`--${k} cannot be combined with --json-entry (put it into the entry)`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(values['json-entry']);
    } catch (err) {
      throw new UsageError(`--json-entry: not valid JSON (${(err as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new UsageError('--json-entry: expected a JSON object such as {"command":"npx","args":["-y","pkg"]}');
    }
    entry = parsed as Record<string, unknown>;
  } else {
    if (!terminator || after.length === 0) {
      throw new UsageError('"servers add NAME" needs "-- COMMAND [ARG...]" or --json-entry JSON');
    }
    entry = { command: after[0], args: after.slice(1) };
    if (values.env) {
      const env: Record<string, string> = {};
      for (const kv of values.env) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new UsageError(`--env: expected KEY=VALUE, got "${kv.length > 40 ? kv.slice(0, 40) + '…' : kv}"`);
        env[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      entry.env = env;
    }
    if (values.cwd !== undefined) entry.cwd = resolve(values.cwd);
  }
  if (values.quarantined) entry.quarantined = true;
  if (values.disabled) entry.disabled = true;
  const args: Record<string, unknown> = { name, entry };
  if (values.trusted) args.trusted = true;
  return { sub, dataDir, json, command: 'server.add', args };
}

/** Finds the running daemon of `dataDir` and connects to its control channel. */
export async function connectToDaemon(dataDir: string): Promise<ControlClient> {
  const found = await locateDaemon(dataDir);
  switch (found.kind) {
    case 'none':
      throw new NoDaemonError(`no daemon is running for ${dataDir}; start one with: mcp-warden serve --data-dir ${dataDir}`);
    case 'stale':
      throw new NoDaemonError(`no daemon is running for ${dataDir} (daemon.json names pid ${found.info.pid}, which is gone)`);
    case 'corrupt':
      throw new NoDaemonError(`no daemon is running for ${dataDir} (${found.file}: ${found.reason})`);
    case 'starting':
      throw new NoDaemonError(`the daemon of ${dataDir} (pid ${found.holder.pid}) is still starting; try again in a moment`);
    case 'running':
      break;
  }
  const info = found.info;
  let token: string;
  try {
    token = (await readFile(join(dataDir, 'token'), 'utf8')).trim();
  } catch (err) {
    throw new NoDaemonError(
      `cannot read the control token ${join(dataDir, 'token')}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  try {
    return await connectControl({ url: controlUrlOf(info.url), token });
  } catch (err) {
    if (err instanceof ControlRequestError && (err.code === 'E_NO_DAEMON' || err.code === 'E_CONNECTION' || err.code === 'E_TIMEOUT')) {
      throw new NoDaemonError(`cannot reach the daemon at ${info.url} (pid ${info.pid}): ${err.message}`);
    }
    throw err;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function oneLine(s: string, max = 100): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function renderHuman(inv: Invocation, result: unknown): string {
  const name = String(inv.args.name ?? '');
  const r = (result ?? {}) as Record<string, unknown>;
  switch (inv.sub) {
    case 'list': {
      const servers = (r.servers ?? []) as ServerView[];
      if (servers.length === 0) return 'no servers configured (add one with: mcp-warden servers add NAME -- COMMAND ARGS...)\n';
      const rows = [['NAME', 'STATE', 'TOOLS', 'PID', 'QUARANTINED', 'LAST ERROR']];
      for (const s of servers) {
        rows.push([
          s.name,
          s.state,
          String(s.toolCount),
          s.pid === null ? '-' : String(s.pid),
          s.quarantined ? 'yes' : 'no',
          s.lastError ? `${s.lastError.code}: ${oneLine(s.lastError.message, 60)}` : '-',
        ]);
      }
      return table(rows);
    }
    case 'add': {
      const warnings = (r.warnings ?? []) as { path: string; message: string }[];
      const lines = [`added ${name}${r.started ? ' (starting)' : ' (disabled: not started)'}`];
      for (const w of warnings) lines.push(`  note: ${w.path}: ${w.message}`);
      return lines.join('\n') + '\n';
    }
    case 'remove':
      return `removed ${name}\n`;
    case 'enable':
      return r.changed ? `enabled ${name} (starting)\n` : `${name} was already enabled\n`;
    case 'disable':
      return r.changed ? `disabled ${name} (stopping)\n` : `${name} was already disabled\n`;
    case 'restart':
      return `restarting ${name}\n`;
    case 'approve':
      return r.changed ? `approved ${name}: its tools are exposed\n` : `${name} was not quarantined\n`;
    case 'quarantine':
      return r.changed ? `quarantined ${name}: its tools are hidden\n` : `${name} was already quarantined\n`;
    case 'tools': {
      const tools = (r.tools ?? []) as { name: string; description?: string; inputSchema?: unknown }[];
      const lines = [
        `${name} (${String(r.state)}${r.quarantined ? ', quarantined' : ''}): ${tools.length} tool${tools.length === 1 ? '' : 's'}`,
      ];
      if (tools.length === 0 && r.state !== 'running' && r.state !== 'quarantined') {
        lines.push('  (the server is not up; its tools are known once it runs)');
      }
      const changes = r.changes as { summary: string }[] | null | undefined;
      if (changes && changes.length > 0) {
        lines.push(`  changed since the last approval (${String(r.approvedAt)}):`);
        for (const c of changes) lines.push(`    ${c.summary}`);
      }
      const filter = r.filter as { allow?: string[]; deny?: string[]; pinned?: string[] } | null | undefined;
      const hidden = new Set((r.hidden ?? []) as string[]);
      if (filter) {
        const parts = (['allow', 'deny', 'pinned'] as const).flatMap((k) => (filter[k] ? [`${k} ${JSON.stringify(filter[k])}`] : []));
        lines.push(`  tools filter: ${parts.join(', ') || '(empty)'}; ${hidden.size} of ${tools.length} hidden from clients`);
      }
      for (const t of tools) {
        const mark = hidden.has(t.name) ? ' [filtered: not exposed]' : '';
        lines.push(`  ${t.name}${mark}${t.description ? ` - ${oneLine(t.description)}` : ''}`);
        // Everything a client sees, in full (a clipped headline could hide the poisoned part):
        // description, title, annotations, _meta, icons, schemas.
        for (const [k, v] of Object.entries(t)) {
          if (k === 'name' || v === undefined || (k === 'description' && oneLine(String(v)) === v)) continue;
          lines.push(`      ${k === 'inputSchema' ? 'input' : k === 'outputSchema' ? 'output' : k}: ${JSON.stringify(v)}`);
        }
      }
      // Prompts and resource templates are approved with the tools: shown in full too.
      for (const [label, key, list] of [
        ['prompt', 'name', r.prompts],
        ['resource template', 'uriTemplate', r.resourceTemplates],
      ] as const) {
        for (const item of Array.isArray(list) ? (list as Record<string, unknown>[]) : []) {
          lines.push(`  ${label} ${String(item[key])}`);
          for (const [k, v] of Object.entries(item)) if (k !== key && v !== undefined) lines.push(`      ${k}: ${JSON.stringify(v)}`);
        }
      }
      const flags = r.flags as { tool: string; kind: string; path: string; detail: string }[] | undefined;
      if (flags && flags.length > 0) {
        lines.push(`  flags (read these before approving):`);
        for (const f of flags) lines.push(`    ${f.tool} ${f.path}: ${f.kind}: ${f.detail}`);
      }
      if (typeof r.fingerprint === 'string') lines.push(`  fingerprint: ${r.fingerprint}`);
      return lines.join('\n') + '\n';
    }
  }
}

/** `mcp-warden servers …`; resolves to the exit code. Never throws. */
export async function runServers(argv: string[]): Promise<number> {
  let inv: Invocation | 'help';
  try {
    inv = parseInvocation(argv);
  } catch (err) {
    process.stderr.write(`mcp-warden servers: ${(err as Error).message}\nsee: mcp-warden servers --help\n`);
    return serversExitCodes.usage;
  }
  if (inv === 'help') {
    process.stdout.write(SERVERS_HELP);
    return serversExitCodes.ok;
  }
  const json = inv.json;
  const fail = (code: string, message: string, exit: number): number => {
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code, message } }, null, 2) + '\n');
    process.stderr.write(`mcp-warden servers: ${code}: ${message}\n`);
    return exit;
  };
  let client: ControlClient | undefined;
  try {
    client = await connectToDaemon(inv.dataDir);
    if (inv.sub === 'approve') {
      // One step, still bound to what was shown: fetch and print the tools, then approve that
      // fingerprint; if the server swapped a tool in between the daemon refuses (docs/quarantine.md).
      const shown = (await client.request('server.tools', { name: inv.args.name })) as Record<string, unknown>;
      if (!json) process.stdout.write(renderHuman({ ...inv, sub: 'tools' }, shown));
      const result = await client.request(inv.command, { name: inv.args.name, fingerprint: shown.fingerprint });
      process.stdout.write(
        json ? JSON.stringify({ ok: true, result: { ...(result as object), shown } }, null, 2) + '\n' : renderHuman(inv, result),
      );
      return serversExitCodes.ok;
    }
    const result = await client.request(inv.command, inv.args);
    process.stdout.write(json ? JSON.stringify({ ok: true, result }, null, 2) + '\n' : renderHuman(inv, result));
    return serversExitCodes.ok;
  } catch (err) {
    if (err instanceof NoDaemonError) return fail('E_NO_DAEMON', err.message, serversExitCodes.noDaemon);
    if (err instanceof ControlRequestError) {
      let message = err.message;
      if (err.issues?.length && !message.includes(err.issues[0]!.message)) {
        message += '\n' + err.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n');
      }
      return fail(err.code, message, serversExitCodes.failed);
    }
    return fail('E_INTERNAL', err instanceof Error ? err.message : String(err), serversExitCodes.internal);
  } finally {
    await client?.close().catch(() => undefined);
  }
}
