/**
 * mcp-warden's containers as the engine lists them, selected by label only (never by name): listing,
 * removal by id, and the reapers' steps built on them (the watchdog's `removeInstanceContainers`, the
 * startup reaper's `reapOrphanContainers`; docs/docker.md "When the daemon itself dies"). Each
 * removal is one attempt per container (container-stop.ts); a caller that wants another runs it again.
 */
import { existsSync } from 'node:fs';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import {
  asCallError,
  defaultDocker,
  defaultUnixSocket,
  dockerCall,
  engineAddress,
  listContainersOverSocket,
  toWarden,
} from './docker-engine.js';
import { LABEL_INSTANCE, LABEL_LAUNCH, LABEL_MANAGED, LABEL_OWNER, LABEL_SERVER } from './container-labels.js';
import { removeContainer } from './container-stop.js';

export interface ManagedContainer {
  id: string;
  name: string;
  image: string;
  /** `created`, `running`, `exited`, `removing`, … */
  state: string;
  instanceId: string;
  server: string;
  launchId: string;
  /** The owner marker label (`<pid>:<startTime>:<instanceId>`), if the daemon set one. */
  owner?: string;
  createdAt: number;
}

export interface ListManagedOptions {
  docker?: Docker;
  /** Only this daemon instance's containers. */
  instanceId?: string;
  /** Only this server's containers. */
  server?: string;
  timeoutMs?: number;
}

/**
 * Every container (running or not) labelled `mcp-warden.managed=true`, optionally narrowed by
 * instance and server labels. Selection is by label only, never by name. Rejects with WardenError
 * (E_DOCKER_UNAVAILABLE / E_DOCKER_FAILED).
 */
export async function listManagedContainers(opts: ListManagedOptions = {}): Promise<ManagedContainer[]> {
  const label = [`${LABEL_MANAGED}=true`];
  if (opts.instanceId !== undefined) label.push(`${LABEL_INSTANCE}=${opts.instanceId}`);
  if (opts.server !== undefined) label.push(`${LABEL_SERVER}=${opts.server}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // The default engine on a unix socket is asked without dockerode (docker-engine.ts listContainersOverSocket).
  const socket = opts.docker ? undefined : defaultUnixSocket();
  let list: Docker.ContainerInfo[];
  try {
    if (socket !== undefined) {
      list = await listContainersOverSocket(socket, label, timeoutMs);
    } else {
      const docker = opts.docker ?? defaultDocker();
      list = await dockerCall('list', timeoutMs, (abortSignal) =>
        docker.listContainers({ all: true, filters: { label }, abortSignal } as Docker.ContainerListOptions),
      );
    }
  } catch (e) {
    throw toWarden(
      asCallError(e, 'list'),
      socket !== undefined ? `unix://${socket}` : engineAddress(opts.docker),
      'listing mcp-warden containers failed',
    );
  }
  return list.map((c) => {
    const labels = c.Labels ?? {};
    const m: ManagedContainer = {
      id: c.Id,
      name: (c.Names?.[0] ?? '').replace(/^\//, ''),
      image: c.Image,
      state: c.State,
      instanceId: labels[LABEL_INSTANCE] ?? '',
      server: labels[LABEL_SERVER] ?? '',
      launchId: labels[LABEL_LAUNCH] ?? '',
      createdAt: (c.Created ?? 0) * 1000,
    };
    if (labels[LABEL_OWNER] !== undefined) m.owner = labels[LABEL_OWNER];
    return m;
  });
}

export interface RemoveContainersOptions {
  docker?: Docker;
  logger?: Logger;
  /** Deadline of each call (default 10 s). */
  timeoutMs?: number;
}

export interface RemoveResult {
  id: string;
  /** Verifiably gone (inspect → 404). */
  removed: boolean;
  error?: string;
}

/**
 * Force-removes containers by id, concurrently, one attempt each (404/409 = done), verifying each
 * with inspect. Never rejects: failures are logged and reported per container.
 */
export async function removeContainers(ids: readonly string[], opts: RemoveContainersOptions = {}): Promise<RemoveResult[]> {
  const docker = opts.docker ?? defaultDocker();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const removeOne = async (id: string): Promise<RemoveResult> => {
    try {
      await removeContainer(docker, id, timeoutMs);
      return { id, removed: true };
    } catch (e) {
      const error = asCallError(e, 'remove').message;
      opts.logger?.error({ containerId: id.slice(0, 12), err: error }, 'removing container failed');
      return { id, removed: false, error };
    }
  };
  return Promise.all(ids.map(removeOne));
}

/**
 * Removes every container labelled with `instanceId` (the watchdog's and the reapers' step). Never
 * rejects. `engineUnavailable` (with `error`) means no engine answered: on a machine without Docker
 * that is the normal case, not a failure.
 */
export async function removeInstanceContainers(
  instanceId: string,
  opts: RemoveContainersOptions = {},
): Promise<{ found: ManagedContainer[]; results: RemoveResult[]; error?: string; engineUnavailable?: boolean }> {
  let found: ManagedContainer[];
  try {
    found = await listManagedContainers({ docker: opts.docker, instanceId, timeoutMs: opts.timeoutMs });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const engineUnavailable = err instanceof WardenError && err.code === ErrorCodes.DOCKER_UNAVAILABLE;
    if (engineUnavailable) opts.logger?.info({ instanceId, err: message }, 'no Docker engine; no containers to remove');
    else opts.logger?.error({ instanceId, err: message }, 'listing the instance containers failed');
    return { found: [], results: [], error: message, ...(engineUnavailable ? { engineUnavailable } : {}) };
  }
  const results = await removeContainers(
    found.map((c) => c.id),
    opts,
  );
  return { found, results };
}

export interface ReapOrphanContainersOptions {
  docker?: Docker;
  logger?: Logger;
  /** Only report; remove nothing. */
  dryRun: boolean;
  /** The calling daemon's own instance: never reaped. */
  selfInstanceId?: string;
  /**
   * Is the daemon named by an `mcp-warden.owner` label value (`<pid>:<startTime>:<instanceId>`) alive?
   * (daemon/instance-identity.ts: `(m) => { const id = parseOwnerMarker(m); return !id || isOwnerAlive(id); }`
   * — an unparseable marker counts as alive: never remove what cannot be judged.)
   */
  isOwnerAlive: (ownerMarker: string) => boolean;
  timeoutMs?: number;
}

export interface ReapedContainerReport {
  id: string;
  name: string;
  instanceId: string;
  server: string;
  owner: string;
  state: string;
  /** Verifiably gone after removal (always false in a dry run). */
  removed: boolean;
  error?: string;
}

/**
 * The startup reaper's Docker step: every container labelled `mcp-warden.managed=true` whose
 * `mcp-warden.owner` daemon is dead is removed. Containers without an owner label, of the caller's
 * own instance, or of a live owner are never touched. No engine → `skipped` says why (not an error:
 * a machine without Docker has no containers to reap). Never rejects.
 */
export async function reapOrphanContainers(
  opts: ReapOrphanContainersOptions,
): Promise<{ containers: ReapedContainerReport[]; errors: string[]; skipped?: string }> {
  if (!opts.docker) {
    // The common machine without Docker: no socket, nothing to ask, no client library to load.
    const address = engineAddress();
    const socket = address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
    if (socket !== undefined && !existsSync(socket)) {
      opts.logger?.info({ engine: address }, 'no Docker engine; no containers to reap');
      return {
        containers: [],
        errors: [],
        skipped: `listing mcp-warden containers failed: Docker engine at ${address} is not reachable (ENOENT: no socket at ${socket})`,
      };
    }
  }
  // dockerode loads only when there is something to remove (listing goes over the socket when it can).
  const address = engineAddress(opts.docker);
  let all: ManagedContainer[];
  try {
    all = await listManagedContainers({ docker: opts.docker, timeoutMs: opts.timeoutMs });
  } catch (err) {
    if (err instanceof WardenError && err.code === ErrorCodes.DOCKER_UNAVAILABLE) {
      opts.logger?.info({ engine: address }, 'no Docker engine; no containers to reap');
      return { containers: [], errors: [], skipped: err.message };
    }
    const message = err instanceof Error ? err.message : String(err);
    opts.logger?.error({ engine: address, err: message }, 'listing mcp-warden containers failed');
    return { containers: [], errors: [message] };
  }
  const orphans = all.filter((c) => c.owner !== undefined && c.instanceId !== opts.selfInstanceId && !opts.isOwnerAlive(c.owner));
  const reports: ReapedContainerReport[] = orphans.map((c) => ({
    id: c.id,
    name: c.name,
    instanceId: c.instanceId,
    server: c.server,
    owner: c.owner!,
    state: c.state,
    removed: false,
  }));
  const errors: string[] = [];
  if (!opts.dryRun && orphans.length > 0) {
    const results = await removeContainers(
      orphans.map((c) => c.id),
      { docker: opts.docker, logger: opts.logger, timeoutMs: opts.timeoutMs },
    );
    results.forEach((r, i) => {
      reports[i]!.removed = r.removed;
      if (r.error) {
        reports[i]!.error = r.error;
        errors.push(`container ${reports[i]!.name}: ${r.error}`);
      }
    });
  }
  if (reports.length > 0) {
    opts.logger?.warn(
      {
        containers: reports.map((r) => ({ name: r.name, server: r.server, instanceId: r.instanceId, removed: r.removed })),
        dryRun: opts.dryRun,
      },
      `${opts.dryRun ? 'found' : 'reaped'} ${reports.filter((r) => opts.dryRun || r.removed).length} of ${reports.length} orphaned container(s) of dead daemons`,
    );
  }
  return { containers: reports, errors };
}

/** The containers carrying one launch label (normally zero or one): how a container with an unknown id is found. */
export function listLaunchContainers(docker: Docker, launchId: string, timeoutMs: number): Promise<Docker.ContainerInfo[]> {
  return dockerCall('list', timeoutMs, (abortSignal) =>
    docker.listContainers({ all: true, filters: { label: [`${LABEL_LAUNCH}=${launchId}`] }, abortSignal } as Docker.ContainerListOptions),
  );
}
