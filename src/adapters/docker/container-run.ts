/**
 * Running one MCP stdio server in a Docker container, owned through the resource ledger
 * (docs/docker.md): create, attach and start it, carry the MCP stream over the attach connection,
 * report its exit, and take it down when its ledger entry is released.
 *
 * The container is the Docker twin of a process group (both are an Upstream, adapters/upstream-handle.ts):
 * `stdin`/`stdout` carry the MCP stream (a hijacked attach connection, demultiplexed), stderr is
 * drained rate-limited into the logger, `exited`/`onExit` report the exit. Exactly one ledger entry
 * (kind 'container') exists per start, acquired *before* the create call: if create times out after
 * the engine did create it, the entry's release still finds the container by its unique
 * `mcp-warden.launch` label. The entry is settled only once the container is verifiably gone
 * (inspect by id → 404 and no container carries its launch label).
 *
 * Teardown is single-shot per call (container-stop.ts): the polite release (`stop()`: stdin EOF,
 * wait stopEofGraceMs → `docker stop -t dockerStopGraceSeconds` → SIGKILL → one removal) and the
 * forced one (`kill()`: SIGKILL → one removal) each make one attempt and reject with a coded
 * WardenError if the container is not verifiably gone. Retrying is the owner's job: the server
 * statechart's reaping states (`forcing` ⇄ `backoff`, reapAttempt) call the forced release again.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex, Readable, Writable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import type { Settings } from '../../core/settings.js';
import { ErrorCodes, WardenError, type ErrorCode } from '../../core/error-codes.js';
import { ExitNotice, type ExitInfo } from '../process/exit-notice.js';
import type { Upstream } from '../upstream-handle.js';
import { asCallError, defaultDocker, dockerCall, DockerCallError, engineAddress, toWarden } from './docker-engine.js';
import { createRequestBody, type ContainerSpec } from './container-config.js';
import { containerGone, killContainer, removeContainer, stopContainer } from './container-stop.js';
import { listLaunchContainers } from './managed-containers.js';
import { watchContainerExit } from './container-wait.js';
import { AttachedStdio } from './container-stdio.js';
import { RetryableOnce } from '../../core/retryable-once.js';

export type { ContainerSpec } from './container-config.js';

export type ContainerSettings = Pick<
  Settings,
  'stopEofGraceMs' | 'stopKillGraceMs' | 'stderrLinesPerSecond' | 'stderrMaxLineBytes' | 'dockerCallTimeoutMs' | 'dockerStopGraceSeconds'
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

export interface ContainerHandle extends Upstream {
  readonly kind: 'container';
  readonly containerId: string;
  readonly name: string;
  readonly image: string;
  /** Already resolved: startContainer only returns a started container. */
  readonly spawned: Promise<void>;
  /** True once the container is verifiably gone (asks the engine unless already settled). Never rejects. */
  isGone(): Promise<boolean>;
  /** Polite bounded stop, then one removal. Concurrent calls share one run. Rejects with WardenError. */
  stop(): Promise<ContainerStopReport>;
  /** SIGKILL now, then one forced removal. Rejects with WardenError. */
  kill(): Promise<void>;
  /** One forced removal (kills a running container); resolves once verifiably gone, else rejects with WardenError. */
  remove(): Promise<void>;
  /** After an exit: E_CONTAINER_EXITED with the exit code and the last stderr line(s); else undefined. */
  exitError(): WardenError | undefined;
}

/** After an early exit, how long to wait for the attach stream to deliver the last stderr bytes. */
const EXIT_FLUSH_MS = 150;
/** Pause before re-watching a container whose wait connection broke, growing per try up to the cap. */
const REWATCH_STEP_MS = 200;
const REWATCH_MAX_MS = 2_000;

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
  readonly kind = 'container' as const;
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
  private readonly stdio: AttachedStdio;
  private readonly settings: ContainerSettings;
  private container: Docker.Container | undefined;
  private entry: LedgerHandle | undefined;
  private waitCtl: AbortController | undefined;
  private readonly stopOnce = new RetryableOnce<ContainerStopReport>(() => this.runStop());
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
    this.stdio = new AttachedStdio(log);
    this.stdin = this.stdio.stdin;
    this.stdout = this.stdio.stdout;
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
      throw new WardenError(
        ErrorCodes.DOCKER_FAILED,
        `${this.spec.server}: start of container ${this.name} abandoned after ${step}: the server is being stopped`,
        {
          container: this.name,
        },
      );
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

    this.container = await this.create();
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
    this.stdio.connect(socket as unknown as Duplex, this.docker.modem, this.settings);
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

    await this.checkRunning();
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

  /** The create call; a refusal that leaves nothing behind settles the entry at once. */
  private async create(): Promise<Docker.Container> {
    const { spec, settings } = this;
    const timeoutMs = settings.dockerCallTimeoutMs;
    const body = createRequestBody(spec, this.launchId, settings.dockerStopGraceSeconds);

    // create: `_query`/`_body` keep the configuration (Env!) out of the URL; dockerode would
    // otherwise serialise the whole options object into the query string.
    try {
      return await dockerCall('create', timeoutMs, (abortSignal) =>
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
  }

  /** After start: the init pid, and an early exit (a missing command fails inside docker-init right after start). */
  private async checkRunning(): Promise<void> {
    const { spec } = this;
    const timeoutMs = this.settings.dockerCallTimeoutMs;
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
      await this.stdio.flush(EXIT_FLUSH_MS);
      const code = info?.code ?? exitCode;
      const wErr = new WardenError(
        ErrorCodes.CONTAINER_EXITED,
        `${spec.server}: container ${this.name} (${spec.image}) exited right after start${code !== null ? ` with code ${code}` : ''}${this.stdio.tailText()}`,
        { container: this.name, containerId: this.containerId, exitCode: code },
      );
      this.log.error({ container: this.name, exitCode: code, code: wErr.code }, wErr.message);
      throw wErr;
    }
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
      {
        container: this.name,
        op: err.op,
        err: err.message,
        statusCode: err.info.statusCode,
        errno: err.info.errno,
        timedOut: err.info.timedOut,
        code: wErr.code,
      },
      wErr.message,
    );
    return wErr;
  }

  // ----- exit ----------------------------------------------------------------------------------

  /** Opens a wait request; resolves once the engine confirmed it waits (response headers). */
  private openWait(condition: 'next-exit' | 'not-running'): Promise<void> {
    const ctl = new AbortController();
    this.waitCtl = ctl;
    return watchContainerExit(this.docker, this.containerId, condition, this.settings.dockerCallTimeoutMs, ctl, {
      onExit: (code) => this.onContainerExit(code),
      onLost: (err) => this.onWaitLost(err, ctl),
    });
  }

  /** The wait connection broke (engine restarted, proxy): find out by a fresh wait(not-running). */
  private onWaitLost(err: Error, ctl: AbortController): void {
    if (this.exitInfo || this.finalized || ctl.signal.aborted || this.waitCtl !== ctl) return;
    this.log.warn({ container: this.name, err: err.message }, 'lost the wait connection; re-watching the container');
    void (async () => {
      for (let attempt = 1; !this.exitInfo && !this.finalized; attempt++) {
        await new Promise<void>((r) => setTimeout(r, Math.min(REWATCH_MAX_MS, REWATCH_STEP_MS * attempt)));
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
      `${this.spec.server}: container ${this.name} (${this.image}) exited${code !== null ? ` with code ${code}` : ''}${this.stdio.tailText()}`,
      { container: this.name, containerId: this.containerId, exitCode: code },
    );
  }

  stderrDropped(): number {
    return this.stdio.dropped();
  }

  describe(): Record<string, string | number> {
    return { pid: this.pid, container: this.name, image: this.image };
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
    return this.stopOnce.call();
  }

  /** One polite stop: each step bounded by its grace or call deadline, then one removal. */
  private async runStop(): Promise<ContainerStopReport> {
    this.stopping = true;
    await this.launchSettled();
    const started = Date.now();
    const s = this.settings;
    let escalation: ContainerStopReport['escalation'] = 'eof';
    if (!this.finalized && this.started && !this.exitInfo) {
      this.stdio.endWrite();
      this.stdio.keepFlowing();
      if (!(await this.waitExit(s.stopEofGraceMs))) {
        escalation = 'sigterm';
        await stopContainer(this.docker, this.containerId, s.dockerStopGraceSeconds, s.dockerCallTimeoutMs).catch((e: unknown) => {
          this.fail(asCallError(e, 'stop'), `${this.spec.server}: stopping container ${this.name} failed; killing it`);
        });
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

  /** SIGKILL through the API; a failure is logged and left to the removal that follows (force kills too). */
  private async sigkill(): Promise<void> {
    if (!this.containerId) return;
    await killContainer(this.docker, this.containerId, this.settings.dockerCallTimeoutMs).catch((e: unknown) => {
      this.fail(asCallError(e, 'kill'), `${this.spec.server}: killing container ${this.name} failed; force-removing it`);
    });
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

  /**
   * One removal attempt, never retried here: force-remove (by id, or by launch label while the id is
   * unknown), then verify. On failure the ledger entry stays and the error says why; the owner's
   * reaping calls again on its backoff.
   */
  private async runRemove(): Promise<void> {
    await this.launchSettled();
    if (this.finalized) return;
    const timeoutMs = this.settings.dockerCallTimeoutMs;
    const started = Date.now();
    try {
      const ids = this.containerId
        ? [this.containerId]
        : (await listLaunchContainers(this.docker, this.launchId, timeoutMs)).map((c) => c.Id);
      for (const id of ids) await removeContainer(this.docker, id, timeoutMs);
      if (!(await this.probeGone())) {
        throw new DockerCallError('remove', `remove: ${this.name} still exists after its removal`, { timedOut: false, timeoutMs });
      }
    } catch (e) {
      const err = asCallError(e, 'remove');
      throw this.fail(err, `${this.spec.server}: removing container ${this.name} failed`);
    }
    this.log.info({ container: this.name, durationMs: Date.now() - started }, 'container removed');
    this.finalize();
  }

  /** inspect(id) → 404 and no container with our launch label. Throws DockerCallError if the engine does not answer. */
  private async probeGone(): Promise<boolean> {
    const timeoutMs = this.settings.dockerCallTimeoutMs;
    if (this.containerId && !(await containerGone(this.docker, this.containerId, timeoutMs))) return false;
    return (await listLaunchContainers(this.docker, this.launchId, timeoutMs)).length === 0;
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
    this.stdio.close();
  }
}
