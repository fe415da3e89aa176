/**
 * The normalized, validated shape of an mcp-warden config file (see docs/config.md for the
 * user-facing format). Produced by parseConfig / parseServerEntry in config-schema.ts.
 */
import type { Settings } from '../core/settings.js';

/** One configured MCP server after validation; defaults filled, `cwd` made absolute. */
export interface ServerEntry {
  /** `stdio` = a local process we spawn; `remote` = an http/sse/streamable-http URL (adapters/remote/). */
  type: 'stdio' | 'remote';
  /** Program to run (stdio only). Looked up on PATH by the spawner if it has no slash. */
  command?: string;
  /** Arguments passed to `command`, verbatim (no shell, no expansion). */
  args: string[];
  /** Extra environment variables for the process. */
  env: Record<string, string>;
  /** Absolute working directory (a relative value in the file is resolved against the file's directory). */
  cwd?: string;
  /** Remote servers only. */
  url?: string;
  /** Remote servers only: extra HTTP headers. */
  headers?: Record<string, string>;
  /**
   * Remote servers only: `http` (Streamable HTTP; config types "http", "streamable-http",
   * "streamableHttp") or `sse` (the legacy HTTP+SSE transport). Absent: Streamable HTTP, falling back
   * to SSE when the initialize POST is answered 400, 404 or 405.
   */
  transport?: 'http' | 'sse';
  /** Configured but not started. */
  disabled: boolean;
  /** Started but none of its tools are exposed until an operator approves it. */
  quarantined: boolean;
  /**
   * Run `command`/`args` inside this container image instead of on the host (docs/docker.md).
   * With `docker`, `cwd` is the working directory inside the container (absolute, not resolved).
   */
  docker?: DockerOptions;
  /** Which of its tools are exposed, and which are pinned in search mode (docs/config.md#tool-filters). */
  tools?: ToolFilterOptions;
}

/** The `tools` object of a server entry: globs over the upstream's own tool names (`*`, `?`). */
export interface ToolFilterOptions {
  /** Only matching tools are exposed (absent: all). */
  allow?: string[];
  /** Matching tools are never exposed; wins over `allow`. */
  deny?: string[];
  /** In search mode (`settings.toolMode`), matching exposed tools are listed beside the two search tools. */
  pinned?: string[];
}

/** The `docker` object of a stdio server entry, validated and normalized (docs/docker.md). */
export interface DockerOptions {
  /** Image reference (`name[:tag]` or `name@sha256:…`). mcp-warden never pulls it. */
  image: string;
  /** HostConfig.NetworkMode: `none` (default, no network), `bridge`, `host` or a user-defined network. */
  network: string;
  /** Memory limit in bytes (the file may say `"512m"`). */
  memory?: number;
  /** CPU limit in CPUs (HostConfig.NanoCpus = cpus × 10⁹). */
  cpus?: number;
  /** Bind mounts `/absolute/host:/container[:ro|:rw]`; relative host paths are resolved against the config file's directory. */
  volumes: string[];
  /** Environment for the container, merged over the entry's `env` (these win). */
  env: Record<string, string>;
  /** Escape hatch: merged into HostConfig; keys mcp-warden manages itself are dropped (with a config warning). */
  extraHostConfig?: Record<string, unknown>;
  /** HostConfig.PidsLimit; default 256 (docs/docker.md); 0 = no limit. */
  pidsLimit?: number;
  /** HostConfig.ReadonlyRootfs (with a tmpfs on /tmp); default true. */
  readOnly?: boolean;
  /** SecurityOpt `no-new-privileges`; default true. */
  noNewPrivileges?: boolean;
  /** Capabilities added back after `CapDrop: ["ALL"]`; default none. */
  capAdd?: string[];
  /** Required for `extraHostConfig.Privileged: true`. */
  allowPrivileged?: boolean;
  /** Required for host paths in `volumes` or bind mounts in `extraHostConfig.Mounts`. */
  allowHostMounts?: boolean;
}

export interface WardenConfig {
  mcpServers: Record<string, ServerEntry>;
  /** DEFAULT_SETTINGS with the file's `settings` merged over them. */
  settings: Settings;
}

/** A problem that makes the config unusable. `path` is a JSON path such as `$.mcpServers.memory.args`. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/**
 * Something the daemon ignores but the user may want to know about.
 * `level: 'warning'` — probably a mistake (unknown key, typo); `level: 'info'` — a key known to
 * belong to another MCP client (e.g. Cline's `autoApprove`) that mcp-warden deliberately ignores.
 */
export interface ConfigWarning {
  path: string;
  message: string;
  level: 'warning' | 'info';
}
