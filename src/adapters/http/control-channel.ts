/**
 * The control channel: a WebSocket endpoint (`/ws`, subprotocol `mcp-warden.v1`) on the daemon's HTTP
 * server for UIs and the CLI. docs/control-protocol.md describes the protocol; src/control/protocol.ts
 * holds its schemas.
 *
 * Access: the upgrade is authenticated before `handleUpgrade` (so an unauthenticated peer never gets a
 * WebSocket): Host must be one we are reachable as, a browser Origin must be the daemon's own
 * (`http://127.0.0.1|localhost|[::1]:<port>`) or allow-listed → else 403; the token from `<data-dir>/token` must come as `Authorization: Bearer <token>` or as the
 * subprotocol entry `auth.<token>` → else 401. The daemon selects `mcp-warden.v1` and never echoes the
 * token entry. More than `controlMaxConnections` → 503. Refusals are written as HTTP responses on the
 * raw socket.
 *
 * Leak discipline (the predecessor left 15 goroutines per server blocked on channels nobody read):
 * every connection owns exactly three ledger resources under owner `control` — its socket, its
 * heartbeat timer and its daemon-event subscription (plus a log listener while logs are subscribed) —
 * and one cleanup path releases all of them on 'close', whatever closed it (client, heartbeat timeout,
 * slow-consumer drop, shutdown). `close()` sends every client a close frame (1001), waits briefly,
 * terminates stragglers and force-releases whatever `control` still holds.
 *
 * Output never buffers without bound: a consumer whose unsent output exceeds `controlMaxBufferedBytes`
 * is dropped. Input is bounded by `maxPayload` and by a cap on in-flight commands per connection.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { WebSocketServer, WebSocket, RawData } from 'ws';
import type * as WsModule from 'ws';
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import type { Settings } from '../../core/settings.js';
import { authenticateUpgrade, refuseUpgrade } from './control-upgrade.js';
import { executeCommand, type CommandOutcome, type ControlBackend } from './control-commands.js';
import { VERSION } from '../../core/version.js';
import { CONTROL_PATH, CONTROL_PROTOCOL, ControlErrorCodes, decodeClientMessage } from '../../control/protocol.js';
import type { HttpServerHandle } from './http-server.js';
import { guardRequest, isLoopbackHost, loopbackAllowedHosts, loopbackOrigins } from './request-guards.js';
import type { PeerCheck, PeerRefusal } from './peer-guard.js';
import type { LogRecord, LogTap } from '../log/log-tap.js';

const CONTROL_LEDGER_OWNER = 'control';

/** Commands one connection may have in flight; more are answered with E_BUSY at once. */
const MAX_IN_FLIGHT_PER_CONNECTION = 32;
/** How long close() waits for clients to answer the close frame before terminating them. */
const CLOSE_GRACE_MS = 1_000;

type ControlSettings = Pick<
  Settings,
  'controlMaxConnections' | 'controlMaxPayloadBytes' | 'controlHeartbeatIntervalMs' | 'controlMaxBufferedBytes'
>;

export interface ControlChannelOptions {
  http: HttpServerHandle;
  daemon: ControlBackend;
  token: string;
  settings: ControlSettings;
  logger: Logger;
  ledger: ResourceLedger;
  /** Host header values accepted (default: the loopback names for a loopback bind, any for a remote bind). */
  allowedHosts?: readonly string[];
  /** Non-loopback browser origins allowed besides loopback ones. */
  allowedOrigins?: readonly string[];
  /** Source of log records for `{type:'subscribe', logs}`; without it log subscriptions deliver nothing. */
  logTap?: LogTap;
  /** The `reap` command (the startup reaper); without it `reap` answers E_NOT_AVAILABLE. */
  reap?: (opts: { dryRun: boolean }) => Promise<unknown>;
  /** Refuses peers that are supervised processes (src/adapters/http/peer-guard.ts); none: no such check. */
  peerCheck?: PeerCheck;
}

export interface ControlChannel {
  close(): Promise<void>;
  connectionCount(): number;
}

interface Conn {
  id: number;
  ws: WebSocket;
  remote: string;
  alive: boolean;
  inFlight: number;
  logs: Set<string>;
  socket: LedgerHandle;
  timer: LedgerHandle;
  subscription: LedgerHandle;
  logListener?: { handle: LedgerHandle; unsubscribe: () => void };
  closed: Promise<void>;
}

/** ws.WebSocket's readyState values (the module itself loads lazily, see below). */
const WS_OPEN = 1;
const WS_CLOSED = 3;

/** `ws` loads with the first control connection: a daemon nobody drives never pays its memory and start-up time. */
let wsModule: Promise<typeof WsModule> | undefined;
const loadWs = () => (wsModule ??= import('ws'));

export function attachControlChannel(opts: ControlChannelOptions): ControlChannel {
  const { http, daemon, token, settings, logger, ledger } = opts;
  const allowedHosts = opts.allowedHosts ?? (isLoopbackHost(http.host) ? loopbackAllowedHosts(http.port) : ['*']);
  // Only the daemon's own origin (the visualizer page) and the allow-list, not any loopback port:
  // another local web app holding the token must not drive the daemon.
  const ownOrigins = isLoopbackHost(http.host) ? loopbackOrigins(http.port) : [];
  const conns = new Set<Conn>();
  /** Sockets that passed authentication and are inside handleUpgrade. */
  const pending = new Set<Duplex>();
  let seq = 0;
  let closing = false;
  let closePromise: Promise<void> | undefined;
  let dropped = 0;
  /** The same daemon event goes to every connection: serialise it once. */
  const eventText = new WeakMap<object, string>();

  let wssLoad: Promise<WebSocketServer> | undefined;
  const webSocketServer = () =>
    (wssLoad ??= loadWs().then(
      (ws) =>
        new ws.WebSocketServer({
          noServer: true,
          maxPayload: settings.controlMaxPayloadBytes,
          clientTracking: false,
          perMessageDeflate: false,
          // Select our protocol; the `auth.<token>` entry is never chosen, so it is never echoed back.
          handleProtocols: (protocols) => (protocols.has(CONTROL_PROTOCOL) ? CONTROL_PROTOCOL : false),
        }),
    ));

  // ---- upgrade ------------------------------------------------------------------------------

  http.onUpgrade(CONTROL_PATH, (req, socket, head) => {
    if (closing) return refuseUpgrade(socket, ControlErrorCodes.SHUTTING_DOWN, 'the daemon is shutting down');
    const hostGuard = guardRequest(req, { allowedHosts, allowedOrigins: opts.allowedOrigins, ownOrigins });
    if (hostGuard) {
      logger.warn({ code: hostGuard.code, remote: req.socket.remoteAddress }, 'control connection refused');
      return refuseUpgrade(socket, hostGuard.code, hostGuard.message);
    }
    // The peer check comes before the token: an upstream can read the token, so holding it proves
    // nothing (docs/quarantine.md). A connection's first lookup is asynchronous; meanwhile the socket
    // counts as pending (closed with the channel) and its errors are absorbed.
    const verdict = opts.peerCheck?.(req.socket as Socket);
    if (!(verdict instanceof Promise)) return admit(req, socket, head, verdict);
    pending.add(socket);
    const onError = () => socket.destroy();
    const onClose = () => pending.delete(socket);
    socket.on('error', onError);
    socket.once('close', onClose);
    void verdict.then((v) => {
      socket.off('error', onError);
      socket.off('close', onClose);
      pending.delete(socket);
      if (socket.destroyed) return;
      if (closing) return refuseUpgrade(socket, ControlErrorCodes.SHUTTING_DOWN, 'the daemon is shutting down');
      admit(req, socket, head, v);
    });
  });

  function admit(req: IncomingMessage, socket: Duplex, head: Buffer, guard: PeerRefusal | undefined): void {
    if (guard) {
      logger.warn({ code: guard.code, remote: req.socket.remoteAddress }, 'control connection refused');
      return refuseUpgrade(socket, guard.code, guard.message);
    }
    const refusal = authenticateUpgrade(req, token);
    if (refusal) {
      logger.warn({ code: refusal.code, remote: req.socket.remoteAddress }, 'control connection refused');
      return refuseUpgrade(socket, refusal.code, refusal.message, refusal.headers);
    }
    if (conns.size + pending.size >= settings.controlMaxConnections) {
      logger.warn({ limit: settings.controlMaxConnections }, 'control connection refused: limit reached');
      return refuseUpgrade(
        socket,
        ControlErrorCodes.TOO_MANY_CONNECTIONS,
        `at most ${settings.controlMaxConnections} control connections (settings.controlMaxConnections)`,
        { 'Retry-After': '1' },
      );
    }
    pending.add(socket);
    // handleUpgrade answers a malformed handshake itself (400) and never calls back: the socket's
    // close then takes it out of `pending`.
    const onSocketClose = () => pending.delete(socket);
    socket.once('close', onSocketClose);
    // A client sends nothing before the 101 answer, so nothing arrives on the socket while ws loads;
    // a reset meanwhile must not go unhandled (ws adds its own error handler in handleUpgrade).
    const onLoadError = () => socket.destroy();
    socket.on('error', onLoadError);
    webSocketServer().then(
      (wss) => {
        socket.off('error', onLoadError);
        if (socket.destroyed) return;
        wss.handleUpgrade(req, socket, head, (ws) => {
          socket.off('close', onSocketClose);
          pending.delete(socket);
          if (closing) {
            ws.terminate();
            return;
          }
          onConnection(ws, req);
        });
      },
      (err: unknown) => {
        socket.off('error', onLoadError);
        logger.error({ err: String(err) }, 'loading the WebSocket server failed');
        socket.destroy();
      },
    );
  }

  // ---- connections ----------------------------------------------------------------------------

  function onConnection(ws: WebSocket, req: IncomingMessage): void {
    const id = ++seq;
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));

    const socketHandle = ledger.acquire(CONTROL_LEDGER_OWNER, {
      kind: 'socket',
      description: `control connection #${id} from ${remote}`,
      release: async () => {
        ws.terminate();
        await closed;
      },
      isGone: () => ws.readyState === WS_CLOSED,
      facts: { connection: id, remote },
    });
    const timer = setInterval(() => heartbeat(conn), settings.controlHeartbeatIntervalMs);
    timer.unref();
    const timerHandle = ledger.acquire(CONTROL_LEDGER_OWNER, {
      kind: 'timer',
      description: `heartbeat of control connection #${id}`,
      release: async () => clearInterval(timer),
      facts: { connection: id, intervalMs: settings.controlHeartbeatIntervalMs },
    });
    const unsubscribe = daemon.subscribe((event) => {
      let text = eventText.get(event);
      if (text === undefined) {
        text = JSON.stringify({ type: 'event', event });
        eventText.set(event, text);
      }
      send(conn, text);
    });
    const subscriptionHandle = ledger.acquire(CONTROL_LEDGER_OWNER, {
      kind: 'subscription',
      description: `daemon events → control connection #${id}`,
      release: async () => {
        unsubscribe();
      },
      facts: { connection: id },
    });

    const conn: Conn = {
      id,
      ws,
      remote,
      alive: true,
      inFlight: 0,
      logs: new Set(),
      socket: socketHandle,
      timer: timerHandle,
      subscription: subscriptionHandle,
      closed,
    };
    conns.add(conn);

    // The one cleanup path, whatever closed the connection.
    let cleaned = false;
    const cleanup = () => {
      if (cleaned) return;
      cleaned = true;
      clearInterval(timer);
      timerHandle.settle();
      unsubscribe();
      subscriptionHandle.settle();
      setLogs(conn, []);
      conns.delete(conn);
      socketHandle.settle();
      resolveClosed();
    };
    ws.on('close', (code: number) => {
      cleanup();
      logger.debug({ connection: id, code }, 'control connection closed');
    });
    ws.on('error', (err: Error) => {
      // e.g. maxPayload exceeded (ws closes with 1009), invalid UTF-8 (1007), ECONNRESET.
      logger.debug({ connection: id, err: err.message }, 'control connection error');
    });
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      conn.alive = true;
      onMessage(conn, data, isBinary);
    });

    logger.debug({ connection: id, remote, protocol: ws.protocol || null }, 'control connection opened');
    // Subscribed above and snapshot now, in the same tick: no event can fall between the two.
    send(conn, snapshotText());
  }

  function snapshotText(): string {
    const h = daemon.health();
    return JSON.stringify({
      type: 'snapshot',
      daemon: {
        instanceId: String(h.instanceId ?? ''),
        version: typeof h.version === 'string' ? h.version : VERSION,
        uptimeMs: typeof h.uptimeMs === 'number' ? h.uptimeMs : 0,
        pid: process.pid,
      },
      servers: daemon.servers(),
      ledger: ledger.counts(),
      machine: daemon.machineDefinition(),
      ...(h.config !== undefined ? { config: h.config } : {}),
    });
  }

  function heartbeat(conn: Conn): void {
    if (!conn.alive) {
      logger.info({ connection: conn.id }, 'control connection dropped: no pong within the heartbeat interval');
      conn.ws.terminate();
      return;
    }
    conn.alive = false;
    try {
      conn.ws.ping();
    } catch {
      conn.ws.terminate();
    }
  }

  /** Sends unless the consumer has fallen too far behind, in which case it is dropped. */
  function send(conn: Conn, text: string): boolean {
    const ws = conn.ws;
    if (ws.readyState !== WS_OPEN) return false;
    if (ws.bufferedAmount + Buffer.byteLength(text) > settings.controlMaxBufferedBytes) {
      dropped++;
      logger.warn(
        { connection: conn.id, bufferedBytes: ws.bufferedAmount, limit: settings.controlMaxBufferedBytes },
        'control connection dropped: the client is not reading fast enough',
      );
      ws.terminate();
      return false;
    }
    ws.send(text);
    return true;
  }

  function sendJson(conn: Conn, msg: unknown): void {
    send(conn, JSON.stringify(msg));
  }

  function setLogs(conn: Conn, names: string[]): void {
    conn.logs = new Set(names);
    if (conn.logs.size === 0 || !opts.logTap) {
      if (conn.logListener) {
        conn.logListener.unsubscribe();
        conn.logListener.handle.settle();
        conn.logListener = undefined;
      }
      return;
    }
    if (conn.logListener) return;
    const unsubscribe = opts.logTap.subscribe((record: LogRecord) => {
      const server = typeof record.server === 'string' ? record.server : null;
      if (!conn.logs.has('*') && (server === null || !conn.logs.has(server))) return;
      let text: string;
      try {
        text = JSON.stringify({ type: 'log', server, record });
      } catch {
        return;
      }
      send(conn, text);
    });
    const handle = ledger.acquire(CONTROL_LEDGER_OWNER, {
      kind: 'listener',
      description: `log records → control connection #${conn.id}`,
      release: async () => unsubscribe(),
      facts: { connection: conn.id },
    });
    conn.logListener = { handle, unsubscribe };
  }

  // ---- messages -------------------------------------------------------------------------------

  function onMessage(conn: Conn, data: RawData, isBinary: boolean): void {
    if (isBinary) {
      sendJson(conn, { type: 'error', code: ControlErrorCodes.BAD_MESSAGE, message: 'binary frames are not supported; send JSON text' });
      return;
    }
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    const msg = decodeClientMessage(text);
    switch (msg.kind) {
      case 'error':
        sendJson(conn, { type: 'error', code: msg.error.code, message: msg.error.message });
        return;
      case 'bad-command':
        sendJson(conn, { type: 'result', id: msg.id, ok: false, error: msg.error });
        return;
      case 'ping':
        sendJson(conn, msg.id === undefined ? { type: 'pong' } : { type: 'pong', id: msg.id });
        return;
      case 'subscribe':
        setLogs(conn, msg.logs);
        sendJson(conn, { type: 'subscribed', logs: [...conn.logs] });
        return;
      case 'command': {
        if (conn.inFlight >= MAX_IN_FLIGHT_PER_CONNECTION) {
          sendJson(conn, {
            type: 'result',
            id: msg.id,
            ok: false,
            error: {
              code: ControlErrorCodes.BUSY,
              message: `more than ${MAX_IN_FLIGHT_PER_CONNECTION} commands in flight on this connection; wait for results`,
            },
          });
          return;
        }
        conn.inFlight++;
        const outcome: Promise<CommandOutcome> = closing
          ? Promise.resolve({ ok: false, error: { code: ControlErrorCodes.SHUTTING_DOWN, message: 'the daemon is shutting down' } })
          : executeCommand(msg.command, msg.args, { backend: daemon, logger, reap: opts.reap });
        void outcome.then((outcome) => {
          conn.inFlight--;
          if (outcome.ok) sendJson(conn, { type: 'result', id: msg.id, ok: true, result: outcome.result });
          else sendJson(conn, { type: 'result', id: msg.id, ok: false, error: outcome.error });
          if (outcome.ok && msg.command === 'shutdown') {
            // The reply is queued before the close frame that stop() sends.
            setImmediate(() => void daemon.stop('control channel: shutdown command'));
          }
        });
        return;
      }
    }
  }

  // ---- close ----------------------------------------------------------------------------------

  function close(): Promise<void> {
    closePromise ??= (async () => {
      closing = true;
      // A persisting command already under way finishes (file and daemon stay in step); new ones are refused.
      await within(daemon.commands.idle(), 5_000);
      for (const s of pending) s.destroy();
      pending.clear();
      const open = [...conns];
      for (const c of open) {
        try {
          c.ws.close(1001, 'daemon shutting down');
        } catch {
          c.ws.terminate();
        }
      }
      const allClosed = Promise.all(open.map((c) => c.closed));
      if (!(await within(allClosed, CLOSE_GRACE_MS))) {
        for (const c of conns) c.ws.terminate();
        await within(allClosed, CLOSE_GRACE_MS);
      }
      const wss = await wssLoad?.catch(() => undefined);
      if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
      // Last resort: whatever a missed event left behind is force-released (and reported).
      const failures = await ledger.releaseOwned(CONTROL_LEDGER_OWNER, 'force');
      for (const f of failures) logger.error({ resource: f.description, err: f.message }, 'control resource not released');
      logger.debug({ connections: open.length, dropped }, 'control channel closed');
    })();
    return closePromise;
  }

  return {
    close,
    connectionCount: () => conns.size,
  };
}

/** Resolves true if `p` settles within `ms`, false otherwise; never leaves a timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
