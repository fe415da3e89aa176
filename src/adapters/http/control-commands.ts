/**
 * The control channel's commands: each is one call into the daemon's server commands (the server
 * registry, src/daemon/server-registry.ts, where policy, persistence and the actors live); this file
 * only dispatches and turns coded errors into `{ok:false, error}` results. See docs/control-protocol.md.
 */
import { compileToolFilter, type ToolFilterSpec } from '../../core/tool-filter.js';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import type { ServerEntry } from '../../config/config-types.js';
import { ControlErrorCodes, type CommandArgs, type CommandName, type ControlErrorInfo } from '../../control/protocol.js';
import { REDACTED, redactArgs, redactSecrets, redactUrl } from '../log/logger.js';

/** A server as the channel shows it (the daemon's ServerView has more; the channel needs these). */
interface ControlServerView {
  name: string;
  state: string;
  quarantined: boolean;
}

/**
 * The server commands, as the daemon's server registry (src/daemon/server-registry.ts) implements
 * them: policy, persistence and the actors live there; the channel only calls and reports. Each
 * throws a WardenError with a stable code (and `detail.issues` for an invalid entry).
 */
interface ServerCommands {
  entry(name: string): ServerEntry | undefined;
  toolView(name: string): {
    tools: unknown[];
    prompts?: unknown[];
    resourceTemplates?: unknown[];
    fingerprint: string;
    changes: unknown[] | null;
    approvedAt: string | null;
    flags: unknown[];
  };
  add(name: string, rawEntry: unknown, opts: { trusted?: boolean }): Promise<{ entry: ServerEntry }>;
  remove(name: string): Promise<unknown>;
  setEnabled(name: string, enabled: boolean): Promise<unknown>;
  restart(name: string): unknown;
  approve(name: string, fingerprint: string): Promise<unknown>;
  quarantine(name: string): Promise<unknown>;
  /** Resolves when every command under way has finished. */
  idle(): Promise<void>;
}

/** What the channel needs from the daemon. */
export interface ControlBackend {
  health(): Record<string, unknown>;
  servers(): ControlServerView[];
  /** Every server change, removals included; each event object is sent as `{type:'event', event}`. */
  subscribe(listener: (event: object) => void): () => void;
  stop(reason: string): Promise<void>;
  machineDefinition(): Record<string, unknown>;
  commands: ServerCommands;
  /** The recent tool calls (src/adapters/observability/call-log.ts); absent when the call log is off. */
  calls?: (filter: { server?: string; limit?: number }) => unknown[];
  /** OAuth logins of remote servers (adapters/remote/oauth-logins.ts); without it auth.* answer E_NOT_AVAILABLE. */
  auth?: AuthCommands;
}

/** `auth.login`, `auth.wait`, `auth.logout` (adapters/remote/oauth-logins.ts). No token ever crosses the channel. */
interface AuthCommands {
  login(name: string): Promise<unknown>;
  wait(name: string): Promise<unknown>;
  logout(name: string): Promise<unknown>;
}

export interface CommandContext {
  backend: ControlBackend;
  logger: Logger;
  /** The `reap` command (the startup reaper); without it `reap` answers E_NOT_AVAILABLE. */
  reap?: (opts: { dryRun: boolean }) => Promise<unknown>;
}

export type CommandOutcome = { ok: true; result: unknown } | { ok: false; error: ControlErrorInfo };

/** A config entry safe to show: env values, header values and URL secrets replaced. */
export function redactEntry(entry: ServerEntry): Record<string, unknown> {
  const out: Record<string, unknown> = { ...entry };
  out.env = Object.fromEntries(Object.keys(entry.env ?? {}).map((k) => [k, REDACTED]));
  if (entry.headers) out.headers = Object.fromEntries(Object.keys(entry.headers).map((k) => [k, REDACTED]));
  if (entry.url) out.url = redactUrl(entry.url);
  // `--api-key=…`, `--token …`, `password=…`, URL credentials (logger.ts redactArgs / redactSecrets).
  if (entry.args) out.args = redactArgs(entry.args);
  if (typeof entry.command === 'string') out.command = redactSecrets(entry.command);
  return out;
}

export async function executeCommand(command: CommandName, args: unknown, ctx: CommandContext): Promise<CommandOutcome> {
  try {
    return { ok: true, result: await runCommand(command, args, ctx) };
  } catch (err) {
    if (err instanceof WardenError) {
      const issues = err.detail?.issues;
      return { ok: false, error: issues ? { code: err.code, message: err.message, issues } : { code: err.code, message: err.message } };
    }
    ctx.logger.error({ err, command }, 'control command failed unexpectedly');
    return { ok: false, error: { code: ControlErrorCodes.INTERNAL, message: err instanceof Error ? err.message : String(err) } };
  }
}

/** Transport only: each command is one call into the daemon's server commands. */
async function runCommand(command: CommandName, rawArgs: unknown, ctx: CommandContext): Promise<unknown> {
  const { backend: daemon } = ctx;
  const commands = daemon.commands;
  switch (command) {
    case 'server.list':
      return { servers: daemon.servers() };

    case 'server.add': {
      const args = rawArgs as CommandArgs<'server.add'>;
      const added = await commands.add(args.name, args.entry, { trusted: args.trusted ?? false });
      return { ...added, entry: redactEntry(added.entry) };
    }

    case 'server.remove':
      return commands.remove((rawArgs as CommandArgs<'server.remove'>).name);

    case 'server.enable':
    case 'server.disable':
      return commands.setEnabled((rawArgs as CommandArgs<'server.enable'>).name, command === 'server.enable');

    case 'server.approve': {
      const { name, fingerprint } = rawArgs as CommandArgs<'server.approve'>;
      return commands.approve(name, fingerprint);
    }

    case 'server.quarantine':
      return commands.quarantine((rawArgs as CommandArgs<'server.quarantine'>).name);

    case 'server.restart':
      return commands.restart((rawArgs as CommandArgs<'server.restart'>).name);

    case 'server.tools': {
      const { name } = rawArgs as CommandArgs<'server.tools'>;
      const entry = commands.entry(name);
      if (!entry) throw new WardenError(ErrorCodes.UNKNOWN_SERVER, `no server named "${name}"`);
      const view = daemon.servers().find((s) => s.name === name);
      const tools = commands.toolView(name);
      return {
        name,
        state: view?.state ?? (entry.disabled ? 'disabled' : 'stopped'),
        quarantined: view?.quarantined ?? entry.quarantined,
        tools: tools.tools,
        prompts: tools.prompts ?? [],
        resourceTemplates: tools.resourceTemplates ?? [],
        fingerprint: tools.fingerprint,
        changes: tools.changes,
        approvedAt: tools.approvedAt,
        flags: tools.flags,
        // The entry's "tools" filter (docs/config.md#tool-filters) and the listed tools it keeps from clients.
        filter: entry.tools ?? null,
        hidden: hiddenTools(entry.tools, tools.tools),
      };
    }

    case 'reap': {
      if (!ctx.reap) throw new WardenError(ErrorCodes.NOT_AVAILABLE, 'this daemon has no startup reaper wired in');
      const { dryRun } = rawArgs as CommandArgs<'reap'>;
      return ctx.reap({ dryRun: dryRun ?? false });
    }

    case 'shutdown':
      return { stopping: true };

    case 'calls.list': {
      if (!daemon.calls) throw new WardenError(ErrorCodes.NOT_AVAILABLE, 'the call log is off (settings.callLog)');
      const { server, limit } = rawArgs as CommandArgs<'calls.list'>;
      return { calls: daemon.calls({ server, limit }) };
    }
    case 'auth.login':
    case 'auth.wait':
    case 'auth.logout': {
      if (!daemon.auth) throw new WardenError(ErrorCodes.NOT_AVAILABLE, 'this daemon has no OAuth support wired in');
      const { name } = rawArgs as CommandArgs<'auth.login'>;
      if (command === 'auth.login') return daemon.auth.login(name);
      if (command === 'auth.wait') return daemon.auth.wait(name);
      return daemon.auth.logout(name);
    }
  }
}

/** Names of `tools` the filter does not expose (listed by the server, never offered to clients). */
function hiddenTools(spec: ToolFilterSpec | undefined, tools: unknown[]): string[] {
  if (!spec) return [];
  const filter = compileToolFilter(spec);
  const out: string[] = [];
  for (const t of tools) {
    const name = (t as { name?: unknown }).name;
    if (typeof name === 'string' && !filter.exposes(name)) out.push(name);
  }
  return out;
}
