/**
 * `mcp-warden ui [--data-dir DIR] [--open] [--json]`: prints the URL of the visualizer page of the
 * running daemon, `http://127.0.0.1:PORT/#token=<token>`, and with --open opens it with `open`
 * (macOS) or xdg-open (elsewhere).
 *
 * The token rides in the URL fragment, which browsers never send to a server: the page reads it,
 * offers it as the WebSocket subprotocol entry `auth.<token>`, keeps it in sessionStorage (a reload
 * works, a new tab does not get it) and removes it from the address bar with history.replaceState.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { locateDaemon } from './daemon-locator.js';
import { parseCommand } from './parse-command.js';
import { defaultDataDir } from '../core/defaults.js';

export const UI_EXIT = { ok: 0, failed: 1, usage: 2, noDaemon: 7 } as const;

export const UI_HELP = `Usage: mcp-warden ui [--data-dir DIR] [--open] [--json]

Prints the address of the visualizer, a web page served by the running daemon that shows every
server's state live, the server statechart, an event log and the resource ledger, and lets you add,
remove, enable, disable, restart, approve and quarantine servers:

  http://127.0.0.1:7374/#token=<token>

The token (from <data-dir>/token) is in the URL fragment, which the browser never sends to the
daemon; the page moves it into the control channel's WebSocket subprotocol, keeps it for reloads of
that tab (sessionStorage) and removes it from the address bar. Anyone with the URL controls the
daemon: do not share it.

Options:
  --data-dir DIR  data directory of the daemon (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --open          also open the page in the default browser (open on macOS, xdg-open elsewhere)
  --json          print {"url": …} as JSON
  -h, --help      show this help

Exit codes: 0 printed (and opened); 1 --open failed (the URL is still printed); 2 usage error;
7 no daemon is running for the data dir.
`;

/** The first executable `name` on PATH, if any. */
export function findOnPath(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** The page URL: the daemon's base URL with the token in the fragment. */
export function visualizerUrl(baseUrl: string, token: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/#token=${encodeURIComponent(token)}`;
}

/** Starts `opener url` detached; resolves false (with the reason) if it could not be started. */
export function openWith(opener: string, url: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolvePromise) => {
    let child;
    try {
      child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
    } catch (err) {
      resolvePromise({ ok: false, reason: (err as Error).message });
      return;
    }
    child.once('error', (err) => resolvePromise({ ok: false, reason: err.message }));
    child.once('spawn', () => {
      child.unref();
      resolvePromise({ ok: true });
    });
  });
}

/** The platform's "open this URL in the default browser" command. */
export function browserOpener(platform: NodeJS.Platform): string {
  return platform === 'darwin' ? 'open' : 'xdg-open';
}

export async function runUi(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    'ui',
    argv,
    {
      'data-dir': { type: 'string' },
      open: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    UI_HELP,
  );
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  const loc = await locateDaemon(dataDir);
  if (loc.kind !== 'running') {
    const why =
      loc.kind === 'starting'
        ? `the daemon of ${dataDir} (pid ${loc.holder.pid}) is still starting; try again in a moment`
        : `no daemon is running for ${dataDir}; start one with: mcp-warden serve --data-dir ${dataDir}`;
    process.stderr.write(`mcp-warden ui: E_NO_DAEMON: ${why}\n`);
    return UI_EXIT.noDaemon;
  }
  let token: string;
  try {
    token = (await readFile(join(dataDir, 'token'), 'utf8')).trim();
  } catch (err) {
    process.stderr.write(
      `mcp-warden ui: E_NO_DAEMON: cannot read the control token ${join(dataDir, 'token')}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
    );
    return UI_EXIT.noDaemon;
  }
  const url = visualizerUrl(loc.info.url, token);
  process.stdout.write(values.json ? JSON.stringify({ url }) + '\n' : `${url}\n`);
  if (!values.open) return UI_EXIT.ok;
  const openerName = browserOpener(process.platform);
  const opener = findOnPath(openerName);
  if (!opener) {
    process.stderr.write(`mcp-warden ui: ${openerName} is not installed; open the URL above in your browser\n`);
    return UI_EXIT.failed;
  }
  const opened = await openWith(opener, url);
  if (!opened.ok) {
    process.stderr.write(`mcp-warden ui: could not run ${opener} (${opened.reason}); open the URL above in your browser\n`);
    return UI_EXIT.failed;
  }
  if (!values.json) process.stderr.write(`opened with ${opener}\n`);
  return UI_EXIT.ok;
}
