/**
 * A small client of the control channel (`/ws`, subprotocol `mcp-warden.v1`), used by the CLI and the
 * tests. `connectControl` resolves once the connection is open and the daemon's first message (the
 * snapshot) has arrived; `request` sends one command and resolves with its result or rejects with a
 * `ControlRequestError` carrying the daemon's E_* code. Everything it holds (socket, pending requests
 * and their timers) ends with `close()` or when the daemon closes the connection.
 */
import WebSocket from 'ws';
import {
  AUTH_PROTOCOL_PREFIX,
  CONTROL_PROTOCOL,
  type CommandName,
  type DaemonMessage,
  type RequestId,
  type SnapshotMessage,
} from './protocol.js';

export interface ControlClientOptions {
  /** `ws://127.0.0.1:7374/ws` */
  url: string;
  token: string;
  /** How the token is presented. Default 'header' (Authorization: Bearer); browsers need 'subprotocol'. */
  tokenVia?: 'header' | 'subprotocol';
  /** Sent as the Origin header (tests). */
  origin?: string;
  /** Connect + snapshot deadline. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Default deadline of request(). Default 30000 ms. */
  requestTimeoutMs?: number;
}

/** A failed command (`{ok:false}`), a refused connection, or a connection lost mid-request. */
export class ControlRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly issues?: { path: string; message: string }[],
    /** HTTP status when the upgrade was refused. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ControlRequestError';
  }
}

export interface ControlClient {
  /** The snapshot the daemon sent on connect. */
  readonly snapshot: SnapshotMessage;
  /** The subprotocol the daemon selected (`mcp-warden.v1`). */
  readonly protocol: string;
  request<T = unknown>(command: CommandName | string, args?: unknown, opts?: { timeoutMs?: number }): Promise<T>;
  /** Every message after the snapshot (events, logs, results, errors). Returns the unsubscribe. */
  onMessage(listener: (msg: DaemonMessage) => void): () => void;
  /** Sends a raw frame as is (tests and tools). */
  sendRaw(data: string | Buffer): void;
  /** Close politely (1000); resolves when the socket is closed. Idempotent. */
  close(): Promise<void>;
  /** Resolves when the connection is closed, by either side. */
  readonly closed: Promise<{ code: number; reason: string }>;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export function connectControl(opts: ControlClientOptions): Promise<ControlClient> {
  const via = opts.tokenVia ?? 'header';
  const protocols = via === 'subprotocol' ? [CONTROL_PROTOCOL, `${AUTH_PROTOCOL_PREFIX}${opts.token}`] : [CONTROL_PROTOCOL];
  const headers: Record<string, string> = {};
  if (via === 'header') headers.authorization = `Bearer ${opts.token}`;
  const ws = new WebSocket(opts.url, protocols, {
    headers,
    origin: opts.origin,
    handshakeTimeout: opts.connectTimeoutMs ?? 5_000,
    maxPayload: 64 * 1024 * 1024,
    perMessageDeflate: false,
  });
  const listeners = new Set<(msg: DaemonMessage) => void>();
  const pending = new Map<RequestId, Pending>();
  let nextId = 1;
  let resolveClosed!: (v: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => (resolveClosed = r));

  return new Promise<ControlClient>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      ws.terminate();
      reject(err);
    };
    const connectTimer = setTimeout(
      () => fail(new ControlRequestError('E_TIMEOUT', `no snapshot from ${opts.url} within ${opts.connectTimeoutMs ?? 5_000} ms`)),
      opts.connectTimeoutMs ?? 5_000,
    );

    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        if (chunks.length < 64) chunks.push(c);
      });
      res.on('end', () => {
        let code = `E_HTTP_${res.statusCode}`;
        let message = `the daemon refused the connection: HTTP ${res.statusCode}`;
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: string; message?: string } };
          if (body.error?.code) code = body.error.code;
          if (body.error?.message) message = body.error.message;
        } catch {
          // not JSON
        }
        fail(new ControlRequestError(code, message, undefined, res.statusCode));
      });
      res.on('error', () => fail(new ControlRequestError(`E_HTTP_${res.statusCode}`, `HTTP ${res.statusCode}`, undefined, res.statusCode)));
    });
    ws.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      fail(
        new ControlRequestError(
          code === 'ECONNREFUSED' ? 'E_NO_DAEMON' : 'E_CONNECTION',
          code === 'ECONNREFUSED' ? `no daemon is listening at ${opts.url}` : `control connection failed: ${err.message}`,
        ),
      );
    });
    ws.on('close', (code, reasonBuf) => {
      const reason = reasonBuf.toString('utf8');
      for (const [, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new ControlRequestError('E_CONNECTION_CLOSED', `the control connection closed (${code}${reason ? `: ${reason}` : ''})`));
      }
      pending.clear();
      resolveClosed({ code, reason });
      fail(new ControlRequestError('E_CONNECTION_CLOSED', `the daemon closed the connection before its snapshot (${code})`));
    });

    let client: ControlClient | undefined;
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary) return;
      let msg: DaemonMessage;
      try {
        msg = JSON.parse(String(data)) as DaemonMessage;
      } catch {
        return;
      }
      if (!client) {
        if (msg.type !== 'snapshot')
          return fail(new ControlRequestError('E_PROTOCOL', `expected a snapshot first, got "${String(msg.type)}"`));
        settled = true;
        clearTimeout(connectTimer);
        client = makeClient(msg);
        resolve(client);
        return;
      }
      if (msg.type === 'result') {
        const p = pending.get(msg.id);
        if (p) {
          pending.delete(msg.id);
          clearTimeout(p.timer);
          if (msg.ok) p.resolve(msg.result);
          else p.reject(new ControlRequestError(msg.error.code, msg.error.message, msg.error.issues));
        }
      }
      for (const l of [...listeners]) {
        try {
          l(msg);
        } catch {
          // a listener's problem
        }
      }
    });

    const makeClient = (snapshot: SnapshotMessage): ControlClient => ({
      snapshot,
      protocol: ws.protocol,
      request<T>(command: string, args?: unknown, ro?: { timeoutMs?: number }): Promise<T> {
        if (ws.readyState !== WebSocket.OPEN) {
          return Promise.reject(new ControlRequestError('E_CONNECTION_CLOSED', 'the control connection is closed'));
        }
        const id = nextId++;
        const timeoutMs = ro?.timeoutMs ?? opts.requestTimeoutMs ?? 30_000;
        return new Promise<T>((res, rej) => {
          const timer = setTimeout(() => {
            pending.delete(id);
            rej(new ControlRequestError('E_TIMEOUT', `no result for ${command} within ${timeoutMs} ms`));
          }, timeoutMs);
          pending.set(id, { resolve: res as (v: unknown) => void, reject: rej, timer });
          ws.send(JSON.stringify(args === undefined ? { type: 'command', id, command } : { type: 'command', id, command, args }));
        });
      },
      onMessage(listener) {
        listeners.add(listener);
        return () => {
          listeners.delete(listener);
        };
      },
      sendRaw(data) {
        if (ws.readyState === WebSocket.OPEN) ws.send(data);
      },
      async close() {
        if (ws.readyState === WebSocket.CLOSED) return;
        const t = setTimeout(() => ws.terminate(), 1_000);
        try {
          ws.close(1000);
        } catch {
          ws.terminate();
        }
        await closed;
        clearTimeout(t);
      },
      closed,
    });
  });
}

/** `http://127.0.0.1:7374` → `ws://127.0.0.1:7374/ws` */
export function controlUrlOf(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '').replace(/^http/, 'ws')}/ws`;
}
