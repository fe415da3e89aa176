/**
 * Access to the Docker engine: the dockerode client (loaded lazily), the engine's address, and
 * `dockerCall`, which runs one Engine API call under its own deadline and turns every failure into a
 * DockerCallError (status code, errno, timed out). docs/docker.md, "The engine address" and "Errors".
 *
 *   - every call has its own deadline (an AbortSignal; settings.dockerCallTimeoutMs); the dockerode
 *     client never gets a global `timeout` (wait and attach would be cut);
 *   - 304 (already stopped), 404 (no such container) and 409 (removal in progress / not running) on
 *     stop/kill/remove mean "done" (`isDone`).
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { ErrorCodes, WardenError, type ErrorCode } from '../../core/error-codes.js';
import { errnoOf } from '../../core/errno.js';

/**
 * A dockerode client for DOCKER_HOST (unix://, tcp://, ssh://, with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH)
 * or the default socket (`defaultSocketPath`: /var/run/docker.sock, else Docker Desktop's). Any global
 * timeout (DOCKER_CLIENT_TIMEOUT) is removed: every call here carries its own deadline, and a global
 * timeout would cut long-lived calls (wait, attach).
 */
export function createDockerClient(options?: Docker.DockerOptions): Docker {
  const env = process.env.DOCKER_HOST;
  // Without DOCKER_HOST, the socket we name in engineAddress is the one we use (not docker-modem's own guess).
  const opts = options ?? (env && env !== 'unix://' ? undefined : { socketPath: defaultSocketPath() });
  const docker = new (loadDockerode())(opts);
  (docker.modem as unknown as { timeout?: number }).timeout = undefined;
  return docker;
}

/**
 * dockerode (with ssh2, grpc and protobufjs) is a fifth of the daemon's module loading: loaded on
 * first use, so a machine without Docker, or a config without `docker` entries whose startup reap
 * finds no engine socket, starts without it.
 */
let dockerodeCtor: typeof Docker | undefined;
function loadDockerode(): typeof Docker {
  dockerodeCtor ??= createRequire(import.meta.url)('dockerode') as typeof Docker;
  return dockerodeCtor;
}

/**
 * The engine's unix socket when the process-wide client would use one (DOCKER_HOST unset, `unix://`
 * or `unix:///path`), else undefined (tcp, ssh, TLS: those go through dockerode).
 */
export function defaultUnixSocket(): string | undefined {
  const address = engineAddress();
  return address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
}

/**
 * `GET /containers/json?all=1&filters=…` straight over the engine's unix socket, with node:http: the
 * one Engine API call every start makes (the startup reaper's and the watchdog's listing), without
 * loading dockerode (ssh2, grpc, protobufjs: a fifth of the daemon's memory). The answer has the
 * shape dockerode's listContainers returns. Rejects with DockerCallError like `dockerCall`.
 */
export function listContainersOverSocket(socketPath: string, label: readonly string[], timeoutMs: number): Promise<Docker.ContainerInfo[]> {
  const path = `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label }))}`;
  return new Promise((resolve, reject) => {
    let timedOut = false;
    // agent: false: a connection of its own, closed with the answer (the global agent keeps sockets alive,
    // which would hold the daemon's and the watchdog's event loop open past the call).
    const req = request({ socketPath, path, method: 'GET', headers: { host: 'docker' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(wrapRaw('list', err, timeoutMs));
      });
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        if (status < 200 || status >= 300 || !Array.isArray(json)) {
          const err = Object.assign(new Error(`HTTP ${status}`), { statusCode: status, json });
          reject(wrapRaw('list', err, timeoutMs));
          return;
        }
        resolve(json as Docker.ContainerInfo[]);
      });
    });
    const timer = setTimeout(() => {
      timedOut = true;
      req.destroy();
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(
        timedOut
          ? new DockerCallError('list', `list: no answer from the engine within ${timeoutMs} ms (aborted)`, { timedOut: true, timeoutMs })
          : wrapRaw('list', err, timeoutMs),
      );
    });
    req.end();
  });
}

let defaultClient: Docker | undefined;
/** The process-wide client for DOCKER_HOST or the default socket (made on first use). */
export function defaultDocker(): Docker {
  defaultClient ??= createDockerClient();
  return defaultClient;
}

/**
 * The engine socket when DOCKER_HOST is unset: /var/run/docker.sock (Linux engines; Docker Desktop
 * links it when allowed to), else Docker Desktop's per-user sockets (~/.docker/run/docker.sock on
 * macOS and Linux, the older ~/Library/Containers/com.docker.docker/Data/docker.raw.sock on macOS),
 * else /var/run/docker.sock again so errors name the usual place.
 */
export function defaultSocketPath(exists: (path: string) => boolean = existsSync, home: string = homedir()): string {
  const candidates = [
    '/var/run/docker.sock',
    join(home, '.docker', 'run', 'docker.sock'),
    join(home, 'Library', 'Containers', 'com.docker.docker', 'Data', 'docker.raw.sock'),
  ];
  return candidates.find((p) => exists(p)) ?? candidates[0]!;
}

/** The engine address a client talks to, e.g. `unix:///var/run/docker.sock` or `tcp://10.0.0.5:2376`. */
export function engineAddress(docker?: Docker): string {
  if (!docker) {
    const env = process.env.DOCKER_HOST;
    if (env && env !== 'unix://') return env;
    return `unix://${defaultSocketPath()}`;
  }
  const modem = docker.modem as unknown as {
    socketPath?: string | (() => unknown);
    socketPathCache?: unknown;
    host?: string;
    port?: number | string;
    protocol?: string;
  };
  if (modem.socketPath !== undefined) {
    // A function socketPath is docker-modem's default lookup (its cache holds a promise): redo it.
    const p = typeof modem.socketPath === 'string' ? modem.socketPath : defaultSocketPath();
    return p.startsWith('//./pipe/') ? `npipe://${p}` : `unix://${p}`;
  }
  const proto = modem.protocol === 'https' ? 'https' : modem.protocol === 'ssh' ? 'ssh' : 'tcp';
  return `${proto}://${modem.host ?? 'localhost'}${modem.port !== undefined ? `:${modem.port}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Calls with deadlines, and their errors
// ---------------------------------------------------------------------------------------------

/** Connection-level errors: the request never reached an engine (so it created nothing). */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'EACCES',
  'EPERM',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOTSOCK',
]);

/** A failed Engine API call, with what is known about why. */
export class DockerCallError extends Error {
  constructor(
    readonly op: string,
    message: string,
    readonly info: { timedOut: boolean; statusCode?: number; errno?: string; engineMessage?: string; timeoutMs: number },
  ) {
    super(message);
    this.name = 'DockerCallError';
  }
  get unreachable(): boolean {
    return this.info.errno !== undefined && UNREACHABLE_CODES.has(this.info.errno);
  }
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function engineMessageOf(err: unknown): string | undefined {
  const json = (err as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  if (typeof json === 'string' && json.trim()) return json.trim();
  if (Buffer.isBuffer(json)) return json.toString('utf8').trim() || undefined;
  return undefined;
}

/** A dockerode/docker-modem error as a DockerCallError. */
export function wrapRaw(op: string, err: unknown, timeoutMs: number): DockerCallError {
  if (err instanceof DockerCallError) return err;
  const statusCode = statusOf(err);
  const errno = errnoOf(err);
  const engineMessage = engineMessageOf(err);
  const why =
    statusCode !== undefined
      ? `HTTP ${statusCode}${engineMessage ? `: ${engineMessage}` : ''}`
      : err instanceof Error
        ? err.message
        : String(err);
  return new DockerCallError(op, `${op}: ${why}`, { timedOut: false, statusCode, errno, engineMessage, timeoutMs });
}

/** Runs one Engine API call under its own deadline. Rejects with DockerCallError. */
export async function dockerCall<T>(op: string, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new Error(`${op}: no answer within ${timeoutMs} ms`));
  }, timeoutMs);
  try {
    return await fn(ctl.signal);
  } catch (err) {
    if (timedOut) {
      throw new DockerCallError(op, `${op}: no answer from the engine within ${timeoutMs} ms (aborted)`, { timedOut: true, timeoutMs });
    }
    throw wrapRaw(op, err, timeoutMs);
  } finally {
    clearTimeout(timer);
  }
}

/** Any rejection of an engine call as a DockerCallError (already one: unchanged). */
export function asCallError(err: unknown, op: string): DockerCallError {
  return wrapRaw(op, err, 0);
}

/** 304/404/409 on stop/kill/remove: the container is already where we want it. */
export function isDone(err: DockerCallError): boolean {
  return err.info.statusCode === 304 || err.info.statusCode === 404 || err.info.statusCode === 409;
}

/** A failed call as the coded error callers see: E_DOCKER_UNAVAILABLE if no engine was reached, else `code` or E_DOCKER_FAILED. */
export function toWarden(err: DockerCallError, address: string, what: string, code?: ErrorCode): WardenError {
  const detail = {
    engine: address,
    op: err.op,
    statusCode: err.info.statusCode,
    errno: err.info.errno,
    timedOut: err.info.timedOut,
  };
  if (code) return new WardenError(code, `${what}: ${err.message}`, detail);
  if (err.unreachable) {
    return new WardenError(
      ErrorCodes.DOCKER_UNAVAILABLE,
      `${what}: Docker engine at ${address} is not reachable (${err.info.errno}: ${err.message})`,
      detail,
    );
  }
  return new WardenError(ErrorCodes.DOCKER_FAILED, `${what}: ${err.message} (engine ${address})`, detail);
}
