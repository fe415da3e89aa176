#!/usr/bin/env node
/**
 * The `mcp-warden` command line. Each command parses its own flags strictly and has --help.
 * Exit codes are stable and listed in README.md (and exitCodes below).
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { WardenError, ErrorCodes } from '../core/error-codes.js';
import { VERSION } from '../core/version.js';
import { isLogLevel, LOG_LEVELS } from '../adapters/log/log-levels.js';
import { DEFAULT_HOST, DEFAULT_INSPECT_URL, DEFAULT_PORT, defaultDataDir } from '../core/defaults.js';
import { parseListenAddress } from './listen-address.js';
import { exitPromptly } from './exit-promptly.js';
import type { startDaemon as StartDaemon } from '../daemon/daemon.js';
// Each command's modules load only when that command runs: `status`, `stop` and a `serve` that
// loses the data-dir lock should not pay for loading the whole daemon.

/** V8's default growth factor of the young generation (restored once the daemon listens). */
const SEMI_SPACE_GROWTH_FACTOR = 2;

export const exitCodes = {
  ok: 0,
  failure: 1,
  usage: 2,
  configInvalid: 3,
  alreadyRunning: 4,
  listenFailed: 5,
  dataDirUnwritable: 6,
  /** serve: the data-dir lock was removed or taken over while running; the daemon stopped cleanly. */
  lockLost: 7,
  internal: 70,
} as const;

const MAIN_HELP = `mcp-warden ${VERSION}: supervise, federate and quarantine MCP servers behind one endpoint

Usage: mcp-warden <command> [options]

Commands:
  serve      run the daemon in the foreground (one per data dir)
  status     is the daemon of a data dir running, and how are its servers? (--json)
  stop       stop the daemon of a data dir gracefully and wait until it has exited
  reap       find and kill processes and containers left behind by dead mcp-warden daemons (--dry-run lists them)
  servers    list, add, remove, enable, disable, restart, approve, quarantine a running daemon's
             servers, or show a server's tools (mcp-warden servers --help)
  ui         print the URL of the web visualizer of the running daemon (--open: open it in a browser)
  calls      the tool calls the daemon answered: time, server, tool, duration, outcome (--json, --follow)
  import     add the MCP servers another client configured (FILE, or --from CLIENT; --dry-run shows the diff)
  connect    point a client (claude-desktop, cursor, windsurf, vscode, claude-code) at mcp-warden
  auth       OAuth login/logout for a remote server that answers 401 (mcp-warden auth --help)
  stdio      speak MCP on stdin/stdout, relayed to the daemon (started here if none runs), for
             clients that can only launch a command
  help       show this help (also: mcp-warden <command> --help)
  version    print the version

Environment:
  MCP_WARDEN_HOME   data directory (default ~/.mcp-warden)
`;

const SERVE_HELP = `Usage: mcp-warden serve [options]

Runs the daemon in the foreground until SIGINT or SIGTERM, then stops every upstream server,
verifies their process groups are gone, and exits.

Options:
  --config FILE       config file (default <data-dir>/config.json; written with a demo server on first run)
  --data-dir DIR      data directory (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --listen HOST:PORT  address of the MCP endpoint (default ${DEFAULT_HOST}:${DEFAULT_PORT}; port 0 picks a free port)
  --allow-remote      allow a non-loopback --listen address; /mcp then requires the bearer token in <data-dir>/token
  --log-level LEVEL   one of ${LOG_LEVELS.join(', ')} (default info)
  --quiet             no log lines on stderr (the log file in the data dir still gets them)
  --inspect [URL]     stream the actor system to a Stately inspector relay (default ${DEFAULT_INSPECT_URL};
                      how to start a relay: docs/control-protocol.md); an unreachable relay never
                      affects the daemon
  -h, --help          show this help

On start it prints the MCP endpoint URL and writes <data-dir>/daemon.json (pid, instanceId, url, startedAt, version).
Beside /mcp it serves the control channel ws://HOST:PORT/ws for UIs and \`mcp-warden servers\`, authenticated
with the token in <data-dir>/token (created 0600 on first start); see docs/control-protocol.md.
Before starting any server it kills processes and removes Docker containers left behind by dead mcp-warden
daemons (as \`mcp-warden reap\` does), retries what a previous run's reaper recorded in
<data-dir>/pending-reap.json, and starts a detached watchdog that kills this daemon's servers and removes
its containers if the daemon itself is killed (SIGKILL, crash); see docs/guarantees.md and docs/docker.md.

One daemon per data dir: before anything else (even reading the config) it takes the lock
<data-dir>/daemon.lock (proper-lockfile: the directory <data-dir>/daemon.lock.lock). While another
daemon holds it, serve exits with code 4 naming that daemon's pid and URL. A lock left behind by a
killed daemon is taken over once it is lockStaleMs old (default 3 s); serve waits for that instead of
failing when the lock names a process that is gone. \`mcp-warden status\` and
\`mcp-warden stop\` find the running daemon; docs/cli.md lists every file in the data dir.

Exit codes:
  0   stopped by SIGINT or SIGTERM (every server stopped)
  1   another start failure (the message names its E_* code)
  2   usage error
  3   the config file is invalid or unreadable
  4   another daemon is already running for this data dir (E_ALREADY_RUNNING)
  5   the listen address cannot be used (in use, no permission, non-loopback without --allow-remote)
  6   the data dir cannot be created or written
  7   the data-dir lock was removed or taken over while running; stopped cleanly (E_LOCK_COMPROMISED)
  70  internal error (a bug; the stack trace follows the message)
`;

/** `HOST:PORT`, `[::1]:PORT`, `:PORT` or `PORT` (src/cli/listen-address.ts); a bad one is a usage error. */
export function parseListen(value: string): { host: string; port: number } {
  try {
    return parseListenAddress(value);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

class UsageError extends Error {}

function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return exitCodes.usage;
  if (err instanceof WardenError) {
    switch (err.code) {
      case ErrorCodes.CONFIG_INVALID:
      case ErrorCodes.CONFIG_UNREADABLE:
        return exitCodes.configInvalid;
      case ErrorCodes.ALREADY_RUNNING:
        return exitCodes.alreadyRunning;
      case ErrorCodes.LOCK_COMPROMISED:
        return exitCodes.lockLost;
      case ErrorCodes.LISTEN_FAILED:
      case ErrorCodes.NON_LOOPBACK_REFUSED:
        return exitCodes.listenFailed;
      case ErrorCodes.DATA_DIR_UNWRITABLE:
        return exitCodes.dataDirUnwritable;
      default:
        return exitCodes.failure;
    }
  }
  return exitCodes.internal;
}

async function serve(argvIn: string[]): Promise<number> {
  // `--inspect` takes an optional URL: alone (or before another option) it means the default relay.
  const argv = argvIn.map((a, i) =>
    a === '--inspect' && (i + 1 >= argvIn.length || argvIn[i + 1]!.startsWith('-')) ? `--inspect=${DEFAULT_INSPECT_URL}` : a,
  );
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'allow-remote': { type: 'boolean' },
      'log-level': { type: 'string' },
      quiet: { type: 'boolean' },
      inspect: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return exitCodes.ok;
  }
  const logLevel = values['log-level'] ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  const listen = parseListen(values.listen ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`);
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());

  // Start-up allocates mostly what lives as long as the daemon (module code, schemas): a young
  // generation grown for it (V8 doubles it up to 32 MiB) would stay mostly empty and resident
  // afterwards. It keeps its initial size until the daemon listens, then may grow as usual
  // (docs/benchmarks.md, "Daemon memory").
  setFlagsFromString('--semi-space-growth-factor=1');
  // Start-up code runs once: V8's optimizing compiler (TurboFan) would compile its hottest loops
  // (schema construction, module evaluation) on a background thread for nothing and leave ~4 MiB of
  // compiler pages resident. Interpreter and baseline code until the daemon listens, then as usual.
  setFlagsFromString('--no-opt');
  const options = {
    dataDir,
    configPath: values.config ? resolve(values.config) : undefined,
    listen,
    logLevel,
    console: !values.quiet,
    allowRemote: values['allow-remote'] ?? false,
    inspectUrl: values.inspect,
  };
  // Boot first (lock, config, then the watchdog and the startup reap under way: daemon-boot.ts), and
  // load the rest of the daemon while the watchdog starts on another core and the reap runs.
  const boot = await (await import('../daemon/daemon-boot.js')).bootDaemon(options);
  let startDaemon: typeof StartDaemon;
  try {
    ({ startDaemon } = await import('../daemon/daemon.js'));
  } catch (err) {
    await boot.abort();
    throw err;
  }
  const daemon = await startDaemon(options, boot);
  setFlagsFromString(`--semi-space-growth-factor=${SEMI_SPACE_GROWTH_FACTOR}`);
  setFlagsFromString('--opt');
  process.stdout.write(`mcp-warden ${VERSION} listening on ${daemon.mcpUrl} (pid ${process.pid}, data dir ${dataDir})\n`);

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      daemon.logger.warn({ signal: sig }, 'already shutting down; the shutdown budget bounds the wait');
      return;
    }
    // The stop runs each server's teardown code once per server and then never again: TurboFan would
    // compile it hot halfway through, on the other core, for nothing. Interpreter and baseline code
    // for the rest of the process cut a stop of 500 from ~1.1 s to ~0.65 s of CPU (docs/benchmarks.md).
    setFlagsFromString('--no-opt');
    void daemon.stop(`signal ${sig}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const onFatal = (err: unknown) => {
    daemon.logger.fatal({ err }, 'unexpected error; shutting down');
    process.exitCode = exitCodes.internal;
    void daemon.stop('fatal error');
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);

  await daemon.stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // The daemon stopped itself (lost its data-dir lock): reported like a start failure, exit code 7.
  const failure = daemon.failure?.();
  if (failure && typeof process.exitCode !== 'number') throw failure;
  const code = typeof process.exitCode === 'number' ? process.exitCode : exitCodes.ok;
  // Every server is stopped and verified gone, the watchdog has exited, daemon.json is removed, the
  // lock released and the log closed (daemon.stopped): nothing is left to wait for.
  exitPromptly(code);
  return code;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'reap':
      return (await import('./reap-command.js')).runReap(rest);
    case 'servers':
      return (await import('./servers-command.js')).runServers(rest);
    case 'status':
      return (await import('./status-command.js')).runStatus(rest);
    case 'stop':
      return (await import('./stop-command.js')).runStop(rest);
    case 'ui':
      return (await import('./ui-command.js')).runUi(rest);
    case 'calls':
      return (await import('./calls-command.js')).runCalls(rest);
    case 'stdio':
      return (await import('./stdio-command.js')).runStdio(rest);
    case 'import':
      return (await import('./import-command.js')).runImport(rest);
    case 'connect':
      return (await import('./connect-command.js')).runConnect(rest);
    case 'auth':
      return (await import('./auth-command.js')).runAuth(rest);
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`${VERSION}\n`);
      return exitCodes.ok;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(MAIN_HELP);
      return command === undefined ? exitCodes.usage : exitCodes.ok;
    default:
      throw new UsageError(`unknown command "${command}"; see mcp-warden --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const code = exitCodeFor(err);
    const prefix = err instanceof WardenError ? `mcp-warden: ${err.code}: ` : 'mcp-warden: ';
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${prefix}${msg}\n`);
    if (code === exitCodes.internal && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = code;
  },
);
