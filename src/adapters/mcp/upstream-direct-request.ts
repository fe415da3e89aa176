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

/**
 * Wraps the connected client's transport callbacks; undefined when this SDK build does not have the id
 * counter (every request then takes the SDK's path).
 */
export function attachDirectRequests(
  client: Client,
  transport: DirectTransport,
  resultSchema: z.ZodType<Record<string, unknown>>,
  onerror: (err: Error) => void,
): DirectRequest | undefined {
  const ids = client as unknown as IdSource;
  if (typeof ids._requestMessageId !== 'number') return undefined;
  const pending = new Map<number, (a: Answer) => void>();
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
      const done = typeof id === 'number' ? pending.get(id) : undefined;
      if (done) return done(message);
    }
    protocolOnMessage?.(message, extra);
  };
  const protocolOnClose = transport.onclose;
  transport.onclose = () => {
    closed = true;
    protocolOnClose?.();
    const err = McpError.fromError(ErrorCode.ConnectionClosed, 'Connection closed');
    for (const done of [...pending.values()]) done(err);
    pending.clear();
    for (const q of timeouts.values()) q.close();
  };

  return (req, signal, timeoutMs, failure) =>
    new Promise<Record<string, unknown>>((resolve, rejectAs) => {
      const reject = failure === undefined ? rejectAs : (err: unknown) => rejectAs(failure(err));
      if (closed) return reject(new Error('Not connected'));
      if (signal?.aborted) return reject(signal.reason);
      const id = ids._requestMessageId++;
      const deadlines = timeoutsOf(timeoutMs);
      let deadline: Deadline | undefined;
      let stopAbort: (() => void) | undefined;
      const finish = () => {
        pending.delete(id);
        deadlines.cancel(deadline);
        stopAbort?.();
      };
      const cancel = (reason: unknown) => {
        finish();
        transport
          .send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: String(reason) } })
          .catch((err: unknown) => onerror(new Error(`Failed to send cancellation: ${String(err)}`)));
        reject(reason instanceof McpError ? reason : new McpError(ErrorCode.RequestTimeout, String(reason)));
      };
      pending.set(id, (a) => {
        finish();
        if (a instanceof Error) return reject(a);
        if ('result' in a) {
          const result: unknown = a.result;
          if (isPlainObject(result)) return resolve(result);
          const parsed = resultSchema.safeParse(result);
          return parsed.success ? resolve(parsed.data) : reject(parsed.error);
        }
        const e = (a as { error: { code: number; message: string; data?: unknown } }).error;
        reject(McpError.fromError(e.code, e.message, e.data));
      });
      if (signal) stopAbort = onAbort(signal, () => cancel(signal.reason));
      deadline = deadlines.add(() => cancel(McpError.fromError(ErrorCode.RequestTimeout, 'Request timed out', { timeout: timeoutMs })));
      // Built literally in the SDK's key order (method, params, jsonrpc, id): a spread here was a tenth of
      // the call path's own CPU in a profile under load.
      const message = (
        req.params === undefined
          ? { method: req.method, jsonrpc: '2.0', id }
          : { method: req.method, params: req.params, jsonrpc: '2.0', id }
      ) as JSONRPCMessage;
      let written: boolean;
      try {
        written = transport.sendNow(message);
      } catch (err) {
        finish();
        return reject(err);
      }
      // A backed-up pipe: the request fails if stdin goes away before it drains, as send() would.
      if (!written) {
        transport.afterDrain((err) => {
          if (err === undefined || !pending.has(id)) return;
          finish();
          reject(err);
        });
      }
    });
}
