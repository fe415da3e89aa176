/**
 * A remote (url) upstream: the MCP session with a server over Streamable HTTP or the legacy HTTP+SSE
 * transport (the SDK's client transports over our own per-upstream fetch, remote-fetch.ts). It is
 * both the upstream handle the watch actor listens to (`onExit` = the server was lost) and the
 * UpstreamConnection calls go through.
 *
 * - Transport: `transport` from the entry; absent → Streamable HTTP, and on 400/404/405 to the
 *   initialize POST (the statuses the spec names) the legacy SSE transport.
 * - Session expiry: a request answered 404 on its Streamable HTTP session (the server forgot it) is
 *   answered by initializing a new session and sending the request once more; callers never see it.
 *   What the old session held on the server is asked for again on the new one: the resource
 *   subscriptions in force and the logging level last set (a server keeps both per session).
 * - Liveness: a ping every remotePingIntervalMs (a ledger timer), and at once when the transport's
 *   stream breaks; a failed ping, a broken SSE stream or refused credentials is "lost" (onExit), and
 *   the server actor recovers through stopping like after a crash (or waits in needsAuth).
 * - close(): DELETE of the session (Streamable HTTP), the transport closed, every socket of the pool
 *   destroyed; idempotent, and what every ledger entry of the upstream releases.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import { connectTransport, type UpstreamConnection } from '../mcp/upstream-client.js';
import type { ExitInfo } from '../process/exit-notice.js';
import type { RemoteUpstream } from '../upstream-handle.js';
import { redactUrl } from '../log/logger.js';
import { createRemoteFetch, type RemoteFetch } from './remote-fetch.js';
import { classifyRemoteError, httpStatusOfTransportError, SSE_FALLBACK_STATUSES } from './remote-errors.js';

export interface RemoteSpec {
  name: string;
  owner: string;
  url: string;
  /** Absent: Streamable HTTP with the SSE fallback. */
  transport?: 'http' | 'sse';
  headers?: Record<string, string>;
}

export interface RemoteDeps {
  ledger: ResourceLedger;
  logger: Logger;
  requestTimeoutMs: number;
  pingIntervalMs: number;
  connectTimeoutMs: number;
  retryAfterMaxMs: number;
  clientInfo: { name: string; version: string };
  /** OAuth for servers that answer 401 (oauth-provider.ts); without it a 401 is E_REMOTE_NEEDS_AUTH at once. */
  authProvider?: OAuthClientProvider;
}

/** How long close() waits for the DELETE of the session before closing the sockets anyway. */
const DELETE_DEADLINE_MS = 500;

type Kind = 'http' | 'sse';

/** Connect; rejects with a coded error (and leaves nothing open) or with `signal.reason`. */
export async function startRemoteUpstream(
  spec: RemoteSpec,
  deps: RemoteDeps,
  signal: AbortSignal,
): Promise<{ handle: RemoteUpstream; connection: UpstreamConnection }> {
  const session = new RemoteSession(spec, deps);
  try {
    await session.connect(signal);
  } catch (err) {
    await session.close();
    throw err;
  }
  return { handle: session, connection: session.connection };
}

class RemoteSession implements RemoteUpstream {
  readonly kind = 'remote' as const;
  readonly pid = -1;
  readonly exited: Promise<ExitInfo>;
  readonly connection: UpstreamConnection;
  private resolveExit!: (info: ExitInfo) => void;
  private exitInfo: ExitInfo | undefined;
  private lostError: WardenError | undefined;
  private readonly exitListeners = new Set<(info: ExitInfo) => void>();
  private readonly pool: RemoteFetch;
  private readonly log: Logger;
  private readonly url: URL;
  private kindUsed: Kind = 'http';
  private inner: UpstreamConnection | undefined;
  private transport: Transport | undefined;
  private reinit: Promise<UpstreamConnection> | undefined;
  private closing: Promise<void> | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingEntry: LedgerHandle | undefined;
  private checking = false;
  private readonly life = new AbortController();
  // What callers subscribed to; re-attached to each new inner session.
  private readonly toolsChanged = new Set<() => void>();
  private readonly notificationListeners = new Set<(method: string, params: Record<string, unknown>) => void>();
  private readonly closeListeners = new Set<() => void>();
  private clientRequestHandler: Parameters<UpstreamConnection['setClientRequestHandler']>[0] | undefined;
  private detachInner: Array<() => void> = [];
  // Server-side state of the session, set by callers' requests; asked for again on a renewed session.
  private readonly subscribedUris = new Set<string>();
  private loggingLevel: string | undefined;

  constructor(
    private readonly spec: RemoteSpec,
    private readonly deps: RemoteDeps,
  ) {
    this.url = new URL(spec.url);
    this.log = deps.logger.child({ component: 'remote-upstream', server: spec.name });
    this.exited = new Promise((r) => (this.resolveExit = r));
    this.pool = createRemoteFetch({
      name: spec.name,
      owner: spec.owner,
      ledger: deps.ledger,
      logger: this.log,
      connectTimeoutMs: deps.connectTimeoutMs,
      retryAfterMaxMs: deps.retryAfterMaxMs,
      onRelease: () => this.close(),
      bearerErrorsAsUnauthorized: deps.authProvider !== undefined,
    });
    this.connection = this.makeConnection();
  }

  // ---- handle --------------------------------------------------------------------------------

  onExit(listener: (info: ExitInfo) => void): () => void {
    if (this.exitInfo) {
      const info = this.exitInfo;
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) listener(info);
      });
      return () => {
        cancelled = true;
      };
    }
    this.exitListeners.add(listener);
    return () => {
      this.exitListeners.delete(listener);
    };
  }

  exitError(): WardenError | undefined {
    return this.lostError;
  }

  describe(): Record<string, string | number> {
    return { url: redactUrl(this.spec.url), transport: this.kindUsed, sockets: this.pool.socketCount() };
  }

  /** The server is gone for this session (or refuses our credentials): tell the watch actor once. */
  private lost(err: unknown): void {
    if (this.exitInfo || this.closing) return;
    this.lostError =
      classifyRemoteError(this.spec.name, err, this.pool) ??
      new WardenError(
        ErrorCodes.UPSTREAM_EXITED,
        `${this.spec.name}: lost the remote server: ${err instanceof Error ? err.message : String(err)}`,
      );
    this.log.warn({ code: this.lostError.code, err: this.lostError.message }, 'remote server lost');
    this.exitInfo = { code: null, signal: null };
    this.resolveExit(this.exitInfo);
    for (const l of [...this.exitListeners]) {
      try {
        l(this.exitInfo);
      } catch {
        // observers must not break the session
      }
    }
    this.exitListeners.clear();
  }

  // ---- connecting ------------------------------------------------------------------------------

  async connect(signal: AbortSignal): Promise<void> {
    const first: Kind = this.spec.transport ?? 'http';
    try {
      await this.open(first, signal);
    } catch (err) {
      const status = httpStatusOfTransportError(err);
      if (this.spec.transport !== undefined || signal.aborted || status === undefined || !SSE_FALLBACK_STATUSES.has(status)) throw err;
      this.log.info({ status }, 'Streamable HTTP refused the initialize POST; trying the legacy SSE transport');
      await this.open('sse', signal);
    }
    this.startPings();
  }

  private newTransport(kind: Kind): Transport {
    const requestInit: RequestInit = { headers: { ...(this.spec.headers ?? {}) } };
    if (kind === 'sse') {
      return new SSEClientTransport(this.url, { fetch: this.pool.fetch, requestInit, authProvider: this.deps.authProvider });
    }
    return new StreamableHTTPClientTransport(this.url, {
      fetch: this.pool.fetch,
      requestInit,
      authProvider: this.deps.authProvider,
      // No reconnect timers of the SDK's own: a broken stream is checked with a ping (ours, in the ledger).
      reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1_000, maxReconnectionDelay: 1_000, reconnectionDelayGrowFactor: 1 },
    });
  }

  private async open(kind: Kind, signal: AbortSignal | undefined): Promise<UpstreamConnection> {
    const transport = this.newTransport(kind);
    const connection = await connectTransport(transport, {
      name: this.spec.name,
      logger: this.deps.logger,
      requestTimeoutMs: this.deps.requestTimeoutMs,
      signal,
      clientInfo: this.deps.clientInfo,
      classifyError: (err) => classifyRemoteError(this.spec.name, err, this.pool),
    });
    if (this.closing) {
      await connection.close();
      throw new WardenError(ErrorCodes.REMOTE_UNREACHABLE, `${this.spec.name}: closed while connecting`);
    }
    this.kindUsed = kind;
    this.attach(connection, transport);
    return connection;
  }

  /** Make `connection` the current session: callers' subscriptions move to it. */
  private attach(connection: UpstreamConnection, transport: Transport): void {
    for (const off of this.detachInner) off();
    this.inner = connection;
    this.transport = transport;
    const previous = transport.onerror;
    transport.onerror = (err) => {
      previous?.(err);
      if (this.transport !== transport || this.closing) return;
      // A broken legacy SSE stream is the end of its session; a Streamable HTTP stream is checked.
      if (this.kindUsed === 'sse') this.lost(err);
      else this.checkSoon();
    };
    this.detachInner = [
      connection.onToolsChanged(() => {
        for (const l of [...this.toolsChanged]) l();
      }),
      connection.onNotification((method, params) => {
        for (const l of [...this.notificationListeners]) l(method, params);
      }),
      connection.setClientRequestHandler((method, params, sig) => {
        const h = this.clientRequestHandler;
        if (!h) return Promise.reject(new WardenError(ErrorCodes.UPSTREAM_ERROR, `${method}: no client session can answer it now`));
        return h(method, params, sig);
      }),
      connection.onClose(() => {
        if (this.inner === connection && !this.reinit) this.lost(new Error('the session closed'));
      }),
    ];
  }

  /** Session expiry (404 on its session): a fresh session, once at a time; callers retry on it. */
  private renew(expired: UpstreamConnection): Promise<UpstreamConnection> {
    if (this.inner !== expired && this.inner) return Promise.resolve(this.inner);
    this.reinit ??= (async () => {
      this.log.info('the remote server forgot our session (404); initializing a new one');
      try {
        const fresh = await this.open(this.kindUsed, this.life.signal);
        // The old session is gone on the server: close it here without a DELETE.
        await expired.close().catch(() => undefined);
        this.restoreSessionState(fresh);
        return fresh;
      } finally {
        this.reinit = undefined;
      }
    })();
    return this.reinit;
  }

  /**
   * The new session knows nothing of the old one's subscriptions and logging level: ask again, in the
   * background (the request that met the 404 goes on at once). A refusal is logged; the server said no.
   */
  private restoreSessionState(fresh: UpstreamConnection): void {
    const opts = { timeoutMs: this.deps.requestTimeoutMs, signal: this.life.signal };
    for (const uri of this.subscribedUris) {
      fresh.request('resources/subscribe', { uri }, opts).catch((err: unknown) => {
        this.log.warn(
          { uri, err: err instanceof Error ? err.message : String(err) },
          'renewing a resource subscription on the new session failed',
        );
      });
    }
    if (this.loggingLevel !== undefined) {
      fresh.request('logging/setLevel', { level: this.loggingLevel }, opts).catch((err: unknown) => {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'setting the logging level on the new session failed');
      });
    }
  }

  /** Keeps the session state a request sets (see restoreSessionState); `ok` = the server accepted it. */
  private noteSessionState(method: string, params: Record<string, unknown> | undefined, ok: boolean): void {
    if (method === 'resources/subscribe' && typeof params?.['uri'] === 'string') {
      if (ok) this.subscribedUris.add(params['uri']);
    } else if (method === 'resources/unsubscribe' && typeof params?.['uri'] === 'string') {
      // Whatever the answer, the caller no longer wants it: never renewed.
      this.subscribedUris.delete(params['uri']);
    } else if (method === 'logging/setLevel' && typeof params?.['level'] === 'string') {
      if (ok) this.loggingLevel = params['level'];
    }
  }

  private async current(): Promise<UpstreamConnection> {
    if (this.reinit) return this.reinit;
    if (!this.inner || this.closing) throw new WardenError(ErrorCodes.UPSTREAM_ERROR, `${this.spec.name}: not connected`);
    return this.inner;
  }

  /** Runs `fn` on the current session; a forgotten session is renewed and `fn` sent once more. */
  private async withSession<T>(fn: (c: UpstreamConnection) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const c = await this.current();
    try {
      return await fn(c);
    } catch (err) {
      if (signal?.aborted || this.closing) throw err;
      if (this.kindUsed === 'http' && httpStatusOfTransportError(err) === 404) {
        let fresh: UpstreamConnection;
        try {
          fresh = await this.renew(c);
        } catch (renewErr) {
          this.lost(renewErr);
          throw renewErr;
        }
        return fn(fresh);
      }
      if (err instanceof WardenError && err.code === ErrorCodes.REMOTE_NEEDS_AUTH) this.lost(err);
      else if (err instanceof WardenError && (err.code === ErrorCodes.REMOTE_UNREACHABLE || err.code === ErrorCodes.REMOTE_TLS)) {
        this.checkSoon();
      }
      throw err;
    }
  }

  // ---- liveness ----------------------------------------------------------------------------

  private startPings(): void {
    if (this.deps.pingIntervalMs <= 0 || this.pingTimer) return;
    this.pingTimer = setInterval(() => this.checkSoon(), this.deps.pingIntervalMs);
    this.pingTimer.unref();
    this.pingEntry = this.deps.ledger.acquire(this.spec.owner, {
      kind: 'timer',
      description: `ping timer of ${this.spec.name} (every ${this.deps.pingIntervalMs} ms)`,
      release: async () => this.stopPings(),
      isGone: () => this.pingTimer === undefined,
    });
  }

  private stopPings(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.pingEntry?.settle();
    this.pingEntry = undefined;
  }

  /** One ping now (unless one is under way); failure = lost. */
  private checkSoon(): void {
    if (this.checking || this.closing || this.exitInfo) return;
    this.checking = true;
    this.withSession(
      (c) => c.request('ping', undefined, { timeoutMs: this.deps.requestTimeoutMs, signal: this.life.signal }),
      this.life.signal,
    )
      .catch((err: unknown) => {
        if (!this.life.signal.aborted) this.lost(err);
      })
      .finally(() => {
        this.checking = false;
      });
  }

  // ---- closing -----------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopPings();
      const transport = this.transport;
      if (transport instanceof StreamableHTTPClientTransport && transport.sessionId && !this.exitInfo) {
        // End the session on the server (DELETE); never wait long for it.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          transport.terminateSession().catch(() => undefined),
          new Promise<void>((r) => (timer = setTimeout(r, DELETE_DEADLINE_MS))),
        ]);
        clearTimeout(timer);
      }
      this.life.abort(new WardenError(ErrorCodes.UPSTREAM_ERROR, `${this.spec.name}: closed`));
      for (const off of this.detachInner) off();
      this.detachInner = [];
      await this.inner?.close().catch(() => undefined);
      if (!this.inner) await transport?.close().catch(() => undefined);
      await this.pool.close();
      for (const l of [...this.closeListeners]) {
        try {
          l();
        } catch {
          // observers must not break the close
        }
      }
      this.closeListeners.clear();
      this.toolsChanged.clear();
      this.notificationListeners.clear();
      this.clientRequestHandler = undefined;
    })();
    return this.closing;
  }

  // ---- the connection callers use ----------------------------------------------------------

  private makeConnection(): UpstreamConnection {
    const self = this;
    return {
      get serverInfo() {
        return self.inner?.serverInfo;
      },
      get instructions() {
        return self.inner?.instructions;
      },
      get capabilities() {
        return self.inner?.capabilities ?? {};
      },
      listTools: (signal) => self.withSession((c) => c.listTools(signal), signal),
      callTool: (name, args, opts) => self.withSession((c) => c.callTool(name, args, opts), opts.signal),
      request: (method, params, opts) => {
        const sent = self.withSession((c) => c.request(method, params, opts), opts.signal);
        if (method !== 'resources/subscribe' && method !== 'resources/unsubscribe' && method !== 'logging/setLevel') return sent;
        return sent.then(
          (result) => {
            self.noteSessionState(method, params, true);
            return result;
          },
          (err: unknown) => {
            self.noteSessionState(method, params, false);
            throw err;
          },
        );
      },
      notify: (method, params) => self.inner?.notify(method, params),
      onToolsChanged(listener) {
        self.toolsChanged.add(listener);
        return () => {
          self.toolsChanged.delete(listener);
        };
      },
      onNotification(listener) {
        self.notificationListeners.add(listener);
        return () => {
          self.notificationListeners.delete(listener);
        };
      },
      setClientRequestHandler(handler) {
        self.clientRequestHandler = handler;
        return () => {
          if (self.clientRequestHandler === handler) self.clientRequestHandler = undefined;
        };
      },
      onClose(listener) {
        if (self.closing) {
          let cancelled = false;
          void self.closing.then(() => {
            if (!cancelled) listener();
          });
          return () => {
            cancelled = true;
          };
        }
        self.closeListeners.add(listener);
        return () => {
          self.closeListeners.delete(listener);
        };
      },
      close: () => self.close(),
    };
  }
}
