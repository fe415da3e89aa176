/**
 * Where is the daemon of a data dir, and is it alive? Shared by `status` and `stop`.
 *
 * `<dataDir>/daemon.json` (written once the daemon listens) names its pid, process start time and
 * URL; a process counts as alive only with the same pid AND start time (a reused pid does not).
 * While a daemon starts up it holds `<dataDir>/daemon.lock.lock` and has written its pid into
 * `<dataDir>/daemon.lock`, but not yet daemon.json: that is reported as `starting`.
 */
import { daemonFilePath, isDaemonAlive, readDaemonFileSync, type DaemonInfo } from '../adapters/store/daemon-file.js';
import { liveLockHolder, type LockHolder } from '../adapters/store/lock-holder.js';

export type DaemonLocation =
  /** daemon.json names a process that is alive. */
  | { kind: 'running'; info: DaemonInfo }
  /** The lock is held by a live process that has not (validly) written daemon.json yet. */
  | { kind: 'starting'; holder: LockHolder; corrupt?: string }
  /** daemon.json names a process that is gone (or whose pid now belongs to another process). */
  | { kind: 'stale'; info: DaemonInfo }
  /** daemon.json cannot be read or parsed, and nobody holds the lock. */
  | { kind: 'corrupt'; file: string; reason: string }
  /** No daemon.json and nobody holds the lock. */
  | { kind: 'none' };

export async function locateDaemon(dataDir: string): Promise<DaemonLocation> {
  // A synchronous read: every caller is a one-shot CLI command, and `stop` signals the daemon right after.
  const r = readDaemonFileSync(dataDir);
  if (r.kind === 'ok' && isDaemonAlive(r.info)) return { kind: 'running', info: r.info };
  const holder = await liveLockHolder(dataDir);
  if (holder) return r.kind === 'corrupt' ? { kind: 'starting', holder, corrupt: r.reason } : { kind: 'starting', holder };
  if (r.kind === 'ok') return { kind: 'stale', info: r.info };
  if (r.kind === 'corrupt') return { kind: 'corrupt', file: daemonFilePath(dataDir), reason: r.reason };
  return { kind: 'none' };
}
