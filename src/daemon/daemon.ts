/**
 * The composition root of `mcp-warden serve`: config, logger, ledger, actor system, HTTP front.
 * Start order acquires, stop order releases in reverse; a failure half-way releases what was
 * acquired so far. The actor system's effects are provided here (machines stay free of I/O).
 */
import { promises as fs, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createActor, type AnyActorRef, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import { ResourceLedger } from '../core/resource-ledger.js';
import type { Settings } from '../core/settings.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import { VERSION } from '../core/version.js';
import type { ServerEntry, WardenConfig } from '../config/config-types.js';
import { makeDefaultConfig, resolveDemoServerPath } from '../config/default-config.js';
import { ensureConfigFile, loadConfigFile, updateConfigFile } from '../adapters/store/config-file.js';
import { createLogger } from '../adapters/log/logger.js';
import { startHttpServer, sendJson, type HttpServerHandle } from '../adapters/http/http-server.js';
import { createMcpFront, type McpFront } from '../adapters/mcp/mcp-front.js';
import { isLoopbackHost } from '../adapters/http/request-guards.js';
import { writeDaemonFile, removeDaemonFile, readDaemonFile, isDaemonAlive } from '../adapters/store/daemon-file.js';
import { acquireInstanceLock, lockTimingFor, LockRelay, type InstanceLock } from '../adapters/store/instance-lock.js';
import { describeFsError, makeDirs } from '../adapters/store/make-dirs.js';
import { createServerMachine, type ServerContext, type ServerMachineInput } from '../machines/server-machine.js';
import { ApprovalsStore } from '../adapters/store/approvals-store.js';
import { createSupervisorMachine, serverActorId } from '../machines/supervisor-machine.js';
import { ServerRegistry } from './server-registry.js';
import { UpstreamSessions } from '../actors/upstream-sessions.js';
import type Docker from 'dockerode';
import { createDockerClient } from '../adapters/docker/docker-container.js';
import { createLaunchUpstream } from '../actors/launch-upstream.js';
import { createWatchUpstream } from '../actors/watch-upstream.js';
import { createTeardownActors } from '../actors/teardown-actors.js';
import { SupervisorCatalog } from './supervisor-catalog.js';
import { DaemonReaper } from './daemon-reaper.js';
import { newInstanceIdentity, type InstanceIdentity } from '../core/instance-identity.js';
import { reapOrphans } from './startup-reaper.js';
import { startWatchdog, type WatchdogHandle } from '../adapters/process/watchdog.js';
import { viewOf, type ServerView } from './server-view.js';
import { attachControlChannel, type ControlChannel } from '../adapters/http/control-channel.js';
import { LogTap } from '../adapters/log/log-tap.js';
import { createStatelyInspector, type StatelyInspector } from '../adapters/log/stately-inspector.js';
import { CONTROL_PATH } from '../control/protocol.js';
import { registerVisualizer } from '../adapters/http/visualizer-assets.js';
import { machineDefinitionOf } from './machine-definition.js';

export { DEFAULT_HOST, DEFAULT_PORT } from '../core/defaults.js';

export interface DaemonOptions {
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
  /**
   * Stream the actor system to a Stately inspector relay at this WebSocket URL (`serve --inspect`).
   * Observation only: an unreachable relay never affects the daemon.
   */
  inspectUrl?: string;
}

export interface Daemon {
  readonly identity: InstanceIdentity;
  readonly url: string;
  readonly mcpUrl: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly ledger: ResourceLedger;
  readonly logger: Logger;
  servers(): ServerView[];
  health(): Record<string, unknown>;
  /**
   * Every server command (add, remove, enable, disable, restart, approve, quarantine) and the
   * approval policy: config file, approvals and actor change together (src/daemon/server-registry.ts).
   */
  readonly registry: ServerRegistry;
  /** Every change of a server's view (state, attempts, error, tools, resources) and removals. */
  subscribe(listener: (event: DaemonEvent) => void): () => void;
  /** How many subscribe() listeners are registered right now (leak checks). */
  subscriberCount(): number;
  /** The server statechart's definition (xstate `machine.toJSON()`), for UIs that draw it. */
  machineDefinition(): Record<string, unknown>;
  /** The control channel's WebSocket URL (`ws://…/ws`); see docs/control-protocol.md. */
  readonly controlUrl: string;
  /** Graceful stop within the shutdown budget; resolves when everything is verifiably released. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the daemon has stopped (by stop() or a fatal error). */
  readonly stopped: Promise<void>;
  /** Why the daemon stopped itself, if it did for a reason `serve` must exit non-zero (E_LOCK_COMPROMISED). */
  failure?(): WardenError | undefined;
}

export type DaemonEvent =
  | { type: 'server'; server: ServerView; previousState: string | null; at: number }
  | { type: 'server-removed'; name: string; at: number };

function toMachineInput(name: string, entry: ServerEntry, settings: Settings): ServerMachineInput {
  return { name, remote: entry.type === 'remote', quarantined: entry.quarantined, settings };
}

async function ensureDataDir(dataDir: string): Promise<void> {
  try {
    await makeDirs(dataDir, 0o700); // not fs.mkdir recursive: it spins forever under /proc (make-dirs.ts)
    await fs.access(dataDir, fsConstants.W_OK);
  } catch (err) {
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `data dir ${dataDir} is not writable: ${describeFsError(err)}`);
  }
}

/**
 * The bearer token of the control channel (/ws) and of /mcp on a remote bind: `<dataDir>/token`,
 * created on first start with mode 0600 and reused afterwards. base64url without padding, so it is
 * also valid as a WebSocket subprotocol entry (`auth.<token>`). A file that is too short or holds other
 * characters is replaced.
 */
export async function ensureToken(dataDir: string): Promise<string> {
  const file = join(dataDir, 'token');
  try {
    const t = (await fs.readFile(file, 'utf8')).trim();
    if (/^[A-Za-z0-9_-]{32,512}$/.test(t)) {
      await fs.chmod(file, 0o600).catch(() => undefined);
      return t;
    }
  } catch {
    // created below
  }
  const token = randomBytes(32).toString('base64url');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  await fs.rename(tmp, file);
  return token;
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  await ensureDataDir(opts.dataDir);
  // One daemon per data dir (docs/cli.md): the lock comes first, before the config is loaded (or
  // created), the port bound or any upstream started; a loser leaves no trace. Released last by
  // stop(), or here when the start fails half-way (after the partial-start cleanup).
  const relay = new LockRelay();
  const lock = await acquireInstanceLock(opts.dataDir, {
    ...(await lockTimingFor(opts.configPath ?? join(opts.dataDir, 'config.json'), opts.settingsOverride)),
    onCompromised: relay.onCompromised,
    logger: relay.log,
  });
  try {
    return await startDaemonLocked(opts, lock, relay);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function startDaemonLocked(opts: DaemonOptions, lock: InstanceLock, relay: LockRelay): Promise<Daemon> {
  const dataDir = opts.dataDir;
  const configPath = opts.configPath ?? join(dataDir, 'config.json');
  if (!opts.configPath) {
    await ensureConfigFile(configPath, () =>
      makeDefaultConfig({ nodePath: process.execPath, demoServerPath: resolveDemoServerPath() }),
    );
  }
  const loaded = await loadConfigFile(configPath);
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
  const { logger, close: closeLogger } = createLogger({
    level: opts.logLevel,
    filePath: join(dataDir, 'daemon.log'),
    maxBytes: settings.logFileMaxBytes,
    maxFiles: settings.logFileCount,
    console: opts.console,
    tap: logTap,
  });
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
  const approvalsLoad = approvals.load();
  if (!approvalsLoad.ok) logger.error({ code: ErrorCodes.APPROVALS_CORRUPT, file: approvals.file }, approvalsLoad.reason);
  const identity = newInstanceIdentity();
  // Before anything of ours starts: kill what dead daemons left behind (never a live daemon's, never ours).
  await reapOrphans({
    logger: logger.child({ component: 'startup-reaper' }),
    dryRun: false,
    selfInstanceId: identity.instanceId,
    dockerCallTimeoutMs: settings.dockerCallTimeoutMs,
  }).catch((err: unknown) => logger.error({ err }, 'startup reaper failed'));
  const ledger = new ResourceLedger();
  const sessions = new UpstreamSessions();
  // One engine client for every containerised server (and the reaper), created on first use.
  let dockerClient: Docker | undefined;
  const docker = () => (dockerClient ??= createDockerClient());
  const reaper = new DaemonReaper(
    ledger,
    logger.child({ component: 'reaper' }),
    { initialMs: settings.reapBackoffInitialMs, maxMs: settings.reapBackoffMaxMs },
    { dataDir, docker, dockerCallTimeoutMs: settings.dockerCallTimeoutMs, instanceId: identity.instanceId },
  );
  // Containers a previous run's reaper could not remove (pending-reap.json): retried before anything starts.
  await reaper.resumePending();
  const entries = new Map<string, ServerEntry>(Object.entries(config.mcpServers));
  let root: AnyActorRef | undefined;
  const catalog = new SupervisorCatalog(() => root, sessions, () => settings.toolCallTimeoutMs, {
    logger: logger.child({ component: 'catalog' }),
  });

  let http: HttpServerHandle | undefined;
  let front: McpFront | undefined;
  let watchdog: WatchdogHandle | undefined;
  let token = '';
  const cleanupPartial = async () => {
    await front?.close().catch(() => undefined);
    await http?.close().catch(() => undefined);
    reaper.close();
    await ledger.sweep('force');
    await watchdog?.disarm();
    closeLogger();
  };

  try {
    // Armed before any upstream can start: if this process is SIGKILLed, the watchdog reaps its instance.
    watchdog = await startWatchdog({
      identity,
      logger,
      ledger,
      logFile: join(dataDir, 'watchdog.log'),
      settleWaitMs: settings.stopKillGraceMs + 1_000,
    });
    const remote = !isLoopbackHost(opts.listen.host);
    token = await ensureToken(dataDir);
    http = await startHttpServer({
      host: opts.listen.host,
      port: opts.listen.port,
      logger: logger.child({ component: 'http' }),
      ledger,
      maxBodyBytes: settings.httpMaxBodyBytes,
    });
    const port = http.port;
    const allowedHosts = remote
      ? ['*'] // a remote bind is reached by whatever name the user gives it; the bearer token protects it
      : [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, '127.0.0.1', 'localhost', '[::1]'];
    front = createMcpFront({
      catalog,
      settings,
      logger: logger.child({ component: 'mcp-front' }),
      ledger,
      serverInfo: { name: 'mcp-warden', version: VERSION },
      auth: remote ? { bearerToken: token } : undefined,
      allowedHosts,
      maxBodyBytes: settings.httpMaxBodyBytes,
    });
    const f = front;
    for (const method of ['GET', 'POST', 'DELETE']) {
      http.route(method, '/mcp', (req, res) => f.handle(req, res));
      http.routePrefix(method, '/mcp/', (req, res) => f.handle(req, res)); // /mcp/<server>: the front reads the path
    }
  } catch (err) {
    await cleanupPartial();
    throw err;
  }
  const httpHandle = http;
  const frontHandle = front;

  // Server commands and the approval policy (tool integrity, docs/quarantine.md) live in the registry.
  const registry = new ServerRegistry({
    configPath,
    entries,
    approvals,
    updateConfig: (mutate) => updateConfigFile(configPath, mutate),
    quarantineNewServers: () => settings.quarantineNewServers,
    logger: logger.child({ component: 'registry' }),
    onRemoved: (name) => emit({ type: 'server-removed', name, at: Date.now() }),
  });
  const checkTools = registry.checkTools.bind(registry);

  // The actor system. Effects are provided here; the machines stay pure.
  const serverMachine = createServerMachine({ now: Date.now }).provide({
    actors: {
      launchUpstream: createLaunchUpstream({
        ledger,
        logger,
        settings: () => settings,
        identity,
        sessions,
        entryOf: (name) => registry.entry(name),
        version: VERSION,
        checkTools,
        docker,
      }),
      watchUpstream: createWatchUpstream({ sessions, logger, checkTools }),
      ...createTeardownActors({ ledger, identity, onHandOver: (owner) => reaper.kick(owner) }),
    },
  });
  const supervisor = createSupervisorMachine(serverMachine);
  const lastState = new Map<string, string>();
  const lastView = new Map<string, string>();
  const eventListeners = new Set<(e: DaemonEvent) => void>();
  const emit = (e: DaemonEvent) => {
    for (const l of eventListeners) {
      try {
        l(e);
      } catch (err) {
        logger.warn({ err }, 'daemon event listener failed');
      }
    }
  };
  let notifyQueued = false;
  const onInspect = (ev: InspectionEvent) => {
    try {
      if (ev.type !== '@xstate.snapshot') return;
      const ref = ev.actorRef as AnyActorRef;
      if (typeof ref.id !== 'string' || !ref.id.startsWith('server:')) return;
      const view = viewOf(ref, ledger.counts()[ref.id] ?? {});
      if (!view) return;
      const previousState = lastState.get(view.name) ?? null;
      const serialized = JSON.stringify(view);
      if (lastView.get(view.name) !== serialized) {
        lastView.set(view.name, serialized);
        emit({ type: 'server', server: view, previousState, at: Date.now() });
      }
      if (view.state === 'stopped') lastView.delete(view.name);
      if (previousState !== view.state) {
        lastState.set(view.name, view.state);
        logger.info(
          { server: view.name, state: view.state, attempt: view.attempt, error: view.lastError?.code },
          `server ${view.name} → ${view.state}`,
        );
        if (view.state === 'stopped') lastState.delete(view.name);
      }
      if (!notifyQueued) {
        notifyQueued = true;
        queueMicrotask(() => {
          notifyQueued = false;
          catalog.notify();
        });
      }
    } catch {
      // observing must never disturb the system
    }
  };

  const enabled = [...entries].filter(([, e]) => !e.disabled);
  // `serve --inspect`: the whole actor system to a Stately inspector relay (observation only; never throws).
  const stately: StatelyInspector | undefined = opts.inspectUrl
    ? createStatelyInspector({ url: opts.inspectUrl, logger: logger.child({ component: 'inspector' }) })
    : undefined;
  const rootActor = createActor(supervisor, {
    input: { servers: enabled.map(([n, e]) => toMachineInput(n, e, settings)), shutdownBudgetMs: settings.shutdownBudgetMs },
    inspect: stately
      ? (ev: InspectionEvent) => {
          onInspect(ev);
          stately.inspect(ev);
        }
      : onInspect,
  });
  root = rootActor;
  const contextOf = (name: string): ServerContext | undefined => {
    const ref = (rootActor.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children[serverActorId(name)];
    return ref ? (ref.getSnapshot() as { context: ServerContext }).context : undefined;
  };
  registry.bind({
    // The machine input carries only what the statechart needs; the entry stays in the registry.
    start: (name, entry) => rootActor.send({ type: 'SERVER_ADD', server: toMachineInput(name, entry, settings) }),
    stop: (name) => rootActor.send({ type: 'SERVER_REMOVE', name }),
    send: (name, command) => rootActor.send({ type: 'SERVER_COMMAND', name, command }),
    toolsOf: (name) => contextOf(name)?.tools,
    quarantinedOf: (name) => contextOf(name)?.quarantined,
  });

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const rootDone = new Promise<void>((resolve) => {
    rootActor.subscribe({
      complete: () => resolve(),
      error: (err) => {
        // An errored root leaves its children running (NOTES.md): the ledger sweep in stop() ends them.
        logger.fatal({ err }, 'supervisor failed; shutting down');
        resolve();
        void daemon.stop('supervisor error');
      },
    });
  });
  rootActor.start();

  const startedAt = new Date();
  const health = (): Record<string, unknown> => ({
    status: stopping ? 'stopping' : 'ok',
    version: VERSION,
    instanceId: identity.instanceId,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt.getTime(),
    sessions: frontHandle.sessionCount(),
    servers: servers(),
    ledger: ledger.counts(),
  });
  const servers = (): ServerView[] => {
    const counts = ledger.counts();
    const out: ServerView[] = [];
    const children = (rootActor.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children;
    for (const [name, entry] of entries) {
      const ref = children[serverActorId(name)];
      const v = ref ? viewOf(ref, counts[serverActorId(name)] ?? {}) : undefined;
      if (v) out.push(v);
      else
        out.push({
          name,
          state: entry.disabled ? 'disabled' : 'stopped',
          quarantined: entry.quarantined,
          attempt: 0,
          restartsInWindow: 0,
          reapAttempt: 0,
          lastError: null,
          pid: null,
          toolCount: 0,
          upSince: null,
          resources: counts[serverActorId(name)] ?? {},
        });
    }
    // Removed servers whose actor is still draining (stopping/reaping) stay visible until stopped.
    for (const [id, ref] of Object.entries(children)) {
      if (!ref || !id.startsWith('server:') || entries.has(id.slice('server:'.length))) continue;
      const v = viewOf(ref, counts[id] ?? {});
      if (v && v.state !== 'stopped') out.push(v);
    }
    return out;
  };
  httpHandle.route('GET', '/healthz', (_req, res) => sendJson(res, 200, health()));
  // The visualizer page (`mcp-warden ui`): static files only; it talks to the daemon through /ws.
  registerVisualizer(httpHandle, { logger: logger.child({ component: 'visualizer' }) });

  let stopping: Promise<void> | undefined;
  let control: ControlChannel | undefined;
  const stop = (reason = 'requested'): Promise<void> => {
    stopping ??= (async () => {
      const t0 = Date.now();
      logger.info({ reason }, 'shutting down');
      // First, while everything still runs: control clients get a close frame (1001), and their
      // sockets, timers and subscriptions are released.
      await control?.close().catch((err: unknown) => logger.warn({ err }, 'closing the control channel failed'));
      catalog.close();
      await frontHandle.close().catch((err: unknown) => logger.warn({ err }, 'closing the MCP front failed'));
      rootActor.send({ type: 'SHUTDOWN' });
      await rootDone;
      rootActor.stop();
      await stately?.close();
      reaper.close();
      // Whatever is still held (shutdown budget exceeded, root error) is force-released now.
      const failures = await ledger.sweep('force');
      for (const f of failures) logger.error({ resource: f.description, err: f.message }, 'resource not released at shutdown');
      // Last: disarm the watchdog (it was released by the sweep once it was the last entry; this is idempotent).
      await watchdog?.disarm();
      await httpHandle.close().catch(() => undefined);
      await removeDaemonFile(dataDir, identity.instanceId).catch(() => undefined);
      // The very last release: a successor may start from here on.
      await lock.release();
      logger.info({ ms: Date.now() - t0, remaining: ledger.size() }, 'stopped');
      closeLogger();
      resolveStopped();
    })();
    return stopping;
  };

  const daemon: Daemon = {
    identity,
    url: httpHandle.url,
    mcpUrl: `${httpHandle.url}/mcp`,
    dataDir,
    configPath,
    ledger,
    logger,
    servers,
    health,
    registry,
    subscribe: (listener) => {
      eventListeners.add(listener);
      return () => eventListeners.delete(listener);
    },
    subscriberCount: () => eventListeners.size,
    machineDefinition: () => machineDefinitionOf(serverMachine),
    controlUrl: `${httpHandle.url.replace(/^http/, 'ws')}${CONTROL_PATH}`,
    stop,
    stopped,
    failure: () => lockFailure,
  };

  // The control channel (/ws): token-authenticated WebSocket for UIs and the CLI (docs/control-protocol.md).
  try {
    control = attachControlChannel({
      http: httpHandle,
      daemon: { health, servers, subscribe: daemon.subscribe, stop, machineDefinition: daemon.machineDefinition, commands: registry },
      token,
      settings,
      logger: logger.child({ component: 'control' }),
      ledger,
      logTap,
      reap: ({ dryRun }) =>
        reapOrphans({
          logger: logger.child({ component: 'startup-reaper' }),
          dryRun,
          selfInstanceId: identity.instanceId,
        }),
    });
  } catch (err) {
    await stop('control channel failed to start');
    throw err;
  }

  // Losing the data-dir lock while running (its dir removed, or taken over): stop cleanly; serve exits 7.
  let lockFailure: WardenError | undefined;
  relay.bindCompromised((err) => {
    lockFailure ??= new WardenError(
      ErrorCodes.LOCK_COMPROMISED,
      `the data-dir lock ${lock.lockDir} was removed or taken over by another process (${err.message}); stopped every server and exited`,
    );
    void stop('data-dir lock compromised');
  });
  // Publish only while the lock is verifiably ours (two successors of a dead daemon can race for it).
  try {
    await lock.assertHeld();
  } catch (err) {
    await stop('data-dir lock lost while starting');
    throw err;
  }

  await writeDaemonFile(dataDir, {
    pid: process.pid,
    instanceId: identity.instanceId,
    url: httpHandle.url,
    host: httpHandle.host,
    port: httpHandle.port,
    processStartTime: identity.startTime,
    startedAt: startedAt.toISOString(),
    version: VERSION,
    dataDir,
  });
  logger.info(
    { url: daemon.mcpUrl, dataDir, config: configPath, servers: enabled.length, instanceId: identity.instanceId },
    'mcp-warden listening',
  );
  return daemon;
}
