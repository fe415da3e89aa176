/**
 * `mcp-warden auth login|logout NAME`: OAuth for remote servers, done by the running daemon over its
 * control channel (adapters/remote/oauth-logins.ts). `login` prints the authorization URL on a line
 * of its own (and opens it unless --no-open), then waits until the daemon received the redirect and
 * stored the tokens. No token ever reaches this process.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { defaultDataDir } from '../core/defaults.js';
import { ControlRequestError, type ControlClient } from '../control/control-client.js';
import { connectToDaemon, NoDaemonError } from './servers-command.js';
import { browserOpener, findOnPath, openWith } from './ui-command.js';

export const AUTH_EXIT = { ok: 0, failed: 1, usage: 2, noDaemon: 7, internal: 70 } as const;

export const AUTH_HELP = `Usage: mcp-warden auth <login|logout> NAME [options]

OAuth 2.1 for remote (url) servers that answer 401. The daemon does the protocol (discovery,
dynamic client registration, authorization code with PKCE, refresh) and keeps the tokens in
<data-dir>/oauth/NAME.json (mode 0600); a server without usable tokens waits in the state
starting.needsAuth until a login completes.

Subcommands:
  login NAME     print the authorization URL on its own line (and open it in the browser), wait
                 until the authorization server redirected to the daemon and the tokens are
                 stored, then the server restarts with them. Exits 0 when logged in.
  logout NAME    forget the server's tokens and client registration (it then waits in needsAuth)

Options:
  --no-open          login: only print the URL (for another machine's browser, or a script)
  --data-dir DIR     data directory of the daemon (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --json             print the daemon's answer as JSON on stdout
  -h, --help         show this help

The redirect goes to the daemon's own address (<daemon url>/oauth/callback): the browser must be able
to reach it. The login waits at most settings.oauthLoginTimeoutMs (default 5 min).

Exit codes: 0 done; 1 the login failed or timed out (its E_* code and reason are printed); 2 usage
error; 7 no daemon is running for the data dir.
`;

class UsageError extends Error {}

interface Invocation {
  sub: 'login' | 'logout';
  name: string;
  dataDir: string;
  open: boolean;
  json: boolean;
}

function parse(argv: string[]): Invocation | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      'no-open': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const [sub, name, ...extra] = positionals;
  if (sub !== 'login' && sub !== 'logout')
    throw new UsageError(`expected "login" or "logout", got ${sub === undefined ? 'nothing' : `"${sub}"`}`);
  if (name === undefined) throw new UsageError(`"auth ${sub}" needs a server name`);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (sub === 'logout' && values['no-open']) throw new UsageError('--no-open only applies to "auth login"');
  return { sub, name, dataDir: resolve(values['data-dir'] ?? defaultDataDir()), open: !values['no-open'], json: values.json ?? false };
}

/** `mcp-warden auth …`; resolves to the exit code. Never throws. */
export async function runAuth(argv: string[]): Promise<number> {
  let inv: Invocation | 'help';
  try {
    inv = parse(argv);
  } catch (err) {
    process.stderr.write(`mcp-warden auth: ${(err as Error).message}\nsee: mcp-warden auth --help\n`);
    return AUTH_EXIT.usage;
  }
  if (inv === 'help') {
    process.stdout.write(AUTH_HELP);
    return AUTH_EXIT.ok;
  }
  const { json } = inv;
  const fail = (code: string, message: string, exit: number): number => {
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code, message } }, null, 2) + '\n');
    process.stderr.write(`mcp-warden auth: ${code}: ${message}\n`);
    return exit;
  };
  let client: ControlClient | undefined;
  try {
    client = await connectToDaemon(inv.dataDir);
    if (inv.sub === 'logout') {
      const result = (await client.request('auth.logout', { name: inv.name })) as { forgotten?: boolean };
      process.stdout.write(
        json
          ? JSON.stringify({ ok: true, result }, null, 2) + '\n'
          : result.forgotten
            ? `forgot the OAuth tokens of ${inv.name}\n`
            : `${inv.name} had no stored OAuth tokens\n`,
      );
      return AUTH_EXIT.ok;
    }
    const started = (await client.request('auth.login', { name: inv.name })) as { authorizationUrl: string; timeoutMs: number };
    if (started.authorizationUrl) {
      // The URL on a line of its own: scripts (and tests) take it from there.
      if (!json) process.stdout.write(`Open this URL to log in to ${inv.name}:\n${started.authorizationUrl}\n`);
      else process.stdout.write(JSON.stringify({ authorizationUrl: started.authorizationUrl }) + '\n');
      if (inv.open) {
        const opener = browserOpener(process.platform);
        const opened = findOnPath(opener)
          ? await openWith(opener, started.authorizationUrl)
          : { ok: false as const, reason: `${opener} not found` };
        if (!opened.ok) process.stderr.write(`mcp-warden auth: could not open a browser (${opened.reason}); open the URL above yourself\n`);
      }
      if (!json) process.stdout.write('Waiting for the authorization server to redirect to the daemon…\n');
      await client.request('auth.wait', { name: inv.name }, { timeoutMs: started.timeoutMs + 10_000 });
    }
    process.stdout.write(
      json ? JSON.stringify({ ok: true, result: { name: inv.name, authorized: true } }, null, 2) + '\n' : `logged in to ${inv.name}\n`,
    );
    return AUTH_EXIT.ok;
  } catch (err) {
    if (err instanceof NoDaemonError) return fail('E_NO_DAEMON', err.message, AUTH_EXIT.noDaemon);
    if (err instanceof ControlRequestError) return fail(err.code, err.message, AUTH_EXIT.failed);
    return fail('E_INTERNAL', err instanceof Error ? err.message : String(err), AUTH_EXIT.internal);
  } finally {
    await client?.close().catch(() => undefined);
  }
}
