/**
 * `mcp-warden stdio`: the federated endpoint for clients that can only launch a command. MCP on
 * stdin/stdout, relayed to the daemon of the data dir (src/adapters/mcp/stdio-relay.ts).
 *
 * With no daemon running it starts one inside this process, under the same single-instance lock as
 * `serve` (src/adapters/store/instance-lock.ts): losing the race to another starter (E_ALREADY_RUNNING)
 * means bridging to the winner instead. A daemon started here is not meant to stay: it stops, with
 * everything it started, when stdin closes (the client quit) or on SIGINT/SIGTERM. A daemon that was
 * already running is only used, never stopped. stdout carries MCP only; diagnostics go to stderr and
 * the daemon's log file.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseCommand } from './parse-command.js';
import { locateDaemon } from './daemon-locator.js';
import { parseListenAddress } from './listen-address.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import { defaultDataDir } from '../core/defaults.js';
import { sleep } from '../core/clock.js';
import { isLoopbackHost } from '../adapters/http/request-guards.js';
import type { Daemon } from '../daemon/daemon.js';

/** How long to wait for a daemon that holds the lock but has not published daemon.json yet. */
const STARTING_WAIT_MS = 30_000;
const POLL_MS = 100;

export const STDIO_HELP = `Usage: mcp-warden stdio [options]

Speaks MCP on stdin/stdout and relays it to the running daemon's /mcp endpoint, so a client that can
only launch a command (a "command" entry in its config) gets every federated tool.

If no daemon runs for the data dir, one is started inside this process (the single-instance lock
applies: if another one wins the race, this command uses that one). A daemon started by stdio stops
with everything it started when stdin closes or on SIGINT/SIGTERM; an already running daemon is used
and left running. For several clients sharing one daemon, run \`mcp-warden serve\` yourself.

Options:
  --data-dir DIR      data directory (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --config FILE       config file of a daemon started here (default <data-dir>/config.json)
  --listen HOST:PORT  address of a daemon started here (default 127.0.0.1:0, a free port)
  -h, --help          show this help

Exit codes: 0 stdin closed (or SIGINT/SIGTERM) and everything started here has stopped;
1 the daemon could not be started or reached; 2 usage error; 3 the config file is invalid.
`;

function warn(message: string): void {
  process.stderr.write(`mcp-warden stdio: ${message}\n`);
}

/** The running daemon's MCP URL, or a daemon started here. */
async function findOrStartDaemon(
  dataDir: string,
  configPath: string | undefined,
  listen: { host: string; port: number },
): Promise<{ mcpUrl: string; host: string; own?: Daemon }> {
  const deadline = Date.now() + STARTING_WAIT_MS;
  for (;;) {
    const found = await locateDaemon(dataDir);
    if (found.kind === 'running') {
      if (configPath) warn(`a daemon is already running for ${dataDir}; --config is not used`);
      return { mcpUrl: `${found.info.url.replace(/\/+$/, '')}/mcp`, host: found.info.host };
    }
    if (found.kind === 'starting') {
      if (Date.now() > deadline) {
        throw new WardenError(ErrorCodes.ALREADY_RUNNING, `the daemon of ${dataDir} (pid ${found.holder.pid}) did not finish starting`);
      }
      await sleep(POLL_MS);
      continue;
    }
    const { startDaemon } = await import('../daemon/daemon.js');
    try {
      const own = await startDaemon({ dataDir, configPath, listen, logLevel: 'info', console: false });
      return { mcpUrl: own.mcpUrl, host: listen.host, own };
    } catch (err) {
      // Another starter won the lock between our look and our start: use its daemon.
      if (err instanceof WardenError && err.code === ErrorCodes.ALREADY_RUNNING && Date.now() < deadline) continue;
      throw err;
    }
  }
}

/**
 * A daemon started here has just begun launching its servers, and many clients list tools once
 * right after initialize: wait until no server is still launching. No timeout of its own: each
 * launch ends (running, failed or timed out) within the server's initTimeoutMs.
 */
function launchesSettled(daemon: Daemon): Promise<void> {
  const settled = () => daemon.servers().every((s) => !s.state.startsWith('starting.launching'));
  if (settled()) return Promise.resolve();
  return new Promise((resolveSettled) => {
    const off = daemon.subscribe(() => {
      if (!settled()) return;
      off();
      resolveSettled();
    });
    void daemon.stopped.then(() => {
      off();
      resolveSettled();
    });
  });
}

export async function runStdio(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    'stdio',
    argv,
    {
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      listen: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    STDIO_HELP,
  );
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  let listen: { host: string; port: number };
  try {
    listen = parseListenAddress(values.listen ?? '127.0.0.1:0');
  } catch (err) {
    warn(`${(err as Error).message}\nsee mcp-warden stdio --help`);
    return 2;
  }
  const { mcpUrl, host, own } = await findOrStartDaemon(dataDir, values.config ? resolve(values.config) : undefined, listen);
  const bearerToken = isLoopbackHost(host) ? undefined : (await readFile(join(dataDir, 'token'), 'utf8')).trim();

  if (own) await launchesSettled(own);
  const { startStdioRelay } = await import('../adapters/mcp/stdio-relay.js');
  let relay;
  try {
    relay = await startStdioRelay({ mcpUrl, bearerToken, onWarning: warn });
  } catch (err) {
    await own?.stop('stdio front failed to start');
    throw err;
  }
  const onSignal = () => void relay.close();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // An own daemon that stops by itself (lost lock, fatal error) ends the front too.
  void own?.stopped.then(() => relay.close());
  await relay.ended;
  await relay.close();
  await own?.stop('stdin closed');
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // stdin may still hold the event loop open (a pipe the client did not close); we are done.
  process.stdin.destroy();
  return 0;
}
