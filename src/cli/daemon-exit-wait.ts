/**
 * `mcp-warden stop` waits until the daemon's process has exited. Node cannot wait for a process that
 * is not its child (no pidfd), so this polls /proc (one read of /proc/<pid>/stat per look) and lets the
 * daemon's last step wake it: releasing the data-dir lock removes the lock dir, an inotify event
 * (fs.watch). The daemon exits within milliseconds of that, so the looks then come every millisecond
 * for a while. The wait after the exit is part of the stop's wall time: a 10 ms poll alone cost 5 ms
 * on average and more on a busy machine, where every timer wake-up waits for a core.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { lockDirPath } from '../adapters/store/lock-holder.js';
import { isDaemonAlive, type DaemonInfo } from '../adapters/store/daemon-file.js';

/** Between looks while the daemon still holds its lock (a crash that leaves the lock is noticed by these). */
const POLL_MS = 25;
/** Between looks when the lock dir cannot be watched: the only way to notice the exit. */
const UNWATCHED_POLL_MS = 10;
/** Between looks once the lock dir is gone, for up to FAST_WINDOW_MS: the exit follows within milliseconds. */
const FAST_POLL_MS = 1;
const FAST_WINDOW_MS = 250;

/** Resolves true once the daemon `info` names has exited, false at `deadline` (ms since the epoch). */
export async function waitForDaemonExit(
  dataDir: string,
  info: Pick<DaemonInfo, 'pid' | 'processStartTime'>,
  deadline: number,
): Promise<boolean> {
  let releasedAt: number | undefined;
  let wake: (() => void) | undefined;
  let watcher: FSWatcher | undefined;
  const lockDir = lockDirPath(dataDir);
  try {
    // The lock dir itself: its removal (IN_DELETE_SELF) is the one event, no log writes wake us.
    watcher = watch(lockDir, { persistent: false }, () => {
      // Node reports the holder's mtime refresh of a directory as 'rename' too (inotify flags it
      // IN_ISDIR): only a lock dir that is gone counts.
      if (existsSync(lockDir)) return;
      releasedAt ??= Date.now();
      wake?.();
    });
    watcher.on('error', () => {
      // The watch failed: polling goes on either way.
      if (!existsSync(lockDir)) releasedAt ??= Date.now();
      wake?.();
    });
  } catch {
    // No lock dir (the daemon is already past its release) or no inotify: polling alone.
    watcher = undefined;
  }
  try {
    while (isDaemonAlive(info)) {
      const now = Date.now();
      if (now >= deadline) return false;
      const ms = releasedAt !== undefined && now - releasedAt < FAST_WINDOW_MS ? FAST_POLL_MS : watcher ? POLL_MS : UNWATCHED_POLL_MS;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(ms, Math.max(1, deadline - now)));
        function done() {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
        wake = done;
      });
    }
    return true;
  } finally {
    watcher?.close();
  }
}
