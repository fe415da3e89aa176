/**
 * The page's only link to the daemon: the control channel `/ws` (subprotocol `mcp-warden.v1`), with
 * the token offered as the subprotocol entry `auth.<token>` (browsers cannot set headers).
 *
 * Reconnects by itself with capped exponential backoff (1 s, 2 s, 4 s … 30 s, ±20 % jitter), reset once
 * a connection delivered its snapshot; so it survives a daemon restart. Commands get ids and resolve
 * with their result or reject with the daemon's `{code, message, issues}`; a command sent while
 * disconnected, or pending when the connection drops, rejects at once (never silently).
 */
import type { ControlError, DaemonMessage, DaemonEvent, SnapshotMessage } from './types.js';

const PROTOCOL = 'mcp-warden.v1';
const BACKOFF_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000];
const REQUEST_TIMEOUT_MS = 30_000;

export type ConnectionStatus =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'open' }
  | { kind: 'waiting'; retryAt: number; attempt: number; code: number; reason: string };

export class CommandError extends Error {
  readonly code: string;
  readonly issues?: { path: string; message: string }[];
  constructor(err: ControlError) {
    super(err.message);
    this.name = 'CommandError';
    this.code = err.code;
    this.issues = err.issues;
  }
}

export interface ConnectionHandlers {
  snapshot(s: SnapshotMessage): void;
  event(e: DaemonEvent): void;
  status(s: ConnectionStatus): void;
  /** `{type:'error'}` frames and malformed input: shown, never swallowed. */
  protocolError(code: string, message: string): void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: number;
}

export class Connection {
  private ws: WebSocket | null = null;
  private failures = 0;
  private retryTimer = 0;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly on: ConnectionHandlers,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Skips the rest of the backoff wait. */
  retryNow(): void {
    if (this.ws || this.stopped) return;
    window.clearTimeout(this.retryTimer);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.ws?.close(1000, 'page closed');
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one command; resolves with its result, rejects with a CommandError. */
  request<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new CommandError({ code: 'E_DISCONNECTED', message: 'not connected to the daemon; the command was not sent' }));
    }
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new CommandError({ code: 'E_TIMEOUT', message: `no answer to ${command} within ${REQUEST_TIMEOUT_MS / 1000} s` }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      ws.send(JSON.stringify(args === undefined ? { type: 'command', id, command } : { type: 'command', id, command, args }));
    });
  }

  private connect(): void {
    this.on.status({ kind: 'connecting', attempt: this.failures + 1 });
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url, [PROTOCOL, `auth.${this.token}`]);
    } catch (err) {
      this.on.protocolError('E_CONNECTION', `cannot open ${this.url}: ${(err as Error).message}`);
      this.scheduleRetry(0, 'could not open the WebSocket');
      return;
    }
    this.ws = ws;
    let gotSnapshot = false;
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data !== 'string') return;
      let msg: DaemonMessage;
      try {
        msg = JSON.parse(e.data) as DaemonMessage;
      } catch {
        this.on.protocolError('E_BAD_JSON', 'the daemon sent a frame that is not JSON');
        return;
      }
      switch (msg.type) {
        case 'snapshot':
          gotSnapshot = true;
          this.failures = 0;
          this.on.status({ kind: 'open' });
          this.on.snapshot(msg);
          return;
        case 'event':
          this.on.event(msg.event);
          return;
        case 'result': {
          const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
          if (!p) return;
          this.pending.delete(msg.id as number);
          window.clearTimeout(p.timer);
          if (msg.ok) p.resolve(msg.result);
          else p.reject(new CommandError(msg.error));
          return;
        }
        case 'error':
          this.on.protocolError(msg.code, msg.message);
          return;
        default:
          return;
      }
    };
    ws.onclose = (e: CloseEvent) => {
      if (this.ws === ws) this.ws = null;
      for (const [id, p] of this.pending) {
        window.clearTimeout(p.timer);
        p.reject(
          new CommandError({ code: 'E_DISCONNECTED', message: 'the connection to the daemon closed before the command was answered' }),
        );
        this.pending.delete(id);
      }
      if (this.stopped) return;
      if (!gotSnapshot) this.failures++;
      const reason =
        e.code === 1001
          ? 'the daemon is shutting down'
          : e.code === 1006
            ? gotSnapshot
              ? 'the connection was lost'
              : 'no answer from the daemon: not running, or the token is wrong (run mcp-warden ui again)'
            : e.reason || `closed with code ${e.code}`;
      this.scheduleRetry(e.code, reason);
    };
    // 'error' is always followed by 'close', which does the work.
    ws.onerror = () => undefined;
  }

  private scheduleRetry(code: number, reason: string): void {
    const base = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)]!;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const retryAt = Date.now() + delay;
    this.on.status({ kind: 'waiting', retryAt, attempt: this.failures, code, reason });
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }
}
