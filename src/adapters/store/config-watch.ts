/**
 * Watches the config file for hot reload. The directory is watched, not the file: editors that save
 * by writing a temp file and renaming it over the old one replace the inode, and a watch on the old
 * inode would go silent after the first such save. Events for other names in the directory (our own
 * temp files from config-file.ts `writeConfigAtomic`, editor swap files) are ignored. A burst of
 * events is debounced into one `onChange` call after `debounceMs` of quiet.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

export interface ConfigWatchOptions {
  file: string;
  debounceMs: number;
  onChange: () => void;
  /** The watch itself failed (e.g. the directory was removed); it is closed and stays closed. */
  onError: (err: Error) => void;
}

export interface ConfigWatch {
  close(): void;
  readonly closed: boolean;
}

export function watchConfigFile(opts: ConfigWatchOptions): ConfigWatch {
  const abs = path.resolve(opts.file);
  const base = path.basename(abs);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // Persistent (a ref'd handle) on purpose: one not closed would keep the process alive and show in
  // process.getActiveResourcesInfo(), so a leak is visible (test/integration/config-reload.test.ts).
  const watcher: FSWatcher = watch(path.dirname(abs), (_event, filename) => {
    // Linux always names the entry; a null name (other platforms) may be ours, so it counts.
    if (closed || (filename !== null && filename.toString() !== base)) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) opts.onChange();
    }, opts.debounceMs);
  });
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    timer = undefined;
    watcher.close();
  };
  watcher.on('error', (err) => {
    close();
    opts.onError(err);
  });
  return {
    close,
    get closed() {
      return closed;
    },
  };
}
