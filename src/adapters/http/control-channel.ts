/**
 * The control channel: a WebSocket endpoint (`/ws`, subprotocol `mcp-warden.v1`) on the daemon's HTTP
 * server for UIs and the CLI. docs/control-protocol.md describes the protocol; src/control/protocol.ts
 * holds its schemas.
 *
 * Access: the upgrade is authenticated before `handleUpgrade` (so an unauthenticated peer never gets a
 * WebSocket): Host must be one we are reachable as, a browser Origin must be loopback (or allow-listed)
 * → else 403; the token from `<data-dir>/token` must come as `Authorization: Bearer <token>` or as the
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
import path from 'node:path';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import type { Settings } from '../../core/settings.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { VERSION } from '../../core/version.js';
import { parseServerEntry, validateServerName } from '../../config/config-schema.js';
import type { ServerEntry } from '../../config/config-types.js';
import type { Daemon, DaemonEvent } from '../../daemon/daemon.js';
import {
  AUTH_PROTOCOL_PREFIX,
  CONTROL_PATH,
  CONTROL_PROTOCOL,
  ControlErrorCodes,
  decodeClientMessage,
  type CommandArgs,
  type CommandName,
  type ControlErrorInfo,
} from '../../control/protocol.js';
import { updateConfigFile } from '../store/config-file.js';
import type { HttpServerHandle } from './http-server.js';
import { checkBearer, guardRequest, isLoopbackHost, loopbackAllowedHosts, safeEqual } from './request-guards.js';
import { REDACTED, redactUrl } from '../log/logger.js';
import type { LogRecord, LogTap } from '../log/log-tap.js';

export const CONTROL_LEDGER_OWNER = 'control';

/** Commands one connection may have in flight; more are answered with E_BUSY at once. */
const MAX_IN_FLIGHT_PER_CONNECTION = 32;
/** How long close() waits for clients to answer the close frame before terminating them. */
const CLOSE_GRACE_MS = 1_000;

export type ControlSettings = Pick<
  Settings,
  | 'controlMaxConnections'
  | 'controlMaxPayloadBytes'
  | 'controlHeartbeatIntervalMs'
  | 'controlMaxBufferedBytes'
  | 'quarantineNewServers'
>;

/** What the channel needs from the daemon. */
export type ControlDaemon = Pick<
  Daemon,
  | 'configPath'
  | 'health'
  | 'servers'
  | 'addServer'
  | 'removeServer'
  | 'command'
  | 'toolsOf'
  | 'entryOf'
  | 'subscribe'
  | 'stop'
  | 'machineDefinition'
>;

export interface ControlChannelOptions {
  http: HttpServerHandle;
  daemon: ControlDaemon;
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
}

export interface ControlChannel {
  close(): Promise<void>;
  connectionCount(): number;
}

/** A failed command: becomes `{ok:false, error}`. */
export class ControlFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly issues?: { path: string; message: string }[],
  ) {
    super(message);
    this.name = 'ControlFailure';
  }
}

/** A config entry safe to show: env values, header values and URL secrets replaced. */
export function redactEntry(entry: ServerEntry): Record<string, unknown> {
  const out: Record<string, unknown> = { ...entry };
  out.env = Object.fromEntries(Object.keys(entry.env ?? {}).map((k) => [k, REDACTED]));
  if (entry.headers) out.headers = Object.fromEntries(Object.keys(entry.headers).map((k) => [k, REDACTED]));
  if (entry.url) out.url = redactUrl(entry.url);
  return out;
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

function headerValue(v: string | string[] | undefined): string | undefined {
  if (Array.isArray(v)) return v.join(', ');
  return v;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  503: 'Service Unavailable',
};

/** An HTTP error response on a socket that was never upgraded, then the socket is closed. */
function refuseUpgrade(socket: Duplex, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: { code, message } });
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    Connection: 'close',
    ...extra,
  };
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n');
  socket.once('finish', () => socket.destroy());
  socket.once('error', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n${head}\r\n\r\n${body}`);
  // A peer that never reads must not keep the socket: destroy after a short grace regardless.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

/** Splits a Sec-WebSocket-Protocol header into its entries. */
function offeredProtocols(req: IncomingMessage): string[] | undefined {
  const raw = headerValue(req.headers['sec-websocket-protocol']);
  if (raw === undefined) return undefined;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function attachControlChannel(opts: ControlChannelOptions): ControlChannel {
  const { http, daemon, token, settings, logger, ledger } = opts;
  const allowedHosts = opts.allowedHosts ?? (isLoopbackHost(http.host) ? loopbackAllowedHosts(http.port) : ['*']);
  const conns = new Set<Conn>();
  /** Sockets that passed authentication and are inside handleUpgrade. */
  const pending = new Set<Duplex>();
  let seq = 0;
  let closing = false;
  let closePromise: Promise<void> | undefined;
  let dropped = 0;
  /** Persisting commands run one at a time (across connections): file and daemon change together. */
  let mutationChain: Promise<unknown> = Promise.resolve();
  /** The same DaemonEvent goes to every connection: serialise it once. */
  const eventText = new WeakMap<DaemonEvent, string>();

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: settings.controlMaxPayloadBytes,
    clientTracking: false,
    perMessageDeflate: false,
    // Select our protocol; the `auth.<token>` entry is never chosen, so it is never echoed back.
    handleProtocols: (protocols) => (protocols.has(CONTROL_PROTOCOL) ? CONTROL_PROTOCOL : false),
  });

  // ---- upgrade ------------------------------------------------------------------------------

  http.onUpgrade(CONTROL_PATH, (req, socket, head) => {
    if (closing) return refuseUpgrade(socket, 503, ControlErrorCodes.SHUTTING_DOWN, 'the daemon is shutting down');
    const guard = guardRequest(req, { allowedHosts, allowedOrigins: opts.allowedOrigins });
    if (guard) {
      logger.warn({ code: guard.code, remote: req.socket.remoteAddress }, 'control connection refused');
      return refuseUpgrade(socket, guard.status, guard.code, guard.message);
    }
    const protocols = offeredProtocols(req);
    const bearerOk = checkBearer(headerValue(req.headers.authorization), token);
    let protocolOk = false;
    for (const p of protocols ?? []) {
      if (p.startsWith(AUTH_PROTOCOL_PREFIX) && safeEqual(p.slice(AUTH_PROTOCOL_PREFIX.length), token)) protocolOk = true;
    }
    if (!bearerOk && !protocolOk) {
      logger.warn({ code: ErrorCodes.UNAUTHORIZED, remote: req.socket.remoteAddress }, 'control connection refused');
      return refuseUpgrade(
        socket,
        401,
        ErrorCodes.UNAUTHORIZED,
        `Unauthorized: send the token from the data dir's "token" file as "Authorization: Bearer <token>" or as the subprotocol "${AUTH_PROTOCOL_PREFIX}<token>" beside "${CONTROL_PROTOCOL}"`,
        { 'WWW-Authenticate': 'Bearer' },
      );
    }
    if (protocols !== undefined && !protocols.includes(CONTROL_PROTOCOL)) {
      return refuseUpgrade(
        socket,
        400,
        ControlErrorCodes.BAD_SUBPROTOCOL,
        `the subprotocol "${CONTROL_PROTOCOL}" must be offered`,
      );
    }
    if (conns.size + pending.size >= settings.controlMaxConnections) {
      logger.warn({ limit: settings.controlMaxConnections }, 'control connection refused: limit reached');
      return refuseUpgrade(
        socket,
        503,
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
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('close', onSocketClose);
      pending.delete(socket);
      if (closing) {
        ws.terminate();
        return;
      }
      onConnection(ws, req);
    });
  });

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
      isGone: () => ws.readyState === WebSocket.CLOSED,
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
    if (ws.readyState !== WebSocket.OPEN) return false;
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
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
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
            error: { code: ControlErrorCodes.BUSY, message: `more than ${MAX_IN_FLIGHT_PER_CONNECTION} commands in flight on this connection; wait for results` },
          });
          return;
        }
        conn.inFlight++;
        void execute(msg.command, msg.args).then((outcome) => {
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

  type Outcome = { ok: true; result: unknown } | { ok: false; error: ControlErrorInfo };

  async function execute(command: CommandName, args: unknown): Promise<Outcome> {
    if (closing) return { ok: false, error: { code: ControlErrorCodes.SHUTTING_DOWN, message: 'the daemon is shutting down' } };
    try {
      return { ok: true, result: await runCommand(command, args) };
    } catch (err) {
      if (err instanceof ControlFailure) {
        return { ok: false, error: err.issues ? { code: err.code, message: err.message, issues: err.issues } : { code: err.code, message: err.message } };
      }
      if (err instanceof WardenError) {
        const issues = Array.isArray(err.detail?.issues) ? (err.detail.issues as { path: string; message: string }[]) : undefined;
        return { ok: false, error: issues ? { code: err.code, message: err.message, issues } : { code: err.code, message: err.message } };
      }
      logger.error({ err, command }, 'control command failed unexpectedly');
      return { ok: false, error: { code: ControlErrorCodes.INTERNAL, message: err instanceof Error ? err.message : String(err) } };
    }
  }

  /** Runs `fn` after every earlier mutation finished (file and daemon stay in step). */
  function serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = mutationChain.then(fn);
    mutationChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  function requireServer(name: string): ServerEntry {
    const entry = daemon.entryOf(name);
    if (!entry) throw new ControlFailure(ControlErrorCodes.UNKNOWN_SERVER, `no server named "${name}"`);
    return entry;
  }

  /** The raw entry of `name` in the parsed config document, or a coded failure. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the parsed config document, any shape until validated
  function rawEntryOf(raw: any, name: string): Record<string, unknown> {
    const servers = raw?.mcpServers;
    const entry = servers && typeof servers === 'object' && Object.hasOwn(servers, name) ? servers[name] : undefined;
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new ControlFailure(
        ControlErrorCodes.UNKNOWN_SERVER,
        `server "${name}" is not in the config file ${daemon.configPath} (was the file edited by hand?)`,
      );
    }
    return entry as Record<string, unknown>;
  }

  /** Sets a boolean flag of a server in the config file; no write when it already has that value. */
  async function persistFlag(name: string, key: 'disabled' | 'quarantined', value: boolean): Promise<ServerEntry | undefined> {
    let wrote = false;
    try {
      const loaded = await updateConfigFile(daemon.configPath, (raw) => {
        const entry = rawEntryOf(raw, name);
        if ((entry[key] === true) === value) throw NO_CHANGE;
        entry[key] = value;
        wrote = true;
      });
      return wrote ? loaded.config.mcpServers[name] : undefined;
    } catch (err) {
      if (err === NO_CHANGE) return undefined;
      throw err;
    }
  }

  async function runCommand(command: CommandName, rawArgs: unknown): Promise<unknown> {
    switch (command) {
      case 'server.list':
        return { servers: daemon.servers() };

      case 'server.add': {
        const args = rawArgs as CommandArgs<'server.add'>;
        const problem = validateServerName(args.name);
        if (problem) throw new ControlFailure(ControlErrorCodes.BAD_ARGS, `invalid server name "${args.name}": ${problem}`);
        const parsed = parseServerEntry(args.name, args.entry, path.dirname(path.resolve(daemon.configPath)));
        if (!parsed.ok) {
          throw new ControlFailure(
            ErrorCodes.CONFIG_INVALID,
            `invalid server entry: ${parsed.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
            parsed.issues,
          );
        }
        const quarantineOnAdd = !(args.trusted ?? false) && settings.quarantineNewServers === 1;
        return serialized(async () => {
          if (daemon.entryOf(args.name)) {
            throw new ControlFailure(ControlErrorCodes.SERVER_EXISTS, `a server named "${args.name}" already exists`);
          }
          const loaded = await updateConfigFile(daemon.configPath, (raw) => {
            if (raw.mcpServers === undefined) raw.mcpServers = {};
            if (typeof raw.mcpServers !== 'object' || raw.mcpServers === null || Array.isArray(raw.mcpServers)) {
              throw new ControlFailure(ErrorCodes.CONFIG_INVALID, `"mcpServers" in ${daemon.configPath} is not an object`);
            }
            if (Object.hasOwn(raw.mcpServers, args.name)) {
              throw new ControlFailure(
                ControlErrorCodes.SERVER_EXISTS,
                `a server named "${args.name}" already exists in ${daemon.configPath}`,
              );
            }
            // Policy (docs/quarantine.md): a server added at run time starts quarantined unless the
            // command explicitly trusts it; a trusted one is trusted on first use like a config server.
            raw.mcpServers[args.name] = quarantineOnAdd ? { ...args.entry, quarantined: true } : args.entry;
          });
          const entry = loaded.config.mcpServers[args.name] ?? parsed.entry;
          daemon.addServer(args.name, entry);
          return {
            name: args.name,
            entry: redactEntry(entry),
            started: !entry.disabled,
            trusted: args.trusted ?? false,
            quarantined: entry.quarantined,
            warnings: parsed.warnings,
          };
        });
      }

      case 'server.remove': {
        const { name } = rawArgs as CommandArgs<'server.remove'>;
        return serialized(async () => {
          const known = daemon.entryOf(name) !== undefined;
          let inFile = false;
          try {
            await updateConfigFile(daemon.configPath, (raw) => {
              const servers = raw?.mcpServers;
              if (!servers || typeof servers !== 'object' || !Object.hasOwn(servers, name)) throw NO_CHANGE;
              delete servers[name];
              inFile = true;
            });
          } catch (err) {
            if (err !== NO_CHANGE) throw err;
          }
          if (!known && !inFile) throw new ControlFailure(ControlErrorCodes.UNKNOWN_SERVER, `no server named "${name}"`);
          daemon.removeServer(name);
          return { name, removed: true };
        });
      }

      case 'server.enable':
      case 'server.disable': {
        const { name } = rawArgs as CommandArgs<'server.enable'>;
        const disable = command === 'server.disable';
        return serialized(async () => {
          const current = requireServer(name);
          const updated = await persistFlag(name, 'disabled', disable);
          const changed = current.disabled !== disable;
          if (changed) daemon.addServer(name, { ...(updated ?? current), disabled: disable });
          return { name, changed };
        });
      }

      case 'server.approve':
      case 'server.quarantine': {
        const { name } = rawArgs as CommandArgs<'server.approve'>;
        const quarantine = command === 'server.quarantine';
        return serialized(async () => {
          const current = requireServer(name);
          await persistFlag(name, 'quarantined', quarantine);
          const view = daemon.servers().find((s) => s.name === name);
          const changed = (view?.quarantined ?? current.quarantined) !== quarantine;
          daemon.command(name, quarantine ? 'QUARANTINE' : 'APPROVE');
          return { name, changed };
        });
      }

      case 'server.restart': {
        const { name } = rawArgs as CommandArgs<'server.restart'>;
        const entry = requireServer(name);
        if (entry.disabled) throw new ControlFailure(ControlErrorCodes.SERVER_DISABLED, `server "${name}" is disabled; enable it instead`);
        daemon.command(name, 'RESTART');
        return { name };
      }

      case 'server.tools': {
        const { name } = rawArgs as CommandArgs<'server.tools'>;
        const entry = requireServer(name);
        const view = daemon.servers().find((s) => s.name === name);
        return {
          name,
          state: view?.state ?? (entry.disabled ? 'disabled' : 'stopped'),
          quarantined: view?.quarantined ?? entry.quarantined,
          tools: daemon.toolsOf(name) ?? [],
        };
      }

      case 'reap': {
        if (!opts.reap) throw new ControlFailure(ControlErrorCodes.NOT_AVAILABLE, 'this daemon has no startup reaper wired in');
        const { dryRun } = rawArgs as CommandArgs<'reap'>;
        return opts.reap({ dryRun: dryRun ?? false });
      }

      case 'shutdown':
        return { stopping: true };
    }
  }

  // ---- close ----------------------------------------------------------------------------------

  function close(): Promise<void> {
    closePromise ??= (async () => {
      closing = true;
      // A persisting command already under way finishes (file and daemon stay in step); new ones are refused.
      await within(mutationChain, 5_000);
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
      await new Promise<void>((resolve) => wss.close(() => resolve()));
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

const NO_CHANGE = Symbol('no change');

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
