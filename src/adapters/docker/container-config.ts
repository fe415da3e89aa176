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

/** Limits a container gets unless its entry's `docker` options say otherwise (docs/docker.md). */
export const CONTAINER_DEFAULTS = Object.freeze({
  memoryBytes: 512 * 1024 * 1024,
  cpus: 1,
  pidsLimit: 256,
  /** The writable scratch space of a read-only container. */
  tmpfs: 'rw,nosuid,nodev,size=64m',
});

/**
 * The create body: hardened by default: every capability dropped (`capAdd` adds some
 * back), `no-new-privileges`, memory, CPU and pids limits, a read-only root filesystem with a tmpfs
 * on /tmp; each overridable in the entry's `docker` options. HostConfig.Init (signals reach the server), AutoRemove (a container that exits
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
  const extra = d.extraHostConfig ?? {};
  const securityOpt = Array.isArray(extra.SecurityOpt) ? extra.SecurityOpt.filter((o): o is string => typeof o === 'string') : [];
  if (d.noNewPrivileges !== false && !securityOpt.some((o) => o.startsWith('no-new-privileges'))) securityOpt.push('no-new-privileges');
  const readOnly = d.readOnly !== false;
  const tmpfs: Record<string, string> = { ...(isStringMap(extra.Tmpfs) ? extra.Tmpfs : {}) };
  if (readOnly && tmpfs['/tmp'] === undefined) tmpfs['/tmp'] = CONTAINER_DEFAULTS.tmpfs;
  const hostConfig: Record<string, unknown> = {
    ...extra,
    Init: true,
    AutoRemove: true,
    NetworkMode: d.network,
    LogConfig: { Type: 'none', Config: {} },
    CapDrop: ['ALL'],
    CapAdd: d.capAdd ?? [],
    SecurityOpt: securityOpt,
    ReadonlyRootfs: readOnly,
    Memory: d.memory ?? CONTAINER_DEFAULTS.memoryBytes,
    NanoCpus: Math.round((d.cpus ?? CONTAINER_DEFAULTS.cpus) * 1e9),
    PidsLimit: d.pidsLimit === 0 ? -1 : (d.pidsLimit ?? CONTAINER_DEFAULTS.pidsLimit),
  };
  if (Object.keys(tmpfs).length > 0) hostConfig.Tmpfs = tmpfs;
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

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}
