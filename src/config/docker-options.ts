/**
 * Validation of a server entry's `docker` object (docs/docker.md is the user-facing description).
 * Pure, never throws: problems become ConfigIssues with JSON paths such as
 * `$.mcpServers.memory.docker.memory`, unknown keys become warnings.
 *
 * Kept apart from config-schema.ts (which calls it) so the container shape has one home; the
 * path/type helpers both use live in json-path.ts, which keeps the import graph acyclic.
 */
import path from 'node:path';
import { describeType, joinPath } from './json-path.js';
import type { ConfigIssue, ConfigWarning, DockerOptions } from './config-types.js';
import { isPlainObject } from '../core/plain-object.js';

const KNOWN_DOCKER_KEYS = [
  'image',
  'network',
  'memory',
  'cpus',
  'pidsLimit',
  'readOnly',
  'noNewPrivileges',
  'capAdd',
  'allowPrivileged',
  'allowHostMounts',
  'volumes',
  'env',
  'extraHostConfig',
] as const;

/** HostConfig keys mcp-warden sets itself; in `extraHostConfig` they are dropped with a warning. */
const MANAGED_HOST_CONFIG_KEYS: Readonly<Record<string, string>> = Object.freeze({
  Init: 'mcp-warden always runs an init process (HostConfig.Init: true) so signals reach the server',
  AutoRemove: 'mcp-warden removes its containers itself (and sets AutoRemove)',
  NetworkMode: 'use "docker.network"',
  Memory: 'use "docker.memory"',
  NanoCpus: 'use "docker.cpus"',
  Binds: 'use "docker.volumes"',
  PidsLimit: 'use "docker.pidsLimit"',
  ReadonlyRootfs: 'use "docker.readOnly"',
  CapAdd: 'use "docker.capAdd"',
  CapDrop: 'mcp-warden drops all capabilities; add some back with "docker.capAdd"',
});

/** The engine refuses memory limits below 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
const DEFAULT_NETWORK = 'none';

const NUL = '\u0000';
const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** `"512m"`, `"1.5g"`, `"1048576"`, `"64MB"` → bytes; undefined when unparseable. */
export function parseMemory(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$/i.exec(value);
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * Validates `raw` (the entry's `docker` value, already known to be an object). Returns the
 * normalized options, or undefined when it pushed at least one issue.
 */
export function parseDockerOptions(
  raw: Record<string, unknown>,
  at: string,
  baseDir: string,
  issues: ConfigIssue[],
  warnings: ConfigWarning[],
): DockerOptions | undefined {
  const before = issues.length;
  const issue = (p: string, message: string) => issues.push({ path: p, message });

  for (const key of Object.keys(raw)) {
    if (!(KNOWN_DOCKER_KEYS as readonly string[]).includes(key)) {
      const near = KNOWN_DOCKER_KEYS.find((k) => k.toLowerCase() === key.toLowerCase());
      warnings.push({
        path: joinPath(at, key),
        message: near ? `unknown key, ignored (did you mean ${JSON.stringify(near)}?)` : 'unknown key, ignored',
        level: 'warning',
      });
    }
  }

  // image (required)
  let image = '';
  if (raw.image === undefined) issue(at, 'missing "image" (the container image to run, e.g. "mcp/memory:latest")');
  else if (typeof raw.image !== 'string') issue(joinPath(at, 'image'), `expected the image as a string, got ${describeType(raw.image)}`);
  else if (raw.image.trim() === '') issue(joinPath(at, 'image'), 'must not be empty');
  else if (/[\s\u0000-\u001f]/.test(raw.image)) issue(joinPath(at, 'image'), 'must not contain whitespace or control characters');
  else image = raw.image;

  // network
  let network = DEFAULT_NETWORK;
  if (raw.network !== undefined) {
    if (typeof raw.network !== 'string')
      issue(joinPath(at, 'network'), `expected "none", "bridge", "host" or a network name, got ${describeType(raw.network)}`);
    else if (raw.network === '' || /[\s\u0000-\u001f]/.test(raw.network))
      issue(joinPath(at, 'network'), 'must be a non-empty network name without whitespace');
    else network = raw.network;
  }

  // memory
  let memory: number | undefined;
  if (raw.memory !== undefined) {
    const p = joinPath(at, 'memory');
    if (typeof raw.memory === 'number') {
      if (!Number.isSafeInteger(raw.memory))
        issue(p, `expected a whole number of bytes or a string like "512m", got ${describeType(raw.memory)}`);
      else memory = raw.memory;
    } else if (typeof raw.memory === 'string') {
      memory = parseMemory(raw.memory);
      if (memory === undefined)
        issue(p, `expected a size like "512m", "1g", "256k" or a number of bytes, got ${JSON.stringify(raw.memory.slice(0, 40))}`);
    } else {
      issue(p, `expected a size like "512m" or a number of bytes, got ${describeType(raw.memory)}`);
    }
    if (memory !== undefined && memory < MIN_MEMORY_BYTES) {
      issue(p, `must be at least 6 MiB ("6m", ${MIN_MEMORY_BYTES} bytes): the engine refuses smaller limits`);
      memory = undefined;
    }
  }

  // cpus
  let cpus: number | undefined;
  if (raw.cpus !== undefined) {
    if (typeof raw.cpus !== 'number' || !Number.isFinite(raw.cpus) || raw.cpus <= 0 || raw.cpus > 1024) {
      issue(
        joinPath(at, 'cpus'),
        `expected a number of CPUs greater than 0 (e.g. 0.5 or 2), got ${typeof raw.cpus === 'number' ? raw.cpus : describeType(raw.cpus)}`,
      );
    } else if (raw.cpus < 0.01) {
      issue(joinPath(at, 'cpus'), `must be at least 0.01 (the engine refuses less), got ${raw.cpus}`);
    } else cpus = raw.cpus;
  }

  // pidsLimit
  let pidsLimit: number | undefined;
  if (raw.pidsLimit !== undefined) {
    if (typeof raw.pidsLimit !== 'number' || !Number.isSafeInteger(raw.pidsLimit) || raw.pidsLimit < 0)
      issue(joinPath(at, 'pidsLimit'), `expected a whole number of processes ≥ 0 (0 = no limit), got ${describeType(raw.pidsLimit)}`);
    else pidsLimit = raw.pidsLimit;
  }

  // the boolean switches
  const flags: Partial<Record<'readOnly' | 'noNewPrivileges' | 'allowPrivileged' | 'allowHostMounts', boolean>> = {};
  for (const key of ['readOnly', 'noNewPrivileges', 'allowPrivileged', 'allowHostMounts'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') issue(joinPath(at, key), `expected true or false, got ${describeType(v)}`);
    else flags[key] = v;
  }

  // capAdd
  let capAdd: string[] | undefined;
  if (raw.capAdd !== undefined) {
    if (!Array.isArray(raw.capAdd) || raw.capAdd.some((c) => typeof c !== 'string' || !/^(CAP_)?[A-Z_]{2,40}$/.test(c)))
      issue(joinPath(at, 'capAdd'), 'expected a list of capability names such as ["NET_BIND_SERVICE"]');
    else capAdd = raw.capAdd as string[];
  }

  // volumes
  const volumes: string[] = [];
  if (raw.volumes !== undefined) {
    if (!Array.isArray(raw.volumes)) {
      issue(joinPath(at, 'volumes'), `expected an array of "/host/path:/container/path[:ro]" strings, got ${describeType(raw.volumes)}`);
    } else {
      raw.volumes.forEach((v, i) => {
        const p = joinPath(joinPath(at, 'volumes'), i);
        if (typeof v !== 'string') return void issue(p, `expected "/host/path:/container/path[:ro]", got ${describeType(v)}`);
        const bind = parseVolume(v, baseDir);
        if (typeof bind === 'string') volumes.push(bind);
        else issue(p, bind.error);
      });
    }
  }

  // env
  const env: Record<string, string> = {};
  if (raw.env !== undefined) {
    if (!isPlainObject(raw.env)) {
      issue(joinPath(at, 'env'), `expected an environment map (an object of string values), got ${describeType(raw.env)}`);
    } else {
      for (const [k, v] of Object.entries(raw.env)) {
        const p = joinPath(joinPath(at, 'env'), k);
        if (k.length === 0 || k.includes('=') || k.includes(NUL))
          issue(p, 'environment variable names must be non-empty and must not contain "=" or NUL');
        else if (typeof v !== 'string') issue(p, `expected a string value, got ${describeType(v)}`);
        else if (v.includes(NUL)) issue(p, 'value must not contain NUL characters');
        else env[k] = v;
      }
    }
  }

  // extraHostConfig
  let extraHostConfig: Record<string, unknown> | undefined;
  if (raw.extraHostConfig !== undefined) {
    if (!isPlainObject(raw.extraHostConfig)) {
      issue(joinPath(at, 'extraHostConfig'), `expected an object of Docker HostConfig fields, got ${describeType(raw.extraHostConfig)}`);
    } else {
      extraHostConfig = {};
      for (const [k, v] of Object.entries(raw.extraHostConfig)) {
        if (Object.hasOwn(MANAGED_HOST_CONFIG_KEYS, k)) {
          warnings.push({
            path: joinPath(joinPath(at, 'extraHostConfig'), k),
            message: `ignored: set by mcp-warden (${MANAGED_HOST_CONFIG_KEYS[k]})`,
            level: 'warning',
          });
        } else extraHostConfig[k] = v;
      }
    }
  }

  // Privileged and host mounts: only with the explicit flag; status shows them (server-view.ts).
  if (extraHostConfig?.Privileged === true && flags.allowPrivileged !== true) {
    issue(
      joinPath(joinPath(at, 'extraHostConfig'), 'Privileged'),
      'a privileged container can take over the host; set "docker.allowPrivileged": true to confirm',
    );
  }
  if (flags.allowHostMounts !== true) {
    if (volumes.length > 0)
      issue(joinPath(at, 'volumes'), 'host paths are mounted into the container; set "docker.allowHostMounts": true to confirm');
    if (hostBindMounts(extraHostConfig).length > 0)
      issue(
        joinPath(joinPath(at, 'extraHostConfig'), 'Mounts'),
        'bind mounts of host paths; set "docker.allowHostMounts": true to confirm',
      );
  }

  if (issues.length > before) return undefined;
  const out: DockerOptions = { image, network, volumes, env };
  if (pidsLimit !== undefined) out.pidsLimit = pidsLimit;
  if (capAdd !== undefined) out.capAdd = capAdd;
  Object.assign(out, flags);
  if (memory !== undefined) out.memory = memory;
  if (cpus !== undefined) out.cpus = cpus;
  if (extraHostConfig !== undefined) out.extraHostConfig = extraHostConfig;
  return out;
}

/** The host paths of `Mounts` entries of type bind in an extraHostConfig. */
export function hostBindMounts(extra: Record<string, unknown> | undefined): string[] {
  const mounts = extra?.Mounts;
  if (!Array.isArray(mounts)) return [];
  return mounts
    .filter((m): m is Record<string, unknown> => isPlainObject(m) && m.Type === 'bind')
    .map((m) => (typeof m.Source === 'string' ? m.Source : '?'));
}

/**
 * What `status` shows about a container's reach into the host (server-view.ts): privileged, host
 * mounts, the host network. Empty for a process server.
 */
export function dockerWarnings(d: DockerOptions | undefined): string[] {
  if (!d) return [];
  const out: string[] = [];
  if (d.extraHostConfig?.Privileged === true) out.push('privileged container (docker.allowPrivileged)');
  const mounts = [...d.volumes.map((v) => v.split(':')[0]!), ...hostBindMounts(d.extraHostConfig)];
  if (mounts.length > 0) out.push(`host paths mounted: ${mounts.join(', ')} (docker.allowHostMounts)`);
  if (d.network === 'host') out.push('host network (docker.network)');
  if (d.readOnly === false) out.push('writable root filesystem (docker.readOnly: false)');
  if (d.noNewPrivileges === false) out.push('no-new-privileges off (docker.noNewPrivileges: false)');
  if (d.capAdd && d.capAdd.length > 0) out.push(`capabilities added: ${d.capAdd.join(', ')}`);
  return out;
}

/** `host:container[:ro|rw]` → a normalized HostConfig.Binds string, or why it is invalid. */
export function parseVolume(spec: string, baseDir: string): string | { error: string } {
  if (spec.includes(NUL)) return { error: 'must not contain NUL characters' };
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) {
    return { error: `expected "/host/path:/container/path" with an optional ":ro" or ":rw", got ${JSON.stringify(spec.slice(0, 80))}` };
  }
  const [host, container, mode] = parts as [string, string, string | undefined];
  if (host === '') return { error: 'the host path is empty' };
  if (host.startsWith('~')) return { error: '"~" is not expanded; use an absolute host path (or one relative to the config file)' };
  if (!host.startsWith('/') && !host.startsWith('.')) {
    return {
      error: `host path ${JSON.stringify(host)} is neither absolute nor relative ("./…"); named volumes are not supported here (use extraHostConfig.Mounts)`,
    };
  }
  if (!container.startsWith('/')) return { error: `the container path must be absolute, got ${JSON.stringify(container)}` };
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return { error: `the mode must be "ro" or "rw", got ${JSON.stringify(mode)}` };
  const hostAbs = path.resolve(baseDir, host);
  return mode ? `${hostAbs}:${container}:${mode}` : `${hostAbs}:${container}`;
}
