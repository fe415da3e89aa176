/**
 * What a container is created with: the spec a caller gives and the create request body built from
 * it (docs/docker.md, "What mcp-warden asks the engine for"). The environment goes only into the
 * body (`Env`), never into a URL or a log line.
 */
import type { DockerOptions } from '../../config/config-types.js';
import { LABEL_INSTANCE, LABEL_LAUNCH, LABEL_MANAGED, LABEL_OWNER, LABEL_SERVER } from './container-labels.js';

export interface ContainerSpec {
  /** Server name (labels, container name, logs). */
  server: string;
  /** The daemon instance id (label `mcp-warden.instance`): what the watchdog and reapers select by. */
  instanceId: string;
  /** The daemon's owner marker `<pid>:<startTime>:<instanceId>` (label `mcp-warden.owner`), if any. */
  ownerMarker?: string;
  image: string;
  /** Runs as the container's entrypoint (replacing the image's ENTRYPOINT), under docker-init. */
  command: string;
  args: string[];
  /** The complete environment of the container (caller merges entry.env and docker.env). Sent as `Env` only. */
  env: Record<string, string>;
  /** Working directory inside the container. */
  cwd?: string;
  docker: DockerOptions;
}

/**
 * The create body: HostConfig.Init (signals reach the server), AutoRemove (a container that exits
 * while we are not looking is removed by the engine), LogConfig none (the MCP stream is never written
 * to disk), stdin/stdout/stderr attachable, and our labels.
 */
export function createRequestBody(spec: ContainerSpec, launchId: string, stopGraceSeconds: number): Record<string, unknown> {
  const labels: Record<string, string> = {
    [LABEL_MANAGED]: 'true',
    [LABEL_INSTANCE]: spec.instanceId,
    [LABEL_SERVER]: spec.server,
    [LABEL_LAUNCH]: launchId,
  };
  if (spec.ownerMarker) labels[LABEL_OWNER] = spec.ownerMarker;
  const d = spec.docker;
  const hostConfig: Record<string, unknown> = {
    ...(d.extraHostConfig ?? {}),
    Init: true,
    AutoRemove: true,
    NetworkMode: d.network,
    LogConfig: { Type: 'none', Config: {} },
  };
  if (d.memory !== undefined) hostConfig.Memory = d.memory;
  if (d.cpus !== undefined) hostConfig.NanoCpus = Math.round(d.cpus * 1e9);
  if (d.volumes.length > 0) hostConfig.Binds = d.volumes;
  const body: Record<string, unknown> = {
    Image: spec.image,
    Entrypoint: [spec.command],
    Cmd: spec.args,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    StopTimeout: stopGraceSeconds,
    HostConfig: hostConfig,
  };
  if (spec.cwd !== undefined) body.WorkingDir = spec.cwd;
  return body;
}
