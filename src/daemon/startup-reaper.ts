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
 * deadline) with the same group-safety rules as the watchdog (see adapters/process/marker-kill.ts).
 *
 * Containers (docs/docker.md) follow the same liveness rule: every container labelled
 * `mcp-warden.managed=true` whose `mcp-warden.owner` label names a daemon that is not alive is
 * force-removed (adapters/docker/managed-containers.ts `reapOrphanContainers`). Selection is by label only,
 * never by name; containers of `selfInstanceId`, of a live owner, and without an owner label (or with
 * one that cannot be parsed) are never touched. No Docker engine is noted in `docker.skipped`, not an error.
 *
 * Run by `serve` before any upstream starts, and on demand by `mcp-warden reap [--dry-run]`.
 */
import type { Logger } from 'pino';
import type Docker from 'dockerode';
import { engineAddress } from '../adapters/docker/docker-engine.js';
import { reapOrphanContainers, type ReapedContainerReport } from '../adapters/docker/managed-containers.js';
import { isDead, type ProcessEntry } from '../adapters/process/process-table.js';
import { describeCommand, killMarked, markedSnapshotAsync, protectedPids } from '../adapters/process/marker-kill.js';
import { processTable } from '../adapters/process/current-table.js';
import { pruneGroupMarks } from '../adapters/process/group-marks.js';
import { ENV_OWNER, ENV_SERVER, isOwnerAlive, parseOwnerMarker } from '../core/instance-identity.js';
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
  /** The Docker engine client (default: DOCKER_HOST or the default socket). */
  docker?: Docker;
  /** Deadline of each Engine API call. Default 10000 ms. */
  dockerCallTimeoutMs?: number;
  /** Skip the container step entirely (the report then says so in `docker.skipped`). */
  skipContainers?: boolean;
  /**
   * A data dir's group marks (adapters/process/group-marks.ts): processes whose environment the
   * table cannot read get their group's markers from there; marks of dead owners' empty groups are removed.
   */
  marksDir?: string;
}

interface ReapedProcess {
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

interface ReapedInstance {
  instanceId: string;
  ownerPid: number;
  ownerStartTime: number;
  pids: number[];
  servers: string[];
}

/** A container labelled `mcp-warden.managed=true` whose owner daemon is dead (the adapter's report). */
type ReapedContainer = ReapedContainerReport;

export interface ReapReport {
  dryRun: boolean;
  startedAt: string;
  durationMs: number;
  /** One entry per dead instance that left anything behind. */
  instances: ReapedInstance[];
  processes: ReapedProcess[];
  /** Containers of dead owners (found, and unless dryRun removed). */
  containers: ReapedContainer[];
  /** The Docker engine that was asked; `skipped` says why containers were not checked (no engine). */
  docker: { engine: string; skipped?: string };
  /** How many of `processes` are verifiably gone. */
  killed: number;
  /** Pids still alive at the deadline (signalled group members without a marker included). */
  survivors: number[];
  escalation: 'none' | 'sigterm' | 'sigkill';
  errors: string[];
}

interface Orphan {
  proc: ProcessEntry;
  role: 'upstream' | 'watchdog';
  marker: string;
  instanceId: string;
  ownerPid: number;
  ownerStartTime: number;
  server: string | null;
}

/** Marker strings → alive? A dead owner never comes back; a live one is re-checked per scan. */
function classify(
  table: ProcessEntry[],
  selfInstanceId: string | undefined,
  guard: Set<number>,
  deadCache: Set<string>,
  onlyMarkers?: Set<string>,
): Orphan[] {
  const alive = new Map<string, boolean>();
  // Live owners are judged from the snapshot at hand: one ps run per scan on the portable table, not one per marker.
  const byPid = new Map(table.map((p) => [p.pid, p] as const));
  const ptable = processTable();
  const ownerAlive = (owner: NonNullable<ReturnType<typeof parseOwnerMarker>>): boolean => {
    const p = byPid.get(owner.pid);
    if (p === undefined) return isOwnerAlive(owner); // not in this (filtered) snapshot: ask once
    return !isDead(p) && (ptable.startTimeMatches(p, owner.startTime) ?? true);
  };
  const isDeadMarker = (value: string): ReturnType<typeof parseOwnerMarker> | undefined => {
    if (onlyMarkers && !onlyMarkers.has(value)) return undefined;
    const owner = parseOwnerMarker(value);
    if (!owner || owner.instanceId === selfInstanceId) return undefined;
    if (deadCache.has(value)) return owner;
    let a = alive.get(value);
    if (a === undefined) {
      a = ownerAlive(owner);
      alive.set(value, a);
      if (!a) deadCache.add(value);
    }
    return a ? undefined : owner;
  };
  const out: Orphan[] = [];
  for (const p of table) {
    if (p.state === 'Z' || p.state === 'X' || guard.has(p.pid)) continue;
    const env = p.markers;
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
      out.push({
        proc: p,
        role,
        marker: value,
        instanceId: owner.instanceId,
        ownerPid: owner.pid,
        ownerStartTime: owner.startTime,
        server,
      });
      break;
    }
  }
  return out;
}

function safeCommandOf(pid: number): string[] {
  try {
    return processTable().commandOf(pid);
  } catch {
    return [];
  }
}

export async function reapOrphans(opts: ReapOptions): Promise<ReapReport> {
  const t0 = Date.now();
  const { logger, dryRun, selfInstanceId } = opts;
  const table = processTable();
  const deadCache = new Set<string>();
  const errors: string[] = [];

  // Containers: the same owner rule, by label. Asked first so the engine's answer arrives while /proc
  // is read, and their removal runs alongside the process kill.
  const containerStep = opts.skipContainers
    ? Promise.resolve({ containers: [], errors: [], skipped: 'not checked (disabled)' } as Awaited<ReturnType<typeof reapOrphanContainers>>)
    : reapOrphanContainers({
        docker: opts.docker,
        logger,
        dryRun,
        selfInstanceId,
        isOwnerAlive: (marker) => {
          const owner = parseOwnerMarker(marker);
          return !owner || owner.instanceId === selfInstanceId || isOwnerAlive(owner);
        },
        timeoutMs: opts.dockerCallTimeoutMs ?? 10_000,
      }).catch(
        (err: unknown) =>
          ({ containers: [], errors: [`container reap failed: ${(err as Error)?.message ?? String(err)}`] }) as Awaited<
            ReturnType<typeof reapOrphanContainers>
          >,
      );

  let found: Orphan[] = [];
  let guard = new Set<number>([process.pid, 1]);
  try {
    // Asynchronous: `serve` holds its data-dir lock meanwhile and must keep refreshing it.
    const snapshot = await markedSnapshotAsync(table, opts.marksDir);
    guard = protectedPids(snapshot);
    found = classify(snapshot, selfInstanceId, guard, deadCache);
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
    command: describeCommand(safeCommandOf(o.proc.pid), o.proc.comm),
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
      match: (entries) => classify(entries, selfInstanceId, guard, deadCache, markers).map((o) => o.proc),
      termGraceMs: opts.termGraceMs ?? 500,
      deadlineMs: opts.deadlineMs ?? 5_000,
      table,
      marksDir: opts.marksDir,
    });
    escalation = result.escalation;
    survivors = result.survivors.map((p) => p.pid);
    errors.push(...result.errors);
    const alive = new Set(survivors);
    for (const p of processes) p.killed = !alive.has(p.pid);
  }

  if (!dryRun && opts.marksDir) {
    try {
      pruneGroupMarks(
        opts.marksDir,
        () => table.list(),
        (m) => {
          const owner = parseOwnerMarker(m.markers[ENV_OWNER] ?? '');
          return owner !== undefined && owner.instanceId !== selfInstanceId && !isOwnerAlive(owner);
        },
      );
    } catch (err) {
      errors.push(`pruning group marks failed: ${(err as Error).message}`);
    }
  }

  const containerResult = await containerStep;
  errors.push(...containerResult.errors);
  const containers: ReapedContainer[] = containerResult.containers;
  // A dead instance that left only containers is an instance of the report too.
  for (const c of containers) {
    const owner = parseOwnerMarker(c.owner);
    if (!owner) continue;
    const inst = byInstance.get(c.instanceId) ?? {
      instanceId: c.instanceId,
      ownerPid: owner.pid,
      ownerStartTime: owner.startTime,
      pids: [],
      servers: [],
    };
    if (c.server && !inst.servers.includes(c.server)) inst.servers.push(c.server);
    byInstance.set(c.instanceId, inst);
  }
  let engine = 'unknown';
  try {
    engine = engineAddress(opts.docker);
  } catch {
    // an unusable DOCKER_HOST: the skipped note says why
  }

  const report: ReapReport = {
    dryRun,
    startedAt: new Date(t0).toISOString(),
    durationMs: Date.now() - t0,
    instances: [...byInstance.values()],
    processes,
    containers,
    docker: { engine, ...(containerResult.skipped !== undefined ? { skipped: containerResult.skipped } : {}) },
    killed: processes.filter((p) => p.killed).length,
    survivors,
    escalation,
    errors,
  };

  for (const inst of report.instances) {
    const procs = processes
      .filter((p) => p.instanceId === inst.instanceId)
      .map((p) => ({ pid: p.pid, pgid: p.pgid, role: p.role, server: p.server, command: p.command, killed: p.killed }));
    if (procs.length > 0) {
      logger.warn(
        { instanceId: inst.instanceId, ownerPid: inst.ownerPid, servers: inst.servers, processes: procs, dryRun },
        `${dryRun ? 'found' : 'reaped'} ${procs.length} orphaned process(es) of dead instance ${inst.instanceId} (daemon pid ${inst.ownerPid})`,
      );
    }
    const ctrs = containers
      .filter((c) => c.instanceId === inst.instanceId)
      .map((c) => ({
        id: c.id.slice(0, 12),
        name: c.name,
        server: c.server,
        state: c.state,
        removed: c.removed,
        ...(c.error ? { err: c.error } : {}),
      }));
    if (ctrs.length > 0) {
      const removed = ctrs.filter((c) => c.removed).length;
      logger[!dryRun && removed < ctrs.length ? 'error' : 'warn'](
        { instanceId: inst.instanceId, ownerPid: inst.ownerPid, engine, containers: ctrs, dryRun },
        dryRun
          ? `found ${ctrs.length} orphaned container(s) of dead instance ${inst.instanceId} (daemon pid ${inst.ownerPid})`
          : `removed ${removed} of ${ctrs.length} orphaned container(s) of dead instance ${inst.instanceId} (daemon pid ${inst.ownerPid})`,
      );
    }
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
