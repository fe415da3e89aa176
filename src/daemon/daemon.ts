/**
 * The composition root of `mcp-warden serve`: config, logger, ledger, actor system, HTTP front.
 * Start order acquires, stop order releases in reverse; a failure half-way releases what was
 * acquired so far. The actor system's effects are provided here (machines stay free of I/O).
 */
import { dirname, join, resolve } from 'node:path';
import { createActor, type InspectionEvent } from 'xstate';
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
import { guardRequest, isLoopbackHost, loopbackOrigins } from '../adapters/http/request-guards.js';
import { writeDaemonFile, removeDaemonFile, readDaemonFile, isDaemonAlive } from '../adapters/store/daemon-file.js';
import { acquireInstanceLock, lockTimingFor, LockRelay, type InstanceLock } from '../adapters/store/instance-lock.js';
import { ensureDataDir, ensureToken } from '../adapters/store/data-dir.js';
import { createServerMachine, type ServerMachineInput } from '../machines/server-machine.js';
import { ApprovalsStore } from '../adapters/store/approvals-store.js';
import { activeServers, createSupervisorMachine } from '../machines/supervisor-machine.js';
import { ServerRegistry } from './server-registry.js';
import type Docker from 'dockerode';
import { createDockerClient } from '../adapters/docker/docker-engine.js';
import { createLaunchUpstream } from '../actors/launch-upstream.js';
import { createWatchUpstream } from '../actors/watch-upstream.js';
import { createTeardownActors } from '../actors/teardown-actors.js';
import { SupervisorCatalog } from './supervisor-catalog.js';
import { DaemonReaper } from './daemon-reaper.js';
import { newInstanceIdentity, type InstanceIdentity } from '../core/instance-identity.js';
import { reapOrphans } from './startup-reaper.js';
import { startWatchdog, type WatchdogHandle } from '../adapters/process/watchdog.js';
import { processTable, useProcessTable } from '../adapters/process/current-table.js';
import { GroupMarks } from '../adapters/process/group-marks.js';
import { DEFAULT_SETTINGS } from '../core/settings.js';
import { serverViews, type ServerView } from './server-view.js';
import { serverActorOf, type SupervisorActorRef } from './server-actors.js';
import { ServerEvents, type DaemonEvent } from './server-events.js';

export type { DaemonEvent } from './server-events.js';
import { attachControlChannel, type ControlChannel } from '../adapters/http/control-channel.js';
import { createPeerCheck } from '../adapters/http/peer-guard.js';
import { LogTap } from '../adapters/log/log-tap.js';
import type { StatelyInspector } from '../adapters/log/stately-inspector.js';
import { CONTROL_PATH } from '../control/protocol.js';
import { registerVisualizer } from '../adapters/http/visualizer-assets.js';
import { machineDefinitionOf } from './machine-definition.js';
import { CONFIG_WATCH_OWNER, startConfigReload } from './config-reload.js';
import { startObservability, type Observability } from './observability.js';
import { OAUTH_CALLBACK_PATH, OAuthLogins } from '../adapters/remote/oauth-logins.js';

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

function toMachineInput(name: string, entry: ServerEntry, settings: Settings): ServerMachineInput {
  return { name, remote: entry.type === 'remote', quarantined: entry.quarantined, settings };
}

/** `<data dir>/process-groups`: the group marks (adapters/process/group-marks.ts). */
export function groupMarksDir(dataDir: string): string {
  return join(dataDir, 'process-groups');
}

/**
 * The process table comes first: the lock, the identity and the startup reap all read processes. A
 * portable table without ps fails the start here (E_PROCESS_TABLE_UNAVAILABLE), not at the first stop.
 */
async function chooseProcessTable(configPath: string, override: Partial<Settings> = {}): Promise<void> {
  let settings: Settings = DEFAULT_SETTINGS;
  try {
    settings = { ...(await loadConfigFile(configPath)).config.settings, ...override };
  } catch {
    settings = { ...DEFAULT_SETTINGS, ...override };
  }
  const table = useProcessTable({ choice: settings.processTable, timeoutMs: settings.processTableTimeoutMs });
  if (!table.get(process.pid)) {
    throw new WardenError(
      ErrorCodes.PROCESS_TABLE_UNAVAILABLE,
      `the ${table.kind} process table does not show this process (pid ${process.pid})`,
    );
  }
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  await ensureDataDir(opts.dataDir);
  await chooseProcessTable(opts.configPath ?? join(opts.dataDir, 'config.json'), opts.settingsOverride);
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
    await ensureConfigFile(configPath, () => makeDefaultConfig({ nodePath: process.execPath, demoServerPath: resolveDemoServerPath() }));
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
  // Before anything of ours starts: kill what dead daemons left behind (never a live daemon's, never ours).
  await reapOrphans({
    logger: logger.child({ component: 'startup-reaper' }),
    dryRun: false,
    selfInstanceId: identity.instanceId,
    dockerCallTimeoutMs: settings.dockerCallTimeoutMs,
    marksDir: groupMarksDir(dataDir),
  }).catch((err: unknown) => logger.error({ err }, 'startup reaper failed'));
  const ledger = new ResourceLedger();
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
  let root: SupervisorActorRef | undefined;
  const catalog = new SupervisorCatalog(
    () => root,
    () => settings.toolCallTimeoutMs,
    {
      logger: logger.child({ component: 'catalog' }),
    },
  );

  // Upstreams may not drive the daemon (docs/quarantine.md): a peer whose socket a supervised process
  // holds is refused on /mcp and /ws. The candidates are the ledger's process groups, read lazily.
  const peerCheck = createPeerCheck({
    logger: logger.child({ component: 'peer-check' }),
    supervisedGroups: () =>
      ledger
        .all()
        .filter((e) => e.kind === 'process-group')
        .map((e) => ({ pid: numberFact(e.facts?.pid), pgid: numberFact(e.facts?.pgid) })),
  });

  let http: HttpServerHandle | undefined;
  let front: McpFront | undefined;
  let watchdog: WatchdogHandle | undefined;
  let observability: Observability | undefined;
  let token = '';
  const cleanupPartial = async () => {
    await front?.close().catch(() => undefined);
    await observability?.close().catch(() => undefined);
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
      processTable: processTable().kind,
      processTableTimeoutMs: settings.processTableTimeoutMs,
      marksDir: groupMarksDir(dataDir),
    });
    const remote = !isLoopbackHost(opts.listen.host);
    token = await ensureToken(dataDir);
    http = await startHttpServer({
      host: opts.listen.host,
      port: opts.listen.port,
      logger: logger.child({ component: 'http' }),
      ledger,
      maxBodyBytes: settings.httpMaxBodyBytes,
      headersTimeoutMs: settings.httpHeadersTimeoutMs,
      requestTimeoutMs: settings.httpRequestTimeoutMs,
      maxConnections: settings.httpMaxConnections,
    });
    const port = http.port;
    // Metrics, the call log and traces (docs/observability.md): the front reports every tools/call to them.
    observability = await startObservability({ settings, dataDir, ledger, logger, version: VERSION });
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
      allowedOrigins: [...settings.allowedOrigins],
      maxBodyBytes: settings.httpMaxBodyBytes,
      peerCheck,
      callObserver: observability.observer,
    });
    const f = front;
    // /mcp and /mcp/<server> guard themselves (refusals in JSON-RPC; loopback origins on any port,
    // docs/mcp-endpoint.md); the front reads the path.
    for (const method of ['GET', 'POST', 'DELETE']) {
      http.route(method, '/mcp', (req, res) => f.handle(req, res), { selfGuarded: true });
      http.routePrefix(method, '/mcp/', (req, res) => f.handle(req, res), { selfGuarded: true });
    }
    // Every other route (/healthz, the visualizer, unknown paths): Host, the daemon's own origin, and on
    // a remote bind the token for /healthz (it names servers, pids and errors; the page's static files
    // hold no secret and a browser cannot add the header to a navigation).
    const ownOrigins = remote ? [] : loopbackOrigins(port);
    const bearer = token;
    http.setGuard((req, path) =>
      guardRequest(req, {
        allowedHosts,
        allowedOrigins: settings.allowedOrigins,
        ownOrigins,
        bearerToken: remote && (path === '/healthz' || path === '/metrics') ? bearer : undefined,
      }),
    );
  } catch (err) {
    await cleanupPartial();
    throw err;
  }
  const httpHandle = http;
  const frontHandle = front;
  const observed = observability;

  // UIs and list_changed follow actor subscriptions (server-events.ts); `inspect` only feeds `serve --inspect`.
  const events = new ServerEvents({ logger, counts: (owner) => ledger.countsOf(owner), onChange: (names) => catalog.notify(names) });
  // Server commands and the approval policy (tool integrity, docs/quarantine.md) live in the registry.
  const registry = new ServerRegistry({
    configPath,
    servers: config.mcpServers,
    approvals,
    updateConfig: (mutate) => updateConfigFile(configPath, mutate),
    quarantineNewServers: () => settings.quarantineNewServers,
    quarantineScope: () => settings.quarantineScope,
    logger: logger.child({ component: 'registry' }),
    onRemoved: (name) => events.emit({ type: 'server-removed', name, at: Date.now() }),
  });
  // Per-server tool filters (docs/config.md#tool-filters) come from the registry's current entries.
  catalog.setToolFilters((name) => registry.entry(name)?.tools);
  const checkTools = registry.checkTools.bind(registry);
  // OAuth for remote servers that answer 401: logins, the token store, the redirect route (adapters/remote/).
  const oauth = new OAuthLogins({
    dataDir,
    callbackUrl: `${httpHandle.url}${OAUTH_CALLBACK_PATH}`,
    ledger,
    logger: logger.child({ component: 'oauth' }),
    loginTimeoutMs: settings.oauthLoginTimeoutMs,
    connectTimeoutMs: settings.remoteConnectTimeoutMs,
    entryOf: (name) => registry.entry(name),
    configDir: dirname(resolve(configPath)),
    restart: (name) => registry.restart(name),
  });
  // No bearer token, also under --allow-remote: the browser of the person logging in brings only the `state`.
  httpHandle.route('GET', OAUTH_CALLBACK_PATH, (req, res) => oauth.handleCallback(req, res), { selfGuarded: true });

  // The actor system. Effects are provided here; the machines stay pure.
  const serverMachine = createServerMachine({ now: Date.now }).provide({
    actors: {
      launchUpstream: createLaunchUpstream({
        ledger,
        logger,
        settings: () => settings,
        identity,
        entryOf: (name) => registry.entry(name),
        version: VERSION,
        checkTools,
        docker,
        groupMarks: new GroupMarks(groupMarksDir(dataDir)),
        configDir: dirname(resolve(configPath)),
        oauthProvider: (name, serverUrl) => oauth.providerFor(name, serverUrl),
      }),
      watchUpstream: createWatchUpstream({ logger, checkTools, requestTimeoutMs: () => settings.upstreamRequestTimeoutMs }),
      ...createTeardownActors({ ledger, identity, onHandOver: (owner) => reaper.kick(owner) }),
    },
  });
  const supervisor = createSupervisorMachine(serverMachine);

  const enabled = registry.list().filter(([, e]) => !e.disabled);
  // `serve --inspect`: the whole actor system to a Stately inspector relay (observation only; never throws).
  // Loaded only then: @statelyai/inspect and its dependencies cost every other daemon memory and start-up time.
  const stately: StatelyInspector | undefined = opts.inspectUrl
    ? (await import('../adapters/log/stately-inspector.js')).createStatelyInspector({
        url: opts.inspectUrl,
        logger: logger.child({ component: 'inspector' }),
      })
    : undefined;
  const rootActor = createActor(supervisor, {
    input: { servers: enabled.map(([n, e]) => toMachineInput(n, e, settings)), shutdownBudgetMs: settings.shutdownBudgetMs },
    inspect: stately ? (ev: InspectionEvent) => stately.inspect(ev) : undefined,
  });
  root = rootActor;
  events.attach(rootActor);
  registry.bind({
    // The machine input carries only what the statechart needs; the entry stays in the registry.
    start: (name, entry) => rootActor.send({ type: 'SERVER_ADD', server: toMachineInput(name, entry, settings) }),
    stop: (name) => rootActor.send({ type: 'SERVER_REMOVE', name }),
    send: (name, command) => rootActor.send({ type: 'SERVER_COMMAND', name, command }),
    toolsOf: (name) => serverActorOf(rootActor, name)?.getSnapshot().context.tools,
    quarantinedOf: (name) => serverActorOf(rootActor, name)?.getSnapshot().context.quarantined,
    listsOf: (name) => {
      const c = serverActorOf(rootActor, name)?.getSnapshot().context;
      return c && { prompts: c.prompts, resourceTemplates: c.resourceTemplates };
    },
  });

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const rootDone = new Promise<void>((resolve) => {
    rootActor.subscribe({
      complete: () => resolve(),
      error: (err) => {
        // An errored root leaves its children running (docs/building-blocks.md): the ledger sweep in stop() ends them.
        logger.fatal({ err }, 'supervisor failed; shutting down');
        resolve();
        void daemon.stop('supervisor error');
      },
    });
  });
  // Before the start: restarts are counted from every server's first launch on.
  observed.bind({
    servers: () => servers(),
    sessions: () => frontHandle.sessionCount(),
    ledgerCounts: () => ledger.counts(),
    knownServer: (name) => registry.entry(name) !== undefined,
    knownTool: (name, tool) => registry.toolsOf(name)?.some((t) => t.name === tool) ?? false,
    subscribe: (listener) => events.subscribe(listener),
    publishCalls: (calls) => events.emit({ type: 'calls', calls, at: Date.now() }),
  });
  rootActor.start();
  // Hot reload: edits of the config file are applied through the registry (config-reload.ts).
  const configReload = startConfigReload({
    configPath,
    registry,
    ledger,
    logger: logger.child({ component: 'config-reload' }),
    settings,
    fileSettings: config.settings,
    onStatus: (status) => events.emit({ type: 'config', config: status, at: Date.now() }),
  });

  const startedAt = new Date();
  const health = (): Record<string, unknown> => ({
    status: stopping ? 'stopping' : 'ok',
    version: VERSION,
    instanceId: identity.instanceId,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt.getTime(),
    sessions: frontHandle.sessionCount(),
    http: httpHandle.stats(),
    servers: servers(),
    config: configReload.status(),
    ledger: ledger.counts(),
  });
  const servers = (): ServerView[] => serverViews(registry.list(), rootActor, ledger.counts());
  httpHandle.route('GET', '/healthz', (_req, res) => sendJson(res, 200, health()));
  observed.route(httpHandle);
  // The visualizer page (`mcp-warden ui`): static files only; it talks to the daemon through /ws.
  registerVisualizer(httpHandle, { logger: logger.child({ component: 'visualizer' }) });

  let stopping: Promise<void> | undefined;
  let control: ControlChannel | undefined;
  const stop = (reason = 'requested'): Promise<void> => {
    stopping ??= (async () => {
      const t0 = Date.now();
      logger.info({ reason }, 'shutting down');
      // No edit of the config file may start anything from here on.
      await ledger.releaseOwned(CONFIG_WATCH_OWNER);
      // First, while everything still runs: control clients get a close frame (1001), and their
      // sockets, timers and subscriptions are released.
      await control?.close().catch((err: unknown) => logger.warn({ err }, 'closing the control channel failed'));
      catalog.close();
      oauth.close();
      await frontHandle.close().catch((err: unknown) => logger.warn({ err }, 'closing the MCP front failed'));
      // After the front: every answered call is in the call log before it closes.
      await observed.close().catch((err: unknown) => logger.warn({ err }, 'closing metrics, call log or traces failed'));
      const serverCount = activeServers(rootActor.getSnapshot().context).length;
      const serversFrom = Date.now();
      events.quietStateLogs();
      rootActor.send({ type: 'SHUTDOWN' });
      await rootDone;
      logger.info({ servers: serverCount, ms: Date.now() - serversFrom }, 'every server stopped');
      rootActor.stop();
      events.stop();
      await stately?.close();
      reaper.close();
      // Whatever is still held (shutdown budget exceeded, root error) is force-released now.
      const failures = await ledger.sweep('force');
      for (const f of failures) logger.error({ resource: f.description, err: f.message }, 'resource not released at shutdown');
      // Last: disarm the watchdog (it was released by the sweep once it was the last entry; this is
      // idempotent). The listener and daemon.json have nothing left to serve: they go meanwhile.
      await Promise.all([
        watchdog?.disarm(),
        httpHandle.close().catch(() => undefined),
        removeDaemonFile(dataDir, identity.instanceId).catch(() => undefined),
      ]);
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
    subscribe: (listener) => events.subscribe(listener),
    // Outside subscribers only: the metrics' own subscription is the daemon's, not a leak to check for.
    subscriberCount: () => events.listenerCount() - observed.subscriptions(),
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
      daemon: {
        health,
        servers,
        subscribe: daemon.subscribe,
        stop,
        machineDefinition: daemon.machineDefinition,
        commands: registry,
        calls: observed.callLog ? (filter) => observed.callLog!.recent(filter) : undefined,
        auth: oauth,
      },
      token,
      settings,
      allowedOrigins: settings.allowedOrigins,
      logger: logger.child({ component: 'control' }),
      ledger,
      logTap,
      peerCheck,
      reap: ({ dryRun }) =>
        reapOrphans({
          logger: logger.child({ component: 'startup-reaper' }),
          dryRun,
          selfInstanceId: identity.instanceId,
          marksDir: groupMarksDir(dataDir),
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

function numberFact(v: string | number | undefined): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}
