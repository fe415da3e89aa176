/**
 * An MCP stdio server in a Docker container, owned through the resource ledger (docs/docker.md).
 *
 * The container is the Docker twin of a ProcessGroupHandle: `stdin`/`stdout` carry the MCP stream
 * (a hijacked attach connection, demultiplexed), stderr is drained rate-limited into the logger,
 * `exited`/`onExit` report the container's exit, `stop()` runs a bounded escalation and `kill()` the
 * forced path. Exactly one ledger entry (kind 'container') exists per start, acquired *before* the
 * create call: if create times out after the engine did create it, the entry's release still finds
 * the container by its unique `mcp-warden.launch` label. The entry is settled only once the
 * container is verifiably gone (inspect by id → 404 and no container carries its launch label).
 *
 * Rules (see NOTES.md, Docker):
 *   - every Engine API call has its own deadline (an AbortSignal; settings.dockerCallTimeoutMs); the
 *     dockerode client never gets a global `timeout` (wait() would never settle);
 *   - 304 (already stopped), 404 (no such container) and 409 (removal already in progress / not
 *     running) mean "done"; every other failure is logged with its cause and thrown as WardenError;
 *   - the environment goes only into the create *body* (`Env`), never into a URL or a log line;
 *   - HostConfig.Init (signals reach the server), AutoRemove (a container that exits while we are not
 *     looking is removed by the engine), LogConfig none (the MCP stream is never written to disk).
 *
 * Stop escalation: stdin EOF, wait stopEofGraceMs → `docker stop -t dockerStopGraceSeconds` (SIGTERM,
 * the engine SIGKILLs after the grace) → SIGKILL if still running → force remove, each removal
 * attempt (dockerRemoveMaxAttempts) with its own deadline.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable, type Duplex, type Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import type { Settings } from '../../core/settings.js';
import { ErrorCodes, WardenError, type ErrorCode } from '../../core/error-codes.js';
import type { DockerOptions } from '../../config/config-types.js';
import { ExitNotice, type ExitInfo } from '../process/exit-notice.js';
import { drainStderr, type StderrDrain } from '../process/stderr-drain.js';

// ---------------------------------------------------------------------------------------------
// Public shapes
// ---------------------------------------------------------------------------------------------

export const LABEL_MANAGED = 'mcp-warden.managed';
export const LABEL_INSTANCE = 'mcp-warden.instance';
export const LABEL_SERVER = 'mcp-warden.server';
export const LABEL_OWNER = 'mcp-warden.owner';
/** Unique per startContainer call; what makes a container findable when its id is unknown. */
export const LABEL_LAUNCH = 'mcp-warden.launch';

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

export type ContainerSettings = Pick<
  Settings,
  | 'stopEofGraceMs'
  | 'stopKillGraceMs'
  | 'stderrLinesPerSecond'
  | 'stderrMaxLineBytes'
  | 'dockerCallTimeoutMs'
  | 'dockerStopGraceSeconds'
  | 'dockerRemoveMaxAttempts'
  | 'dockerRemoveRetryDelayMs'
>;

export interface ContainerDeps {
  ledger: ResourceLedger;
  /** Ledger owner (an actor id such as `server:memory`). */
  owner: string;
  logger: Logger;
  settings: ContainerSettings;
  /** Engine client; default `createDockerClient()` (DOCKER_HOST or the default socket). */
  docker?: Docker;
}

export interface ContainerStopReport {
  /** The step after which the container had exited: stdin EOF, `docker stop` (SIGTERM), or SIGKILL. */
  escalation: 'eof' | 'sigterm' | 'sigkill';
  durationMs: number;
  exitCode: number | null;
}

export interface ContainerHandle {
  /** Host pid of the container's init process (docker-init), -1 if unknown. */
  readonly pid: number;
  readonly containerId: string;
  readonly name: string;
  readonly image: string;
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Already resolved: startContainer only returns a started container. */
  readonly spawned: Promise<void>;
  /** Resolves when the container exits ({code: exit status or null if unknown, signal: null}). Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Called once when the container exits (immediately, asynchronously, if it already has). */
  onExit(listener: (info: ExitInfo) => void): () => void;
  /** True once the container is verifiably gone (asks the engine unless already settled). Never rejects. */
  isGone(): Promise<boolean>;
  /** Polite bounded stop, then removal. Idempotent; concurrent calls share one run. Rejects with WardenError. */
  stop(): Promise<ContainerStopReport>;
  /** SIGKILL now, then force removal. Rejects with WardenError. */
  kill(): Promise<void>;
  /** Force removal (kills a running container) with retries; resolves once verifiably gone. */
  remove(): Promise<void>;
  /** Number of stderr lines dropped by the rate limit so far. */
  stderrDropped(): number;
  /** After an exit: E_CONTAINER_EXITED with the exit code and the last stderr line(s); else undefined. */
  exitError(): WardenError | undefined;
}

// ---------------------------------------------------------------------------------------------
// Engine client and address
// ---------------------------------------------------------------------------------------------

/**
 * A dockerode client for DOCKER_HOST (unix://, tcp://, ssh://, with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH)
 * or the default socket (~/.docker/run/docker.sock if present, else /var/run/docker.sock). Any global
 * timeout (DOCKER_CLIENT_TIMEOUT) is removed: every call here carries its own deadline, and a global
 * timeout would cut long-lived calls (wait, attach).
 */
export function createDockerClient(options?: Docker.DockerOptions): Docker {
  const docker = new (loadDockerode())(options);
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

let defaultClient: Docker | undefined;
function defaultDocker(): Docker {
  defaultClient ??= createDockerClient();
  return defaultClient;
}

function defaultSocketPath(): string {
  const user = join(homedir(), '.docker', 'run', 'docker.sock');
  return existsSync(user) ? user : '/var/run/docker.sock';
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
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EPERM', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOTSOCK']);

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

function errnoOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
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
function wrapRaw(op: string, err: unknown, timeoutMs: number): DockerCallError {
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

function asCallError(err: unknown, op: string): DockerCallError {
  return wrapRaw(op, err, 0);
}

/** 304/404/409 on stop/kill/remove: the container is already where we want it. */
function isDone(err: DockerCallError): boolean {
  return err.info.statusCode === 304 || err.info.statusCode === 404 || err.info.statusCode === 409;
}

function toWarden(err: DockerCallError, address: string, what: string, code?: ErrorCode): WardenError {
  const detail = {
    engine: address,
    op: err.op,
    statusCode: err.info.statusCode,
    errno: err.info.errno,
    timedOut: err.info.timedOut,
  };
  if (code) return new WardenError(code, `${what}: ${err.message}`, detail);
  if (err.unreachable) {
    return new WardenError(ErrorCodes.DOCKER_UNAVAILABLE, `${what}: Docker engine at ${address} is not reachable (${err.info.errno}: ${err.message})`, detail);
  }
  return new WardenError(ErrorCodes.DOCKER_FAILED, `${what}: ${err.message} (engine ${address})`, detail);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// startContainer
// ---------------------------------------------------------------------------------------------

const STDERR_TAIL_BYTES = 2_048;
const POLL_MS = 25;
/** After an early exit, how long to wait for the attach stream to deliver the last stderr bytes. */
const EXIT_FLUSH_MS = 150;

/**
 * Creates, attaches and starts a container for `spec`. Resolves with a running container's handle.
 * Rejects with WardenError:
 *   E_DOCKER_UNAVAILABLE  the engine does not answer (message names its address); nothing acquired;
 *   E_DOCKER_IMAGE_MISSING the image is not on the engine (mcp-warden never pulls);
 *   E_CONTAINER_EXITED    the container exited right after start (exit code + last stderr line);
 *   E_DOCKER_FAILED       any other failed call.
 * On every rejection the container is removed first; if even that fails, the ledger entry stays
 * (owned by deps.owner) so the owner's reaping retries it, and the error says so.
 */
export async function startContainer(spec: ContainerSpec, deps: ContainerDeps): Promise<ContainerHandle> {
  const docker = deps.docker ?? defaultDocker();
  const address = engineAddress(docker);
  const log = deps.logger.child({ component: 'docker-container', server: spec.server });
  const timeoutMs = deps.settings.dockerCallTimeoutMs;

  // 1. Is there an engine at all? Nothing is acquired before it answers.
  try {
    // (@types/dockerode lacks ping's options argument; dockerode 5 takes { abortSignal }.)
    const ping = docker.ping as unknown as (this: Docker, opts: { abortSignal: AbortSignal }) => Promise<unknown>;
    await dockerCall('ping', timeoutMs, (abortSignal) => ping.call(docker, { abortSignal }));
  } catch (e) {
    const err = asCallError(e, 'ping');
    const wErr = new WardenError(
      ErrorCodes.DOCKER_UNAVAILABLE,
      `${spec.server}: Docker engine at ${address} is not available: ${err.info.timedOut ? `no answer within ${timeoutMs} ms` : err.message}`,
      { engine: address, errno: err.info.errno, statusCode: err.info.statusCode, timedOut: err.info.timedOut },
    );
    log.error({ engine: address, err: err.message, errno: err.info.errno }, wErr.message);
    throw wErr;
  }

  const container = new ContainerRun(spec, deps, docker, address, log);
  try {
    await container.startLaunch();
    return container;
  } catch (err) {
    await container.abandon(err);
    throw err;
  }
}

class ContainerRun implements ContainerHandle {
  pid = -1;
  containerId = '';
  readonly name: string;
  readonly image: string;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly spawned: Promise<void> = Promise.resolve();
  private readonly exit = new ExitNotice();
  readonly exited: Promise<ExitInfo> = this.exit.exited;

  private readonly launchId: string;
  private readonly stderr = new PassThrough();
  private readonly stdoutPT = new PassThrough();
  private readonly settings: ContainerSettings;
  private container: Docker.Container | undefined;
  private socket: Duplex | undefined;
  private drain: StderrDrain | undefined;
  private entry: LedgerHandle | undefined;
  private stderrTail = Buffer.alloc(0);
  private waitCtl: AbortController | undefined;
  private stopRun: Promise<ContainerStopReport> | undefined;
  private stopResult: ContainerStopReport | undefined;
  private removeRun: Promise<void> | undefined;
  private finalized = false;
  private stopping = false;
  private launching: Promise<void> | undefined;
  /** The start call succeeded (a created-but-never-started container has nothing to stop). */
  private started = false;
  /** The ledger entry's facts (the same object the ledger holds, so UIs see the id once known). */
  private readonly facts: Record<string, string | number>;

  constructor(
    private readonly spec: ContainerSpec,
    private readonly deps: ContainerDeps,
    private readonly docker: Docker,
    private readonly address: string,
    private readonly log: Logger,
  ) {
    this.settings = deps.settings;
    this.launchId = randomBytes(5).toString('hex');
    this.name = `mcp-warden-${spec.server}-${this.launchId}`;
    this.image = spec.image;
    this.facts = { containerId: '', name: this.name, image: spec.image };
    this.stdout = this.stdoutPT;
    const self = this;
    this.stdin = new Writable({
      write(chunk: Buffer, _enc, cb) {
        const s = self.socket;
        if (!s || s.destroyed || s.writableEnded) return cb(Object.assign(new Error('container stdin is closed'), { code: 'EPIPE' }));
        s.write(chunk, (err) => cb(err ?? null));
      },
      final(cb) {
        self.endSocketWrite();
        cb();
      },
      destroy(err, cb) {
        // Destroying our stdin must not cut stdout: only half-close the connection.
        self.endSocketWrite();
        cb(err);
      },
    });
    const swallow = (which: string) => (err: Error) => this.log.debug({ err: err.message, code: errnoOf(err) }, `${which} error ignored`);
    this.stdin.on('error', swallow('stdin'));
    this.stdoutPT.on('error', swallow('stdout'));
  }

  // ----- launch --------------------------------------------------------------------------------

  /**
   * Runs launch() and remembers it: a stop/kill/remove/isGone arriving through the ledger while the
   * start is in flight first waits for it to settle (bounded by the call deadlines), so nothing can
   * be created after the entry was settled.
   */
  startLaunch(): Promise<void> {
    const run = this.launch();
    this.launching = run.then(
      () => undefined,
      () => undefined,
    );
    void this.launching.then(() => {
      this.launching = undefined;
    });
    return run;
  }

  private async launchSettled(): Promise<void> {
    if (this.launching) await this.launching;
  }

  /** Between launch steps: a stop requested meanwhile wins. */
  private abortIfStopping(step: string): void {
    if (this.stopping || this.finalized) {
      throw new WardenError(ErrorCodes.DOCKER_FAILED, `${this.spec.server}: start of container ${this.name} abandoned after ${step}: the server is being stopped`, {
        container: this.name,
      });
    }
  }

  private async launch(): Promise<void> {
    const { spec, settings } = this;
    const t0 = Date.now();
    const timeoutMs = settings.dockerCallTimeoutMs;

    // The ledger entry exists before the engine is asked to create anything.
    this.entry = this.deps.ledger.acquire(this.deps.owner, {
      kind: 'container',
      description: `container ${this.name}: ${spec.image}`,
      facts: this.facts,
      release: async () => {
        await this.stop();
      },
      forceRelease: () => this.kill(),
      isGone: () => this.isGone(),
    });

    const labels: Record<string, string> = {
      [LABEL_MANAGED]: 'true',
      [LABEL_INSTANCE]: spec.instanceId,
      [LABEL_SERVER]: spec.server,
      [LABEL_LAUNCH]: this.launchId,
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
      StopTimeout: settings.dockerStopGraceSeconds,
      HostConfig: hostConfig,
    };
    if (spec.cwd !== undefined) body.WorkingDir = spec.cwd;

    // create: `_query`/`_body` keep the configuration (Env!) out of the URL; dockerode would
    // otherwise serialise the whole options object into the query string.
    try {
      this.container = await dockerCall('create', timeoutMs, (abortSignal) =>
        this.docker.createContainer({ _query: { name: this.name }, _body: body, abortSignal } as unknown as Docker.ContainerCreateOptions),
      );
    } catch (e) {
      const err = asCallError(e, 'create');
      const st = err.info.statusCode;
      // The engine said no (or was never reached): nothing exists, nothing to clean up.
      if (err.unreachable || (st !== undefined && st >= 400 && st < 500)) this.finalize();
      if (st === 404 && /no such image/i.test(err.info.engineMessage ?? '')) {
        throw this.fail(
          err,
          `${spec.server}: image ${JSON.stringify(spec.image)} is not on the Docker engine at ${this.address} (mcp-warden never pulls; run \`docker pull ${spec.image}\` or build it)`,
          ErrorCodes.DOCKER_IMAGE_MISSING,
        );
      }
      throw this.fail(err, `${spec.server}: creating container ${this.name} failed`);
    }
    this.containerId = this.container.id;
    this.facts.containerId = this.containerId;
    this.abortIfStopping('create');
    const tCreated = Date.now();

    // attach before start (hijacked: one duplex connection for stdin and the multiplexed output).
    const socket = await dockerCall('attach', timeoutMs, (abortSignal) =>
      this.container!.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true, abortSignal }),
    ).catch((e: unknown) => {
      throw this.fail(asCallError(e, 'attach'), `${spec.server}: attaching to container ${this.name} failed`);
    });
    this.socket = socket as unknown as Duplex;
    this.wireStreams(this.socket);
    this.abortIfStopping('attach');

    // wait(next-exit) registered before start: the engine answers with headers once it waits.
    await this.openWait('next-exit').catch((e: unknown) => {
      throw this.fail(asCallError(e, 'wait'), `${spec.server}: watching container ${this.name} failed`);
    });
    const tAttached = Date.now();

    await dockerCall('start', timeoutMs, (abortSignal) => this.container!.start({ abortSignal })).catch((e: unknown) => {
      const err = asCallError(e, 'start');
      throw this.fail(err, `${spec.server}: starting container ${this.name} failed`);
    });
    const tStarted = Date.now();
    this.started = true;
    this.abortIfStopping('start');

    // Init pid, and an early exit (a missing command fails inside docker-init right after start).
    let running = true;
    let exitCode: number | null = null;
    try {
      const info = await dockerCall('inspect', timeoutMs, (abortSignal) => this.container!.inspect({ abortSignal }));
      this.pid = typeof info.State?.Pid === 'number' && info.State.Pid > 0 ? info.State.Pid : -1;
      running = info.State?.Running === true;
      exitCode = typeof info.State?.ExitCode === 'number' ? info.State.ExitCode : null;
    } catch (e) {
      const err = asCallError(e, 'inspect');
      if (err.info.statusCode === 404) {
        running = false; // already exited and auto-removed
      } else {
        this.log.warn({ container: this.name, err: err.message }, 'inspect after start failed; pid unknown');
      }
    }
    if (!running || this.exitInfo) {
      const info = await this.waitExit(EXIT_FLUSH_MS * 2).then(() => this.exitInfo);
      await this.flushOutput();
      const code = info?.code ?? exitCode;
      const wErr = new WardenError(
        ErrorCodes.CONTAINER_EXITED,
        `${spec.server}: container ${this.name} (${spec.image}) exited right after start${code !== null ? ` with code ${code}` : ''}${this.tailText()}`,
        { container: this.name, containerId: this.containerId, exitCode: code },
      );
      this.log.error({ container: this.name, exitCode: code, code: wErr.code }, wErr.message);
      throw wErr;
    }
    if (this.pid > 0) this.facts.pid = this.pid;
    this.log.info(
      {
        container: this.name,
        containerId: this.containerId.slice(0, 12),
        image: spec.image,
        network: spec.docker.network,
        pid: this.pid,
        createMs: tCreated - t0,
        attachMs: tAttached - tCreated,
        startMs: tStarted - tAttached,
      },
      'container started',
    );
  }

  /** launch() failed: remove whatever exists, then settle; if removal fails the entry stays for reaping. */
  async abandon(cause: unknown): Promise<void> {
    if (this.finalized) return;
    try {
      await this.remove();
    } catch (err) {
      this.log.error(
        { container: this.name, err: (err as Error).message, cause: (cause as Error)?.message },
        'could not remove the container of a failed start; it stays in the ledger for reaping',
      );
      if (cause instanceof WardenError) {
        cause.message += ` (container ${this.name} could not be removed yet; it stays in the ledger for reaping)`;
        if (cause.detail) cause.detail.cleanupFailed = (err as Error).message;
      }
    }
  }

  private fail(err: DockerCallError, what: string, code?: ErrorCode): WardenError {
    const wErr = toWarden(err, this.address, what, code);
    this.log.error(
      { container: this.name, op: err.op, err: err.message, statusCode: err.info.statusCode, errno: err.info.errno, timedOut: err.info.timedOut, code: wErr.code },
      wErr.message,
    );
    return wErr;
  }

  // ----- streams -------------------------------------------------------------------------------

  private wireStreams(socket: Duplex): void {
    this.docker.modem.demuxStream(socket, this.stdoutPT, this.stderr);
    this.drain = drainStderr(this.stderr, {
      logger: this.log,
      maxLinesPerSecond: this.settings.stderrLinesPerSecond,
      maxLineBytes: this.settings.stderrMaxLineBytes,
    });
    this.stderr.on('data', (chunk: Buffer) => {
      const joined = Buffer.concat([this.stderrTail, chunk]);
      this.stderrTail = joined.length > STDERR_TAIL_BYTES ? joined.subarray(joined.length - STDERR_TAIL_BYTES) : joined;
    });
    const endOutputs = () => {
      if (!this.stdoutPT.writableEnded) this.stdoutPT.end();
      if (!this.stderr.writableEnded) this.stderr.end();
    };
    socket.on('end', endOutputs);
    socket.on('close', endOutputs);
    socket.on('error', (err: Error) => {
      this.log.debug({ err: err.message, code: errnoOf(err) }, 'attach connection error');
      endOutputs();
    });
  }

  private endSocketWrite(): void {
    const s = this.socket;
    try {
      if (s && !s.destroyed && !s.writableEnded) s.end();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'ending container stdin failed');
    }
  }

  private async flushOutput(): Promise<void> {
    const s = this.socket;
    if (!s || s.destroyed || s.readableEnded) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        s.off('end', done);
        s.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, EXIT_FLUSH_MS);
      s.once('end', done);
      s.once('close', done);
    });
  }

  private tailText(): string {
    const lines = this.stderrTail
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (lines.length === 0) return '';
    const last = lines.slice(-2).join(' | ');
    return `; stderr: ${last.length > 300 ? `…${last.slice(-300)}` : last}`;
  }

  // ----- exit ----------------------------------------------------------------------------------

  /** Opens a wait request; resolves once the engine confirmed it waits (response headers). */
  private openWait(condition: 'next-exit' | 'not-running'): Promise<void> {
    const ctl = new AbortController();
    this.waitCtl = ctl;
    const timeoutMs = this.settings.dockerCallTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      let headers = false;
      const timer = setTimeout(() => {
        if (!headers) ctl.abort();
      }, timeoutMs);
      const modem = this.docker.modem as unknown as {
        dial(opts: Record<string, unknown>, cb: (err: unknown, res: IncomingMessage) => void): void;
      };
      modem.dial(
        {
          path: `/containers/${this.containerId}/wait?`,
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
              reject(new DockerCallError('wait', `wait: no answer from the engine within ${timeoutMs} ms (aborted)`, { timedOut: true, timeoutMs }));
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
            if (body.trim() === '') this.onWaitLost(new Error('wait connection ended without a status'), ctl);
            else this.onContainerExit(code);
          });
          res.on('error', (e: Error) => this.onWaitLost(e, ctl));
          res.on('aborted', () => this.onWaitLost(new Error('wait connection aborted'), ctl));
        },
      );
    });
  }

  /** The wait connection broke (engine restarted, proxy): find out by a fresh wait(not-running). */
  private onWaitLost(err: Error, ctl: AbortController): void {
    if (this.exitInfo || this.finalized || ctl.signal.aborted || this.waitCtl !== ctl) return;
    this.log.warn({ container: this.name, err: err.message }, 'lost the wait connection; re-watching the container');
    void (async () => {
      for (let attempt = 1; !this.exitInfo && !this.finalized; attempt++) {
        await sleep(Math.min(2_000, 200 * attempt));
        if (this.exitInfo || this.finalized) return;
        try {
          await this.openWait('not-running');
          return;
        } catch (e) {
          const callErr = asCallError(e, 'wait');
          if (callErr.info.statusCode === 404) {
            this.onContainerExit(null);
            return;
          }
          this.log.error({ container: this.name, attempt, err: callErr.message }, 're-watching the container failed');
        }
      }
    })();
  }

  private onContainerExit(code: number | null): void {
    if (!this.exit.fire({ code, signal: null })) return;
    this.log.info({ container: this.name, code }, 'container exited');
    // Exited by itself (crash, EOF honoured): make sure it is removed (AutoRemove usually did).
    if (!this.stopping && !this.finalized && this.containerId) {
      void this.remove().catch(() => undefined /* logged by remove(); the ledger entry stays for reaping */);
    }
  }

  onExit(listener: (info: ExitInfo) => void): () => void {
    return this.exit.onExit(listener);
  }

  private get exitInfo(): ExitInfo | undefined {
    return this.exit.value;
  }

  /** (A method, so TypeScript does not narrow the field across awaits.) */
  private currentExit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  exitError(): WardenError | undefined {
    if (!this.exitInfo) return undefined;
    const code = this.exitInfo.code;
    return new WardenError(
      ErrorCodes.CONTAINER_EXITED,
      `${this.spec.server}: container ${this.name} (${this.image}) exited${code !== null ? ` with code ${code}` : ''}${this.tailText()}`,
      { container: this.name, containerId: this.containerId, exitCode: code },
    );
  }

  stderrDropped(): number {
    return this.drain?.dropped() ?? 0;
  }

  /** Waits until the container exited or `ms` passed; true if it exited. */
  private async waitExit(ms: number): Promise<boolean> {
    const deadline = Date.now() + Math.max(0, ms);
    for (;;) {
      if (this.exitInfo) return true;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      await this.exit.nap(remaining);
    }
  }

  // ----- stop / kill / remove ------------------------------------------------------------------

  stop(): Promise<ContainerStopReport> {
    if (this.stopResult) return Promise.resolve(this.stopResult);
    if (!this.stopRun) {
      this.stopRun = this.runStop().then(
        (report) => {
          this.stopResult = report;
          this.stopRun = undefined;
          return report;
        },
        (err: unknown) => {
          this.stopRun = undefined; // a later stop() (the reaper's retry) tries again
          throw err;
        },
      );
    }
    return this.stopRun;
  }

  private async runStop(): Promise<ContainerStopReport> {
    this.stopping = true;
    await this.launchSettled();
    const started = Date.now();
    const s = this.settings;
    let escalation: ContainerStopReport['escalation'] = 'eof';
    if (!this.finalized && this.started && !this.exitInfo) {
      this.endSocketWrite();
      // Nobody may read stdout any more: keep it flowing so the server is not blocked writing.
      if (this.stdoutPT.listenerCount('data') === 0 && !this.stdoutPT.destroyed) this.stdoutPT.resume();
      if (!(await this.waitExit(s.stopEofGraceMs))) {
        escalation = 'sigterm';
        try {
          await dockerCall('stop', s.dockerCallTimeoutMs + s.dockerStopGraceSeconds * 1_000, (abortSignal) =>
            this.container!.stop({ t: s.dockerStopGraceSeconds, abortSignal }),
          );
        } catch (e) {
          const err = asCallError(e, 'stop');
          if (!isDone(err)) this.fail(err, `${this.spec.server}: stopping container ${this.name} failed; killing it`);
        }
        if (!(await this.waitExit(s.stopKillGraceMs))) {
          escalation = 'sigkill';
          await this.sigkill();
          await this.waitExit(s.stopKillGraceMs);
        } else if (this.currentExit()?.code === 137) {
          escalation = 'sigkill'; // the engine's own SIGKILL after the stop grace
        }
      }
    }
    await this.remove();
    const report: ContainerStopReport = { escalation, durationMs: Date.now() - started, exitCode: this.exitInfo?.code ?? null };
    this.log.info({ container: this.name, ...report }, 'container stopped and removed');
    return report;
  }

  private async sigkill(): Promise<void> {
    if (!this.containerId) return;
    try {
      await dockerCall('kill', this.settings.dockerCallTimeoutMs, (abortSignal) =>
        this.container!.kill({ signal: 'SIGKILL', abortSignal } as Record<string, unknown>),
      );
    } catch (e) {
      const err = asCallError(e, 'kill');
      if (!isDone(err)) this.fail(err, `${this.spec.server}: killing container ${this.name} failed; force-removing it`);
    }
  }

  async kill(): Promise<void> {
    if (this.finalized) return;
    this.stopping = true;
    await this.launchSettled();
    if (!this.exitInfo) await this.sigkill();
    await this.remove();
  }

  remove(): Promise<void> {
    if (this.finalized) return Promise.resolve();
    if (!this.removeRun) {
      this.removeRun = this.runRemove().finally(() => {
        this.removeRun = undefined;
      });
    }
    return this.removeRun;
  }

  private async runRemove(): Promise<void> {
    await this.launchSettled();
    const s = this.settings;
    const started = Date.now();
    let last: DockerCallError | undefined;
    for (let attempt = 1; attempt <= s.dockerRemoveMaxAttempts; attempt++) {
      if (this.finalized) return;
      try {
        const ids = this.containerId ? [this.containerId] : (await this.findByLaunch()).map((c) => c.Id);
        for (const id of ids) {
          try {
            await dockerCall('remove', s.dockerCallTimeoutMs, (abortSignal) =>
              this.docker.getContainer(id).remove({ force: true, v: true, abortSignal } as Record<string, unknown>),
            );
          } catch (e) {
            const err = asCallError(e, 'remove');
            if (!isDone(err)) throw err;
          }
        }
        // 409 "removal in progress" (AutoRemove racing us) settles within moments: poll briefly.
        const verifyUntil = Date.now() + s.dockerCallTimeoutMs;
        for (;;) {
          if (await this.probeGone()) {
            this.log.info({ container: this.name, attempt, durationMs: Date.now() - started }, 'container removed');
            this.finalize();
            return;
          }
          if (Date.now() >= verifyUntil) throw new DockerCallError('remove', `remove: ${this.name} still exists after removal`, { timedOut: false, timeoutMs: s.dockerCallTimeoutMs });
          await sleep(POLL_MS * 2);
        }
      } catch (e) {
        last = asCallError(e, 'remove');
        this.log.error(
          {
            container: this.name,
            containerId: this.containerId.slice(0, 12),
            attempt,
            of: s.dockerRemoveMaxAttempts,
            op: last.op,
            err: last.message,
            timedOut: last.info.timedOut,
            statusCode: last.info.statusCode,
            errno: last.info.errno,
          },
          `removing container ${this.name} failed (attempt ${attempt} of ${s.dockerRemoveMaxAttempts})`,
        );
        if (attempt < s.dockerRemoveMaxAttempts) await sleep(s.dockerRemoveRetryDelayMs);
      }
    }
    throw toWarden(
      last ?? new DockerCallError('remove', 'remove: failed', { timedOut: false, timeoutMs: 0 }),
      this.address,
      `${this.spec.server}: container ${this.name} could not be removed after ${s.dockerRemoveMaxAttempts} attempt(s)`,
    );
  }

  private findByLaunch(): Promise<Docker.ContainerInfo[]> {
    return dockerCall('list', this.settings.dockerCallTimeoutMs, (abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_LAUNCH}=${this.launchId}`] }, abortSignal } as Docker.ContainerListOptions),
    );
  }

  /** inspect(id) → 404 and no container with our launch label. Throws DockerCallError if the engine does not answer. */
  private async probeGone(): Promise<boolean> {
    if (this.containerId) {
      try {
        await dockerCall('inspect', this.settings.dockerCallTimeoutMs, (abortSignal) => this.docker.getContainer(this.containerId).inspect({ abortSignal }));
        return false;
      } catch (e) {
        const err = asCallError(e, 'inspect');
        if (err.info.statusCode !== 404) throw err;
      }
    }
    return (await this.findByLaunch()).length === 0;
  }

  async isGone(): Promise<boolean> {
    if (this.finalized) return true;
    if (this.launching) return false; // a create may be in flight
    try {
      if (await this.probeGone()) {
        this.finalize();
        return true;
      }
      return false;
    } catch (e) {
      this.log.warn({ container: this.name, err: asCallError(e, 'inspect').message }, 'could not verify whether the container is gone');
      return false;
    }
  }

  private settle(): void {
    this.entry?.settle();
    this.entry = undefined;
  }

  /** Verifiably gone: settle the ledger entry and drop every stream, listener and timer. */
  private finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.settle();
    // Removed without our wait reporting it (engine lost, never started): report the exit now.
    this.exit.fire({ code: null, signal: null });
    this.exit.clear();
    this.waitCtl?.abort();
    this.waitCtl = undefined;
    const finish = () => {
      this.drain?.dispose();
      this.drain = undefined;
      if (!this.stdoutPT.writableEnded) this.stdoutPT.end();
      if (!this.stderr.writableEnded) this.stderr.end();
      this.socket?.destroy();
      this.exit.clear();
    };
    // Let the attach connection deliver its last bytes (its EOF normally follows the exit).
    const s = this.socket;
    if (!s || s.destroyed || s.readableEnded) return finish();
    const timer = setTimeout(() => {
      s.off('close', onClose);
      finish();
    }, 100);
    const onClose = () => {
      clearTimeout(timer);
      finish();
    };
    s.once('close', onClose);
  }
}

// ---------------------------------------------------------------------------------------------
// Label-based listing and removal (startup reaper, watchdog, CLI)
// ---------------------------------------------------------------------------------------------

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
  const docker = opts.docker ?? defaultDocker();
  const label = [`${LABEL_MANAGED}=true`];
  if (opts.instanceId !== undefined) label.push(`${LABEL_INSTANCE}=${opts.instanceId}`);
  if (opts.server !== undefined) label.push(`${LABEL_SERVER}=${opts.server}`);
  let list: Docker.ContainerInfo[];
  try {
    list = await dockerCall('list', opts.timeoutMs ?? 10_000, (abortSignal) =>
      docker.listContainers({ all: true, filters: { label }, abortSignal } as Docker.ContainerListOptions),
    );
  } catch (e) {
    throw toWarden(asCallError(e, 'list'), engineAddress(docker), 'listing mcp-warden containers failed');
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
  /** Attempts per container (default 3). */
  attempts?: number;
  retryDelayMs?: number;
}

export interface RemoveResult {
  id: string;
  /** Verifiably gone (inspect → 404). */
  removed: boolean;
  error?: string;
}

/**
 * Force-removes containers by id (concurrently; 404/409 = done), verifying each with inspect.
 * Never rejects: failures are logged and reported per container.
 */
export async function removeContainers(ids: readonly string[], opts: RemoveContainersOptions = {}): Promise<RemoveResult[]> {
  const docker = opts.docker ?? defaultDocker();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const attempts = Math.max(1, opts.attempts ?? 3);
  const retryDelayMs = opts.retryDelayMs ?? 500;
  const removeOne = async (id: string): Promise<RemoveResult> => {
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        try {
          await dockerCall('remove', timeoutMs, (abortSignal) => docker.getContainer(id).remove({ force: true, v: true, abortSignal } as Record<string, unknown>));
        } catch (e) {
          const err = asCallError(e, 'remove');
          if (!isDone(err)) throw err;
        }
        const until = Date.now() + timeoutMs;
        for (;;) {
          try {
            await dockerCall('inspect', timeoutMs, (abortSignal) => docker.getContainer(id).inspect({ abortSignal }));
          } catch (e) {
            const err = asCallError(e, 'inspect');
            if (err.info.statusCode === 404) return { id, removed: true };
            throw err;
          }
          if (Date.now() >= until) throw new Error(`still exists after removal`);
          await sleep(POLL_MS * 2);
        }
      } catch (e) {
        lastError = e instanceof Error ? e.message : String(e);
        opts.logger?.error({ containerId: id.slice(0, 12), attempt, of: attempts, err: lastError }, 'removing container failed');
        if (attempt < attempts) await sleep(retryDelayMs);
      }
    }
    return { id, removed: false, error: lastError };
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
  attempts?: number;
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
  const docker = opts.docker ?? defaultDocker();
  const address = engineAddress(docker);
  let all: ManagedContainer[];
  try {
    all = await listManagedContainers({ docker, timeoutMs: opts.timeoutMs });
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
      { docker, logger: opts.logger, timeoutMs: opts.timeoutMs, attempts: opts.attempts },
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
      { containers: reports.map((r) => ({ name: r.name, server: r.server, instanceId: r.instanceId, removed: r.removed })), dryRun: opts.dryRun },
      `${opts.dryRun ? 'found' : 'reaped'} ${reports.filter((r) => opts.dryRun || r.removed).length} of ${reports.length} orphaned container(s) of dead daemons`,
    );
  }
  return { containers: reports, errors };
}
