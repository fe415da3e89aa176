/**
 * `mcp-warden auth login|logout` on the daemon's side, and the redirect route `/oauth/callback`.
 *
 * A login: the SDK's `auth()` with a login-mode provider (oauth-provider.ts) discovers the
 * authorization server, registers a client (dynamic registration) with the daemon's callback URL as
 * redirect URI and builds the authorization URL with PKCE and a random `state`; the CLI prints it.
 * The person's browser comes back to `/oauth/callback?code&state` (no bearer token: the `state` of a
 * pending login is what makes it valid), the code is exchanged (`auth()` again), the tokens stored,
 * and the server is restarted so it leaves needsAuth. Each pending login owns a connection pool and a
 * deadline timer (oauthLoginTimeoutMs) in the ledger, both released when it ends however it ends.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import type { ResourceLedger, LedgerHandle } from '../../core/resource-ledger.js';
import type { ServerEntry } from '../../config/config-types.js';
import { expandSecretRefs } from '../store/secret-refs.js';
import { OAuthStore } from './oauth-store.js';
import { WardenOAuthProvider } from './oauth-provider.js';
import { createRemoteFetch, type RemoteFetch } from './remote-fetch.js';

/** The SDK's OAuth client (with its metadata schemas) loads with the first login, not with every daemon. */
const sdkAuth = async () => (await import('@modelcontextprotocol/sdk/client/auth.js')).auth;

/** The daemon's redirect route (no bearer token; see the header). */
export const OAUTH_CALLBACK_PATH = '/oauth/callback';

export interface OAuthLoginsDeps {
  dataDir: string;
  /** `http://127.0.0.1:<port>/oauth/callback` of this daemon. */
  callbackUrl: string;
  ledger: ResourceLedger;
  logger: Logger;
  loginTimeoutMs: number;
  connectTimeoutMs: number;
  entryOf: (name: string) => ServerEntry | undefined;
  /** The config file's directory (relative `${file:…}` in the url). */
  configDir: string;
  /** Restart the server (it leaves needsAuth with the new tokens, or enters it after a logout). */
  restart: (name: string) => void;
}

interface PendingLogin {
  name: string;
  state: string;
  serverUrl: string;
  provider: WardenOAuthProvider;
  pool: RemoteFetch;
  owner: string;
  timer: NodeJS.Timeout;
  timerEntry: LedgerHandle;
  done: Promise<void>;
  settle(err?: WardenError): void;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res: ServerResponse, status: number, title: string, body: string): void {
  if (res.headersSent) return;
  const html = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)}</title><h1>${escapeHtml(title)}</h1><p>${escapeHtml(body)}</p>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

export class OAuthLogins {
  readonly store: OAuthStore;
  private readonly pending = new Map<string, PendingLogin>();
  private readonly byState = new Map<string, PendingLogin>();
  private seq = 0;

  constructor(private readonly deps: OAuthLoginsDeps) {
    this.store = new OAuthStore(deps.dataDir);
  }

  /** The provider a server's connection uses (launch mode). */
  providerFor(name: string, serverUrl: string): WardenOAuthProvider {
    return new WardenOAuthProvider(this.store, name, serverUrl, this.deps.callbackUrl, { kind: 'launch' });
  }

  private async remoteUrl(name: string): Promise<string> {
    const entry = this.deps.entryOf(name);
    if (!entry) throw new WardenError(ErrorCodes.UNKNOWN_SERVER, `no server named "${name}"`);
    if (entry.type !== 'remote' || !entry.url) {
      throw new WardenError(ErrorCodes.NOT_REMOTE, `server "${name}" is not a remote (url) server; OAuth applies to remote servers only`);
    }
    const expanded = await expandSecretRefs(name, entry, { env: process.env, baseDir: this.deps.configDir });
    return expanded.url ?? entry.url;
  }

  /** Start a login: the authorization URL the person has to open. A login under way for `name` is replaced. */
  async login(name: string): Promise<{ name: string; authorizationUrl: string; timeoutMs: number }> {
    const serverUrl = await this.remoteUrl(name);
    this.pending.get(name)?.settle(new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${name}: replaced by a newer login`));
    const state = randomBytes(24).toString('base64url');
    const owner = `oauth-login:${name}#${++this.seq}`;
    let authorizationUrl: URL | undefined;
    const provider = new WardenOAuthProvider(this.store, name, serverUrl, this.deps.callbackUrl, {
      kind: 'login',
      state,
      onAuthorizationUrl: (u) => (authorizationUrl = u),
    });
    let login!: PendingLogin;
    const pool = createRemoteFetch({
      name,
      owner,
      ledger: this.deps.ledger,
      logger: this.deps.logger,
      connectTimeoutMs: this.deps.connectTimeoutMs,
      retryAfterMaxMs: 0,
      onRelease: async () => login?.settle(new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${name}: login cancelled`)),
    });
    let resolveDone!: () => void;
    let rejectDone!: (err: WardenError) => void;
    const done = new Promise<void>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => undefined);
    let settled = false;
    const timer = setTimeout(
      () =>
        login.settle(
          new WardenError(ErrorCodes.AUTH_LOGIN_TIMEOUT, `${name}: no authorization redirect within ${this.deps.loginTimeoutMs} ms`),
        ),
      this.deps.loginTimeoutMs,
    );
    timer.unref();
    const timerEntry = this.deps.ledger.acquire(owner, {
      kind: 'timer',
      description: `OAuth login deadline of ${name}`,
      release: async () => login.settle(new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${name}: login cancelled`)),
    });
    login = {
      name,
      state,
      serverUrl,
      provider,
      pool,
      owner,
      timer,
      timerEntry,
      done,
      settle: (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        timerEntry.settle();
        if (this.pending.get(name) === login) this.pending.delete(name);
        this.byState.delete(state);
        void pool.close();
        if (err) rejectDone(err);
        else resolveDone();
      },
    };
    this.pending.set(name, login);
    this.byState.set(state, login);
    try {
      const result = await (await sdkAuth())(provider, { serverUrl, fetchFn: pool.fetch });
      if (result === 'AUTHORIZED' || !authorizationUrl) {
        // Nothing for a person to do (e.g. a grant without redirect): the tokens are stored already.
        login.settle();
        this.deps.restart(name);
        return { name, authorizationUrl: '', timeoutMs: 0 };
      }
    } catch (err) {
      const failure = new WardenError(
        ErrorCodes.AUTH_LOGIN_FAILED,
        `${name}: could not start the login: ${err instanceof Error ? err.message : String(err)}`,
        { server: name },
      );
      login.settle(failure);
      throw failure;
    }
    this.deps.logger.info({ server: name }, 'OAuth login started; waiting for the authorization redirect');
    return { name, authorizationUrl: authorizationUrl.href, timeoutMs: this.deps.loginTimeoutMs };
  }

  /** Resolves when the login under way for `name` stored its tokens; rejects with its failure. */
  async wait(name: string): Promise<{ name: string; authorized: true }> {
    const login = this.pending.get(name);
    if (!login) throw new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${name}: no login under way (start one with auth login)`);
    await login.done;
    return { name, authorized: true };
  }

  /** Forget the tokens and registration of `name`, and restart it (it then waits in needsAuth). */
  async logout(name: string): Promise<{ name: string; forgotten: boolean }> {
    await this.remoteUrl(name);
    this.pending.get(name)?.settle(new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${name}: logged out`));
    const forgotten = this.store.forget(name);
    try {
      this.deps.restart(name);
    } catch {
      // disabled or not running: nothing to restart
    }
    this.deps.logger.info({ server: name, forgotten }, 'OAuth credentials forgotten');
    return { name, forgotten };
  }

  /** GET /oauth/callback: the authorization server's redirect (via the person's browser). */
  async handleCallback(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const params = new URL(req.url ?? '/', 'http://callback').searchParams;
    const state = params.get('state') ?? '';
    const login = state ? this.byState.get(state) : undefined;
    if (!login) {
      page(res, 400, 'mcp-warden: unknown login', `${ErrorCodes.AUTH_CALLBACK_INVALID}: this redirect matches no login under way.`);
      return;
    }
    const error = params.get('error');
    if (error) {
      const why = `${error}${params.get('error_description') ? `: ${params.get('error_description')}` : ''}`;
      login.settle(new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${login.name}: the authorization server refused: ${why}`));
      page(res, 400, 'mcp-warden: login failed', `The authorization server refused: ${why}`);
      return;
    }
    const code = params.get('code');
    if (!code) {
      page(res, 400, 'mcp-warden: unknown login', `${ErrorCodes.AUTH_CALLBACK_INVALID}: the redirect carries no code.`);
      return;
    }
    // One use per state.
    this.byState.delete(state);
    try {
      const result = await (
        await sdkAuth()
      )(login.provider, { serverUrl: login.serverUrl, authorizationCode: code, fetchFn: login.pool.fetch });
      if (result !== 'AUTHORIZED') throw new Error(`unexpected result ${result}`);
    } catch (err) {
      const failure = new WardenError(
        ErrorCodes.AUTH_LOGIN_FAILED,
        `${login.name}: the token exchange failed: ${err instanceof Error ? err.message : String(err)}`,
      );
      login.settle(failure);
      page(res, 502, 'mcp-warden: login failed', failure.message);
      return;
    }
    login.settle();
    this.deps.logger.info({ server: login.name }, 'OAuth login completed; tokens stored');
    try {
      this.deps.restart(login.name);
    } catch (err) {
      this.deps.logger.warn({ server: login.name, err: (err as Error).message }, 'could not restart the server after the login');
    }
    page(res, 200, 'mcp-warden: logged in', `Logged in to ${login.name}. You can close this tab.`);
  }

  /** End every pending login (daemon shutdown). */
  close(): void {
    for (const login of [...this.pending.values()]) {
      login.settle(new WardenError(ErrorCodes.AUTH_LOGIN_FAILED, `${login.name}: the daemon is stopping`));
    }
  }
}
