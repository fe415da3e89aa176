/**
 * Launch effect of `starting.launching`: spawn the server in its own process group, connect an MCP
 * client, fetch its tools. Everything acquired is in the ledger under the actor's owner id the
 * moment it exists, so an abort (STOP, init timeout) leaves nothing unowned: `stopping` releases it.
 * The live session (handle + MCP client) is part of the output: the server actor keeps it in its
 * context while running, so a call reaches the upstream through the actor that owns it.
 */
import { fromPromise } from 'xstate';
import type { Logger } from 'pino';
import type { ResourceLedger } from '../core/resource-ledger.js';
import type { Settings } from '../core/settings.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import type { LaunchOutput, OfferedLists, ToolCheck, UpstreamSession, UpstreamToolInfo } from '../machines/server-machine.js';
import type { ServerEntry } from '../config/config-types.js';
import { startProcessGroup } from '../adapters/process/process-group.js';
import type { GroupMarks } from '../adapters/process/group-marks.js';
import { startContainer } from '../adapters/docker/container-run.js';
import type { Upstream } from '../adapters/upstream-handle.js';
import type Docker from 'dockerode';
import { connectUpstream } from '../adapters/mcp/upstream-client.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { fetchOfferedList } from '../adapters/mcp/upstream-lists.js';
import { serverLogger } from '../adapters/log/logger.js';
import { expandSecretRefs } from '../adapters/store/secret-refs.js';
import { markerEnv, ownerMarker, type InstanceIdentity } from '../core/instance-identity.js';

export interface LaunchDeps {
  ledger: ResourceLedger;
  logger: Logger;
  settings: () => Settings;
  identity: InstanceIdentity;
  /** The current config entry of a server (undefined when it was removed meanwhile). */
  entryOf: (name: string) => ServerEntry | undefined;
  version: string;
  /** The Docker engine client for `docker` entries (created lazily by the daemon). */
  docker: () => Docker;
  /** Integrity check of the fetched tools, prompts and resource templates against the approved fingerprints. */
  checkTools: (name: string, tools: UpstreamToolInfo[], lists?: OfferedLists) => ToolCheck;
  /** Mark files of the process groups (the marker where environments are unreadable, docs/guarantees.md). */
  groupMarks?: GroupMarks;
  /** The config file's directory: relative `${file:…}` references are resolved against it. */
  configDir: string;
  /** OAuth for remote servers that answer 401 (adapters/remote/oauth-logins.ts); absent: a 401 needs a login nobody can do. */
  oauthProvider?: (name: string, serverUrl: string) => OAuthClientProvider;
}

/** A remote (url) server: no process, an MCP session over HTTP (adapters/remote/remote-upstream.ts). */
async function launchRemote(
  deps: LaunchDeps,
  input: { name: string; owner: string },
  configured: ServerEntry,
  signal: AbortSignal,
): Promise<LaunchOutput> {
  const entry = await expandSecretRefs(input.name, configured, { env: process.env, baseDir: deps.configDir });
  signal.throwIfAborted();
  const settings = deps.settings();
  const log = serverLogger(deps.logger, input.name);
  const url = entry.url ?? '';
  // Loaded with the first remote server: the SDK's HTTP and SSE client transports are not every daemon's.
  const { startRemoteUpstream } = await import('../adapters/remote/remote-upstream.js');
  const { handle, connection } = await startRemoteUpstream(
    { name: input.name, owner: input.owner, url, transport: entry.transport, headers: entry.headers },
    {
      ledger: deps.ledger,
      logger: log,
      requestTimeoutMs: settings.upstreamRequestTimeoutMs,
      pingIntervalMs: settings.remotePingIntervalMs,
      connectTimeoutMs: settings.remoteConnectTimeoutMs,
      retryAfterMaxMs: settings.remoteRetryAfterMaxMs,
      clientInfo: { name: 'mcp-warden', version: deps.version },
      authProvider: deps.oauthProvider?.(input.name, url),
    },
    signal,
  );
  deps.ledger.acquire(input.owner, {
    kind: 'mcp-client',
    description: `mcp client of ${input.name} (remote)`,
    release: () => connection.close(),
  });
  log.info({ kind: handle.kind, ...handle.describe() }, 'remote upstream connected');
  const session: UpstreamSession = {
    name: input.name,
    handle,
    connection,
    toJSON: () => ({ name: input.name, pid: -1, upstream: connection.serverInfo?.name ?? null }),
  };
  signal.throwIfAborted();
  const tools = await connection.listTools(signal);
  // Checked together with the tools, as for local servers.
  const listOpts = { timeoutMs: deps.settings().upstreamRequestTimeoutMs, signal, logger: log };
  const [prompts, resourceTemplates] = await Promise.all([
    fetchOfferedList(connection, 'prompts', listOpts),
    fetchOfferedList(connection, 'resourceTemplates', listOpts),
  ]);
  const lists: OfferedLists = { prompts, resourceTemplates };
  signal.throwIfAborted();
  log.info({ tools: tools.length, upstream: connection.serverInfo?.name }, 'upstream initialized');
  return { pid: -1, tools, ...lists, serverInfo: connection.serverInfo, ...deps.checkTools(input.name, tools, lists), session };
}

/** The daemon's environment minus our own markers (a daemon started by a daemon must not inherit them). */
function baseEnv(): Readonly<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('MCP_WARDEN_')) env[k] = v;
  }
  return env;
}

/**
 * A child's environment: the entry's variables and the markers over the inherited ones, which stay on
 * the prototype instead of being copied for every spawn (spawn reads an environment with `for…in`,
 * prototype values included: Node documents that in its own tests). Copying the ~40 inherited variables
 * into a fresh object was ~20 µs of the daemon's thread per spawn. (Not frozen: assigning a name that a
 * frozen prototype holds throws.)
 */
function childEnv(inherited: Readonly<Record<string, string>>, ...over: Array<Record<string, string> | undefined>): Record<string, string> {
  return Object.assign(Object.create(inherited) as Record<string, string>, ...over);
}

export function createLaunchUpstream(deps: LaunchDeps) {
  // Read once per daemon: reading process.env costs ~0.5 ms per server, and each copy made fresh strings
  // (a few KiB per server kept while it runs). The daemon's own environment does not change.
  let inherited: Readonly<Record<string, string>> | undefined;
  return fromPromise<LaunchOutput, { name: string; owner: string }>(async ({ input, signal }) => {
    const configured = deps.entryOf(input.name);
    if (configured?.type === 'remote') return launchRemote(deps, input, configured, signal);
    if (!configured || !configured.command) {
      throw new WardenError(ErrorCodes.SPAWN_FAILED, `server "${input.name}" has no command to run`);
    }
    // Secrets by reference are expanded for this start only; the registry keeps the references.
    const entry = await expandSecretRefs(input.name, configured, { env: process.env, baseDir: deps.configDir });
    const command = configured.command;
    signal.throwIfAborted();
    const settings = deps.settings();
    const log = serverLogger(deps.logger, input.name);
    const markers = markerEnv(deps.identity, input.name);
    // A container gets only the entry's own environment (never the daemon's); labels mark it ours.
    const handle: Upstream = entry.docker
      ? await startContainer(
          {
            server: input.name,
            instanceId: deps.identity.instanceId,
            ownerMarker: ownerMarker(deps.identity),
            image: entry.docker.image,
            command,
            args: entry.args,
            env: { ...entry.env, ...entry.docker.env },
            cwd: entry.cwd,
            docker: entry.docker,
          },
          { ledger: deps.ledger, owner: input.owner, logger: log, settings, docker: deps.docker() },
        )
      : await startProcessGroup(
          {
            command,
            args: entry.args,
            env: childEnv((inherited ??= baseEnv()), entry.env, markers),
            cwd: entry.cwd,
            label: `${input.name}: ${command}`,
            markers,
          },
          { ledger: deps.ledger, owner: input.owner, logger: log, settings, marks: deps.groupMarks },
        );
    // At debug: 'upstream initialized' says the same (and more) a moment later, and a failed start is
    // logged with the server's error; two info lines per server were a tenth of a 500-server start.
    log.debug({ kind: handle.kind, ...handle.describe() }, 'upstream started');
    signal.throwIfAborted();
    const connection = await connectUpstream(handle, {
      name: input.name,
      logger: log,
      requestTimeoutMs: settings.upstreamRequestTimeoutMs,
      maxMessageBytes: settings.upstreamMaxMessageBytes,
      maxGarbageLines: settings.upstreamGarbageLinesMax,
      garbageWindowMs: settings.upstreamGarbageWindowMs,
      signal,
      clientInfo: { name: 'mcp-warden', version: deps.version },
    }).catch((err: unknown) => {
      if (signal.aborted) throw err;
      if (err instanceof WardenError && (err.code === ErrorCodes.UPSTREAM_MESSAGE_TOO_LARGE || err.code === ErrorCodes.UPSTREAM_PROTOCOL))
        throw err;
      // An upstream that exited during initialize says why (a container: exit code, last stderr line).
      const exited = handle.exitError();
      if (exited) throw exited;
      throw err instanceof WardenError
        ? err
        : new WardenError(ErrorCodes.INIT_FAILED, `initialize failed: ${err instanceof Error ? err.message : String(err)}`);
    });
    const session: UpstreamSession = {
      name: input.name,
      handle,
      connection,
      toJSON: () => ({ name: input.name, pid: handle.pid, upstream: connection.serverInfo?.name ?? null }),
    };
    deps.ledger.acquire(input.owner, {
      kind: 'mcp-client',
      description: `mcp client of ${input.name}`,
      release: () => connection.close(),
    });
    signal.throwIfAborted();
    const tools = await connection.listTools(signal);
    // Checked together with the tools; the endpoint serves exactly these until the next checked refresh.
    const listOpts = { timeoutMs: settings.upstreamRequestTimeoutMs, signal, logger: log };
    const [prompts, resourceTemplates] = await Promise.all([
      fetchOfferedList(connection, 'prompts', listOpts),
      fetchOfferedList(connection, 'resourceTemplates', listOpts),
    ]);
    const lists: OfferedLists = { prompts, resourceTemplates };
    signal.throwIfAborted();
    // `childPid`: the record's own `pid` is the daemon's.
    const { pid: childPid, ...where } = handle.describe();
    log.info({ kind: handle.kind, childPid, ...where, tools: tools.length, upstream: connection.serverInfo?.name }, 'upstream initialized');
    return { pid: handle.pid, tools, ...lists, serverInfo: connection.serverInfo, ...deps.checkTools(input.name, tools, lists), session };
  });
}
