/**
 * The composition root of `mcp-warden serve`: config, logger, ledger, actor system, HTTP front.
 * Start order acquires, stop order releases in reverse; a failure half-way releases what was
 * acquired so far. The actor system's effects are provided here (machines stay free of I/O).
 */
import { dirname, resolve } from 'node:path';
import { createActor, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import type { ResourceLedger } from '../core/resource-ledger.js';
import type { Settings } from '../core/settings.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import { VERSION } from '../core/version.js';
import type { ServerEntry } from '../config/config-types.js';
import { updateConfigFile } from '../adapters/store/config-file.js';
import { startHttpServer, sendJsonText, type HttpServerHandle } from '../adapters/http/http-server.js';
import { createMcpFront, type McpFront } from '../adapters/mcp/mcp-front.js';
import { guardRequest, isLoopbackHost, loopbackOrigins } from '../adapters/http/request-guards.js';
import { writeDaemonFile, removeDaemonFileSync } from '../adapters/store/daemon-file.js';
import { ensureToken } from '../adapters/store/data-dir.js';
import { createServerMachine, type ServerMachineInput } from '../machines/server-machine.js';
import { activeServers, createSupervisorMachine } from '../machines/supervisor-machine.js';
import { ServerRegistry } from './server-registry.js';
import { createLaunchUpstream } from '../actors/launch-upstream.js';
import { createWatchUpstream } from '../actors/watch-upstream.js';
import { createTeardownActors } from '../actors/teardown-actors.js';
import { SupervisorCatalog } from './supervisor-catalog.js';
import type { InstanceIdentity } from '../core/instance-identity.js';
import { reapOrphans } from './startup-reaper.js';
import { bootDaemon, groupMarksDir, type BootOptions, type DaemonBoot } from './daemon-boot.js';
import type { WatchdogHandle } from '../adapters/process/watchdog.js';
import { GroupMarks } from '../adapters/process/group-marks.js';
import { serverViews, type ServerView } from './server-view.js';
import { HealthzBody } from './healthz-body.js';
import { serverActorOf, type SupervisorActorRef } from './server-actors.js';
import { ServerEvents, type DaemonEvent } from './server-events.js';

export type { DaemonEvent } from './server-events.js';
import { attachControlChannel, type ControlChannel } from '../adapters/http/control-channel.js';
import { createPeerCheck } from '../adapters/http/peer-guard.js';
import type { StatelyInspector } from '../adapters/log/stately-inspector.js';
import { CONTROL_PATH } from '../control/protocol.js';
import { registerVisualizer } from '../adapters/http/visualizer-assets.js';
import { machineDefinitionOf } from './machine-definition.js';
import { CONFIG_WATCH_OWNER, startConfigReload } from './config-reload.js';
import { startObservability, type Observability } from './observability.js';
import { OAUTH_CALLBACK_PATH, OAuthLogins } from '../adapters/remote/oauth-logins.js';

export { DEFAULT_HOST, DEFAULT_PORT } from '../core/defaults.js';

/** The boot's options (data dir, config, listen address, logging, settings override) and what only the running daemon uses. */
export interface DaemonOptions extends BootOptions {
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

/**
 * Starts a daemon. `boot` is the first half already under way (`serve` boots first and loads this
 * module meanwhile, src/daemon/daemon-boot.ts); without it the boot runs here.
 */
export async function startDaemon(opts: DaemonOptions, boot?: DaemonBoot): Promise<Daemon> {
  const booted = boot ?? (await bootDaemon(opts));
  try {
    return await startDaemonBooted(opts, booted);
  } catch (err) {
    await booted.abort();
    throw err;
  }
}

async function startDaemonBooted(opts: DaemonOptions, boot: DaemonBoot): Promise<Daemon> {
  const dataDir = opts.dataDir;
  const { configPath, config, settings, lock, relay, logger, closeLogger, logTap, approvals, identity, ledger, reaper, docker } = boot;
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
    // The boot's reap and watchdog settle first (what they acquire is in the ledger swept below).
    await boot.ready.catch(() => undefined);
    await front?.close().catch(() => undefined);
    await observability?.close().catch(() => undefined);
    await http?.close().catch(() => undefined);
    reaper.close();
    await ledger.sweep('force');
    await watchdog?.disarm();
    closeLogger();
  };

  // Everything up to the root actor's start is made while the watchdog process starts (its Node
  // start-up) and the startup reap runs: at 500 servers creating the actors alone is ~0.1-0.3 s of this
  // thread, which used to begin only once the watchdog was armed. Nothing starts an upstream before
  // `boot.ready` (awaited right before the root actor starts).
  try {
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

  // The process groups' mark files (written off the event loop; the stop waits for the last of them).
  const groupMarks = new GroupMarks(groupMarksDir(dataDir));
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
        groupMarks,
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
  try {
    // Armed before any upstream can start: if this process is SIGKILLed, the watchdog reaps its instance.
    // The startup reap is done by then too (daemon-boot.ts).
    await boot.ready;
    watchdog = boot.watchdog();
  } catch (err) {
    await cleanupPartial();
    throw err;
  }
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
  // The ledger's counts are read once per answer, for the views and the `ledger` field.
  const healthWith = (servers: ServerView[] | undefined, counts: ReturnType<ResourceLedger['counts']>): Record<string, unknown> => ({
    status: stopping ? 'stopping' : 'ok',
    version: VERSION,
    instanceId: identity.instanceId,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt.getTime(),
    sessions: frontHandle.sessionCount(),
    http: httpHandle.stats(),
    servers,
    config: configReload.status(),
    ledger: counts,
  });
  const health = (): Record<string, unknown> => {
    const counts = ledger.counts();
    return healthWith(serverViews(registry.list(), rootActor, counts), counts);
  };
  const servers = (): ServerView[] => serverViews(registry.list(), rootActor, ledger.counts());
  // The same answer, each server's view serialised once per change (healthz-body.ts): a start is polled on it.
  const healthz = new HealthzBody();
  httpHandle.route('GET', '/healthz', (_req, res) => {
    const counts = ledger.counts();
    sendJsonText(res, 200, healthz.render(healthWith(undefined, counts), registry.list(), rootActor, counts));
  });
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
      const cpuFrom = process.cpuUsage();
      events.quietStateLogs();
      // Marks of emptied groups go in one batch while the watchdog exits (group-marks.ts).
      groupMarks.deferRemovals();
      rootActor.send({ type: 'SHUTDOWN' });
      await rootDone;
      // Its CPU time too: on a busy machine the wall time says little about the daemon's own cost.
      const cpu = process.cpuUsage(cpuFrom);
      logger.info(
        { servers: serverCount, ms: Date.now() - serversFrom, cpuMs: Math.round((cpu.user + cpu.system) / 1000) },
        'every server stopped',
      );
      rootActor.stop();
      events.stop();
      await stately?.close();
      reaper.close();
      if (watchdog) watchdog.whileExiting(() => groupMarks.removeDeferred());
      // Whatever is still held (shutdown budget exceeded, root error) is force-released now.
      const failures = await ledger.sweep('force');
      for (const f of failures) logger.error({ resource: f.description, err: f.message }, 'resource not released at shutdown');
      // A group that ended right after its spawn may have its mark's write and removal still queued.
      await groupMarks.settled();
      // Last: disarm the watchdog (it was released by the sweep once it was the last entry; this is
      // idempotent). The listener has nothing left to serve: it goes meanwhile. daemon.json goes
      // synchronously (microseconds; thread-pool round trips cost ms on the wall time of `stop`).
      await Promise.all([watchdog?.disarm(), httpHandle.close().catch(() => undefined)]);
      removeDaemonFileSync(dataDir, identity.instanceId);
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
