/**
 * The daemon's side of the watchdog (src/watchdog/watchdog-main.ts): spawn it detached (own session
 * and process group, so a SIGKILL to the daemon or its group does not reach it), keep the write end
 * of its stdin pipe, and tell it `disarm` on a clean stop.
 *
 * If the daemon dies without disarming (SIGKILL, crash, OOM), the kernel closes the pipe and the
 * watchdog kills every process group carrying this instance's MCP_WARDEN_INSTANCE marker.
 *
 * The watchdog is a ledger resource (kind 'process-group', owner 'daemon'). Its release waits (bounded)
 * until it is the last entry in the ledger: if anything else is still held then, the daemon does not
 * disarm but closes the pipe, handing the leftovers to the watchdog, which reaps them and exits.
 * If the watchdog dies while the daemon runs, it is respawned (capped backoff) and the death is logged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, statSync, truncateSync } from 'node:fs';
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { ownerMarker, type InstanceIdentity } from '../../core/instance-identity.js';
import { DISARM_MESSAGE, ENV_WATCHDOG, READY_MESSAGE } from '../../watchdog/watchdog-main.js';
import { processTable } from './current-table.js';
import type { ProcessTableKind } from './process-table.js';
import { DEFAULT_SETTINGS } from '../../core/settings.js';
import { watchdogBundlePath } from '../../core/package-root.js';

export {} from '../../watchdog/watchdog-main.js';

/** Ledger owner of the watchdog entry. */
const WATCHDOG_LEDGER_OWNER = 'daemon';

export interface WatchdogOptions {
  identity: InstanceIdentity;
  logger: Logger;
  ledger: ResourceLedger;
  /** The watchdog's own log (JSON lines, appended; truncated at start when over 1 MiB). Default: none. */
  logFile?: string;
  /** Watchdog: wait after SIGTERM before SIGKILL. Default 500 ms. */
  termGraceMs?: number;
  /** Watchdog: give up reaping after this long. Default 5000 ms. */
  deadlineMs?: number;
  /** How long the ledger release waits for the other entries to settle before handing them over. Default 3000 ms. */
  settleWaitMs?: number;
  /** How long to wait for the watchdog to report `ready`. Default 5000 ms. */
  readyTimeoutMs?: number;
  /** The watchdog's process table (it does not inherit MCP_WARDEN_PROCESS_TABLE). Default: this process's kind. */
  processTable?: ProcessTableKind;
  processTableTimeoutMs?: number;
  /** The data dir's group marks (adapters/process/group-marks.ts), read where environments are not. */
  marksDir?: string;
}

export interface WatchdogHandle {
  /** pid of the current watchdog process (-1 while it is being respawned or after it exited). */
  readonly pid: number;
  /**
   * Clean shutdown: write `disarm`, close the pipe, wait for the watchdog to exit. If the ledger still
   * holds anything besides the watchdog, the pipe is closed without `disarm` instead, so the watchdog
   * reaps what is left. Idempotent; never rejects.
   */
  disarm(): Promise<void>;
  /**
   * Runs `task` once, right after the watchdog was told to go (disarm, or the pipe closed for a
   * hand-over), while the daemon waits ~10 ms for that process to exit: the daemon's own last work can
   * overlap the wait. At once when that moment has passed or there is no watchdog to wait for.
   */
  whileExiting(task: () => void): void;
}

const LOG_FILE_MAX_BYTES = 1024 * 1024;
const RESPAWN_INITIAL_MS = 500;
const RESPAWN_MAX_MS = 30_000;

/** The bundled watchdog, whichever build the daemon runs from: it is on the start-up path (no server starts before it is armed). */
function watchdogScriptPath(): string {
  return watchdogBundlePath();
}

/**
 * The daemon's environment minus every MCP_WARDEN_* marker and Node debugging plumbing, plus the
 * watchdog marker. Also minus NODE_EXTRA_CA_CERTS when the engine is reached over a unix socket (the
 * watchdog then opens no TLS connection at all): Node 20 parses that file at every start, ~100 ms of
 * CPU with a system CA bundle, and no upstream starts before the watchdog is armed.
 */
function watchdogEnv(identity: InstanceIdentity): Record<string, string> {
  const env: Record<string, string> = {};
  const dockerHost = process.env['DOCKER_HOST'];
  const tlsPossible = dockerHost !== undefined && dockerHost !== '' && !dockerHost.startsWith('unix://');
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('MCP_WARDEN_')) continue;
    if (k === 'NODE_OPTIONS' || k === 'NODE_TEST_CONTEXT' || k === 'NODE_CHANNEL_FD') continue;
    if (k === 'NODE_EXTRA_CA_CERTS' && !tlsPossible) continue;
    env[k] = v;
  }
  env[ENV_WATCHDOG] = ownerMarker(identity);
  return env;
}

function openLog(path: string | undefined): number | 'ignore' {
  if (!path) return 'ignore';
  try {
    try {
      if (statSync(path).size > LOG_FILE_MAX_BYTES) truncateSync(path, 0);
    } catch {
      // missing: created below
    }
    return openSync(path, 'a', 0o600);
  } catch {
    return 'ignore';
  }
}

function unrefStream(s: unknown): void {
  (s as { unref?: () => void } | null)?.unref?.();
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  hasExited: () => boolean;
}

export async function startWatchdog(opts: WatchdogOptions): Promise<WatchdogHandle> {
  const { identity, ledger } = opts;
  const log = opts.logger.child({ component: 'watchdog' });
  const termGraceMs = opts.termGraceMs ?? 500;
  const deadlineMs = opts.deadlineMs ?? 5_000;
  const settleWaitMs = opts.settleWaitMs ?? 3_000;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 5_000;
  const script = watchdogScriptPath();
  const args = [
    script,
    '--term-grace-ms',
    String(termGraceMs),
    '--deadline-ms',
    String(deadlineMs),
    '--process-table',
    opts.processTable ?? processTable().kind,
    '--process-table-timeout-ms',
    String(opts.processTableTimeoutMs ?? DEFAULT_SETTINGS.processTableTimeoutMs),
    ...(opts.marksDir ? ['--marks-dir', opts.marksDir] : []),
  ];

  let current: Running | undefined;
  let closing = false;
  let respawnTimer: NodeJS.Timeout | undefined;
  let respawnAttempt = 0;
  let entry: LedgerHandle | undefined;
  const facts: Record<string, string | number> = { pid: -1 };

  const launch = async (): Promise<Running> => {
    const logFd = openLog(opts.logFile);
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, {
        detached: true,
        stdio: ['pipe', 'pipe', logFd],
        env: watchdogEnv(identity),
        windowsHide: true,
      });
    } finally {
      if (typeof logFd === 'number') closeSync(logFd);
    }
    let exited = false;
    const exitedP = new Promise<void>((resolve) => {
      child.once('exit', () => {
        exited = true;
        resolve();
      });
      child.once('error', () => {
        if (child.pid === undefined) {
          exited = true;
          resolve();
        }
      });
    });
    child.stdin?.on('error', (err) => log.debug({ err: err.message }, 'watchdog pipe error'));
    child.stdout?.on('error', () => undefined);

    const ready = await new Promise<boolean>((resolve) => {
      let text = '';
      const timer = setTimeout(() => done(false), readyTimeoutMs);
      const onData = (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (text.split('\n').includes(READY_MESSAGE)) done(true);
      };
      const onEnd = () => done(false);
      function done(ok: boolean) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onEnd);
        child.off('error', onEnd);
        resolve(ok);
      }
      child.stdout?.on('data', onData);
      child.once('exit', onEnd);
      child.once('error', onEnd);
    });
    child.stdout?.destroy();
    if (!ready || child.pid === undefined) {
      if (child.pid !== undefined && !exited) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      child.stdin?.destroy();
      await Promise.race([exitedP, new Promise((r) => setTimeout(r, 1_000))]);
      const why = exited
        ? `exited (code ${child.exitCode ?? child.signalCode}) before it was ready`
        : `was not ready within ${readyTimeoutMs} ms`;
      throw new WardenError(ErrorCodes.INTERNAL, `the watchdog (${script}) ${why}; see its log`);
    }
    // The daemon must be able to exit while the watchdog runs: the pipe and the child are not event-loop holders.
    child.unref();
    unrefStream(child.stdin);
    const running: Running = { child, exited: exitedP, hasExited: () => exited };
    child.once('exit', (code, signal) => onExit(running, code, signal));
    return running;
  };

  /** Make `r` the current watchdog; if it already died meanwhile, treat that like any unexpected exit. */
  const adopt = (r: Running) => {
    current = r;
    facts.pid = r.child.pid!;
    if (r.hasExited()) onExit(r, r.child.exitCode, r.child.signalCode);
  };

  const onExit = (r: Running, code: number | null, signal: NodeJS.Signals | null) => {
    if (current !== r) return;
    if (closing) return;
    current = undefined;
    facts.pid = -1;
    r.child.stdin?.destroy();
    respawnAttempt++;
    const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_INITIAL_MS * 2 ** (respawnAttempt - 1));
    log.error({ watchdogPid: r.child.pid, code, signal, respawnInMs: delay }, 'watchdog exited unexpectedly; respawning it');
    scheduleRespawn(delay);
  };

  const scheduleRespawn = (delay: number) => {
    if (closing || respawnTimer) return;
    respawnTimer = setTimeout(() => {
      respawnTimer = undefined;
      if (closing) return;
      launch().then(
        (r) => {
          if (closing) {
            // disarm() ran meanwhile: this one is not needed (or gets the leftovers).
            try {
              if (others().length === 0) r.child.stdin?.write(DISARM_MESSAGE + '\n');
              r.child.stdin?.end();
            } catch {
              // it exits on EOF either way
            }
            return;
          }
          log.warn({ watchdogPid: r.child.pid }, 'watchdog respawned');
          respawnAttempt = 0;
          adopt(r);
        },
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'watchdog respawn failed');
          respawnAttempt++;
          scheduleRespawn(Math.min(RESPAWN_MAX_MS, RESPAWN_INITIAL_MS * 2 ** (respawnAttempt - 1)));
        },
      );
    }, delay);
    respawnTimer.unref();
  };

  const others = () => ledger.all().filter((e) => e.id !== entry?.id);

  /** Tasks for the wait for the watchdog's exit (whileExiting); undefined once they ran. */
  let exitTasks: Array<() => void> | undefined = [];
  const runExitTasks = () => {
    const tasks = exitTasks ?? [];
    exitTasks = undefined;
    for (const task of tasks) {
      try {
        task();
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'a task during the watchdog exit failed');
      }
    }
  };

  let shutdownRun: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    closing = true;
    if (respawnTimer) clearTimeout(respawnTimer);
    respawnTimer = undefined;
    shutdownRun ??= (async () => {
      const r = current;
      if (!r || r.hasExited()) {
        const leftovers = others();
        if (leftovers.length > 0) {
          log.error({ leftovers: leftovers.map((e) => e.description) }, 'no watchdog to hand the leftovers to; the next start reaps them');
        }
        facts.pid = -1;
        entry?.settle();
        runExitTasks();
        return;
      }
      // Keep the event loop alive until the watchdog has exited (it was unref'ed while armed).
      r.child.ref();
      const leftovers = others();
      const handOver = leftovers.length > 0;
      const t0 = Date.now();
      try {
        if (handOver) {
          log.warn(
            { watchdogPid: r.child.pid, leftovers: leftovers.map((e) => e.description) },
            'resources still held at disarm: closing the pipe without disarming so the watchdog reaps them',
          );
        } else {
          r.child.stdin?.write(DISARM_MESSAGE + '\n');
        }
        r.child.stdin?.end();
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'writing to the watchdog failed');
      }
      runExitTasks();
      const waitMs = handOver ? deadlineMs + 2_000 : 3_000;
      let waitTimer: NodeJS.Timeout | undefined;
      const timer = new Promise<'timeout'>((res) => (waitTimer = setTimeout(() => res('timeout'), waitMs)));
      const outcome = await Promise.race([r.exited.then(() => 'exited' as const), timer]);
      clearTimeout(waitTimer);
      if (outcome === 'timeout') {
        log.error({ watchdogPid: r.child.pid }, 'watchdog did not exit; killing it');
        try {
          process.kill(-r.child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
        await Promise.race([r.exited, new Promise((res) => setTimeout(res, 1_000))]);
      }
      log.info(
        { watchdogPid: r.child.pid, handedOver: handOver, ms: Date.now() - t0, exitCode: r.child.exitCode },
        handOver ? 'watchdog reaped and exited' : 'watchdog disarmed',
      );
      facts.pid = -1;
      entry?.settle();
    })();
    return shutdownRun;
  };

  /** Resolves when the ledger holds nothing but the watchdog, or after `ms`. */
  const waitAlone = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      if (others().length === 0) return resolve();
      const timer = setTimeout(finish, ms);
      const poll = setInterval(() => {
        if (others().length === 0) finish();
      }, 50);
      const unsubscribe = ledger.subscribe(() => {
        if (others().length === 0) queueMicrotask(finish);
      });
      let done = false;
      function finish() {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        unsubscribe();
        resolve();
      }
    });

  const first = await launch();
  entry = ledger.acquire(WATCHDOG_LEDGER_OWNER, {
    kind: 'process-group',
    description: `watchdog of instance ${identity.instanceId}`,
    facts,
    release: async () => {
      await waitAlone(settleWaitMs);
      await shutdown();
    },
    isGone: () => shutdownRun !== undefined && (current === undefined || current.hasExited()),
  });
  log.info({ watchdogPid: first.child.pid, instanceId: identity.instanceId }, 'watchdog armed');
  adopt(first);

  return {
    get pid() {
      return current && !current.hasExited() ? current.child.pid! : -1;
    },
    disarm: () => shutdown().catch(() => undefined),
    whileExiting: (task) => {
      if (exitTasks) exitTasks.push(task);
      else task();
    },
  };
}
