/**
 * `mcp-warden status [--data-dir DIR] [--json]`: is a daemon running for the data dir, and how are its
 * servers? Reads daemon.json, verifies the process (pid + start time), then asks its /healthz.
 */
import { get } from 'node:http';
import { join, resolve } from 'node:path';
import { readFileNoFollow } from '../adapters/store/no-follow.js';
import type { DaemonInfo } from '../adapters/store/daemon-file.js';
import { locateDaemon } from './daemon-locator.js';
import { parseCommand } from './parse-command.js';
import { defaultDataDir } from '../core/defaults.js';

export const STATUS_EXIT = { running: 0, notRunning: 1, usage: 2, unreachable: 3 } as const;

/** How long /healthz may take to answer. */
export const HEALTH_TIMEOUT_MS = 2_000;

export const STATUS_HELP = `Usage: mcp-warden status [--data-dir DIR] [--json]

Shows whether a daemon runs for the data dir and the state of its servers. Reads
<data-dir>/daemon.json, checks that the process it names still runs (same pid and process start
time: a reused pid does not count), then asks the daemon's /healthz (${HEALTH_TIMEOUT_MS / 1000} s timeout).

Options:
  --data-dir DIR  data directory (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --json          print one JSON object on stdout:
                  { running, state, stale?, dataDir, daemon?, servers?, error? }
                  state is running | unreachable | starting | stale | corrupt | not-running
  -h, --help      show this help

Exit codes:
  0  running, and /healthz answered
  1  not running: no daemon.json; or a stale one left by a daemon that is gone (reported as such);
     or a corrupt one (the message names the file) while nobody holds the data-dir lock
  2  usage error
  3  a daemon process is there but could not be asked: /healthz failed or timed out, or the
     daemon is still starting up (it holds the lock but has not written daemon.json yet)
`;

interface HealthServer {
  name: string;
  state: string;
  quarantined?: boolean;
  toolCount?: number;
  pid?: number | null;
  lastError?: { code: string; message: string } | null;
  warnings?: string[];
}

interface Health {
  status?: string;
  version?: string;
  instanceId?: string;
  pid?: number;
  uptimeMs?: number;
  servers?: HealthServer[];
  config?: StatusConfig;
}

/** The daemon's view of its config file (hot reload): ok, or why the last edit was not applied. */
export interface StatusConfig {
  ok: boolean;
  path: string;
  error?: { code: string; message: string };
}

export interface StatusServer {
  name: string;
  state: string;
  quarantined: boolean;
  tools: number;
  pid: number | null;
  lastError: { code: string; message: string } | null;
  /** Container reach beyond the hardened defaults (privileged, host mounts…), when any. */
  warnings?: string[];
}

export interface StatusReport {
  running: boolean;
  state: 'running' | 'unreachable' | 'starting' | 'stale' | 'corrupt' | 'not-running';
  stale?: boolean;
  dataDir: string;
  daemon?: {
    pid: number;
    instanceId?: string;
    url?: string;
    mcpUrl?: string;
    version?: string;
    startedAt?: string;
    uptimeMs?: number;
    status?: string;
  };
  servers?: StatusServer[];
  config?: StatusConfig;
  error?: string;
}

/** GET `<url>/healthz` as JSON, within timeoutMs (no keep-alive: the CLI exits right after). */
function fetchHealth(url: string, timeoutMs: number, token?: string): Promise<Health> {
  // On an --allow-remote bind /healthz needs the token (docs/mcp-endpoint.md); the CLI's user can read it.
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  return new Promise((resolvePromise, reject) => {
    const req = get(`${url}/healthz`, { agent: false, timeout: timeoutMs, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode ?? '?'}`));
        try {
          resolvePromise(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Health);
        } catch (err) {
          reject(new Error(`not JSON: ${(err as Error).message}`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code ?? err.message)));
  });
}

function daemonOf(info: DaemonInfo) {
  return {
    pid: info.pid,
    instanceId: info.instanceId,
    url: info.url,
    mcpUrl: `${info.url}/mcp`,
    version: info.version,
    startedAt: info.startedAt,
  };
}

export async function collectStatus(dataDir: string, timeoutMs = HEALTH_TIMEOUT_MS): Promise<StatusReport> {
  const loc = await locateDaemon(dataDir);
  switch (loc.kind) {
    case 'none':
      return { running: false, state: 'not-running', dataDir };
    case 'corrupt':
      return { running: false, state: 'corrupt', dataDir, error: `${loc.file} is corrupt (${loc.reason})` };
    case 'stale':
      return { running: false, state: 'stale', stale: true, dataDir, daemon: daemonOf(loc.info) };
    case 'starting':
      return {
        running: true,
        state: 'starting',
        dataDir,
        daemon: { pid: loc.holder.pid },
        ...(loc.corrupt ? { error: `daemon.json is corrupt (${loc.corrupt})` } : {}),
      };
    case 'running': {
      const info = loc.info;
      let health: Health;
      try {
        const token = await readFileNoFollow(join(dataDir, 'token')).then(
          (t) => t.trim(),
          () => undefined,
        );
        health = await fetchHealth(info.url, timeoutMs, token);
      } catch (err) {
        return {
          running: true,
          state: 'unreachable',
          dataDir,
          daemon: daemonOf(info),
          error: `${info.url}/healthz: ${(err as Error).message}`,
        };
      }
      if (health.instanceId !== undefined && health.instanceId !== info.instanceId) {
        return {
          running: true,
          state: 'unreachable',
          dataDir,
          daemon: daemonOf(info),
          error: `${info.url} is served by another mcp-warden instance (${health.instanceId}, pid ${health.pid ?? '?'})`,
        };
      }
      return {
        running: true,
        state: 'running',
        dataDir,
        daemon: {
          ...daemonOf(info),
          version: health.version ?? info.version,
          uptimeMs: health.uptimeMs,
          status: health.status,
        },
        servers: (health.servers ?? []).map((s) => ({
          name: s.name,
          state: s.state,
          quarantined: s.quarantined ?? false,
          tools: s.toolCount ?? 0,
          pid: s.pid ?? null,
          lastError: s.lastError ? { code: s.lastError.code, message: s.lastError.message } : null,
          ...(s.warnings && s.warnings.length > 0 ? { warnings: s.warnings } : {}),
        })),
        ...(health.config ? { config: health.config } : {}),
      };
    }
  }
}

export function exitCodeOfStatus(r: StatusReport): number {
  switch (r.state) {
    case 'running':
      return STATUS_EXIT.running;
    case 'unreachable':
    case 'starting':
      return STATUS_EXIT.unreachable;
    default:
      return STATUS_EXIT.notRunning;
  }
}

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatStatus(r: StatusReport): string {
  const d = r.daemon;
  const lines: string[] = [];
  switch (r.state) {
    case 'not-running':
      lines.push(`mcp-warden is not running (data dir ${r.dataDir})`);
      break;
    case 'corrupt':
      lines.push(`mcp-warden is not running (data dir ${r.dataDir}); ${r.error}`);
      break;
    case 'stale':
      lines.push(`mcp-warden is not running (stale daemon.json from pid ${d!.pid}, started ${d!.startedAt ?? '?'}; data dir ${r.dataDir})`);
      break;
    case 'starting':
      lines.push(`mcp-warden is starting up (pid ${d!.pid}, data dir ${r.dataDir}): it holds the lock but has not written daemon.json yet`);
      if (r.error) lines.push(r.error);
      break;
    case 'unreachable':
      lines.push(`mcp-warden pid ${d!.pid} is running but does not answer (${r.error}); data dir ${r.dataDir}`);
      break;
    case 'running': {
      const up = d!.uptimeMs !== undefined ? formatDuration(d!.uptimeMs) : '?';
      const stopping = d!.status === 'stopping' ? ' (stopping)' : '';
      lines.push(`mcp-warden ${d!.version ?? '?'} is running${stopping}: pid ${d!.pid}, ${d!.mcpUrl}, up ${up}`);
      lines.push(`data dir ${r.dataDir}, instance ${d!.instanceId ?? '?'}`);
      if (r.config && !r.config.ok && r.config.error) {
        lines.push(
          `config ${r.config.path} NOT APPLIED (${r.config.error.code}); the servers below keep running as before:`,
          ...r.config.error.message.split('\n').map((l) => `  ${l}`),
        );
      }
      const servers = r.servers ?? [];
      if (servers.length === 0) {
        lines.push('no servers configured');
      } else {
        lines.push('');
        lines.push(
          ...table([
            ['SERVER', 'STATE', 'TOOLS', 'PID', 'LAST ERROR'],
            ...servers.map((s) => [
              s.name,
              s.quarantined && !s.state.includes('quarantined') ? `${s.state} (quarantined)` : s.state,
              String(s.tools),
              s.pid === null ? '-' : String(s.pid),
              s.lastError?.code ?? '-',
            ]),
          ]),
        );
        for (const s of servers) for (const w of s.warnings ?? []) lines.push(`warning: ${s.name}: ${w}`);
        // A remote server waiting for an OAuth login (docs/config.md#oauth-servers-that-answer-401).
        for (const s of servers)
          if (s.state.endsWith('needsAuth')) lines.push(`login needed: ${s.name}: run mcp-warden auth login ${s.name}`);
      }
      break;
    }
  }
  return lines.join('\n') + '\n';
}

export async function runStatus(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    'status',
    argv,
    {
      'data-dir': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    STATUS_HELP,
  );
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  const report = await collectStatus(dataDir);
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else if (report.state === 'corrupt') process.stderr.write(`mcp-warden: ${formatStatus(report)}`);
  else process.stdout.write(formatStatus(report));
  return exitCodeOfStatus(report);
}
