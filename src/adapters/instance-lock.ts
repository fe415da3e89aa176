/**
 * One daemon per data dir. `<dataDir>/daemon.lock` is locked with proper-lockfile 4.1.2 (NOTES.md):
 * an atomic `mkdir <dataDir>/daemon.lock.lock` whose mtime the holder refreshes every `updateMs`. A
 * lock dir not refreshed for `staleMs` belongs to a dead holder (SIGKILL leaves it behind) and is
 * taken over by the next `serve`.
 *
 * proper-lockfile stores no pid (and a file inside the lock dir would break release), so right after
 * acquiring, the holder writes its pid and process start time into `daemon.lock` itself (the lock's
 * target file, beside the lock dir). That names the holder while it is still starting up; once it
 * listens, `daemon.json` adds the URL.
 *
 * proper-lockfile's default `onCompromised` throws (and kills the process): the caller must pass a
 * handler, which is called at most once, when the lock dir was removed or taken over by someone else.
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import { DEFAULT_SETTINGS, type Settings } from '../core/settings.js';
import { loadConfigFile } from './config-file.js';
import { isDaemonAlive, readDaemonFile } from './daemon-file.js';
import { processStartTime } from './proc-scan.js';

export const LOCK_FILE = 'daemon.lock';
export const lockFilePath = (dataDir: string) => join(dataDir, LOCK_FILE);
/** The directory proper-lockfile creates; it exists exactly while someone holds (or held, then died) the lock. */
export const lockDirPath = (dataDir: string) => `${lockFilePath(dataDir)}.lock`;

/** How long a loser waits for the winner's daemon.json before saying "starting up". */
export const DESCRIBE_HOLDER_WAIT_MS = 1_500;

export interface InstanceLockLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface InstanceLockOptions {
  /** A lock not refreshed for this long is taken over (proper-lockfile: at least 2000). */
  staleMs: number;
  /** Refresh interval (proper-lockfile clamps it to [1000, staleMs / 2]). */
  updateMs: number;
  /** Called at most once when the lock was removed or taken over while held. Must not throw. */
  onCompromised: (err: Error) => void;
  logger?: InstanceLockLogger;
  /** Override of DESCRIBE_HOLDER_WAIT_MS (tests). */
  describeWaitMs?: number;
}

export interface InstanceLock {
  /** `<dataDir>/daemon.lock` */
  readonly file: string;
  /** `<dataDir>/daemon.lock.lock` */
  readonly lockDir: string;
  /** True once the lock was found removed or taken over (onCompromised has been called). */
  readonly compromised: boolean;
  /**
   * Resolves while the lock is verifiably ours; else throws E_ALREADY_RUNNING (another process took
   * it over; the message names it) or E_LOCK_COMPROMISED (the lock dir was removed).
   */
  assertHeld(): Promise<void>;
  /** Idempotent. Never removes a lock dir that is no longer ours. */
  release(): Promise<void>;
}

/** What the holder writes into daemon.lock right after acquiring. */
export interface LockHolder {
  pid: number;
  /** /proc/<pid>/stat field 22, to tell a reused pid apart. */
  processStartTime: number;
  acquiredAt: string;
}

interface LockInternals {
  mtime: Date;
  lockfilePath: string;
  released?: boolean;
}
// proper-lockfile keeps its held locks (with the mtime it last set) in this module's table; the public
// API does not expose it. Same module instance as the one `lock` uses (one require cache).
const lockInternals = createRequire(import.meta.url)('proper-lockfile/lib/lockfile.js') as {
  getLocks(): Record<string, LockInternals | undefined>;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const errnoOf = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code ?? (err as Error)?.message ?? String(err);

/** The holder record in daemon.lock, if it parses (the file is empty before the first holder). */
export async function readLockHolder(dataDir: string): Promise<LockHolder | undefined> {
  try {
    const v = JSON.parse(await fs.readFile(lockFilePath(dataDir), 'utf8')) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || typeof v.processStartTime !== 'number') return undefined;
    return { pid: v.pid, processStartTime: v.processStartTime, acquiredAt: String(v.acquiredAt ?? '') };
  } catch {
    return undefined;
  }
}

/**
 * The live process holding the lock of `dataDir`, as far as can be told without taking it: the lock
 * dir exists and daemon.lock names a process that still runs (same pid and start time).
 */
export async function liveLockHolder(dataDir: string): Promise<LockHolder | undefined> {
  try {
    await fs.stat(lockDirPath(dataDir));
  } catch {
    return undefined;
  }
  const h = await readLockHolder(dataDir);
  return h && isDaemonAlive(h) ? h : undefined;
}

/**
 * `(pid 4242, http://127.0.0.1:7777)` for the live daemon of `dataDir`. daemon.json is written only
 * once the winner listens, so a missing, corrupt or dead one is re-read for up to `waitMs`; then
 * daemon.lock's holder record gives `(pid 4242: starting up)`, else `(pid unknown: starting up)`.
 */
export async function describeLockHolder(dataDir: string, waitMs: number, exceptPid?: number): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await readDaemonFile(dataDir);
    if (r.kind === 'ok' && r.info.pid !== exceptPid && isDaemonAlive(r.info)) return `(pid ${r.info.pid}, ${r.info.url})`;
    if (Date.now() >= deadline) break;
    await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
  }
  const h = await liveLockHolder(dataDir);
  if (h && h.pid !== exceptPid) return `(pid ${h.pid}: starting up)`;
  return '(pid unknown: starting up)';
}

/**
 * The lock timing for a daemon about to start: settingsOverride, else the config file's settings,
 * else the defaults. The config file is only peeked at (never created); a missing or invalid one
 * gives the defaults here and is reported by the real load, which happens after the lock is taken.
 */
export async function lockTimingFor(
  configPath: string,
  override: Partial<Settings> = {},
): Promise<{ staleMs: number; updateMs: number }> {
  let settings: Settings = DEFAULT_SETTINGS;
  if (override.lockStaleMs === undefined || override.lockUpdateMs === undefined) {
    try {
      settings = (await loadConfigFile(configPath)).config.settings;
    } catch {
      // defaults; the real load reports the problem
    }
  }
  return {
    staleMs: override.lockStaleMs ?? settings.lockStaleMs,
    updateMs: override.lockUpdateMs ?? settings.lockUpdateMs,
  };
}

export async function acquireInstanceLock(dataDir: string, opts: InstanceLockOptions): Promise<InstanceLock> {
  const file = lockFilePath(dataDir);
  const lockDir = lockDirPath(dataDir);
  const log = opts.logger;
  try {
    // proper-lockfile resolves the target with realpath: it must exist. Never truncated here.
    await fs.writeFile(file, '', { flag: 'a', mode: 0o600 });
  } catch (err) {
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `cannot create the lock file ${file}: ${errnoOf(err)}`, {
      file,
    });
  }
  const before = await fs.stat(lockDir).then(
    (st) => Date.now() - st.mtimeMs,
    () => undefined,
  );

  let compromised = false;
  let released = false;
  let releaseLock: (() => Promise<void>) | undefined;
  try {
    releaseLock = await lockfile.lock(file, {
      stale: opts.staleMs,
      update: opts.updateMs,
      retries: 0,
      realpath: true,
      onCompromised: (err: Error) => {
        if (compromised || released) return;
        compromised = true;
        log?.error({ lockDir, err: err.message }, 'the data-dir lock was removed or taken over by another process');
        try {
          opts.onCompromised(err);
        } catch (e) {
          log?.error({ err: e }, 'lock-compromised handler failed');
        }
      },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
      const who = await describeLockHolder(dataDir, opts.describeWaitMs ?? DESCRIBE_HOLDER_WAIT_MS, process.pid);
      throw new WardenError(ErrorCodes.ALREADY_RUNNING, `mcp-warden is already running ${who}`, { dataDir, lockDir });
    }
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `cannot take the lock ${lockDir}: ${errnoOf(err)}`, {
      lockDir,
    });
  }
  const realFile = await fs.realpath(file);

  const lock: InstanceLock = {
    file,
    lockDir,
    get compromised() {
      return compromised;
    },
    async assertHeld() {
      // Two successors taking over the same stale lock can both succeed (the later one removes the
      // earlier one's fresh lock dir); proper-lockfile notices on its next refresh. Checked here,
      // before the daemon publishes itself: our lock dir still carries the mtime we last set.
      for (let i = 0; i < 3 && !compromised && !released; i++) {
        const held = lockInternals.getLocks()[realFile];
        if (!held || held.released) break;
        const st = await fs.stat(held.lockfilePath).catch(() => undefined);
        if (!st) break;
        if (st.mtime.getTime() === held.mtime.getTime()) return;
        await sleep(50); // a refresh may be between its utimes and recording the new mtime
      }
      const taken = await fs.stat(lockDir).then(
        () => true,
        () => false,
      );
      if (!taken) {
        throw new WardenError(ErrorCodes.LOCK_COMPROMISED, `the data-dir lock ${lockDir} was removed by another process`, { lockDir });
      }
      const who = await describeLockHolder(dataDir, opts.describeWaitMs ?? DESCRIBE_HOLDER_WAIT_MS, process.pid);
      throw new WardenError(ErrorCodes.ALREADY_RUNNING, `mcp-warden is already running ${who}`, { dataDir, lockDir });
    },
    async release() {
      if (released) return;
      released = true;
      if (compromised) return; // not ours anymore: leave whoever holds it alone
      try {
        await releaseLock!();
        log?.debug({ lockDir }, 'data-dir lock released');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ERELEASED' && code !== 'ENOTACQUIRED') log?.warn({ lockDir, err }, 'releasing the data-dir lock failed');
      }
    },
  };

  try {
    const holder: LockHolder = {
      pid: process.pid,
      processStartTime: processStartTime(process.pid) ?? 0,
      acquiredAt: new Date().toISOString(),
    };
    // Atomic replace: a concurrent reader sees the previous record or ours, never half of one.
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(holder) + '\n', { mode: 0o600 });
    await fs.rename(tmp, file);
  } catch (err) {
    await lock.release();
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `cannot write the lock file ${file}: ${errnoOf(err)}`, { file });
  }
  if (before !== undefined) {
    if (before > opts.staleMs) {
      log?.warn({ lockDir, ageMs: Math.round(before) }, 'took over a stale data-dir lock (the previous daemon died without releasing it)');
    } else {
      log?.info({ lockDir }, 'took the data-dir lock just released by the previous daemon');
    }
  }
  log?.debug({ lockDir, staleMs: opts.staleMs, updateMs: opts.updateMs }, 'data-dir lock acquired');
  return lock;
}

type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * The lock is taken before the daemon has a logger or a stop(): its log lines and a compromise are
 * held here until the daemon binds them (a compromise before binding is delivered on binding).
 */
export class LockRelay {
  private logger: InstanceLockLogger | undefined;
  private handler: ((err: Error) => void) | undefined;
  private readonly pendingLogs: Array<[Level, object, string]> = [];
  private pendingCompromise: Error | undefined;

  readonly log: InstanceLockLogger = {
    debug: (o, m) => this.emit('debug', o, m),
    info: (o, m) => this.emit('info', o, m),
    warn: (o, m) => this.emit('warn', o, m),
    error: (o, m) => this.emit('error', o, m),
  };

  readonly onCompromised = (err: Error): void => {
    if (this.handler) this.handler(err);
    else this.pendingCompromise ??= err;
  };

  bindLogger(logger: InstanceLockLogger): void {
    this.logger = logger;
    for (const [level, o, m] of this.pendingLogs.splice(0)) logger[level](o, m);
  }

  bindCompromised(handler: (err: Error) => void): void {
    this.handler = handler;
    const pending = this.pendingCompromise;
    this.pendingCompromise = undefined;
    if (pending) handler(pending);
  }

  private emit(level: Level, o: object, m: string): void {
    if (this.logger) this.logger[level](o, m);
    else if (this.pendingLogs.length < 100) this.pendingLogs.push([level, o, m]);
  }
}
