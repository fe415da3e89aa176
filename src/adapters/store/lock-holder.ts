/**
 * Who holds the data-dir lock (src/adapters/store/instance-lock.ts), read without taking it: the
 * lock's paths and the holder record the holder writes into daemon.lock. Apart from the lock itself
 * so that `stop` and `status` find a starting daemon without loading proper-lockfile or the config
 * schema.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { isDaemonAlive } from './daemon-file.js';

const LOCK_FILE = 'daemon.lock';
export const lockFilePath = (dataDir: string) => join(dataDir, LOCK_FILE);
/** The directory proper-lockfile creates; it exists exactly while someone holds (or held, then died) the lock. */
export const lockDirPath = (dataDir: string) => `${lockFilePath(dataDir)}.lock`;

/** What the holder writes into daemon.lock right after acquiring. */
export interface LockHolder {
  pid: number;
  /** The holder's start time as its process table reads it (process-table.ts), to tell a reused pid apart. */
  processStartTime: number;
  acquiredAt: string;
}

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
