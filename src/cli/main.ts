#!/usr/bin/env node
/**
 * The `mcp-warden` command line. Each command parses its own flags strictly and has --help.
 * Exit codes are stable and listed in README.md (and exitCodes below).
 */
import { parseArgs } from 'node:util';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { WardenError, ErrorCodes } from '../core/error-codes.js';
import { VERSION } from '../core/version.js';
import { isLogLevel, LOG_LEVELS } from '../adapters/logger.js';
import { DEFAULT_HOST, DEFAULT_PORT, startDaemon } from '../daemon/daemon.js';

export const exitCodes = {
  ok: 0,
  failure: 1,
  usage: 2,
  configInvalid: 3,
  alreadyRunning: 4,
  listenFailed: 5,
  dataDirUnwritable: 6,
  internal: 70,
} as const;

const MAIN_HELP = `mcp-warden ${VERSION}: supervise, federate and quarantine MCP servers behind one endpoint

Usage: mcp-warden <command> [options]

Commands:
  serve      run the daemon in the foreground
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
  -h, --help          show this help

On start it prints the MCP endpoint URL and writes <data-dir>/daemon.json (pid, instanceId, url, startedAt, version).
`;

function defaultDataDir(): string {
  return process.env.MCP_WARDEN_HOME || join(homedir(), '.mcp-warden');
}

/** `HOST:PORT`, `[::1]:PORT`, `:PORT` or `PORT`. */
export function parseListen(value: string): { host: string; port: number } {
  let host = DEFAULT_HOST;
  let portText = value;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (value.includes(':')) {
    const i = value.lastIndexOf(':');
    host = value.slice(0, i) || DEFAULT_HOST;
    portText = value.slice(i + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new UsageError(`--listen: expected HOST:PORT with a port from 0 to 65535, got "${value}"`);
  }
  return { host, port };
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

async function serve(argv: string[]): Promise<number> {
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

  const daemon = await startDaemon({
    dataDir,
    configPath: values.config ? resolve(values.config) : undefined,
    listen,
    logLevel,
    console: !values.quiet,
    allowRemote: values['allow-remote'] ?? false,
  });
  process.stdout.write(
    `mcp-warden ${VERSION} listening on ${daemon.mcpUrl} (pid ${process.pid}, data dir ${dataDir})\n`,
  );

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      daemon.logger.warn({ signal: sig }, 'already shutting down; the shutdown budget bounds the wait');
      return;
    }
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
  return typeof process.exitCode === 'number' ? process.exitCode : exitCodes.ok;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
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
