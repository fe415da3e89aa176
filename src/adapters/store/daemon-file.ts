/**
 * `<data-dir>/daemon.json`: how CLI commands find the running daemon. Written atomically after the
 * daemon is listening, removed on clean exit. It is information, not a lock (see the lock file).
 */
import { promises as fs, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isOwnerAlive } from '../../core/instance-identity.js';
import { processTable } from '../process/current-table.js';
import { isDead } from '../process/process-table.js';
import { readFileNoFollow, readFileNoFollowSync } from './no-follow.js';

export interface DaemonInfo {
  pid: number;
  instanceId: string;
  /** Base URL, e.g. http://127.0.0.1:7374 (the MCP endpoint is `${url}/mcp`). */
  url: string;
  host: string;
  port: number;
  /** Daemon process start time in clock ticks since boot, to tell a reused pid apart. */
  processStartTime: number;
  startedAt: string;
  version: string;
  dataDir: string;
}

export const daemonFilePath = (dataDir: string) => join(dataDir, 'daemon.json');

export async function writeDaemonFile(dataDir: string, info: DaemonInfo): Promise<void> {
  const target = daemonFilePath(dataDir);
  const tmp = `${target}.${process.pid}.tmp`;
  await fs.rm(tmp, { force: true }); // 'wx' below: never write through a planted file or link
  await fs.writeFile(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  await fs.rename(tmp, target);
}

/** Remove daemon.json only if it is still ours (a successor may have written its own). */
export async function removeDaemonFile(dataDir: string, instanceId: string): Promise<void> {
  const current = await readDaemonFile(dataDir);
  if (current.kind === 'ok' && current.info.instanceId !== instanceId) return;
  await fs.rm(daemonFilePath(dataDir), { force: true });
}

/**
 * removeDaemonFile without the thread pool, for the daemon's exit tail: two async round trips cost
 * 2-15 ms there on a busy machine (every one is on the wall time of `mcp-warden stop`), the calls
 * themselves microseconds. Never throws.
 */
export function removeDaemonFileSync(dataDir: string, instanceId: string): void {
  try {
    const current = parseDaemonFile(readFileNoFollowSync(daemonFilePath(dataDir), 0o600));
    if (current.kind === 'ok' && current.info.instanceId !== instanceId) return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    // unreadable or a link: removed below, as removeDaemonFile does
  }
  try {
    rmSync(daemonFilePath(dataDir), { force: true });
  } catch {
    // the data dir went away, or no permission: nothing left to do at exit
  }
}

export type DaemonFileRead = { kind: 'ok'; info: DaemonInfo } | { kind: 'missing' } | { kind: 'corrupt'; reason: string };

export async function readDaemonFile(dataDir: string): Promise<DaemonFileRead> {
  let text: string;
  try {
    // Not through a symlink (no-follow.ts): a link reads as corrupt, and writeDaemonFile's rename replaces it.
    text = await readFileNoFollow(daemonFilePath(dataDir), 0o600);
  } catch (err) {
    return unreadable(err);
  }
  return parseDaemonFile(text);
}

/**
 * readDaemonFile without the thread pool (and without loading node:fs/promises), for the CLI's look
 * at a daemon: `mcp-warden stop` reads daemon.json before it signals the daemon, so the read is on
 * the stop's wall time, and a one-shot CLI has nothing else to do meanwhile.
 */
export function readDaemonFileSync(dataDir: string): DaemonFileRead {
  let text: string;
  try {
    text = readFileNoFollowSync(daemonFilePath(dataDir), 0o600);
  } catch (err) {
    return unreadable(err);
  }
  return parseDaemonFile(text);
}

function unreadable(err: unknown): DaemonFileRead {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
  return { kind: 'corrupt', reason: (err as Error).message };
}

function parseDaemonFile(text: string): DaemonFileRead {
  try {
    const v = JSON.parse(text) as Partial<DaemonInfo>;
    if (typeof v.pid !== 'number' || typeof v.url !== 'string' || typeof v.instanceId !== 'string') {
      return { kind: 'corrupt', reason: 'missing pid, url or instanceId' };
    }
    return { kind: 'ok', info: v as DaemonInfo };
  } catch (err) {
    return { kind: 'corrupt', reason: `not JSON: ${(err as Error).message}` };
  }
}

/**
 * The process daemon.json names still runs: same pid, same start time (a reused pid is not alive),
 * not a zombie. A file without a start time (never written by this version) falls back to the pid.
 */
export function isDaemonAlive(info: Pick<DaemonInfo, 'pid' | 'processStartTime'>): boolean {
  if (typeof info.processStartTime === 'number' && info.processStartTime > 0) {
    return isOwnerAlive({ pid: info.pid, startTime: info.processStartTime, instanceId: '' });
  }
  let p;
  try {
    p = processTable().get(info.pid);
  } catch {
    return true;
  }
  return p !== undefined && !isDead(p);
}
