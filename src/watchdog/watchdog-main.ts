/**
 * The watchdog: a tiny detached process that outlives a SIGKILLed daemon just long enough to end
 * everything the daemon started.
 *
 * Launched by src/adapters/process/watchdog.ts as `node watchdog-main.js [--term-grace-ms N] [--deadline-ms N]
 * [--process-table proc|portable] [--process-table-timeout-ms N] [--marks-dir DIR]`
 * in its own session (setsid), with:
 *   env MCP_WARDEN_WATCHDOG=<daemonPid>:<daemonStartTime>:<instanceId>   (whom it guards; never
 *       MCP_WARDEN_INSTANCE, or it would reap itself; the startup reaper finds orphaned watchdogs by it)
 *   stdin   the read end of a pipe whose only write end the daemon holds
 *   stdout  a pipe on which it writes `ready\n` once it watches, then closes
 *   stderr  the watchdog log file (JSON lines), or /dev/null
 *
 * Protocol: the daemon writes `disarm\n` and closes the pipe after it released everything (clean
 * stop). EOF without `disarm` means the daemon died (SIGKILL, crash, OOM): run every reap step, then
 * exit. Backstop: every ~500 ms the owner's identity (pid + start time) is checked; if the owner is
 * gone the watchdog acts as on EOF. SIGTERM/SIGINT/SIGHUP do not end a watchdog whose owner is alive
 * (a service manager signalling the whole cgroup must not strip the daemon of its guard while the
 * daemon is still shutting down); with the owner gone they trigger the reap.
 *
 * Exit codes: 0 disarmed or reaped completely, 1 survivors remained at the deadline, 2 bad invocation.
 */
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { ProcessEntry } from '../adapters/process/process-table.js';
import { describeCommand, killMarked } from '../adapters/process/marker-kill.js';
import { processTable, useProcessTable } from '../adapters/process/current-table.js';
import { pruneGroupMarks } from '../adapters/process/group-marks.js';
import { ENV_INSTANCE, isOwnerAlive, parseOwnerMarker, type InstanceIdentity } from '../core/instance-identity.js';

export const ENV_WATCHDOG = 'MCP_WARDEN_WATCHDOG';
export const DISARM_MESSAGE = 'disarm';
export const READY_MESSAGE = 'ready';
export const OWNER_POLL_MS = 500;

/** What a reap step may use besides the instance id. */
export interface ReapStepContext {
  /** The dead daemon's identity. */
  owner: InstanceIdentity;
  /** Absolute time (ms since epoch) by which the step should be done; the watchdog exits after it regardless. */
  deadline: number;
  termGraceMs: number;
  /** The data dir's group marks, if the daemon named them. */
  marksDir?: string;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

/**
 * One thing to clean up for a dead instance. Steps run concurrently; each must swallow its own
 * errors (a rejection is logged and counts as a failed step). A function of only `instanceId` fits.
 */
export type ReapStep = (instanceId: string, ctx: ReapStepContext) => Promise<void>;

/** SIGTERM → wait → SIGKILL every process group whose members carry MCP_WARDEN_INSTANCE=<instanceId>. */
export const reapProcessesStep: ReapStep = async (instanceId, ctx) => {
  const result = await killMarked({
    match: (table: ProcessEntry[]) => table.filter((p) => p.markers?.[ENV_INSTANCE] === instanceId),
    termGraceMs: ctx.termGraceMs,
    deadlineMs: Math.max(0, ctx.deadline - Date.now()),
    marksDir: ctx.marksDir,
  });
  if (result.scanFailed) {
    ctx.log('error', 'the process table cannot be read; nothing reaped', { instanceId, errors: result.errors });
    throw new Error(result.errors.join('; '));
  }
  const seen = result.seen.map((p) => ({ pid: p.pid, pgid: p.pgid, command: describeCommand(p.argv, p.comm) }));
  if (result.escalation === 'none') {
    ctx.log('info', 'no processes of the instance left', { instanceId });
  } else if (result.survivors.length === 0) {
    ctx.log('warn', `reaped ${result.seen.length} process(es) of the dead daemon`, {
      instanceId,
      escalation: result.escalation,
      durationMs: result.durationMs,
      processes: seen,
    });
  } else {
    ctx.log('error', `${result.survivors.length} process(es) survived the watchdog`, {
      instanceId,
      survivors: result.survivors.map((p) => p.pid),
      errors: result.errors,
    });
    throw new Error(`${result.survivors.length} survivor(s)`);
  }
  try {
    pruneGroupMarks(
      ctx.marksDir,
      () => processTable().list(),
      (m) => m.markers[ENV_INSTANCE] === instanceId,
    );
  } catch {
    // marks of empty groups left: the next serve's reaper prunes them
  }
  if (result.errors.length) ctx.log('warn', 'some signals failed', { errors: result.errors });
};

/** A pino-shaped logger over the watchdog's own log (for the Docker adapter's helpers). */
function stepLogger(ctx: ReapStepContext): unknown {
  const at =
    (level: 'info' | 'warn' | 'error') =>
    (fields: unknown, msg?: string): void => {
      if (typeof fields === 'string') ctx.log(level, fields);
      else ctx.log(level, msg ?? '', (fields ?? {}) as Record<string, unknown>);
    };
  const logger = { info: at('info'), warn: at('warn'), error: at('error'), debug: () => undefined, child: () => logger };
  return logger;
}

/**
 * Force-removes every container labelled `mcp-warden.instance=<instanceId>` (docs/docker.md). The
 * Docker adapter is imported only here, when a reap happens, so an idle watchdog stays small. No
 * engine (the normal case on a machine without Docker) is logged at info level and is not a failure;
 * a container that could not be verifiably removed fails the step (logged with its cause).
 */
export const reapContainersStep: ReapStep = async (instanceId, ctx) => {
  const t0 = Date.now();
  const [{ removeInstanceContainers }, { engineAddress }] = await Promise.all([
    import('../adapters/docker/managed-containers.js'),
    import('../adapters/docker/docker-engine.js'),
  ]);
  const timeoutMs = Math.max(1, Math.min(10_000, ctx.deadline - Date.now()));
  const r = await removeInstanceContainers(instanceId, {
    timeoutMs,
    logger: stepLogger(ctx) as NonNullable<Parameters<typeof removeInstanceContainers>[1]>['logger'],
  });
  const engine = engineAddress();
  if (r.engineUnavailable) {
    ctx.log('info', 'no Docker engine; no containers to remove', { instanceId, engine, reason: r.error });
    return;
  }
  if (r.error !== undefined) {
    ctx.log('error', 'could not list the instance containers', { instanceId, engine, err: r.error });
    throw new Error(`containers of instance ${instanceId} not listed: ${r.error}`);
  }
  if (r.found.length === 0) {
    ctx.log('info', 'no containers of the instance left', { instanceId, engine });
    return;
  }
  const containers = r.found.map((c, i) => ({
    id: c.id.slice(0, 12),
    name: c.name,
    server: c.server,
    state: c.state,
    removed: r.results[i]?.removed ?? false,
    ...(r.results[i]?.error ? { err: r.results[i]!.error } : {}),
  }));
  const failed = containers.filter((c) => !c.removed);
  if (failed.length === 0) {
    ctx.log('warn', `removed ${containers.length} container(s) of the dead daemon`, {
      instanceId,
      engine,
      durationMs: Date.now() - t0,
      containers,
    });
    return;
  }
  ctx.log('error', `${failed.length} container(s) of the dead daemon could not be removed`, { instanceId, engine, containers });
  throw new Error(`${failed.length} container(s) not removed: ${failed.map((c) => `${c.name}: ${c.err ?? 'still present'}`).join('; ')}`);
};

/** The reap steps, in no particular order (they run concurrently). */
export const reapSteps: ReapStep[] = [reapProcessesStep, reapContainersStep];

function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  const levels = { info: 30, warn: 40, error: 50 } as const;
  const line = JSON.stringify({ level: levels[level], time: Date.now(), pid: process.pid, component: 'watchdog', ...fields, msg }) + '\n';
  try {
    writeSync(2, line);
  } catch {
    // no log destination: nothing to do
  }
}

function numberArg(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
}

function stringArg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function runWatchdog(argv: string[]): Promise<number> {
  const marker = process.env[ENV_WATCHDOG];
  const owner = marker ? parseOwnerMarker(marker) : undefined;
  if (!owner) {
    log('error', `${ENV_WATCHDOG} missing or malformed; refusing to run`, { value: marker ?? null });
    return 2;
  }
  if (process.env[ENV_INSTANCE] !== undefined) {
    log('error', `${ENV_INSTANCE} is set in the watchdog's own environment; refusing to run (it would reap itself)`);
    return 2;
  }
  const termGraceMs = numberArg(argv, '--term-grace-ms', 500);
  const deadlineMs = numberArg(argv, '--deadline-ms', 5_000);
  const marksDir = stringArg(argv, '--marks-dir');
  const tableChoice = stringArg(argv, '--process-table') ?? 'auto';
  if (tableChoice !== 'auto' && tableChoice !== 'proc' && tableChoice !== 'portable') {
    log('error', `--process-table must be auto, proc or portable, not ${JSON.stringify(tableChoice)}`);
    return 2;
  }
  try {
    useProcessTable({ choice: tableChoice, timeoutMs: numberArg(argv, '--process-table-timeout-ms', 5_000) });
  } catch (err) {
    log('error', `no process table: ${(err as Error).message}`);
    return 2;
  }
  const { instanceId } = owner;

  return new Promise<number>((resolve) => {
    let disarmed = false;
    let acting = false;
    let buffered = '';
    let poll: NodeJS.Timeout | undefined;

    const finish = (code: number) => {
      if (poll) clearInterval(poll);
      process.stdin.removeAllListeners();
      process.stdin.destroy();
      resolve(code);
    };

    const act = (why: string) => {
      if (acting) return;
      acting = true;
      if (disarmed) {
        log('info', 'disarmed; exiting', { instanceId, why });
        finish(0);
        return;
      }
      const t0 = Date.now();
      const deadline = t0 + deadlineMs;
      log('warn', `daemon gone without disarming (${why}); reaping instance ${instanceId}`, { instanceId, ownerPid: owner.pid });
      const ctx: ReapStepContext = { owner, deadline, termGraceMs, marksDir, log };
      void Promise.allSettled(reapSteps.map((step) => step(instanceId, ctx))).then((results) => {
        const failed = results.filter((r) => r.status === 'rejected').length;
        for (const r of results) {
          if (r.status === 'rejected') log('error', 'reap step failed', { err: String((r.reason as Error)?.message ?? r.reason) });
        }
        log(failed ? 'error' : 'info', 'watchdog done', { instanceId, durationMs: Date.now() - t0, failedSteps: failed });
        finish(failed ? 1 : 0);
      });
    };

    process.stdin.on('data', (chunk: Buffer) => {
      buffered = (buffered + chunk.toString('utf8')).slice(-256);
      if (buffered.split('\n').includes(DISARM_MESSAGE)) disarmed = true;
    });
    process.stdin.on('end', () => act('pipe closed'));
    process.stdin.on('error', () => act('pipe error'));
    process.stdin.on('close', () => act('pipe closed'));

    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.on(sig, () => {
        if (isOwnerAlive(owner)) log('warn', `ignoring ${sig}: the daemon is alive and will disarm the watchdog`, { instanceId });
        else act(sig);
      });
    }

    poll = setInterval(() => {
      if (!isOwnerAlive(owner)) act('owner no longer alive');
    }, OWNER_POLL_MS);

    // The owner may already be gone (it died while we started).
    if (!isOwnerAlive(owner)) {
      act('owner not alive at start');
      return;
    }
    try {
      writeSync(1, READY_MESSAGE + '\n');
    } catch {
      // the daemon stopped listening; the pipe/owner checks decide what happens
    }
    try {
      process.stdout.destroy();
    } catch {
      // ignore
    }
    log('info', 'watching', { instanceId, ownerPid: owner.pid, termGraceMs, deadlineMs, processTable: processTable().kind });
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  runWatchdog(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      log('error', 'watchdog crashed', { err: String((err as Error)?.stack ?? err) });
      process.exit(1);
    },
  );
}
