/**
 * One daemon per data dir. `<dataDir>/daemon.lock` is locked with proper-lockfile 4.1.2 (docs/building-blocks.md):
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
import { promises as fs, statSync } from 'node:fs';
import lockfile from 'proper-lockfile';
import lockfileModule from 'proper-lockfile/lib/lockfile.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { DEFAULT_SETTINGS, type Settings } from '../../core/settings.js';
import { loadConfigFile } from './config-file.js';
import { describeFsError } from './make-dirs.js';
import { isDaemonAlive, readDaemonFile } from './daemon-file.js';
import { processTable } from '../process/current-table.js';
import { sleep } from '../../core/clock.js';
import { lockDirPath, lockFilePath, liveLockHolder, readLockHolder, type LockHolder } from './lock-holder.js';

export { lockFilePath, lockDirPath, liveLockHolder, type LockHolder } from './lock-holder.js';

/** How long a loser waits for the winner's daemon.json before saying "starting up". */
const DESCRIBE_HOLDER_WAIT_MS = 1_500;
/** How often a start waiting for a dead daemon's lock to become stale retries. */
const STALE_RETRY_MS = 100;

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

interface LockInternals {
  mtime: Date;
  lockfilePath: string;
  released?: boolean;
  updateTimeout?: NodeJS.Timeout | null;
}
// proper-lockfile keeps its held locks (with the mtime it last set) in this module's table; the public
// API does not expose it. Same module instance as the one `lock` uses: one require cache, or one
// module in the bundle (a createRequire here would load a second copy beside the bundled one).
const lockInternals = lockfileModule as {
  getLocks(): Record<string, LockInternals | undefined>;
};

export type LockHolderView =
  /** A live process holds the lock; `text` is `(pid 4242, http://127.0.0.1:7777)` or `(pid 4242: starting up)`. */
  | { live: true; text: string }
  /** daemon.lock names a process that is gone: the lock is a dead daemon's, not yet stale. */
  | { live: false; pid: number; text: string };

/**
 * Who holds the lock of `dataDir` (as seen by a process that just got ELOCKED). daemon.json is written
 * only once the winner listens, so a missing, corrupt or dead one is re-read for up to `waitMs`; then
 * daemon.lock's holder record gives `(pid 4242: starting up)`, else `(pid unknown: starting up)`. When
 * daemon.lock names a dead process on three reads in a row (100 ms apart; a new winner rewrites it
 * within milliseconds of taking the lock), the lock is a dead daemon's: reported without waiting.
 */
export async function inspectLockHolder(dataDir: string, waitMs: number, exceptPid?: number): Promise<LockHolderView> {
  const deadline = Date.now() + waitMs;
  let deadReads = 0;
  for (;;) {
    const r = await readDaemonFile(dataDir);
    if (r.kind === 'ok' && r.info.pid !== exceptPid && isDaemonAlive(r.info)) {
      return { live: true, text: `(pid ${r.info.pid}, ${r.info.url})` };
    }
    const h = await readLockHolder(dataDir);
    if (h && h.pid !== exceptPid && !isDaemonAlive(h)) {
      if (++deadReads >= 3) return { live: false, pid: h.pid, text: `(pid unknown: the lock's last holder, pid ${h.pid}, is gone)` };
    } else {
      deadReads = 0;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
  }
  const h = await liveLockHolder(dataDir);
  if (h && h.pid !== exceptPid) return { live: true, text: `(pid ${h.pid}: starting up)` };
  return { live: true, text: '(pid unknown: starting up)' };
}

/**
 * The lock timing for a daemon about to start: settingsOverride, else the config file's settings,
 * else the defaults. The config file is only peeked at (never created); a missing or invalid one
 * gives the defaults here and is reported by the real load, which happens after the lock is taken.
 */
export async function lockTimingFor(configPath: string, override: Partial<Settings> = {}): Promise<{ staleMs: number; updateMs: number }> {
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
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `cannot create the lock file ${file}: ${describeFsError(err)}`, {
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
  const waitMs = opts.describeWaitMs ?? DESCRIBE_HOLDER_WAIT_MS;
  // A SIGKILLed holder's lock stays fresh for up to staleMs after its last refresh (up to ~1 s more
  // right after it was taken: proper-lockfile's first mtime lies in the future). While daemon.lock
  // names a dead process we wait for that instead of failing; bounded, never breaking a fresh lock.
  let staleWaitUntil: number | undefined;
  let deadHolder: number | undefined;
  for (;;) {
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
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') {
        throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `cannot take the lock ${lockDir}: ${describeFsError(err)}`, {
          lockDir,
        });
      }
      // Already waiting for this dead holder's lock to go stale: a cheap re-check of daemon.lock.
      if (deadHolder !== undefined && staleWaitUntil !== undefined && Date.now() < staleWaitUntil) {
        const h = await readLockHolder(dataDir);
        if (h && h.pid === deadHolder && !isDaemonAlive(h)) {
          await sleep(STALE_RETRY_MS);
          continue;
        }
      }
      const holder = await inspectLockHolder(dataDir, waitMs, process.pid);
      if (!holder.live) {
        if (staleWaitUntil === undefined) {
          staleWaitUntil = Date.now() + opts.staleMs + 2_000;
          log?.info({ lockDir, deadPid: holder.pid }, 'the data-dir lock is held for a daemon that is gone; waiting until it is stale');
        }
        deadHolder = holder.pid;
        if (Date.now() < staleWaitUntil) {
          await sleep(STALE_RETRY_MS);
          continue;
        }
      }
      throw new WardenError(ErrorCodes.ALREADY_RUNNING, `mcp-warden is already running ${holder.text}`, { dataDir, lockDir });
    }
  }
  const realFile = await fs.realpath(file);

  /** Our lock dir still carries the mtime proper-lockfile last set on it (a refresh may be mid-way: 3 looks). */
  const ownsLockDir = async (): Promise<boolean> => {
    for (let i = 0; i < 3 && !compromised; i++) {
      const held = lockInternals.getLocks()[realFile];
      if (!held || held.released) return false;
      const st = await fs.stat(held.lockfilePath).catch(() => undefined);
      if (!st) return false;
      if (st.mtime.getTime() === held.mtime.getTime()) return true;
      await sleep(50);
    }
    return false;
  };
  /** ownsLockDir in one synchronous look; undefined when a refresh may be mid-way (then ask ownsLockDir). */
  const ownsLockDirNow = (): boolean | undefined => {
    if (compromised) return false;
    const held = lockInternals.getLocks()[realFile];
    if (!held || held.released) return false;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(held.lockfilePath).mtime.getTime();
    } catch {
      return false;
    }
    return mtimeMs === held.mtime.getTime() ? true : undefined;
  };
  /** Drop the lock from proper-lockfile's table without touching the dir (its exit hook would remove it). */
  const forget = () => {
    const locks = lockInternals.getLocks();
    const held = locks[realFile];
    if (!held) return;
    held.released = true;
    if (held.updateTimeout) clearTimeout(held.updateTimeout);
    delete locks[realFile];
  };

  const lock: InstanceLock = {
    file,
    lockDir,
    get compromised() {
      return compromised;
    },
    async assertHeld() {
      // Two successors taking over the same stale lock can both succeed (the later one removes the
      // earlier one's fresh lock dir); proper-lockfile notices on its next refresh. Checked here,
      // before the daemon publishes itself.
      if (!released && (await ownsLockDir())) return;
      const taken = await fs.stat(lockDir).then(
        () => true,
        () => false,
      );
      if (!taken) {
        throw new WardenError(ErrorCodes.LOCK_COMPROMISED, `the data-dir lock ${lockDir} was removed by another process`, { lockDir });
      }
      const holder = await inspectLockHolder(dataDir, waitMs, process.pid);
      throw new WardenError(ErrorCodes.ALREADY_RUNNING, `mcp-warden is already running ${holder.text}`, { dataDir, lockDir });
    },
    async release() {
      if (released) return;
      released = true;
      if (compromised) return; // not ours anymore: leave whoever holds it alone
      // Synchronous when one look settles it: this is the daemon's last step before its exit, on the
      // wall time of `mcp-warden stop`, where each thread-pool round trip (stat, then proper-lockfile's
      // realpath and rmdir) cost more than the calls themselves on a busy machine.
      const ownedNow = ownsLockDirNow();
      if (!(ownedNow ?? (await ownsLockDir()))) {
        // Removed or taken over, and proper-lockfile has not noticed yet: still never remove it.
        forget();
        log?.warn({ lockDir }, 'the data-dir lock was removed or taken over by another process; left as it is');
        return;
      }
      try {
        if (ownedNow) lockfile.unlockSync(realFile, { realpath: false });
        else await releaseLock!();
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
      processStartTime: processTable().get(process.pid)?.startTime ?? 0,
      acquiredAt: new Date().toISOString(),
    };
    // Atomic replace: a concurrent reader sees the previous record or ours, never half of one.
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(holder) + '\n', { mode: 0o600 });
    await fs.rename(tmp, file);
  } catch (err) {
    await lock.release();
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `cannot write the lock file ${file}: ${describeFsError(err)}`, { file });
  }
  if (before !== undefined) {
    if (staleWaitUntil !== undefined || before > opts.staleMs) {
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
    if (!this.logger) {
      if (this.pendingLogs.length < 100) this.pendingLogs.push([level, o, m]);
      return;
    }
    try {
      this.logger[level](o, m);
    } catch {
      // a logger closed by a failed start: the line is lost, the lock work is not
    }
  }
}
