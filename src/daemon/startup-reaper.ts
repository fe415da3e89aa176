/**
 * The startup reaper: finds what dead mcp-warden daemons left behind and kills it.
 *
 * A process is an orphan when its environment carries MCP_WARDEN_OWNER=<pid>:<startTime>:<instanceId>
 * (every upstream and their descendants) or MCP_WARDEN_WATCHDOG=<same> (a watchdog), and that owner
 * is not alive: no process with that pid, or one with a different start time (pid reuse). Processes
 * of a live owner (daemons of other data dirs run side by side) and of `selfInstanceId` are never
 * touched, nor is this process or any of its ancestors. Processes carrying only MCP_WARDEN_INSTANCE
 * (no owner to judge) are ignored.
 *
 * Orphans' process groups are killed (SIGTERM → short wait → SIGKILL, re-scanned until gone or a
 * deadline) with the same group-safety rules as the watchdog (see adapters/marker-kill.ts).
 *
 * Run by `serve` before any upstream starts, and on demand by `mcp-warden reap [--dry-run]`.
 * The report is meant to grow: the Docker adapter adds `containers` (labelled
 * `mcp-warden.instance=<instanceId>` whose owner is dead) to the same shape.
 */
import type { Logger } from 'pino';
import { listProcesses, readEnviron, type ProcInfo } from '../adapters/proc-scan.js';
import { describeCommand, killMarked, protectedPids, readCmdline } from '../adapters/marker-kill.js';
import { ENV_OWNER, ENV_SERVER, isOwnerAlive, parseOwnerMarker } from './instance-identity.js';
import { ENV_WATCHDOG } from '../watchdog/watchdog-main.js';

export interface ReapOptions {
  logger: Logger;
  /** Only report; signal nothing. */
  dryRun: boolean;
  /** The calling daemon's own instance: never reaped, whatever its owner check says. */
  selfInstanceId?: string;
  /** Wait after SIGTERM before SIGKILL. Default 500 ms. */
  termGraceMs?: number;
  /** Give up (reporting survivors) after this long. Default 5000 ms. */
  deadlineMs?: number;
}

export interface ReapedProcess {
  pid: number;
  pgid: number;
  ppid: number;
  /** `upstream`: an upstream server or one of its descendants; `watchdog`: an orphaned watchdog. */
  role: 'upstream' | 'watchdog';
  instanceId: string;
  /** The server name from MCP_WARDEN_SERVER, when present. */
  server: string | null;
  ownerPid: number;
  ownerStartTime: number;
  /** Command line (secret-looking arguments redacted, capped). */
  command: string;
  /** Verifiably gone after the kill (always false in a dry run). */
  killed: boolean;
}

export interface ReapedInstance {
  instanceId: string;
  ownerPid: number;
  ownerStartTime: number;
  pids: number[];
  servers: string[];
}

/** Reserved for the Docker adapter: containers labelled with a dead instance. */
export interface ReapedContainer {
  id: string;
  name: string;
  instanceId: string;
  removed: boolean;
}

export interface ReapReport {
  dryRun: boolean;
  startedAt: string;
  durationMs: number;
  /** One entry per dead instance that left anything behind. */
  instances: ReapedInstance[];
  processes: ReapedProcess[];
  /** Filled by the Docker adapter; empty until then. */
  containers: ReapedContainer[];
  /** How many of `processes` are verifiably gone. */
  killed: number;
  /** Pids still alive at the deadline (signalled group members without a marker included). */
  survivors: number[];
  escalation: 'none' | 'sigterm' | 'sigkill';
  errors: string[];
}

interface Orphan {
  proc: ProcInfo;
  role: 'upstream' | 'watchdog';
  marker: string;
  instanceId: string;
  ownerPid: number;
  ownerStartTime: number;
  server: string | null;
}

/** Marker strings → alive? A dead owner never comes back; a live one is re-checked per scan. */
function classify(
  table: ProcInfo[],
  selfInstanceId: string | undefined,
  guard: Set<number>,
  deadCache: Set<string>,
  onlyMarkers?: Set<string>,
): Orphan[] {
  const alive = new Map<string, boolean>();
  const isDeadMarker = (value: string): ReturnType<typeof parseOwnerMarker> | undefined => {
    if (onlyMarkers && !onlyMarkers.has(value)) return undefined;
    const owner = parseOwnerMarker(value);
    if (!owner || owner.instanceId === selfInstanceId) return undefined;
    if (deadCache.has(value)) return owner;
    let a = alive.get(value);
    if (a === undefined) {
      a = isOwnerAlive(owner);
      alive.set(value, a);
      if (!a) deadCache.add(value);
    }
    return a ? undefined : owner;
  };
  const out: Orphan[] = [];
  for (const p of table) {
    if (p.state === 'Z' || p.state === 'X' || guard.has(p.pid)) continue;
    const env = readEnviron(p.pid);
    if (!env) continue;
    for (const [name, role] of [
      [ENV_OWNER, 'upstream'],
      [ENV_WATCHDOG, 'watchdog'],
    ] as const) {
      const value = env[name];
      if (value === undefined) continue;
      const owner = isDeadMarker(value);
      if (!owner) continue;
      const serverKey = env[ENV_SERVER];
      const server =
        role === 'upstream' && serverKey?.startsWith(`${owner.instanceId}/`) ? serverKey.slice(owner.instanceId.length + 1) : null;
      out.push({ proc: p, role, marker: value, instanceId: owner.instanceId, ownerPid: owner.pid, ownerStartTime: owner.startTime, server });
      break;
    }
  }
  return out;
}

export async function reapOrphans(opts: ReapOptions): Promise<ReapReport> {
  const t0 = Date.now();
  const { logger, dryRun, selfInstanceId } = opts;
  const guard = protectedPids();
  const deadCache = new Set<string>();
  const errors: string[] = [];

  let found: Orphan[] = [];
  try {
    found = classify(listProcesses(), selfInstanceId, guard, deadCache);
  } catch (err) {
    errors.push(`scan failed: ${(err as Error).message}`);
  }

  const processes: ReapedProcess[] = found.map((o) => ({
    pid: o.proc.pid,
    pgid: o.proc.pgid,
    ppid: o.proc.ppid,
    role: o.role,
    instanceId: o.instanceId,
    server: o.server,
    ownerPid: o.ownerPid,
    ownerStartTime: o.ownerStartTime,
    command: describeCommand(readCmdline(o.proc.pid), o.proc.comm),
    killed: false,
  }));
  const byInstance = new Map<string, ReapedInstance>();
  for (const p of processes) {
    const inst = byInstance.get(p.instanceId) ?? {
      instanceId: p.instanceId,
      ownerPid: p.ownerPid,
      ownerStartTime: p.ownerStartTime,
      pids: [],
      servers: [],
    };
    inst.pids.push(p.pid);
    if (p.server && !inst.servers.includes(p.server)) inst.servers.push(p.server);
    byInstance.set(p.instanceId, inst);
  }

  let escalation: ReapReport['escalation'] = 'none';
  let survivors: number[] = [];
  if (!dryRun && found.length > 0) {
    const markers = new Set(found.map((o) => o.marker));
    const result = await killMarked({
      match: (table) => classify(table, selfInstanceId, guard, deadCache, markers).map((o) => o.proc),
      termGraceMs: opts.termGraceMs ?? 500,
      deadlineMs: opts.deadlineMs ?? 5_000,
    });
    escalation = result.escalation;
    survivors = result.survivors.map((p) => p.pid);
    errors.push(...result.errors);
    const alive = new Set(survivors);
    for (const p of processes) p.killed = !alive.has(p.pid);
  }

  const report: ReapReport = {
    dryRun,
    startedAt: new Date(t0).toISOString(),
    durationMs: Date.now() - t0,
    instances: [...byInstance.values()],
    processes,
    containers: [],
    killed: processes.filter((p) => p.killed).length,
    survivors,
    escalation,
    errors,
  };

  for (const inst of report.instances) {
    const procs = processes
      .filter((p) => p.instanceId === inst.instanceId)
      .map((p) => ({ pid: p.pid, pgid: p.pgid, role: p.role, server: p.server, command: p.command, killed: p.killed }));
    logger.warn(
      { instanceId: inst.instanceId, ownerPid: inst.ownerPid, servers: inst.servers, processes: procs, dryRun },
      `${dryRun ? 'found' : 'reaped'} ${procs.length} orphaned process(es) of dead instance ${inst.instanceId} (daemon pid ${inst.ownerPid})`,
    );
  }
  if (report.processes.length === 0) {
    logger.info({ durationMs: report.durationMs }, 'no orphaned processes of dead daemons');
  } else {
    const level = survivors.length > 0 ? 'error' : 'warn';
    logger[level](
      {
        instances: report.instances.length,
        processes: report.processes.length,
        killed: report.killed,
        survivors,
        escalation,
        durationMs: report.durationMs,
        dryRun,
      },
      dryRun
        ? `found ${report.processes.length} orphaned process(es) of ${report.instances.length} dead instance(s) (dry run)`
        : `reaped ${report.killed} of ${report.processes.length} orphaned process(es) of ${report.instances.length} dead instance(s) in ${report.durationMs} ms`,
    );
  }
  for (const e of errors) logger.warn({ err: e }, 'reaper error');
  return report;
}
