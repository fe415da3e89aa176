/**
 * `mcp-warden stop [--data-dir DIR] [--timeout-ms N]`: gracefully stop the daemon of a data dir and
 * wait until its process is gone. The daemon's own SIGTERM handling stops every upstream and
 * verifies their process groups are gone (within its shutdownBudgetMs) before it exits.
 */
import { resolve } from 'node:path';
import { DEFAULT_SETTINGS } from '../core/settings.js';
import {
  daemonFilePath,
  isDaemonAlive,
  readDaemonFile,
  removeDaemonFile,
  removeDaemonFileSync,
  type DaemonInfo,
} from '../adapters/store/daemon-file.js';
import { locateDaemon } from './daemon-locator.js';
import { waitForDaemonExit } from './daemon-exit-wait.js';
import { parseCommand } from './parse-command.js';
import { defaultDataDir } from '../core/defaults.js';
import { sleep } from '../core/clock.js';

export const STOP_EXIT = { stopped: 0, notRunning: 1, usage: 2, stillRunning: 3 } as const;

/** A bit above the default shutdown budget, so a daemon that uses all of it is still waited for. */
export const DEFAULT_STOP_TIMEOUT_MS = DEFAULT_SETTINGS.shutdownBudgetMs + 5_000;
/** How often a daemon still starting up (lock held, no daemon.json yet) is looked at again. */
const STARTING_POLL_MS = 10;

export const STOP_HELP = `Usage: mcp-warden stop [--data-dir DIR] [--timeout-ms N]

Stops the daemon of the data dir and waits until its process has exited. The daemon is found through
<data-dir>/daemon.json and verified (same pid and process start time, so a reused pid is never
signalled); it gets SIGTERM, on which it stops every server, verifies their process groups are gone
(within its shutdownBudgetMs, then forcibly), removes daemon.json and releases its lock. A daemon
that is still starting up (holds the lock, no daemon.json yet) is waited for, then stopped.

Options:
  --data-dir DIR    data directory (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --timeout-ms N    how long to wait for the daemon to exit (default ${DEFAULT_STOP_TIMEOUT_MS}, a bit above the
                    default shutdownBudgetMs of ${DEFAULT_SETTINGS.shutdownBudgetMs}); raise it if you raised shutdownBudgetMs
  -h, --help        show this help

Exit codes:
  0  the daemon was running and has exited
  1  no daemon was running; a stale daemon.json naming a process that is verifiably gone is removed
     (a corrupt one is left in place and named)
  2  usage error
  3  the daemon is still running after --timeout-ms (or still starting up), or could not be
     signalled (another user's process)
`;

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return DEFAULT_STOP_TIMEOUT_MS;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 2_147_483_647 ? n : undefined;
}

/**
 * The daemon bin/mcp-warden has already sent SIGTERM to, from MCP_WARDEN_STOP_SIGNALLED=<pid>:<start
 * time> (the launcher verifies daemon.json's process as locateDaemon does, then signals it while Node
 * starts). Read once and removed, so nothing this program starts inherits it.
 */
function signalledByLauncher(): { pid: number; processStartTime: number } | undefined {
  const text = process.env.MCP_WARDEN_STOP_SIGNALLED;
  delete process.env.MCP_WARDEN_STOP_SIGNALLED;
  const m = text === undefined ? null : /^([1-9]\d*):([1-9]\d*)$/.exec(text);
  return m ? { pid: Number(m[1]), processStartTime: Number(m[2]) } : undefined;
}

/** SIGTERM the verified daemon (unless the launcher did: `signalled`) and wait until it is gone. */
async function stopRunning(dataDir: string, info: DaemonInfo, deadline: number, timeoutMs: number, signalled: boolean): Promise<number> {
  const t0 = signalled ? Math.round(performance.timeOrigin) : Date.now();
  if (!isDaemonAlive(info)) return finishStopped(dataDir, info, t0);
  if (!signalled) {
    try {
      process.kill(info.pid, 'SIGTERM');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') return finishStopped(dataDir, info, t0);
      process.stderr.write(`mcp-warden: cannot signal the daemon (pid ${info.pid}): ${code ?? (err as Error).message}\n`);
      return STOP_EXIT.stillRunning;
    }
  }
  return awaitExit(dataDir, info, deadline, timeoutMs, t0);
}

/** Wait until the signalled daemon `proc` has exited, then report it (exit code 0), or time out (3). */
async function awaitExit(
  dataDir: string,
  proc: Pick<DaemonInfo, 'pid' | 'processStartTime'> & { instanceId?: string },
  deadline: number,
  timeoutMs: number,
  t0: number,
): Promise<number> {
  // The stdout stream is made while the daemon stops (a pipe's costs ~3 ms), not after its exit, when
  // the report is written and every millisecond is on the stop's wall time.
  void process.stdout;
  if (!(await waitForDaemonExit(dataDir, proc, deadline))) {
    process.stderr.write(
      `mcp-warden: the daemon (pid ${proc.pid}) is still running ${timeoutMs} ms after SIGTERM; ` +
        `it may still be stopping its servers (see ${dataDir}/daemon.log); try a larger --timeout-ms\n`,
    );
    return STOP_EXIT.stillRunning;
  }
  return finishStopped(dataDir, proc, t0);
}

function sameProcess(a: Pick<DaemonInfo, 'pid' | 'processStartTime'>, b: Pick<DaemonInfo, 'pid' | 'processStartTime'>): boolean {
  return a.pid === b.pid && a.processStartTime === b.processStartTime;
}

function finishStopped(dataDir: string, proc: Pick<DaemonInfo, 'pid'> & { instanceId?: string }, t0: number): number {
  // The daemon removes daemon.json itself; if it died before that, the file is ours to clean up.
  if (proc.instanceId !== undefined) removeDaemonFileSync(dataDir, proc.instanceId);
  process.stdout.write(`stopped mcp-warden (pid ${proc.pid}) in ${Date.now() - t0} ms\n`);
  return STOP_EXIT.stopped;
}

export async function runStop(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    'stop',
    argv,
    {
      'data-dir': { type: 'string' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    STOP_HELP,
  );
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const timeoutMs = parseTimeout(values['timeout-ms']);
  if (timeoutMs === undefined) {
    process.stderr.write(`mcp-warden stop: --timeout-ms: expected a whole number of milliseconds from 1, got "${values['timeout-ms']}"\n`);
    return STOP_EXIT.usage;
  }
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  const deadline = Date.now() + timeoutMs;

  const early = signalledByLauncher();
  let loc = await locateDaemon(dataDir);
  if (early && loc.kind !== 'running') {
    // The launcher's SIGTERM came first, and the daemon is past removing daemon.json (its exit tail)
    // or gone: wait for that process, whatever the files say now (a daemon.json it left is removed).
    const proc = loc.kind === 'stale' && sameProcess(loc.info, early) ? loc.info : early;
    return awaitExit(dataDir, proc, deadline, timeoutMs, Math.round(performance.timeOrigin));
  }
  // Starting up: signalled only once it has published daemon.json (then its SIGTERM handler is in place).
  while (loc.kind === 'starting' && Date.now() < deadline) {
    await sleep(STARTING_POLL_MS);
    loc = await locateDaemon(dataDir);
  }
  switch (loc.kind) {
    case 'running':
      return stopRunning(dataDir, loc.info, deadline, timeoutMs, early !== undefined && sameProcess(loc.info, early));
    case 'starting':
      process.stderr.write(
        `mcp-warden: the daemon (pid ${loc.holder.pid}) is still starting up after ${timeoutMs} ms (no daemon.json yet); not signalled\n`,
      );
      return STOP_EXIT.stillRunning;
    case 'stale': {
      // Stale = verifiably gone (the pid does not exist, or belongs to a process with another start time).
      const again = await readDaemonFile(dataDir);
      if (again.kind === 'ok' && again.info.instanceId === loc.info.instanceId && !isDaemonAlive(again.info)) {
        await removeDaemonFile(dataDir, loc.info.instanceId).catch(() => undefined);
        process.stdout.write(`mcp-warden is not running (removed the stale daemon.json of pid ${loc.info.pid})\n`);
      } else {
        process.stdout.write(`mcp-warden is not running (data dir ${dataDir})\n`);
      }
      return STOP_EXIT.notRunning;
    }
    case 'corrupt':
      process.stderr.write(
        `mcp-warden: not running (nobody holds the data-dir lock); ${loc.file} is corrupt (${loc.reason}) and was left in place\n`,
      );
      return STOP_EXIT.notRunning;
    case 'none':
      process.stdout.write(`mcp-warden is not running (no ${daemonFilePath(dataDir)})\n`);
      return STOP_EXIT.notRunning;
  }
}
