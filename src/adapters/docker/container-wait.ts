/**
 * Watching for a container's exit: one `POST /containers/{id}/wait` request, held open until the
 * container exits. dockerode's wait() cannot tell "the engine is waiting" from "no answer yet", so the
 * request is dialled directly: it counts as open once the response headers arrive (bounded by the
 * call deadline); the exit status comes with the body.
 */
import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import { DockerCallError, wrapRaw } from './docker-engine.js';

export interface ExitWatchHandlers {
  /** The container exited (status code, or null if the engine did not say). */
  onExit(code: number | null): void;
  /** The open request broke (engine restarted, proxy) without a status: the exit is unknown. */
  onLost(err: Error): void;
}

/**
 * Opens the wait request; resolves once the engine confirmed it waits, rejects with DockerCallError
 * if it did not within `timeoutMs`. `ctl` aborts it (later handlers are then not called by an abort
 * the caller made: it checks its own controller).
 */
export function watchContainerExit(
  docker: Docker,
  containerId: string,
  condition: 'next-exit' | 'not-running',
  timeoutMs: number,
  ctl: AbortController,
  handlers: ExitWatchHandlers,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let headers = false;
    const timer = setTimeout(() => {
      if (!headers) ctl.abort();
    }, timeoutMs);
    const modem = docker.modem as unknown as {
      dial(opts: Record<string, unknown>, cb: (err: unknown, res: IncomingMessage) => void): void;
    };
    modem.dial(
      {
        path: `/containers/${containerId}/wait?`,
        method: 'POST',
        isStream: true,
        abortSignal: ctl.signal,
        statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' },
        options: { condition },
      },
      (err, res) => {
        clearTimeout(timer);
        if (err) {
          if (ctl.signal.aborted && !headers) {
            reject(
              new DockerCallError('wait', `wait: no answer from the engine within ${timeoutMs} ms (aborted)`, {
                timedOut: true,
                timeoutMs,
              }),
            );
          } else {
            reject(wrapRaw('wait', err, timeoutMs));
          }
          return;
        }
        headers = true;
        resolve();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 4096) body += c;
        });
        res.on('end', () => {
          let code: number | null = null;
          try {
            const parsed = JSON.parse(body) as { StatusCode?: unknown };
            if (typeof parsed.StatusCode === 'number') code = parsed.StatusCode;
          } catch {
            // an empty/garbled body: exit status unknown
          }
          if (body.trim() === '') handlers.onLost(new Error('wait connection ended without a status'));
          else handlers.onExit(code);
        });
        res.on('error', (e: Error) => handlers.onLost(e));
        res.on('aborted', () => handlers.onLost(new Error('wait connection aborted')));
      },
    );
  });
}
