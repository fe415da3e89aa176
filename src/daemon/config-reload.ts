/**
 * Hot reload of the config file (docs/config.md "Hot reload"): a directory watch
 * (src/adapters/store/config-watch.ts), owned in the ledger under `config-watch`, re-reads the file
 * after a debounce and hands it to the registry (src/daemon/server-registry.ts `reload`), which owns
 * the diff. An unusable file changes nothing: the running set keeps serving and the problem is the
 * visible config status (`/healthz`, the control channel's snapshot and `config` events, `status`)
 * until a valid file appears.
 */
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import type { ResourceLedger } from '../core/resource-ledger.js';
import type { Settings } from '../core/settings.js';
import { loadConfigFile } from '../adapters/store/config-file.js';
import { watchConfigFile } from '../adapters/store/config-watch.js';
import type { ServerRegistry } from './server-registry.js';
import type { ConfigStatus } from './server-events.js';

export const CONFIG_WATCH_OWNER = 'config-watch';

export interface ConfigReloadDeps {
  configPath: string;
  registry: ServerRegistry;
  ledger: ResourceLedger;
  logger: Logger;
  /** The settings in effect (settings are read at start; a changed `settings` object is only reported). */
  settings: Settings;
  /** The file's own settings as loaded at start, to notice edits that need a restart. */
  fileSettings: Settings;
  onStatus: (status: ConfigStatus) => void;
}

export interface ConfigReload {
  status(): ConfigStatus;
  /** Read and apply now (tests; also what a watch event does after the debounce). */
  apply(): Promise<void>;
}

export function startConfigReload(deps: ConfigReloadDeps): ConfigReload {
  const { configPath, logger } = deps;
  let status: ConfigStatus = { ok: true, path: configPath, loadedAt: Date.now() };
  let fileSettings = JSON.stringify(deps.fileSettings);
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const setStatus = (next: ConfigStatus) => {
    const changed = next.ok !== status.ok || (!next.ok && !status.ok && next.error.message !== status.error.message);
    status = next;
    if (changed) deps.onStatus(next);
  };

  const applyOnce = async () => {
    let settingsSeen: string | undefined;
    try {
      const result = await deps.registry.reload(async () => {
        const loaded = await loadConfigFile(configPath);
        settingsSeen = JSON.stringify(loaded.config.settings);
        return loaded;
      });
      const changes = Object.entries(result).filter(([, names]) => names.length > 0);
      if (changes.length > 0) logger.info({ file: configPath, ...Object.fromEntries(changes) }, 'config file reloaded');
      if (settingsSeen !== undefined && settingsSeen !== fileSettings) {
        fileSettings = settingsSeen;
        logger.warn({ file: configPath }, 'the "settings" of the config file changed; settings take effect at the next start');
      }
      setStatus({ ok: true, path: configPath, loadedAt: Date.now() });
    } catch (err) {
      const e = err instanceof WardenError ? err : new WardenError(ErrorCodes.INTERNAL, err instanceof Error ? err.message : String(err));
      logger.error(
        { code: e.code, file: configPath },
        `config file not applied; the running servers keep serving until a valid file appears: ${e.message}`,
      );
      setStatus({ ok: false, path: configPath, error: { code: e.code, message: e.message }, at: Date.now() });
    }
  };

  // One apply at a time; a change during an apply triggers exactly one more.
  const apply = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await applyOnce();
      } while (again && !closed);
      running = undefined;
    })();
    return running;
  };

  let watch: ReturnType<typeof watchConfigFile>;
  try {
    watch = watchConfigFile({
      file: configPath,
      debounceMs: deps.settings.configReloadDebounceMs,
      onChange: () => void apply(),
      onError: (err) =>
        logger.error({ err, file: configPath }, 'watching the config file failed; edits are no longer applied until a restart'),
    });
  } catch (err) {
    // No watch (e.g. the inotify watch limit, ENOSPC): the daemon runs, without hot reload, and says so.
    logger.error({ err, file: configPath }, 'cannot watch the config file; edits are applied only at the next start');
    return { status: () => status, apply };
  }
  const w = watch;
  deps.ledger.acquire(CONFIG_WATCH_OWNER, {
    kind: 'listener',
    description: `watch of ${configPath}`,
    release: async () => {
      closed = true;
      w.close();
      // An apply already running finishes inside the registry's queue; shutdown waits for that queue.
      await running;
    },
    isGone: () => w.closed,
  });
  return { status: () => status, apply };
}
