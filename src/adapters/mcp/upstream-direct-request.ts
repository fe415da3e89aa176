/**
 * Requests to a stdio upstream past the SDK Client's `request()` (upstream-client.ts uses it for every
 * request without progress, tools/call above all). Per request, the SDK's path classified the answer
 * with zod several times and parsed the result with a zod schema; this one matches the answer by id
 * in a map. It behaves as `Protocol.request` does for these requests:
 * - ids come from the Client's own counter, so they never collide with the requests the SDK still
 *   sends (initialize, progress-carrying calls) and the wire looks the same;
 * - an abort of `signal` or the deadline sends `notifications/cancelled` with the id and String(reason)
 *   and rejects with the reason as an McpError (RequestTimeout "Request timed out" for the deadline),
 *   an answer arriving later goes to Protocol, which reports it as unknown, as before;
 * - an error answer rejects with McpError.fromError(code, message, data) (data by reference: the stdio
 *   transport's synthesized answers are recognized by it); a result that is not an object rejects with
 *   the same zod error the SDK's schema gave;
 * - the transport closing rejects what is in flight with McpError(ConnectionClosed, "Connection closed").
 * Answers this map does not know (the SDK's own requests) and every other message go to Protocol.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';
import { isPlainObject } from '../../core/plain-object.js';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';
import { onAbort } from './call-controller.js';

type Answer = JSONRPCMessage | Error;

export type DirectRequest = (
  req: { method: string; params?: Record<string, unknown> },
  signal: AbortSignal | undefined,
  timeoutMs: number,
  /** Maps what the request fails with before it is rejected (instead of a .catch() per request); none: as is. */
  failure?: (err: unknown) => unknown,
) => Promise<Record<string, unknown>>;

/** Where a request's outcome goes: exactly one of the two, once (possibly at once, for a request that cannot be sent). */
export interface RequestSink {
  succeed(result: Record<string, unknown>): void;
  fail(err: unknown): void;
}

/** A DirectRequest reporting to a sink instead of a promise (the tools/call hot path: no promise per call). */
export type DirectStart = (
  req: { method: string; params?: Record<string, unknown> },
  signal: AbortSignal | undefined,
  timeoutMs: number,
  failure: ((err: unknown) => unknown) | undefined,
  sink: RequestSink,
) => void;

export interface DirectRequests {
  request: DirectRequest;
  start: DirectStart;
}

/**
 * The stdio transport's side of a direct request (process-stdio-transport.ts): a write without a
 * promise per request; when it reports the pipe backed up, afterDrain tells of a failure before it drains.
 */
export interface DirectTransport extends Transport {
  sendNow(message: JSONRPCMessage): boolean;
  afterDrain(settle: (err?: Error) => void): void;
}

/** The Client's request id counter (Protocol's `_requestMessageId`), shared so ids stay unique. */
interface IdSource {
  _requestMessageId: number;
}

/** What every request of one connection shares. */
interface DirectState {
  readonly pending: Map<number, DirectCall>;
  readonly transport: DirectTransport;
  readonly resultSchema: z.ZodType<Record<string, unknown>>;
  readonly onerror: (err: Error) => void;
}

/** One request in flight: answered, cancelled (abort, deadline), or failed by the connection's close. */
class DirectCall {
  deadline: Deadline | undefined = undefined;
  stopAbort: (() => void) | undefined = undefined;
  private settled = false;

  constructor(
    readonly id: number,
    private readonly state: DirectState,
    private readonly deadlines: DeadlineQueue,
    private readonly failure: ((err: unknown) => unknown) | undefined,
    private readonly sink: RequestSink,
  ) {}

  /** Out of the map, no deadline, no abort hook; false when it was already. */
  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.state.pending.delete(this.id);
    this.deadlines.cancel(this.deadline);
    this.stopAbort?.();
    return true;
  }

  private reject(err: unknown): void {
    this.sink.fail(this.failure === undefined ? err : this.failure(err));
  }

  /** The upstream's answer, or the error that ends the request (the connection closed). */
  answer(a: Answer): void {
    if (!this.finish()) return;
    if (a instanceof Error) return this.reject(a);
    if ('result' in a) {
      const result: unknown = a.result;
      if (isPlainObject(result)) return this.sink.succeed(result);
      const parsed = this.state.resultSchema.safeParse(result);
      return parsed.success ? this.sink.succeed(parsed.data) : this.reject(parsed.error);
    }
    const e = (a as { error: { code: number; message: string; data?: unknown } }).error;
    this.reject(McpError.fromError(e.code, e.message, e.data));
  }

  /** Aborted or timed out: the upstream is told, the request fails with the reason. */
  cancel(reason: unknown): void {
    if (!this.finish()) return;
    const { transport, onerror } = this.state;
    transport
      .send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: this.id, reason: String(reason) } })
      .catch((err: unknown) => onerror(new Error(`Failed to send cancellation: ${String(err)}`)));
    this.reject(reason instanceof McpError ? reason : new McpError(ErrorCode.RequestTimeout, String(reason)));
  }

  /** The request could not be written (or its backed-up pipe went away). */
  failed(err: unknown): void {
    if (this.finish()) this.reject(err);
  }
}

/**
 * Wraps the connected client's transport callbacks; undefined when this SDK build does not have the id
 * counter (every request then takes the SDK's path).
 */
export function attachDirectRequests(
  client: Client,
  transport: DirectTransport,
  resultSchema: z.ZodType<Record<string, unknown>>,
  onerror: (err: Error) => void,
): DirectRequests | undefined {
  const ids = client as unknown as IdSource;
  if (typeof ids._requestMessageId !== 'number') return undefined;
  const pending = new Map<number, DirectCall>();
  const state: DirectState = { pending, transport, resultSchema, onerror };
  /** Request timeouts by length (tools/call's, the other requests'): one timer per length, not per request. */
  const timeouts = new Map<number, DeadlineQueue>();
  const timeoutsOf = (ms: number): DeadlineQueue => {
    let q = timeouts.get(ms);
    if (q === undefined) timeouts.set(ms, (q = new DeadlineQueue(ms)));
    return q;
  };
  let closed = false;

  const protocolOnMessage = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if (pending.size > 0 && !('method' in message)) {
      const id = (message as { id?: unknown }).id;
      const call = typeof id === 'number' ? pending.get(id) : undefined;
      if (call) return call.answer(message);
    }
    protocolOnMessage?.(message, extra);
  };
  const protocolOnClose = transport.onclose;
  transport.onclose = () => {
    closed = true;
    protocolOnClose?.();
    const err = McpError.fromError(ErrorCode.ConnectionClosed, 'Connection closed');
    for (const call of [...pending.values()]) call.answer(err);
    pending.clear();
    for (const q of timeouts.values()) q.close();
  };

  const start: DirectStart = (req, signal, timeoutMs, failure, sink) => {
    if (closed) return sink.fail(failure === undefined ? new Error('Not connected') : failure(new Error('Not connected')));
    if (signal?.aborted) return sink.fail(failure === undefined ? signal.reason : failure(signal.reason));
    const id = ids._requestMessageId++;
    const deadlines = timeoutsOf(timeoutMs);
    const call = new DirectCall(id, state, deadlines, failure, sink);
    pending.set(id, call);
    if (signal) call.stopAbort = onAbort(signal, () => call.cancel(signal.reason));
    call.deadline = deadlines.add(() =>
      call.cancel(McpError.fromError(ErrorCode.RequestTimeout, 'Request timed out', { timeout: timeoutMs })),
    );
    // Built literally in the SDK's key order (method, params, jsonrpc, id): a spread here was a tenth of
    // the call path's own CPU in a profile under load.
    const message = (
      req.params === undefined ? { method: req.method, jsonrpc: '2.0', id } : { method: req.method, params: req.params, jsonrpc: '2.0', id }
    ) as JSONRPCMessage;
    let written: boolean;
    try {
      written = transport.sendNow(message);
    } catch (err) {
      return call.failed(err);
    }
    // A backed-up pipe: the request fails if stdin goes away before it drains, as send() would.
    if (!written) transport.afterDrain((err) => err !== undefined && call.failed(err));
  };

  return {
    start,
    request: (req, signal, timeoutMs, failure) =>
      new Promise<Record<string, unknown>>((resolve, reject) => start(req, signal, timeoutMs, failure, { succeed: resolve, fail: reject })),
  };
}
