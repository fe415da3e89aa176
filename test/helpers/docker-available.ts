/**
 * Shared decision for every test suite that needs a real Docker engine.
 *
 * No engine answering → with `CI` set the suite FAILS (throws at load time: a CI run must not go
 * green by silently skipping its Docker tests); locally it is skipped with a loud notice on stderr.
 * Start an engine with `scripts/ensure-docker.sh`.
 */
import { processTable } from '../../src/adapters/process/current-table.js';
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { createDockerClient, dockerCall, engineAddress } from '../../src/adapters/docker/docker-engine.js';

export const DOCKERD_PIDFILE = process.env.MCP_WARDEN_DOCKERD_PIDFILE ?? '/tmp/mcp-warden-dockerd.pid';

export type DockerProbe = { ok: true; docker: Docker; address: string; version: string } | { ok: false; address: string; reason: string };

let probe: Promise<DockerProbe> | undefined;

/** Pings the engine (DOCKER_HOST or the default socket) once per process. */
export function probeDocker(): Promise<DockerProbe> {
  probe ??= (async (): Promise<DockerProbe> => {
    const docker = createDockerClient();
    const address = engineAddress(docker);
    try {
      const version = await dockerCall('version', 5_000, (abortSignal) =>
        (docker.version as unknown as (this: Docker, o: object) => Promise<{ Version?: string }>).call(docker, { abortSignal }),
      );
      return { ok: true, docker, address, version: version.Version ?? '?' };
    } catch (err) {
      return { ok: false, address, reason: err instanceof Error ? err.message : String(err) };
    }
  })();
  return probe;
}

/**
 * For `describe(name, { skip: await dockerSuiteSkip(name) }, …)` together with
 * `before(() => requireDocker())`: false when an engine answers; otherwise locally a skip reason
 * (after a loud notice), and in CI false again, so the suite runs and `requireDocker()` fails
 * every test with the reason.
 */
export async function dockerSuiteSkip(suite: string): Promise<false | string> {
  const p = await probeDocker();
  if (p.ok) return false;
  const msg = `no Docker engine at ${p.address} (${p.reason}); run scripts/ensure-docker.sh`;
  if (process.env.CI) {
    console.error(`\n*** DOCKER SUITE "${suite}" FAILS: CI is set and there is ${msg} ***\n`);
    return false;
  }
  console.error(`\n*** DOCKER SUITE SKIPPED: "${suite}": ${msg} ***\n`);
  return `DOCKER SUITE SKIPPED: ${msg}`;
}

/** In a Docker suite's `before`: the engine, or a loud failure. */
export async function requireDocker(): Promise<{ docker: Docker; address: string; version: string }> {
  const p = await probeDocker();
  if (!p.ok)
    throw new Error(
      `*** DOCKER ENGINE REQUIRED${process.env.CI ? ' (CI is set)' : ''}: no Docker engine at ${p.address} (${p.reason}); run scripts/ensure-docker.sh ***`,
    );
  return p;
}

/**
 * The pid of the dockerd that scripts/ensure-docker.sh started (its pid file), if that process still
 * is a dockerd. Tests signal exactly this process and never another.
 */
export function ensuredDockerdPid(): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(DOCKERD_PIDFILE, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  return processTable().get(pid)?.comm === 'dockerd' ? pid : undefined;
}
