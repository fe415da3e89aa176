/**
 * The server side of MCP Streamable HTTP for one session, on plain node:http. It replaces the SDK's
 * StreamableHTTPServerTransport in the front: that one converts every exchange into a Web
 * Request/Response through @hono/node-server and answers every POST with an SSE stream, which cost
 * about 0.2 ms per call on a 2-core machine — more than everything else the proxy does per call
 * (docs/benchmarks.md). The SDK's `Server`/`Protocol` still do all JSON-RPC dispatch on top of it.
 *
 * Wire behaviour (Streamable HTTP, protocol 2025-03-26 … 2025-11-25), the same as the SDK transport's
 * status codes and error bodies except for how a POST carrying requests is answered. The form is
 * decided when the POST arrives and the headers go out at once, so the client gets on with its side
 * of the exchange while the call travels upstream:
 * - SSE (`text/event-stream`) when a request of the POST carries `_meta.progressToken`: progress
 *   notifications are sent as events before the answer, then the stream ends.
 * - JSON (`application/json`) otherwise: one body, the answer (an array in request order for a
 *   batch), written when every request is answered. Progress is the only notification tied to a
 *   request, so nothing else has to be streamed.
 * - Server-to-client requests (sampling, elicitation, roots, relayed from upstreams) go on the GET
 *   stream; without one, send() rejects at once, so the upstream gets an error instead of a hang.
 * - While a response waits, a keep-alive goes out every keepAliveMs: an SSE comment, or for JSON a
 *   newline before the value (JSON allows leading whitespace), so a long call meets neither a
 *   client's body timeout (undici: 300 s) nor an idle proxy.
 * - Closing the transport (DELETE, idle expiry, shutdown) answers every still-open request with a
 *   JSON-RPC error (-32000 "Session closed") instead of leaving the POST hanging, and ends the GET stream.
 * - A request id already in flight in this session is refused (400, -32600): ids must be unique.
 *
 * No event store, so no resumption: Last-Event-ID is ignored, like the SDK transport without one.
 * Host/Origin/auth checks, body size and JSON parsing happen in the front before this.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  SUPPORTED_PROTOCOL_VERSIONS,
  type JSONRPCMessage,
  type MessageExtraInfo,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { systemClock, unrefHandle, type Clock } from '../../core/clock.js';
import { isJsonRpcMessage } from './json-rpc-message.js';
import { isPlainObject } from '../../core/plain-object.js';
import { headerValue } from '../http/headers.js';

/** The SDK transport's batch limit, kept so both refuse the same inputs. */
const MAX_BATCH_MESSAGES = 100;
/** JSON-RPC error sent for requests still open when the session closes (the SDK's ConnectionClosed). */
const SESSION_CLOSED_RPC_CODE = -32000;

export interface StreamableHttpTransportOptions {
  sessionIdGenerator: () => string;
  /** Called once the initialize request has been accepted and the session id generated. */
  onsessioninitialized?: (sessionId: string) => void;
  /** Keep-alive interval on responses still waiting (SSE comment, or a newline before a JSON body); 0 = none. */
  keepAliveMs: number;
  clock?: Clock;
}

/** One POST that carried requests: its response object and the answers collected so far. */
interface Exchange {
  readonly res: ServerResponse;
  readonly ids: RequestId[];
  readonly answers: Map<RequestId, JSONRPCMessage>;
  readonly sse: boolean;
  /** The client went away (or the exchange ended): answers are still collected, never written. */
  gone: boolean;
  keepAliveTimer: unknown;
}

const SSE_KEEP_ALIVE = ': keepalive\n\n';
/** Leading whitespace is valid JSON (RFC 8259 `ws`), so waiting JSON bodies can be kept alive too. */
const JSON_KEEP_ALIVE = '\n';

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
} as const;

function isRequest(m: JSONRPCMessage): boolean {
  return 'method' in m && 'id' in m;
}

function isResponse(m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId } {
  return !('method' in m) && ('result' in m || 'error' in m);
}

/** A request asking for progress: its answer has to be a stream. */
function wantsProgress(m: JSONRPCMessage): boolean {
  if (!isRequest(m)) return false;
  const meta = (m as { params?: { _meta?: unknown } }).params?._meta;
  if (!isPlainObject(meta)) return false;
  const token = meta['progressToken'];
  return typeof token === 'string' || typeof token === 'number';
}

function isInitialize(m: JSONRPCMessage): boolean {
  return isRequest(m) && (m as { method: string }).method === 'initialize';
}

function mediaEssence(header: string | undefined): string {
  return (header ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

function sseEvent(message: JSONRPCMessage): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

function sendRpcError(res: ServerResponse, status: number, code: number, message: string, headers?: Record<string, string>): void {
  if (res.headersSent) return void res.end();
  const body = JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null });
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
}

export class StreamableHttpTransport implements Transport {
  sessionId: string | undefined;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  private readonly opts: StreamableHttpTransportOptions;
  private readonly clock: Clock;
  private readonly exchanges = new Map<RequestId, Exchange>();
  private standalone: { res: ServerResponse; keepAliveTimer: unknown } | undefined;
  private started = false;
  private initialized = false;
  private closed = false;

  constructor(opts: StreamableHttpTransportOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('Transport already started');
    this.started = true;
  }

  /** Handles one GET/POST/DELETE on the session's endpoint; `body` is the already parsed POST body. */
  handleRequest(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    if (this.closed) return sendRpcError(res, 404, -32001, 'Session not found');
    switch (req.method) {
      case 'POST':
        return this.handlePost(req, res, body);
      case 'GET':
        return this.handleGet(req, res);
      case 'DELETE':
        return this.handleDelete(req, res);
      default:
        return sendRpcError(res, 405, -32000, 'Method not allowed.', { allow: 'GET, POST, DELETE' });
    }
  }

  private refuse(res: ServerResponse, status: number, code: number, message: string): void {
    this.onerror?.(new Error(message));
    sendRpcError(res, status, code, message);
  }

  /** Session id and protocol version headers of a non-initialize exchange; false when refused. */
  private checkSession(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.initialized) {
      this.refuse(res, 400, -32000, 'Bad Request: Server not initialized');
      return false;
    }
    const sid = headerValue(req.headers['mcp-session-id']);
    if (sid === undefined) {
      this.refuse(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return false;
    }
    if (sid !== this.sessionId) {
      this.refuse(res, 404, -32001, 'Session not found');
      return false;
    }
    const version = headerValue(req.headers['mcp-protocol-version']);
    if (version !== undefined && (version === null || !SUPPORTED_PROTOCOL_VERSIONS.includes(version))) {
      this.refuse(
        res,
        400,
        -32000,
        `Bad Request: Unsupported protocol version: ${String(version)} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
      );
      return false;
    }
    return true;
  }

  private handlePost(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    const accept = req.headers.accept ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      return this.refuse(res, 406, -32000, 'Not Acceptable: Client must accept both application/json and text/event-stream');
    }
    const ct = req.headers['content-type'];
    if (ct !== 'application/json' && mediaEssence(ct) !== 'application/json') {
      return this.refuse(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
    }
    const batch = Array.isArray(body);
    const raw: unknown[] = batch ? body : [body];
    if (batch && raw.length === 0) return this.refuse(res, 400, -32600, 'Invalid Request: empty batch');
    if (raw.length > MAX_BATCH_MESSAGES) {
      return this.refuse(res, 400, -32600, `Invalid Request: Batch must not exceed ${MAX_BATCH_MESSAGES} messages`);
    }
    if (!raw.every(isJsonRpcMessage)) return this.refuse(res, 400, -32700, 'Parse error: Invalid JSON-RPC message');
    const messages = raw as JSONRPCMessage[];

    const init = messages.some(isInitialize);
    if (init) {
      if (this.initialized) return this.refuse(res, 400, -32600, 'Invalid Request: Server already initialized');
      if (messages.length > 1) return this.refuse(res, 400, -32600, 'Invalid Request: Only one initialization request is allowed');
    } else if (!this.checkSession(req, res)) {
      return;
    }

    const ids: RequestId[] = [];
    for (const m of messages) if (isRequest(m)) ids.push((m as { id: RequestId }).id);
    if (ids.length > 0 && (new Set(ids).size !== ids.length || ids.some((id) => this.exchanges.has(id)))) {
      return this.refuse(res, 400, -32600, 'Invalid Request: request id already in use in this session');
    }
    if (init) {
      this.sessionId = this.opts.sessionIdGenerator();
      this.initialized = true;
      this.opts.onsessioninitialized?.(this.sessionId);
    }
    const extra: MessageExtraInfo = { requestInfo: { headers: req.headers } };

    if (ids.length === 0) {
      for (const m of messages) this.onmessage?.(m, extra);
      res.writeHead(202).end();
      return;
    }

    const sse = messages.some(wantsProgress);
    const ex: Exchange = { res, ids, answers: new Map(), sse, gone: false, keepAliveTimer: undefined };
    for (const id of ids) this.exchanges.set(id, ex);
    // Disconnection is not cancellation: the handlers run on, their answers are dropped.
    res.once('close', () => this.retire(ex));
    const headers: Record<string, string> = sse ? { ...SSE_HEADERS } : { 'content-type': 'application/json' };
    if (this.sessionId !== undefined) headers['mcp-session-id'] = this.sessionId;
    res.writeHead(200, headers);
    // A stream starts now; a JSON answer leaves with its headers in one write (or with the first
    // keep-alive of a long call): flushing them first cost a second socket write on every call.
    if (sse) res.flushHeaders();
    this.armKeepAlive(res, sse ? SSE_KEEP_ALIVE : JSON_KEEP_ALIVE, (t) => (ex.keepAliveTimer = t));
    for (const m of messages) this.onmessage?.(m, extra);
  }

  private handleGet(req: IncomingMessage, res: ServerResponse): void {
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      return this.refuse(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    }
    if (!this.checkSession(req, res)) return;
    if (this.standalone) return this.refuse(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId! });
    res.flushHeaders();
    const stream = { res, keepAliveTimer: undefined as unknown };
    this.standalone = stream;
    this.armKeepAlive(res, SSE_KEEP_ALIVE, (t) => (stream.keepAliveTimer = t));
    res.once('close', () => {
      this.clock.clearTimeout(stream.keepAliveTimer);
      if (this.standalone === stream) this.standalone = undefined;
    });
  }

  private handleDelete(req: IncomingMessage, res: ServerResponse): void {
    if (!this.checkSession(req, res)) return;
    res.writeHead(200).end();
    void this.close();
  }

  /** Writes `chunk` every keepAliveMs while the response is writable. */
  private armKeepAlive(res: ServerResponse, chunk: string, store: (t: unknown) => void): void {
    const ms = this.opts.keepAliveMs;
    if (ms <= 0) return;
    const arm = () => {
      const t = this.clock.setTimeout(tick, ms);
      unrefHandle(t);
      store(t);
    };
    const tick = () => {
      if (res.writableEnded || res.destroyed) return;
      res.write(chunk);
      arm();
    };
    arm();
  }

  /** The exchange's response is finished or lost: no more writes, no timers. Answers may still arrive. */
  private retire(ex: Exchange): void {
    if (ex.gone) return;
    ex.gone = true;
    this.clock.clearTimeout(ex.keepAliveTimer);
    ex.keepAliveTimer = undefined;
  }

  /** Every answer is in: write them (JSON or the end of the stream) and forget the exchange. */
  private complete(ex: Exchange): void {
    for (const id of ex.ids) this.exchanges.delete(id);
    if (ex.gone) return;
    const res = ex.res;
    this.retire(ex);
    if (ex.sse) return void res.end();
    const answers = ex.ids.map((id) => ex.answers.get(id)!);
    res.end(JSON.stringify(ex.ids.length === 1 ? answers[0] : answers));
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.closed) return;
    const response = isResponse(message);
    const rid = response ? message.id : options?.relatedRequestId;
    if (rid === undefined) {
      if (response) throw new Error('Cannot send a response on a standalone SSE stream unless resuming a previous client request');
      // Unrelated server messages go to the GET stream; without one notifications are dropped (as the
      // SDK does) and requests fail, since no answer could ever come.
      const s = this.standalone;
      if (s && !s.res.writableEnded && !s.res.destroyed) s.res.write(sseEvent(message));
      else if (isRequest(message)) throw new Error('the client has no open GET stream to receive a server request on');
      return;
    }
    const ex = this.exchanges.get(rid);
    if (!ex) {
      if (response) throw new Error(`No connection established for request ID: ${String(rid)}`);
      return; // a late notification for a request already answered
    }
    if (!response) {
      if (ex.gone) return;
      if (!ex.sse) {
        // Cannot happen with this server (see the header); say so rather than corrupt a JSON body.
        this.onerror?.(
          new Error(
            `dropped ${'method' in message ? message.method : 'a message'} tied to request ${String(rid)}: its answer is a JSON body`,
          ),
        );
        return;
      }
      ex.res.write(sseEvent(message));
      return;
    }
    if (ex.answers.has(rid)) return; // answered already (e.g. by close)
    ex.answers.set(rid, message);
    if (ex.sse && !ex.gone) ex.res.write(sseEvent(message));
    if (ex.answers.size === ex.ids.length) this.complete(ex);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ex of new Set(this.exchanges.values())) {
      for (const id of ex.ids) {
        if (ex.answers.has(id)) continue;
        const err = { jsonrpc: '2.0' as const, id, error: { code: SESSION_CLOSED_RPC_CODE, message: 'Session closed' } };
        ex.answers.set(id, err);
        if (ex.sse && !ex.gone) ex.res.write(sseEvent(err));
      }
      this.complete(ex);
    }
    this.exchanges.clear();
    const s = this.standalone;
    this.standalone = undefined;
    if (s) {
      this.clock.clearTimeout(s.keepAliveTimer);
      s.res.end();
    }
    this.onclose?.();
  }
}
