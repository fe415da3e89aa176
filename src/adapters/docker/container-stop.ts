/**
 * Stopping, killing and removing one container: each function is a single attempt with its own
 * deadline and never retries. Whoever owns the container decides whether and when to try again (for
 * a server's container: the server statechart's reaping states, docs/docker.md "Stopping and
 * removal"). 304/404/409 mean the container is already where we want it. Every function rejects with
 * DockerCallError.
 */
import type Docker from 'dockerode';
import { asCallError, dockerCall, DockerCallError, isDone } from './docker-engine.js';

/** Between two inspects while a removal settles (409 "removal in progress" from AutoRemove). */
const VERIFY_POLL_MS = 50;

/**
 * `docker stop -t graceSeconds`: SIGTERM (through docker-init), then the engine's SIGKILL after the
 * grace. The call's deadline is `timeoutMs` plus the grace, since the engine answers only afterwards.
 */
export async function stopContainer(docker: Docker, id: string, graceSeconds: number, timeoutMs: number): Promise<void> {
  try {
    await dockerCall('stop', timeoutMs + graceSeconds * 1_000, (abortSignal) =>
      docker.getContainer(id).stop({ t: graceSeconds, abortSignal }),
    );
  } catch (e) {
    const err = asCallError(e, 'stop');
    if (!isDone(err)) throw err;
  }
}

/** SIGKILL through the API. */
export async function killContainer(docker: Docker, id: string, timeoutMs: number): Promise<void> {
  try {
    await dockerCall('kill', timeoutMs, (abortSignal) =>
      docker.getContainer(id).kill({ signal: 'SIGKILL', abortSignal } as Record<string, unknown>),
    );
  } catch (e) {
    const err = asCallError(e, 'kill');
    if (!isDone(err)) throw err;
  }
}

/** True if inspecting `id` answers 404; false if it still exists. */
export async function containerGone(docker: Docker, id: string, timeoutMs: number): Promise<boolean> {
  try {
    await dockerCall('inspect', timeoutMs, (abortSignal) => docker.getContainer(id).inspect({ abortSignal }));
    return false;
  } catch (e) {
    const err = asCallError(e, 'inspect');
    if (err.info.statusCode === 404) return true;
    throw err;
  }
}

/**
 * One forced removal (kills a running container): `remove(force, v)`, then verified by inspect → 404.
 * The verification may take up to one more `timeoutMs`: a removal already in progress (409, the
 * engine's AutoRemove racing us) settles within moments. Resolves only once the container is gone.
 */
export async function removeContainer(docker: Docker, id: string, timeoutMs: number): Promise<void> {
  try {
    await dockerCall('remove', timeoutMs, (abortSignal) =>
      docker.getContainer(id).remove({ force: true, v: true, abortSignal } as Record<string, unknown>),
    );
  } catch (e) {
    const err = asCallError(e, 'remove');
    if (!isDone(err)) throw err;
  }
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await containerGone(docker, id, Math.max(1, until - Date.now()))) return;
    if (Date.now() >= until) {
      throw new DockerCallError('remove', `remove: container ${id.slice(0, 12)} still exists ${timeoutMs} ms after its removal`, {
        timedOut: false,
        timeoutMs,
      });
    }
    await new Promise<void>((r) => setTimeout(r, VERIFY_POLL_MS));
  }
}
