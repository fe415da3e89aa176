/**
 * `mcp-warden calls [--json] [--server S] [--limit N] [--follow]`: the tool calls the daemon answered
 * (src/adapters/observability/call-log.ts). With a running daemon they come from its control channel
 * (`calls.list`, then `calls` events for --follow); without one, from the call log files in the data
 * dir (--follow then needs the daemon).
 */
import { resolve } from 'node:path';
import { parseCommand } from './parse-command.js';
import { locateDaemon } from './daemon-locator.js';
import { connectToDaemon } from './servers-command.js';
import { defaultDataDir } from '../core/defaults.js';
import { readCallLogFiles } from '../adapters/observability/call-log-files.js';
import type { CallEntry } from '../adapters/observability/call-record.js';
import { ControlRequestError } from '../control/control-client.js';

const DEFAULT_LIMIT = 50;

export const CALLS_HELP = `Usage: mcp-warden calls [--json] [--server NAME] [--limit N] [--follow] [--data-dir DIR]

Lists the tool calls (tools/call) the daemon answered, oldest first: when each arrived, the server and
the upstream's own tool name, the client's MCP session, the duration, the outcome and the error code.

Outcomes: ok; tool_error (the tool answered with isError: true); error (the call failed: the E_* code
says why, E_UPSTREAM_ERROR for an upstream's JSON-RPC error); timeout (E_UPSTREAM_TIMEOUT); cancelled
(the client cancelled it or its session closed).

With a running daemon the calls come from its memory (the last settings.callLogMemoryEntries, default
1000) over the control channel; without one, from <data-dir>/calls.jsonl and its rotated files. Calls
reach both at most settings.callLogFlushMs (default 1 s) after they end. Arguments and results are
only in the files, and only when settings.callLogPayloads asks (docs/observability.md).

Options:
  --json           print a JSON array of {time, server, tool, session, durationMs, outcome, errorCode},
                   newest last (with --follow: one such object per line, the list first, then
                   each call as it arrives)
  --server NAME    only calls routed to this server
  --limit N        at most the N most recent calls (default ${DEFAULT_LIMIT})
  --follow         after the list, print new calls as they arrive until interrupted (needs the daemon)
  --data-dir DIR   data directory of the daemon (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  -h, --help       show this help

Exit codes: 0 done; 1 the daemon refused (e.g. E_NOT_AVAILABLE: settings.callLog is "off"); 2 usage error;
7 --follow without a running daemon, or the daemon went away.
`;

const exit = { ok: 0, failed: 1, usage: 2, noDaemon: 7 } as const;

function formatLine(c: CallEntry): string {
  const dur = c.durationMs >= 1000 ? `${(c.durationMs / 1000).toFixed(2)} s` : `${c.durationMs.toFixed(1)} ms`;
  const err = c.errorCode ?? '';
  return `${c.time}  ${c.server || '-'}  ${c.tool}  ${dur}  ${c.outcome}${err ? `  ${err}` : ''}  session ${c.session ? c.session.slice(0, 8) : '-'}\n`;
}

export async function runCalls(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    'calls',
    argv,
    {
      json: { type: 'boolean' },
      server: { type: 'string' },
      limit: { type: 'string' },
      follow: { type: 'boolean' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    CALLS_HELP,
  );
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) {
    process.stderr.write(
      `mcp-warden calls: --limit: expected a whole number from 1 to 100000, got "${values.limit}"\nsee mcp-warden calls --help\n`,
    );
    return exit.usage;
  }
  const server = values.server;
  if (server !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(server)) {
    process.stderr.write(`mcp-warden calls: --server: not a server name: "${server.slice(0, 40)}"\nsee mcp-warden calls --help\n`);
    return exit.usage;
  }
  const json = values.json ?? false;
  const follow = values.follow ?? false;
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());

  const found = await locateDaemon(dataDir);
  if (found.kind !== 'running') {
    if (follow) {
      process.stderr.write(`mcp-warden calls: --follow needs a running daemon, and none runs for ${dataDir}\n`);
      return exit.noDaemon;
    }
    const calls = await readCallLogFiles(dataDir, { server, limit });
    process.stdout.write(json ? JSON.stringify(calls, null, 2) + '\n' : calls.map(formatLine).join(''));
    return exit.ok;
  }

  let client;
  try {
    client = await connectToDaemon(dataDir);
  } catch (err) {
    process.stderr.write(`mcp-warden calls: ${(err as Error).message}\n`);
    return exit.noDaemon;
  }
  try {
    const args: Record<string, unknown> = { limit };
    if (server !== undefined) args.server = server;
    // Subscribed (every connection gets events) before asking: nothing falls between list and follow.
    const queued: CallEntry[] = [];
    let printLive = false;
    const emit = (c: CallEntry) => process.stdout.write(json ? JSON.stringify(c) + '\n' : formatLine(c));
    const off = client.onMessage((msg) => {
      if (!follow || msg.type !== 'event' || msg.event.type !== 'calls') return;
      for (const c of msg.event.calls) {
        if (server !== undefined && c.server !== server) continue;
        if (printLive) emit(c);
        else queued.push(c);
      }
    });
    const { calls } = await client.request<{ calls: CallEntry[] }>('calls.list', args);
    if (!follow) {
      off();
      process.stdout.write(json ? JSON.stringify(calls, null, 2) + '\n' : calls.map(formatLine).join(''));
      return exit.ok;
    }
    for (const c of calls) emit(c);
    // Events that arrived while the list was in flight may already be in it: skip those (same time, session, tool).
    const seen = new Set(calls.map((c) => `${c.time}\n${c.session}\n${c.server}\n${c.tool}\n${c.durationMs}`));
    for (const c of queued) if (!seen.has(`${c.time}\n${c.session}\n${c.server}\n${c.tool}\n${c.durationMs}`)) emit(c);
    printLive = true;
    let interrupted = false;
    const onSignal = () => {
      interrupted = true;
      void client?.close();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    await client.closed;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (interrupted) return exit.ok;
    process.stderr.write('mcp-warden calls: the daemon closed the connection\n');
    return exit.noDaemon;
  } catch (err) {
    if (err instanceof ControlRequestError) {
      process.stderr.write(`mcp-warden calls: ${err.code}: ${err.message}\n`);
      return exit.failed;
    }
    throw err;
  } finally {
    await client.close();
  }
}
