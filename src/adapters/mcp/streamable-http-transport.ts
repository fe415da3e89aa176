/**
 * The server side of MCP Streamable HTTP for one session, on plain node:http. It replaces the SDK's
 * StreamableHTTPServerTransport in the front: that one converts every exchange into a Web
 * Request/Response through @hono/node-server and answers every POST with an SSE stream, which cost
 * about 0.2 ms per call on a 2-core machine — more than everything else the proxy does per call
 * (docs/benchmarks.md). The SDK's `Server`/`Protocol` do the JSON-RPC dispatch on top of it, except for
 * tools/call and tools/list, which the front takes first (front-fast-call.ts).
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
 * - Batches follow the protocol version negotiated at initialize: 2025-06-18 and later have no JSON-RPC
 *   batching, so a batch there is refused (400, -32600, E_BATCH_REFUSED); 2025-03-26 accepts batches of
 *   up to 100 messages. `initialize` is never accepted inside a batch, not even a batch of one.
 *
 * Bounds (docs/mcp-endpoint.md#response-bounds). Answers are serialized one by one as they are
 * written, never a whole batch into one string, so no response meets the engine's string limit:
 * - maxResponseBytes bounds one POST's response: an answer that would take it past the limit is
 *   replaced by a JSON-RPC error (E_RESPONSE_TOO_LARGE) for its id; the batch's other answers still go.
 * - maxBufferedBytes bounds the session's bytes written but not yet taken by the client's sockets:
 *   beyond it the next answer waits (still unserialized) until the client reads. Bytes the socket has
 *   taken no longer count, so this is back-pressure, not a budget a long session can use up.
 * - An answer that cannot be serialized (RangeError, a cycle) is replaced by a JSON-RPC error
 *   (E_SERIALIZATION_FAILED): the response always ends.
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
import { systemClock, type Clock } from '../../core/clock.js';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';
import { isJsonRpcMessage } from './json-rpc-message.js';
import { isPlainObject } from '../../core/plain-object.js';
import { headerValue } from '../http/headers.js';
import { ErrorCodes, rpcCodeOf, type ErrorCode } from '../../core/error-codes.js';

/** The SDK transport's batch limit, kept so both refuse the same inputs. */
const MAX_BATCH_MESSAGES = 100;
/** JSON-RPC error sent for requests still open when the session closes (the SDK's ConnectionClosed). */
const SESSION_CLOSED_RPC_CODE = -32000;
/** The first protocol version without JSON-RPC batching (dates compare as strings). */
const FIRST_VERSION_WITHOUT_BATCHING = '2025-06-18';

export interface StreamableHttpTransportOptions {
  sessionIdGenerator: () => string;
  /** Called once the initialize request has been accepted and the session id generated. */
  onsessioninitialized?: (sessionId: string) => void;
  /** Keep-alive interval on responses still waiting (SSE comment, or a newline before a JSON body); 0 = none. */
  keepAliveMs: number;
  /** Largest response to one POST (mcpMaxResponseBytes). Default: unbounded. */
  maxResponseBytes?: number;
  /** Session's bytes written and not yet taken by the client's sockets before answers wait (mcpMaxBufferedBytes). */
  maxBufferedBytes?: number;
  clock?: Clock;
}

/**
 * One POST that carried requests: its response object and what is still to be written to it. A POST of
 * one request answered in JSON (the common case) uses none of the collections: its answer waits in `one`.
 */
interface Exchange {
  readonly res: ServerResponse;
  readonly ids: RequestId[];
  /** The POST was a JSON array: its JSON answer is an array too. */
  readonly batch: boolean;
  readonly sse: boolean;
  /** How many of `ids` are answered (written or waiting). */
  answered: number;
  /** Ids answered so far, for a POST of several requests (made with its first answer). */
  received: Set<RequestId> | undefined;
  /** JSON batch: answers received but not yet written (written in request order, from `next`). */
  answers: Map<RequestId, JSONRPCMessage> | undefined;
  /** JSON, one request: its answer, until written. */
  one: JSONRPCMessage | undefined;
  next: number;
  /** SSE: messages (progress, answers) waiting to be written, in arrival order. */
  readonly queue: JSONRPCMessage[] | undefined;
  /** Bytes of messages written to this response so far (against maxResponseBytes). */
  written: number;
  /** Bytes written to `res` whose write has not completed yet (against the session's maxBufferedBytes). */
  outstanding: number;
  /** The client went away (or the exchange ended): answers are still collected, never written. */
  gone: boolean;
  /** res.end() was called. */
  ended: boolean;
  keepAliveTimer: Deadline | undefined;
}

const SSE_KEEP_ALIVE = ': keepalive\n\n';
/** Leading whitespace is valid JSON (RFC 8259 `ws`), so waiting JSON bodies can be kept alive too. */
const JSON_KEEP_ALIVE = '\n';

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

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

function sendRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers?: Record<string, string>,
  dataCode?: ErrorCode,
): void {
  if (res.headersSent) return void res.end();
  const error = dataCode === undefined ? { code, message } : { code, message, data: { code: dataCode } };
  const body = JSON.stringify({ jsonrpc: '2.0', error, id: null });
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
}

/** A JSON-RPC error answer to `id` carrying one of our codes. */
function errorAnswer(id: RequestId, code: ErrorCode, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code: rpcCodeOf(code), message, data: { code } } } as JSONRPCMessage;
}

/** JSON text of a message, or the error that prevented it (RangeError beyond the string limit or the stack, a cycle, a BigInt). */
function serialize(message: JSONRPCMessage): string | Error {
  try {
    return JSON.stringify(message);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

export class StreamableHttpTransport implements Transport {
  sessionId: string | undefined;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  private readonly opts: StreamableHttpTransportOptions;
  private readonly clock: Clock;
  private readonly exchanges = new Map<RequestId, Exchange>();
  /** Messages given with their JSON text (sendSerialized). */
  private readonly serialized = new WeakMap<JSONRPCMessage, string>();
  /** Bytes written to this session's responses whose writes have not completed (maxBufferedBytes). */
  private buffered = 0;
  /** Exchanges with something to write, waiting for `buffered` to fall below maxBufferedBytes. */
  private readonly waiting = new Set<Exchange>();
  private readonly maxResponseBytes: number;
  private readonly maxBufferedBytes: number;
  /** The initialize request's id, until its answer (which carries the negotiated version) goes out. */
  private initializeId: RequestId | undefined;
  /** The protocol version negotiated at initialize. */
  protocolVersion: string | undefined;
  private standalone: { res: ServerResponse; keepAliveTimer: Deadline | undefined } | undefined;
  /**
   * Takes a message before onmessage sees it (front-fast-call.ts: tools/call and tools/list past the
   * SDK's Protocol); true: taken. Messages it takes get no `extra` built for them.
   */
  take?: (message: JSONRPCMessage) => boolean;
  /** The keep-alive deadlines of this session's waiting responses (one timer for all); none when keepAliveMs is 0. */
  private readonly keepAlives: DeadlineQueue | undefined;
  private started = false;
  private initialized = false;
  private closed = false;

  constructor(opts: StreamableHttpTransportOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    // An injected clock (tests) is also the queue's time source; the system clock's is monotonic time.
    const now = this.clock === systemClock ? undefined : () => this.clock.now();
    this.keepAlives = opts.keepAliveMs > 0 ? new DeadlineQueue(opts.keepAliveMs, this.clock, now) : undefined;
    this.maxResponseBytes = opts.maxResponseBytes ?? Number.POSITIVE_INFINITY;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? Number.POSITIVE_INFINITY;
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

  private refuse(res: ServerResponse, status: number, code: number, message: string, dataCode?: ErrorCode): void {
    this.onerror?.(new Error(message));
    sendRpcError(res, status, code, message, undefined, dataCode);
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
      if (batch) {
        return this.refuse(
          res,
          400,
          -32600,
          'Invalid Request: initialize must be sent alone, not inside a JSON-RPC batch',
          ErrorCodes.BATCH_REFUSED,
        );
      }
    } else if (!this.checkSession(req, res)) {
      return;
    } else if (batch && this.protocolVersion !== undefined && this.protocolVersion >= FIRST_VERSION_WITHOUT_BATCHING) {
      return this.refuse(
        res,
        400,
        -32600,
        `Invalid Request: protocol version ${this.protocolVersion} (negotiated at initialize) has no JSON-RPC batching; send one message per POST`,
        ErrorCodes.BATCH_REFUSED,
      );
    }

    const ids: RequestId[] = [];
    for (const m of messages) if (isRequest(m)) ids.push((m as { id: RequestId }).id);
    const reused =
      ids.length === 1 ? this.exchanges.has(ids[0]!) : new Set(ids).size !== ids.length || ids.some((id) => this.exchanges.has(id));
    if (reused) {
      return this.refuse(res, 400, -32600, 'Invalid Request: request id already in use in this session');
    }
    if (init) {
      this.initializeId = ids[0];
      this.sessionId = this.opts.sessionIdGenerator();
      this.initialized = true;
      this.opts.onsessioninitialized?.(this.sessionId);
    }
    if (ids.length === 0) {
      this.deliver(req, messages);
      res.writeHead(202).end();
      return;
    }

    const sse = messages.some(wantsProgress);
    const ex: Exchange = {
      res,
      ids,
      batch,
      sse,
      answered: 0,
      received: undefined,
      answers: undefined,
      one: undefined,
      next: 0,
      queue: sse ? [] : undefined,
      written: 0,
      outstanding: 0,
      gone: false,
      ended: false,
      keepAliveTimer: undefined,
    };
    for (const id of ids) this.exchanges.set(id, ex);
    // Disconnection is not cancellation: the handlers run on, their answers are dropped.
    // `on`: a response closes once and retire() is idempotent; once() cost a wrapper per exchange.
    res.on('close', () => this.retire(ex));
    // Headers at once while this is the session's only exchange (and always for a stream): the client's
    // fetch resolves while the call travels upstream, which measured 15-19 % faster sequential p50 than
    // sending them with the answer (docs/benchmarks.md, "Regression check"). With other exchanges in
    // flight the process is busy anyway and that extra socket write is a sixth of the CPU a call costs:
    // the headers then leave with the answer, in one write and with a content-length (or with the first
    // keep-alive or batch write, chunked): see head().
    if (sse) {
      const headers: Record<string, string> = { ...SSE_HEADERS };
      if (this.sessionId !== undefined) headers['mcp-session-id'] = this.sessionId;
      res.writeHead(200, headers);
      res.flushHeaders();
    } else if (this.exchanges.size === ids.length) {
      this.head(res);
      res.flushHeaders();
    }
    if (this.keepAlives !== undefined) ex.keepAliveTimer = this.keepAlives.add(() => this.keepAlive(ex));
    this.deliver(req, messages);
  }

  /** The POST's messages to the session: tools/call and tools/list to `take` first, the rest to onmessage. */
  private deliver(req: IncomingMessage, messages: JSONRPCMessage[]): void {
    const take = this.take;
    let extra: MessageExtraInfo | undefined;
    for (const m of messages) {
      if (take !== undefined && take(m)) continue;
      this.onmessage?.(m, (extra ??= { requestInfo: { headers: req.headers } }));
    }
  }

  /**
   * The head of a JSON response, unless sent already: status 200 and its headers, with a content-length
   * when `bodyBytes` is the whole body (written with it), else chunked.
   */
  private head(res: ServerResponse, bodyBytes?: number): void {
    if (res.headersSent) return;
    const sid = this.sessionId;
    if (bodyBytes === undefined) {
      res.writeHead(200, sid === undefined ? JSON_HEADERS : { 'content-type': 'application/json', 'mcp-session-id': sid });
    } else if (sid === undefined) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bodyBytes });
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': sid, 'content-length': bodyBytes });
    }
  }

  /** An exchange's keep-alive is due: write it (a JSON response's head first) and arm the next one. */
  private keepAlive(ex: Exchange): void {
    const res = ex.res;
    if (ex.gone || ex.ended || res.writableEnded || res.destroyed) return;
    if (ex.sse) res.write(SSE_KEEP_ALIVE);
    else {
      this.head(res);
      res.write(JSON_KEEP_ALIVE);
    }
    ex.keepAliveTimer = this.keepAlives!.add(() => this.keepAlive(ex));
  }

  private handleGet(req: IncomingMessage, res: ServerResponse): void {
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      return this.refuse(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    }
    if (!this.checkSession(req, res)) return;
    if (this.standalone) return this.refuse(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId! });
    res.flushHeaders();
    const stream = { res, keepAliveTimer: undefined as Deadline | undefined };
    this.standalone = stream;
    this.armKeepAlive(res, SSE_KEEP_ALIVE, (t) => (stream.keepAliveTimer = t));
    res.once('close', () => {
      this.keepAlives?.cancel(stream.keepAliveTimer);
      if (this.standalone === stream) this.standalone = undefined;
    });
  }

  private handleDelete(req: IncomingMessage, res: ServerResponse): void {
    if (!this.checkSession(req, res)) return;
    res.writeHead(200).end();
    void this.close();
  }

  /** Writes `chunk` every keepAliveMs while the response is writable. */
  private armKeepAlive(res: ServerResponse, chunk: string, store: (t: Deadline) => void): void {
    const queue = this.keepAlives;
    if (queue === undefined) return;
    const tick = () => {
      if (res.writableEnded || res.destroyed) return;
      res.write(chunk);
      store(queue.add(tick));
    };
    store(queue.add(tick));
  }

  /** The exchange's response is finished or lost: no more writes, no timers. Answers may still arrive. */
  private retire(ex: Exchange): void {
    if (ex.gone) return;
    ex.gone = true;
    this.keepAlives?.cancel(ex.keepAliveTimer);
    ex.keepAliveTimer = undefined;
    this.waiting.delete(ex);
    ex.answers?.clear();
    ex.one = undefined;
    if (ex.queue) ex.queue.length = 0;
    // A lost response's unfinished writes are never taken by the client: they no longer count.
    this.release(ex, ex.outstanding);
  }

  /** `bytes` of ex's writes completed (or were dropped): the session may write more. */
  private release(ex: Exchange, bytes: number): void {
    const n = Math.min(bytes, ex.outstanding);
    if (n <= 0) return;
    ex.outstanding -= n;
    this.buffered -= n;
    if (this.buffered >= this.maxBufferedBytes || this.waiting.size === 0) return;
    const resumed = [...this.waiting];
    this.waiting.clear();
    for (const w of resumed) this.pump(w);
  }

  /** The next message of ex that may be written now, in order; undefined when none is ready. */
  private takeNext(ex: Exchange): JSONRPCMessage | undefined {
    if (ex.queue) return ex.queue.shift();
    if (!ex.batch) {
      const m = ex.one;
      ex.one = undefined;
      if (m !== undefined) ex.next++;
      return m;
    }
    const id = ex.ids[ex.next];
    if (id === undefined || ex.answers === undefined || !ex.answers.has(id)) return undefined;
    const m = ex.answers.get(id)!;
    ex.answers.delete(id);
    ex.next++;
    return m;
  }

  private hasNext(ex: Exchange): boolean {
    if (ex.queue) return ex.queue.length > 0;
    if (!ex.batch) return ex.one !== undefined;
    const id = ex.ids[ex.next];
    return id !== undefined && ex.answers !== undefined && ex.answers.has(id);
  }

  /**
   * Writes what ex has ready, in order, while the session's unfinished writes stay below
   * maxBufferedBytes (one message may go past it: the bound is the limit plus one response's worth);
   * ends the response once every answer is written.
   */
  private pump(ex: Exchange): void {
    if (ex.gone || ex.ended) return;
    while (this.hasNext(ex)) {
      if (this.buffered > 0 && this.buffered >= this.maxBufferedBytes) {
        this.waiting.add(ex);
        return;
      }
      // A single JSON answer is the whole body: written together with the end of the response.
      const whole = !ex.sse && !ex.batch;
      this.writeMessage(ex, this.takeNext(ex)!, whole);
      if (whole) {
        ex.ended = true;
        this.retireTimers(ex);
        return;
      }
      if (ex.gone) return;
    }
    if (ex.answered < ex.ids.length || this.hasNext(ex)) return;
    ex.ended = true;
    const res = ex.res;
    this.retireTimers(ex);
    if (!ex.sse && ex.batch) {
      if (ex.next === 0) this.head(res, 2);
      res.end(ex.next > 0 ? ']' : '[]');
    } else res.end();
  }

  private retireTimers(ex: Exchange): void {
    this.keepAlives?.cancel(ex.keepAliveTimer);
    ex.keepAliveTimer = undefined;
  }

  /** Serializes one message within the response's bounds and writes it, framed for the response's form. */
  private writeMessage(ex: Exchange, message: JSONRPCMessage, end = false): void {
    const answer = isResponse(message);
    let text = this.serialized.get(message) ?? serialize(message);
    if (text instanceof Error) {
      const what = answer ? `the answer to request ${String(message.id)}` : 'a notification';
      this.onerror?.(new Error(`${what} could not be serialized: ${text.message}`));
      if (!answer) return;
      text = JSON.stringify(
        errorAnswer(
          message.id,
          ErrorCodes.SERIALIZATION_FAILED,
          `Internal error: the answer could not be serialized to JSON (${text.name}: ${text.message})`,
        ),
      );
    }
    // JSON text is mostly ASCII: its length is the byte count, except for the rare non-ASCII text.
    let bytes = Buffer.byteLength(text);
    if (ex.written + bytes > this.maxResponseBytes) {
      if (!answer) return; // a progress notification that does not fit is dropped, the answer may still fit
      this.onerror?.(new Error(`the answer to request ${String(message.id)} (${bytes} bytes) exceeds mcpMaxResponseBytes`));
      const written = ex.written;
      text = JSON.stringify(
        errorAnswer(
          message.id,
          ErrorCodes.RESPONSE_TOO_LARGE,
          `Response too large: the answer to request ${String(message.id)} is ${bytes} bytes; ` +
            `this response had ${written} of at most ${this.maxResponseBytes} bytes left for it (mcpMaxResponseBytes)`,
        ),
      );
      bytes = Buffer.byteLength(text);
    }
    ex.written += bytes;
    let chunk: string;
    if (ex.sse) chunk = `event: message\ndata: ${text}\n\n`;
    else if (ex.batch) chunk = (ex.written === bytes ? '[' : ',') + text;
    else chunk = text;
    ex.outstanding += bytes;
    this.buffered += bytes;
    // The last write of a response needs no callback: its 'close' (retire) releases what is still
    // outstanding, and end(chunk, cb) cost a once('finish') wrapper per call.
    if (end) {
      this.head(ex.res, bytes);
      ex.res.end(chunk);
    } else {
      if (!ex.sse) this.head(ex.res);
      ex.res.write(chunk, () => this.release(ex, bytes));
    }
  }

  /**
   * send() of an answer whose JSON text the caller already has (a cached tools/list result): written
   * as `text`, within the same bounds. `text` must be what JSON.stringify(message) gives.
   */
  sendSerialized(message: JSONRPCMessage, text: string): Promise<void> {
    this.serialized.set(message, text);
    return this.send(message);
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    this.sendNow(message, options);
  }

  /** send() without its promise, for the direct call path (front-fast-call.ts): it throws what send() rejects with. */
  sendNow(message: JSONRPCMessage, options?: TransportSendOptions): void {
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
    if (response && rid === this.initializeId) {
      this.initializeId = undefined;
      const v = (message as { result?: { protocolVersion?: unknown } }).result?.protocolVersion;
      if (typeof v === 'string') this.protocolVersion = v;
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
      ex.queue!.push(message);
      this.pump(ex);
      return;
    }
    this.accept(ex, rid, message);
  }

  /** One answer of ex arrived: queue it and write what can be written. */
  private accept(ex: Exchange, id: RequestId, answer: JSONRPCMessage): void {
    // Answered already (e.g. by close)?
    if (ex.ids.length === 1) {
      if (ex.answered > 0) return;
    } else {
      const received = (ex.received ??= new Set());
      if (received.has(id)) return;
      received.add(id);
    }
    if (++ex.answered === ex.ids.length) for (const i of ex.ids) this.exchanges.delete(i);
    if (ex.gone) return;
    if (ex.queue) ex.queue.push(answer);
    else if (!ex.batch) ex.one = answer;
    else (ex.answers ??= new Map()).set(id, answer);
    this.pump(ex);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ex of new Set(this.exchanges.values())) {
      for (const id of ex.ids) {
        this.accept(ex, id, { jsonrpc: '2.0' as const, id, error: { code: SESSION_CLOSED_RPC_CODE, message: 'Session closed' } });
      }
    }
    this.exchanges.clear();
    const s = this.standalone;
    this.standalone = undefined;
    if (s) {
      this.keepAlives?.cancel(s.keepAliveTimer);
      s.res.end();
    }
    this.keepAlives?.close(); // every response has ended: no keep-alive is left to write
    this.onclose?.();
  }
}
