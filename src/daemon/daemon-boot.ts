/**
 * The first half of `mcp-warden serve`, before anything of ours starts: the data dir, the process
 * table, the data-dir lock, the config, the logger, the approvals, the instance identity; then the
 * startup reaper and the watchdog, started side by side.
 *
 * Its import graph is small on purpose (no MCP SDK, no xstate, no HTTP front): `serve` runs it
 * first and loads the rest of the daemon (src/daemon/daemon.ts) while the watchdog process starts
 * on another core and the engine answers the reaper's container listing. `ready` settles once the
 * reaper is done and the watchdog is armed; no upstream starts before that (docs/guarantees.md).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ResourceLedger } from '../core/resource-ledger.js';
import { DEFAULT_SETTINGS, type Settings } from '../core/settings.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import type { WardenConfig } from '../config/config-types.js';
import { makeDefaultConfig, resolveDemoServerPath } from '../config/default-config.js';
import { ensureConfigFile, loadConfigFile, type LoadedConfig } from '../adapters/store/config-file.js';
import { createLogger } from '../adapters/log/logger.js';
import { isLoopbackHost } from '../adapters/http/request-guards.js';
import { readDaemonFile, isDaemonAlive } from '../adapters/store/daemon-file.js';
import { acquireInstanceLock, LockRelay, type InstanceLock } from '../adapters/store/instance-lock.js';
import { ensureDataDir } from '../adapters/store/data-dir.js';
import { ApprovalsStore } from '../adapters/store/approvals-store.js';
import type Docker from 'dockerode';
import { createDockerClient } from '../adapters/docker/docker-engine.js';
import { DaemonReaper } from './daemon-reaper.js';
import { newInstanceIdentity, type InstanceIdentity } from '../core/instance-identity.js';
import { reapOrphans } from './startup-reaper.js';
import { startWatchdog, type WatchdogHandle } from '../adapters/process/watchdog.js';
import { processTable, useProcessTable } from '../adapters/process/current-table.js';
import { LogTap } from '../adapters/log/log-tap.js';

/** What `startDaemon` needs of the daemon's options before anything starts (a subset of DaemonOptions). */
export interface BootOptions {
  dataDir: string;
  /** Defaults to `<dataDir>/config.json`, which is created with the embedded default if missing. */
  configPath?: string;
  listen: { host: string; port: number };
  logLevel: string;
  /** Human-readable log lines on stderr besides the JSON log file. */
  console: boolean;
  /** Bind a non-loopback address; /mcp then requires the bearer token from `<dataDir>/token`. */
  allowRemote?: boolean;
  /** Applied over the config file's settings (tests shrink timeouts). */
  settingsOverride?: Partial<Settings>;
}

/** The booted half of a daemon; `startDaemon` takes it over (and releases it if its own start fails). */
export interface DaemonBoot {
  readonly configPath: string;
  readonly config: WardenConfig;
  readonly settings: Settings;
  readonly lock: InstanceLock;
  readonly relay: LockRelay;
  readonly logger: Logger;
  readonly closeLogger: () => void;
  readonly logTap: LogTap;
  readonly approvals: ApprovalsStore;
  readonly identity: InstanceIdentity;
  readonly ledger: ResourceLedger;
  readonly reaper: DaemonReaper;
  /** One engine client for every containerised server (and the reaper), created on first use. */
  readonly docker: () => Docker;
  /**
   * Settles when the startup reap (and the retry of a previous run's pending-reap.json) is done and
   * the watchdog is armed; rejects if the watchdog cannot be started. Nothing may start before.
   */
  readonly ready: Promise<void>;
  /** The watchdog once armed (undefined before, or if it failed). */
  watchdog(): WatchdogHandle | undefined;
  /** Undo everything the boot did (partial-start cleanup): disarm the watchdog, close the logger, release the lock. */
  abort(): Promise<void>;
}

/** `<data dir>/process-groups`: the group marks (adapters/process/group-marks.ts). */
export function groupMarksDir(dataDir: string): string {
  return join(dataDir, 'process-groups');
}

/** The config file as read before the lock: its text and what it loaded to (or undefined: missing or invalid). */
interface ConfigPeek {
  text: string | undefined;
  loaded: LoadedConfig | undefined;
}

async function readTextOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * One look at the config file before the lock, for the two settings needed before it (the process
 * table, the lock timing). A missing or invalid file gives the defaults here and is reported by the
 * real load after the lock, which reuses this one when the file's text has not changed meanwhile
 * (validating a config of 500 servers costs tens of milliseconds).
 */
async function peekConfig(configPath: string): Promise<ConfigPeek> {
  const text = await readTextOrUndefined(configPath);
  if (text === undefined) return { text, loaded: undefined };
  try {
    return { text, loaded: await loadConfigFile(configPath) };
  } catch {
    return { text, loaded: undefined };
  }
}

/**
 * The process table comes first: the lock, the identity and the startup reap all read processes. A
 * portable table without ps fails the start here (E_PROCESS_TABLE_UNAVAILABLE), not at the first stop.
 */
function chooseProcessTable(settings: Settings): void {
  const table = useProcessTable({ choice: settings.processTable, timeoutMs: settings.processTableTimeoutMs });
  if (!table.get(process.pid)) {
    throw new WardenError(
      ErrorCodes.PROCESS_TABLE_UNAVAILABLE,
      `the ${table.kind} process table does not show this process (pid ${process.pid})`,
    );
  }
}

/**
 * Boots a daemon up to the point where the watchdog process is spawned and the startup reap is
 * under way; resolves then (not when they are done: see `ready`).
 */
export async function bootDaemon(opts: BootOptions): Promise<DaemonBoot> {
  await ensureDataDir(opts.dataDir);
  const peek = await peekConfig(opts.configPath ?? join(opts.dataDir, 'config.json'));
  const early: Settings = { ...(peek.loaded?.config.settings ?? DEFAULT_SETTINGS), ...opts.settingsOverride };
  chooseProcessTable(early);
  // One daemon per data dir (docs/cli.md): the lock comes first, before the config is loaded (or
  // created), the port bound or any upstream started; a loser leaves no trace. Released last by
  // stop(), or on a failed start (after the partial-start cleanup).
  const relay = new LockRelay();
  const lock = await acquireInstanceLock(opts.dataDir, {
    staleMs: early.lockStaleMs,
    updateMs: early.lockUpdateMs,
    onCompromised: relay.onCompromised,
    logger: relay.log,
  });
  try {
    return await bootLocked(opts, lock, relay, peek);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function bootLocked(opts: BootOptions, lock: InstanceLock, relay: LockRelay, peek: ConfigPeek): Promise<DaemonBoot> {
  const dataDir = opts.dataDir;
  const configPath = opts.configPath ?? join(dataDir, 'config.json');
  if (!opts.configPath) {
    await ensureConfigFile(configPath, () => makeDefaultConfig({ nodePath: process.execPath, demoServerPath: resolveDemoServerPath() }));
  }
  // The real load, now that the lock is ours (the peek's result when the text is still the same).
  const unchanged = peek.loaded !== undefined && (await readTextOrUndefined(configPath)) === peek.text;
  const loaded = unchanged ? peek.loaded! : await loadConfigFile(configPath);
  const config: WardenConfig = loaded.config;
  const settings: Settings = { ...config.settings, ...opts.settingsOverride };

  if (!isLoopbackHost(opts.listen.host) && !opts.allowRemote) {
    throw new WardenError(
      ErrorCodes.NON_LOOPBACK_REFUSED,
      `refusing to listen on non-loopback address ${opts.listen.host}; pass --allow-remote to opt in (the /mcp endpoint then requires the bearer token in ${join(dataDir, 'token')})`,
    );
  }

  // Log records for the control channel's opt-in log streams (costs nothing while nobody listens).
  const logTap = new LogTap();
  const {
    logger,
    close: closeLogger,
    file: logFile,
  } = createLogger({
    level: opts.logLevel,
    filePath: join(dataDir, 'daemon.log'),
    maxBytes: settings.logFileMaxBytes,
    maxFiles: settings.logFileCount,
    console: opts.console,
    tap: logTap,
    linesPerSecond: settings.logLinesPerSecond,
  });
  // A daemon.log symlink is refused, not followed (no-follow.ts): no start with a log going nowhere.
  const logError = logFile?.lastError;
  if (logError instanceof WardenError && logError.code === ErrorCodes.DATA_FILE_SYMLINK) {
    closeLogger();
    throw logError;
  }
  for (const w of loaded.warnings) {
    if (w.level === 'warning') logger.warn({ path: w.path, file: configPath }, w.message);
    else logger.info({ path: w.path, file: configPath }, w.message);
  }
  relay.bindLogger(logger.child({ component: 'instance-lock' }));
  // A daemon.json found now is a predecessor's (we hold the lock): overwritten once we listen.
  const previous = await readDaemonFile(dataDir);
  if (previous.kind === 'corrupt') {
    logger.warn({ file: join(dataDir, 'daemon.json'), reason: previous.reason }, 'daemon.json is corrupt; it will be overwritten');
  } else if (previous.kind === 'ok' && isDaemonAlive(previous.info)) {
    logger.warn(
      { otherPid: previous.info.pid, url: previous.info.url },
      'daemon.json names a live process that does not hold the data-dir lock; it will be overwritten',
    );
  } else if (previous.kind === 'ok') {
    logger.info({ previousPid: previous.info.pid }, 'replacing the stale daemon.json of a daemon that is gone');
  }

  const approvals = new ApprovalsStore(dataDir);
  approvals.onMarksWriteError = (err) =>
    logger.warn(
      { err, file: approvals.marksFile },
      'could not write the approved-once marks; the record stands and is marked on the next write or start',
    );
  const approvalsLoad = approvals.load();
  // Fail closed (docs/quarantine.md): an unreadable approvals file cannot say which servers were
  // approved, and "nothing approved" would trust every unflagged server on first use again.
  if (!approvalsLoad.ok) {
    logger.error({ code: ErrorCodes.APPROVALS_CORRUPT, file: approvalsLoad.file }, approvalsLoad.reason);
    closeLogger();
    throw new WardenError(
      ErrorCodes.APPROVALS_CORRUPT,
      `${approvalsLoad.reason}. Refusing to start: inspect or repair ${approvalsLoad.file}, or move it aside to approve every server again`,
    );
  }
  const identity = newInstanceIdentity();
  const ledger = new ResourceLedger();
  let dockerClient: Docker | undefined;
  const docker = () => (dockerClient ??= createDockerClient());
  const reaper = new DaemonReaper(
    ledger,
    logger.child({ component: 'reaper' }),
    { initialMs: settings.reapBackoffInitialMs, maxMs: settings.reapBackoffMaxMs },
    { dataDir, docker, dockerCallTimeoutMs: settings.dockerCallTimeoutMs, instanceId: identity.instanceId },
  );

  // The watchdog process starts (Node start-up, its imports) while the reaper scans and the daemon
  // loads the rest of its modules. The reaper never touches it: it carries this live instance's marker.
  let watchdog: WatchdogHandle | undefined;
  const watchdogStart = startWatchdog({
    identity,
    logger,
    ledger,
    logFile: join(dataDir, 'watchdog.log'),
    settleWaitMs: settings.stopKillGraceMs + 1_000,
    processTable: processTable().kind,
    processTableTimeoutMs: settings.processTableTimeoutMs,
    marksDir: groupMarksDir(dataDir),
  }).then((w) => (watchdog = w));
  // Before anything of ours starts: kill what dead daemons left behind (never a live daemon's, never ours).
  const reaped = reapOrphans({
    logger: logger.child({ component: 'startup-reaper' }),
    dryRun: false,
    selfInstanceId: identity.instanceId,
    dockerCallTimeoutMs: settings.dockerCallTimeoutMs,
    marksDir: groupMarksDir(dataDir),
  })
    .catch((err: unknown) => logger.error({ err }, 'startup reaper failed'))
    // Containers a previous run's reaper could not remove (pending-reap.json): retried before anything starts.
    .then(() => reaper.resumePending());
  // Both settle before `ready` does (a failed watchdog must not leave the reaper running unobserved).
  const ready = Promise.allSettled([watchdogStart, reaped]).then(([w, r]) => {
    if (w.status === 'rejected') throw w.reason;
    if (r.status === 'rejected') throw r.reason;
  });
  // Observed here so a failure surfaces where `ready` is awaited, not as an unhandled rejection meanwhile.
  ready.catch(() => undefined);

  let aborted: Promise<void> | undefined;
  const abort = (): Promise<void> =>
    (aborted ??= (async () => {
      await ready.catch(() => undefined);
      reaper.close();
      await ledger.sweep('force');
      await watchdog?.disarm();
      closeLogger();
      await lock.release();
    })());

  return {
    configPath,
    config,
    settings,
    lock,
    relay,
    logger,
    closeLogger,
    logTap,
    approvals,
    identity,
    ledger,
    reaper,
    docker,
    ready,
    watchdog: () => watchdog,
    abort,
  };
}
