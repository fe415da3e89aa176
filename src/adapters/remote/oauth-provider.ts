/**
 * The SDK's OAuthClientProvider (client/auth.js) over our token store (oauth-store.ts). The SDK does
 * the protocol: protected-resource and authorization-server discovery, dynamic client registration,
 * authorization code with PKCE, refresh. This only keeps what it hands us, in two modes:
 *
 * - `launch` (the server actor's connection): stored tokens and registration are used and refreshed;
 *   when the SDK would have to send a person to the authorization server (no tokens, refused tokens, a
 *   failed refresh) it throws E_REMOTE_NEEDS_AUTH with the reason, and the server waits in needsAuth.
 *   It never registers a client by itself.
 * - `login` (`mcp-warden auth login`): a fresh registration and PKCE verifier in memory, the
 *   authorization URL handed to the login, and tokens plus registration stored only once the code
 *   was exchanged.
 */
import { randomBytes } from 'node:crypto';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { OAuthStore } from './oauth-store.js';
import { needsAuthError } from './remote-auth-error.js';

export type ProviderMode = { kind: 'launch' } | { kind: 'login'; state: string; onAuthorizationUrl: (url: URL) => void };

export class WardenOAuthProvider implements OAuthClientProvider {
  private verifier: string | undefined;
  private loginClient: OAuthClientInformationMixed | undefined;
  /** What the launch mode saw, for the needs-auth reason. */
  private sawTokens = false;
  private sawRefreshToken = false;
  private refreshRefused = false;

  constructor(
    private readonly store: OAuthStore,
    private readonly name: string,
    private readonly serverUrl: string,
    private readonly callbackUrl: string,
    private readonly mode: ProviderMode,
  ) {}

  get redirectUrl(): string {
    return this.callbackUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'mcp-warden',
      redirect_uris: [this.callbackUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state(): string {
    return this.mode.kind === 'login' ? this.mode.state : randomBytes(16).toString('base64url');
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    if (this.mode.kind === 'login') return this.loginClient;
    const info = this.store.read(this.name, this.serverUrl)?.clientInformation;
    // No registration: nobody logged in yet. A launch never registers a client by itself.
    if (!info) throw needsAuthError(this.name, 'the server requires an OAuth login and there is none yet');
    return info;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    if (this.mode.kind === 'login') this.loginClient = info;
    else this.store.update(this.name, this.serverUrl, { clientInformation: info });
  }

  tokens(): OAuthTokens | undefined {
    if (this.mode.kind === 'login') return undefined;
    const tokens = this.store.read(this.name, this.serverUrl)?.tokens;
    if (tokens) {
      this.sawTokens = true;
      if (tokens.refresh_token) this.sawRefreshToken = true;
    }
    return tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    if (this.mode.kind === 'login') {
      this.store.write(this.name, {
        serverUrl: this.serverUrl,
        redirectUri: this.callbackUrl,
        clientInformation: this.loginClient,
        tokens,
      });
    } else {
      this.store.update(this.name, this.serverUrl, { tokens });
    }
  }

  redirectToAuthorization(url: URL): void {
    if (this.mode.kind === 'login') {
      this.mode.onAuthorizationUrl(url);
      return;
    }
    const why = this.refreshRefused
      ? 'the server refused the access token and the refresh token was refused too'
      : this.sawRefreshToken
        ? 'the server refused the access token and refreshing it failed'
        : this.sawTokens
          ? 'the server refused the access token (and there is no refresh token)'
          : 'the server requires an OAuth login and there is none yet';
    throw needsAuthError(this.name, why);
  }

  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }

  codeVerifier(): string {
    if (!this.verifier) throw new Error('no PKCE code verifier: the login was not started by this daemon');
    return this.verifier;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'verifier' || scope === 'discovery') {
      if (scope === 'verifier') this.verifier = undefined;
      return;
    }
    if (this.mode.kind === 'login') {
      if (scope !== 'tokens') this.loginClient = undefined;
      return;
    }
    if (scope === 'tokens') this.refreshRefused = this.sawRefreshToken;
    this.store.forget(
      this.name,
      scope === 'all' ? ['tokens', 'clientInformation'] : scope === 'client' ? ['clientInformation'] : ['tokens'],
    );
  }
}
