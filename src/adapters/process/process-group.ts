/**
 * A child process in its own process group, owned through the resource ledger.
 *
 * The child is spawned `detached: true` (setsid: pgid = pid), so every descendant that does not
 * deliberately leave the group (sh -c wrappers, npx, `cmd &` grandchildren) is signalled together
 * via `-pgid`. The ledger entry (kind 'process-group') is settled only once the group is verifiably
 * empty: the direct child has exited AND no live (non-zombie) member of the group is left, checked
 * by group-census.ts (one signal probe per group; a process-table scan shared by all groups only
 * when something still has the pgid). With `marks`, the group also gets a mark file (group-marks.ts,
 * written off the event loop right after the spawn) until that moment, the marker that survives where
 * environments cannot be read.
 *
 * Stop escalation: stdin EOF → SIGTERM to the group → SIGKILL to the group, each step bounded by a
 * Settings grace period; survivors after the last step reject with E_STOP_FAILED (the entry stays in
 * the ledger, visibly, for the reaper).
 *
 * stderr is always drained (rate-limited) into the logger; stdin/stdout/stderr errors (EPIPE) are
 * swallowed with a debug log. Once the group is settled every listener and timer is removed and the
 * pipes are destroyed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import type { Settings } from '../../core/settings.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { processTable } from './current-table.js';
import type { GroupMarks } from './group-marks.js';
import type { ProcessTable } from './process-table.js';
import { censusOf, type GroupCensus } from './group-census.js';
import { ExitNotice, type ExitInfo } from './exit-notice.js';
import { drainStderr, type StderrDrain } from './stderr-drain.js';
import { redactSecrets } from '../log/logger.js';
import { lazyChild } from '../log/lazy-child.js';
import type { Upstream } from '../upstream-handle.js';
import { errnoOf } from '../../core/errno.js';
import { RetryableOnce } from '../../core/retryable-once.js';

export interface ProcessGroupSpec {
  command: string;
  args: string[];
  /** The complete environment of the child (the caller merges process.env and marker variables). */
  env: Record<string, string>;
  cwd?: string;
  /** Human-readable, secret-free label for logs and the ledger (e.g. the server name). */
  label: string;
  /** The MCP_WARDEN_* markers of `env`, recorded in a group mark when `marks` is given. */
  markers?: Record<string, string>;
}

/** What a group keeps of its spec after the spawn: not the environment (a few KiB per server, and possibly secrets). */
type GroupDescription = Omit<ProcessGroupSpec, 'env'>;

export type ProcessGroupSettings = Pick<
  Settings,
  'stopEofGraceMs' | 'stopTermGraceMs' | 'stopKillGraceMs' | 'stderrLinesPerSecond' | 'stderrMaxLineBytes'
>;

export interface ProcessGroupDeps {
  ledger: ResourceLedger;
  owner: string;
  logger: Logger;
  settings: ProcessGroupSettings;
  /** Where the group's mark file goes (the daemon's `<data dir>/process-groups`); none without. */
  marks?: GroupMarks;
  /** Default: this process's table. */
  table?: ProcessTable;
}

export type { ExitInfo } from './exit-notice.js';

interface StopReport {
  /** The step that emptied the group. */
  escalation: 'eof' | 'sigterm' | 'sigkill';
  durationMs: number;
  survivors: 0;
}

/** The process kind of Upstream: `exited`/`onExit` report the direct child's exit ({code:null, signal:null} if it never started). */
export interface ProcessGroupHandle extends Upstream {
  readonly kind: 'process';
  /** pid of the direct child (= pgid). -1 when the spawn failed synchronously (see `spawned`). */
  readonly pid: number;
  readonly pgid: number;
  /** Resolves on the 'spawn' event; rejects with WardenError(E_SPAWN_FAILED) if the spawn failed. */
  readonly spawned: Promise<void>;
  /** True when the direct child has exited and the group has no live member. */
  isGone(): boolean;
  /** Polite bounded stop (EOF → SIGTERM → SIGKILL). Idempotent; concurrent calls share one run. */
  stop(): Promise<StopReport>;
  /** SIGKILL the group now and wait up to stopKillGraceMs for it to be empty. */
  kill(): Promise<void>;
}

/**
 * The pgids of the groups this process supervises right now (spawned, not yet verified empty). A
 * process in one of them is a member, not an escapee: the escapee search (src/actors/teardown-actors.ts)
 * need not read its environment. (An escapee left its group by setsid/setpgid; it cannot join another
 * server's group, which is in another session.)
 */
const liveGroups = new Set<number>();

/** True while `pgid` is the group of a ProcessGroup of this process that is not yet verified empty. */
export function isSupervisedGroup(pgid: number): boolean {
  return liveGroups.has(pgid);
}

const POLL_MS = 20;
/** After the group is empty, how long to wait for the pipes to deliver their last bytes. */
const PIPE_FLUSH_MS = 100;

/**
 * Spawn `spec` in its own process group. Never throws: a failed spawn yields a handle whose
 * `spawned` rejects with WardenError(E_SPAWN_FAILED) and which left nothing in the ledger.
 * Prefer `startProcessGroup` when you want to await the spawn.
 */
export function spawnProcessGroup(spec: ProcessGroupSpec, deps: ProcessGroupDeps): ProcessGroupHandle {
  return new ProcessGroup(spec, deps);
}

/** spawnProcessGroup + await `spawned`: resolves with a running handle or rejects with E_SPAWN_FAILED. */
export async function startProcessGroup(spec: ProcessGroupSpec, deps: ProcessGroupDeps): Promise<ProcessGroupHandle> {
  const handle = spawnProcessGroup(spec, deps);
  await handle.spawned;
  return handle;
}

function spawnFailure(spec: GroupDescription, err: unknown): WardenError {
  const code = errnoOf(err);
  let reason = err instanceof Error ? err.message : String(err);
  // Node reports a missing cwd as "spawn <cmd> ENOENT", which blames the command: say which it was.
  if (spec.cwd !== undefined && code === 'ENOENT') {
    let cwdOk = false;
    try {
      cwdOk = statSync(spec.cwd).isDirectory();
    } catch {
      cwdOk = false;
    }
    if (!cwdOk) reason = `working directory ${JSON.stringify(spec.cwd)} does not exist (${reason})`;
  }
  return new WardenError(
    ErrorCodes.SPAWN_FAILED,
    `failed to spawn ${JSON.stringify(redactSecrets(spec.command))} for ${spec.label}: ${reason}`,
    {
      command: spec.command,
      errno: code,
    },
  );
}

class ProcessGroup implements ProcessGroupHandle {
  readonly kind = 'process' as const;
  readonly pid: number;
  readonly pgid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly spawned: Promise<void>;
  private readonly exit = new ExitNotice();
  readonly exited: Promise<ExitInfo> = this.exit.exited;

  private readonly log: Logger;
  private readonly child: ChildProcess | undefined;
  private readonly drain: StderrDrain | undefined;
  private entry: LedgerHandle | undefined;
  private readonly stopOnce = new RetryableOnce<StopReport>(() => this.runStop());
  private finalized = false;
  private finalizing = false;
  private readonly cleanups: Array<() => void> = [];
  private readonly table: ProcessTable;
  private readonly census: GroupCensus;
  /** performance.now() when the direct child's exit was seen: table scans older than that say nothing. */
  private exitSeenAt = Number.POSITIVE_INFINITY;
  private resolveSpawned!: () => void;
  private rejectSpawned!: (err: unknown) => void;

  private readonly spec: GroupDescription;

  constructor(
    { env, ...spec }: ProcessGroupSpec,
    private readonly deps: ProcessGroupDeps,
  ) {
    this.spec = spec;
    this.log = lazyChild(deps.logger, { component: 'process-group', label: spec.label });
    this.table = deps.table ?? processTable();
    this.census = censusOf(this.table);
    this.spawned = new Promise<void>((res, rej) => {
      this.resolveSpawned = res;
      this.rejectSpawned = rej;
    });
    // The caller may never await `spawned`: a failed spawn must not become an unhandled rejection.
    this.spawned.catch(() => undefined);

    let child: ChildProcess | undefined;
    let syncError: unknown;
    try {
      child = spawn(spec.command, spec.args, {
        env,
        cwd: spec.cwd,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      syncError = err;
    }

    if (!child || child.pid === undefined) {
      // Spawn failed. Node emits 'error' on the next tick (ENOENT, EACCES, bad cwd); a synchronous
      // throw covers invalid arguments. Either way no process exists and nothing enters the ledger.
      this.pid = -1;
      this.pgid = -1;
      this.child = child;
      this.stdin = child?.stdin ?? nullWritable();
      this.stdout = child?.stdout ?? nullReadable();
      this.drain = undefined;
      const fail = (err: unknown) => {
        const wErr = spawnFailure(spec, err);
        this.log.warn({ err: wErr.message }, 'spawn failed');
        this.rejectSpawned(wErr);
        this.exit.fire({ code: null, signal: null });
        this.finalized = true;
        this.destroyPipes();
      };
      if (child) {
        child.once('error', fail);
      } else {
        queueMicrotask(() => fail(syncError));
      }
      return;
    }

    this.child = child;
    this.pid = child.pid!;
    this.pgid = child.pid!;
    this.stdin = child.stdin!;
    this.stdout = child.stdout!;

    liveGroups.add(this.pgid);
    this.entry = deps.ledger.acquire(deps.owner, {
      kind: 'process-group',
      description: `pgid ${this.pgid}: ${spec.label}`,
      facts: { pid: this.pid, pgid: this.pgid },
      release: async () => {
        await this.stop();
      },
      forceRelease: () => this.kill(),
      isGone: () => this.isGone(),
    });

    this.drain = drainStderr(child.stderr!, {
      logger: this.log,
      maxLinesPerSecond: deps.settings.stderrLinesPerSecond,
      maxLineBytes: deps.settings.stderrMaxLineBytes,
    });

    this.listen(child, 'spawn', () => {
      // The redaction only for a line that is written (a regex pass per spawn otherwise).
      if (deps.logger.isLevelEnabled('debug')) this.log.debug({ childPid: this.pid, command: redactSecrets(spec.command) }, 'spawned');
      this.recordMark();
      this.resolveSpawned();
    });
    this.listen(child, 'error', (err: Error) => {
      // After a successful spawn, 'error' means a failed kill/send; nothing to do but log.
      this.log.debug({ err: err.message }, 'child process error');
    });
    this.listen(child, 'exit', (code: number | null, signal: NodeJS.Signals | null) => this.onChildExit(code, signal));
    const swallow = (which: string) => (err: Error) => this.log.debug({ err: err.message, code: errnoOf(err) }, `${which} error ignored`);
    this.listen(this.stdin, 'error', swallow('stdin'));
    this.listen(this.stdout, 'error', swallow('stdout'));
  }

  private listen(emitter: NodeJS.EventEmitter, event: string, fn: (...args: any[]) => void): void {
    emitter.on(event, fn);
    this.cleanups.push(() => emitter.off(event, fn));
  }

  private recordMark(): void {
    const { marks } = this.deps;
    if (!marks || !this.spec.markers || this.finalized || this.finalizing) return;
    const onError = (failed: string) => this.log.warn({ dir: marks.dir, err: failed }, 'writing the process group mark failed');
    const { table, pid } = this;
    // Read with the mark's write, off the event loop, where the table can: a synchronous /proc read per
    // spawn was ~0.1 ms of the daemon's thread in a start of 500 (a leader gone by then leaves no start time, as before).
    if (table.getAsync) {
      marks.recordLater({ pgid: this.pgid, markers: this.spec.markers }, onError, async () => (await table.getAsync!(pid))?.startTime);
      return;
    }
    let leaderStartTime: number | undefined;
    try {
      leaderStartTime = table.get(pid)?.startTime;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'reading the group leader failed; its mark has no start time');
    }
    marks.recordLater(
      { pgid: this.pgid, ...(leaderStartTime !== undefined ? { leaderStartTime } : {}), markers: this.spec.markers },
      onError,
    );
  }

  /**
   * Live members of the group once the direct child has exited (group-census.ts); a table that cannot
   * be read (E_PROCESS_TABLE_UNAVAILABLE) counts as "not empty", so nothing is settled unverified.
   */
  private members(): number[] {
    try {
      return this.census.liveMembers(this.pgid, this.exitSeenAt);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'the process table cannot be read; the group counts as not empty');
      return [-1];
    }
  }

  onExit(listener: (info: ExitInfo) => void): () => void {
    return this.exit.onExit(listener);
  }

  private get exitInfo(): ExitInfo | undefined {
    return this.exit.value;
  }

  isGone(): boolean {
    // finalize() runs only once the group was verified empty (it may still be waiting for the pipes):
    // no second probe for the ledger's check right after a stop.
    if (this.finalized || this.finalizing) return true;
    if (!this.exitInfo) return false;
    if (this.members().length > 0) return false;
    // Verified empty (e.g. from the ledger audit): release our listeners too.
    this.finalize();
    return true;
  }

  stderrDropped(): number {
    return this.drain?.dropped() ?? 0;
  }

  /** Nothing to add: the MCP client's own error (closed stdout, EPIPE) already says the process went away. */
  exitError(): undefined {
    return undefined;
  }

  describe(): Record<string, string | number> {
    return { pid: this.pid, pgid: this.pgid };
  }

  stop(): Promise<StopReport> {
    return this.stopOnce.call();
  }

  async kill(): Promise<void> {
    if (this.pid < 0 || this.finalized) return;
    const started = Date.now();
    this.signalGroup('SIGKILL');
    if (await this.waitEmpty(this.deps.settings.stopKillGraceMs)) {
      this.log.info({ durationMs: Date.now() - started }, 'process group killed');
      this.finalize();
      return;
    }
    throw this.stopFailure();
  }

  private async runStop(): Promise<StopReport> {
    const started = Date.now();
    const { stopEofGraceMs, stopTermGraceMs, stopKillGraceMs } = this.deps.settings;
    const done = (escalation: StopReport['escalation']): StopReport => {
      const report: StopReport = { escalation, durationMs: Date.now() - started, survivors: 0 };
      // A group that went on EOF did what was asked: a debug line; one that needed signals is news.
      this.log[escalation === 'eof' ? 'debug' : 'info']({ escalation, durationMs: report.durationMs }, 'process group stopped');
      this.finalize();
      return report;
    };
    if (this.pid < 0) {
      // Never started: wait for the failure to be reported so the handle is settled.
      await this.exited;
      return { escalation: 'eof', durationMs: Date.now() - started, survivors: 0 };
    }
    if (this.groupEmpty()) return done('eof');

    this.endStdin();
    // Nobody may be reading stdout any more (transport closed): keep it flowing so a server that
    // is still writing responses cannot block on a full pipe and miss the EOF.
    if (this.stdout.listenerCount('data') === 0 && !this.stdout.destroyed) this.stdout.resume();
    if (await this.waitEmpty(stopEofGraceMs)) return done('eof');

    this.signalGroup('SIGTERM');
    if (await this.waitEmpty(stopTermGraceMs)) return done('sigterm');

    this.signalGroup('SIGKILL');
    if (await this.waitEmpty(stopKillGraceMs)) return done('sigkill');

    throw this.stopFailure();
  }

  private stopFailure(): WardenError {
    const survivors = this.members();
    const childAlive = !this.exitInfo;
    const err = new WardenError(
      ErrorCodes.STOP_FAILED,
      `process group ${this.pgid} (${this.spec.label}) still has members after SIGKILL: ` +
        `${survivors.length ? `pids ${survivors.join(', ')}` : 'none visible'}${childAlive ? ' (direct child not reaped)' : ''}`,
      { pgid: this.pgid, survivors },
    );
    this.log.error({ survivors }, err.message);
    return err;
  }

  private endStdin(): void {
    try {
      if (!this.stdin.destroyed && !this.stdin.writableEnded) this.stdin.end();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'ending stdin failed');
    }
  }

  private signalGroup(signal: NodeJS.Signals): void {
    // Guard: never let a bogus pgid turn into kill(-1) / kill(0) (every process / our own group).
    if (!(this.pgid > 1) || this.pgid === process.pid) return;
    try {
      process.kill(-this.pgid, signal);
      this.log.debug({ signal, pgid: this.pgid }, 'signalled process group');
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ESRCH') return; // already gone
      this.log.warn({ signal, pgid: this.pgid, code }, 'signalling the process group failed');
    }
  }

  private groupEmpty(): boolean {
    return this.exitInfo !== undefined && this.members().length === 0;
  }

  /**
   * Polls until the group is empty or `ms` elapsed: every POLL_MS once the direct child has exited
   * (members may linger); before that only the exit (which wakes the nap) can empty the group, so it
   * sleeps until the exit or the deadline: one timer per wait, not one per 20 ms for each of 500
   * upstreams waiting for their exits during a stop.
   */
  private async waitEmpty(ms: number): Promise<boolean> {
    const deadline = Date.now() + Math.max(0, ms);
    // The usual first wait, for the exit, on the timer shared by every group waiting as long (exit-notice.ts).
    if (!this.exitInfo && ms > 0) await this.exit.napShared(ms);
    for (;;) {
      if (this.groupEmpty()) return true;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        // The grace may have run out while the event loop was busy (500 stops begin in one turn, and
        // timers run before I/O): let pending I/O, such as the child's exit, in once before escalating.
        await new Promise<void>((resolve) => setImmediate(resolve));
        return this.groupEmpty();
      }
      await this.exit.nap(this.exitInfo ? Math.min(POLL_MS, remaining) : remaining);
    }
  }

  private onChildExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit.value) return;
    this.exitSeenAt = performance.now();
    if (!this.exit.fire({ code, signal })) return;
    // Exiting because we stopped it is expected (debug); exiting by itself is news (info).
    this.log[this.stopOnce.pending ? 'debug' : 'info']({ childPid: this.pid, code, signal }, 'process exited');
    // Crashed or exited by itself with nothing left in the group: the resource is gone.
    if (!this.stopOnce.pending && this.members().length === 0) this.finalize();
  }

  /** The group is verifiably empty: settle the ledger entry and drop every listener and timer. */
  private finalize(): void {
    if (this.finalized || this.finalizing) return;
    this.finalizing = true;
    this.entry?.settle();
    this.entry = undefined;
    if (this.pgid > 0) {
      liveGroups.delete(this.pgid);
      this.deps.marks?.forget(this.pgid);
    }
    this.exit.wakeAll();
    const child = this.child;
    const finish = () => {
      this.finalized = true;
      this.drain?.dispose();
      for (const c of this.cleanups.splice(0)) c();
      this.exit.clear();
      this.destroyPipes();
    };
    // Give the pipes a moment to deliver the last stderr lines ('close' follows the pipes' EOF).
    if (!child) return finish();
    const stdioOpen = [child.stdout, child.stderr].some((s) => s && !s.readableEnded && !s.destroyed);
    if (!stdioOpen) return finish();
    let timer: NodeJS.Timeout | undefined;
    const onClose = () => {
      clearTimeout(timer);
      finish();
    };
    timer = setTimeout(() => {
      child.off('close', onClose);
      finish();
    }, PIPE_FLUSH_MS);
    child.once('close', onClose);
  }

  private destroyPipes(): void {
    const child = this.child;
    if (!child) return;
    for (const s of [child.stdin, child.stdout, child.stderr]) {
      try {
        s?.destroy();
      } catch {
        // ignore
      }
    }
  }
}

function nullWritable(): Writable {
  const s = new PassThrough();
  s.destroy();
  return s;
}

function nullReadable(): Readable {
  const s = new PassThrough();
  s.destroy();
  return s;
}
