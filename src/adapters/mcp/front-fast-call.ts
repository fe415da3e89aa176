/**
 * tools/call dispatched straight from the session's transport to runToolCall (front-call-tool.ts), past
 * the SDK's Protocol. Per call, Protocol classified the message with several zod parses, built an
 * AbortController and a large `extra`, and chained four promises before the handler ran; under load
 * that was a fifth of the daemon's CPU per call (docs/benchmarks.md, "Throughput").
 *
 * Everything a call does is still done by runToolCall and the catalog (quarantine, filters, timeouts,
 * progress, observers, error mapping); this file only replaces the dispatch, and answers exactly as
 * Protocol does:
 * - the result as `{ result, jsonrpc, id }`; a failure as `{ jsonrpc, id, error: { code, message, data } }`
 *   with a non-integer code replaced by -32603 (InternalError);
 * - `notifications/cancelled` for a call in flight aborts it and nothing is answered;
 * - progress notifications are tied to the request and stop once it is cancelled.
 * The session's close aborts every call through `s.calls` (mcp-front.ts) and the transport answers the
 * open requests itself. Requests this path does not take (task-augmented ones, unusual ids) go to
 * Protocol as before.
 *
 * tools/list too (sessions in `all` tool mode): the catalog's list with its JSON text reused while the
 * list is the same (a frozen array), so 500 upstreams' tools are not re-serialized per request. Only
 * plain params (a cursor, `_meta`) are taken; anything else gets Protocol's validation.
 */
import {
  ErrorCode as McpErrorCode,
  type JSONRPCMessage,
  type RequestId,
  type ServerNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { getEventListeners } from 'node:events';
import { isPlainObject } from '../../core/plain-object.js';
import { isRequestId } from './json-rpc-message.js';
import { CallController } from './call-controller.js';
import { startToolCall, type CallingSession, type CallToolDeps, type ToolCallSink } from './front-call-tool.js';
import type { StreamableHttpTransport } from './streamable-http-transport.js';

/** Spare controllers kept per session (calls in flight at once beyond this allocate new ones). */
const MAX_SPARE_CONTROLLERS = 64;

/** A call in flight on the direct path; its own sink (no closures per call for the outcome). */
class FastCall implements ToolCallSink {
  cancelled = false;

  constructor(
    readonly ctl: CallController,
    readonly id: RequestId,
    private readonly calls: FastCallsState,
  ) {}

  succeed(result: unknown): void {
    const c = this.calls;
    c.ended(this);
    if (!this.cancelled) c.send({ result, jsonrpc: '2.0', id: this.id } as JSONRPCMessage);
  }

  fail(err: unknown): void {
    const c = this.calls;
    c.ended(this);
    if (this.cancelled) return;
    const e = (err ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
    const error: { code: number; message: string; data?: unknown } = {
      code: Number.isSafeInteger(e.code) ? (e.code as number) : McpErrorCode.InternalError,
      message: typeof e.message === 'string' ? e.message : 'Internal error',
    };
    if (e.data !== undefined) error.data = e.data;
    c.send({ jsonrpc: '2.0', id: this.id, error } as JSONRPCMessage);
  }
}

const notifyNothing = (): Promise<void> => Promise.resolve();

/** What a FastCall needs of its session's direct path. */
interface FastCallsState {
  /** The call ended (before its answer is sent): no longer in flight, its controller back to the pool. */
  ended(call: FastCall): void;
  send(message: JSONRPCMessage): void;
}

export interface FastCalls {
  /** Takes a message off the transport when it is a tools/call (or a cancellation of one) this path serves; false: Protocol's. */
  take(message: JSONRPCMessage): boolean;
}

/**
 * The JSON text of `{ tools }` per frozen tools array (SupervisorCatalog hands out the same frozen array
 * while nothing changed); an array that is not frozen may still change and is serialized every time.
 */
const listTexts = new WeakMap<readonly unknown[], string>();

function listText(tools: readonly unknown[]): string | undefined {
  if (!Object.isFrozen(tools)) return undefined;
  let text = listTexts.get(tools);
  if (text === undefined) {
    try {
      text = JSON.stringify({ tools });
    } catch {
      return undefined; // the transport reports it (E_SERIALIZATION_FAILED) when it serializes the answer itself
    }
    listTexts.set(tools, text);
  }
  return text;
}

/** tools/list params this path answers: none, or a cursor and _meta (one page: the front does not page tools). */
function plainListParams(params: unknown): boolean {
  if (params === undefined) return true;
  if (!isPlainObject(params)) return false;
  for (const k in params) {
    const v = params[k];
    if (k === 'cursor' ? typeof v !== 'string' : k !== '_meta' || !isPlainObject(v)) return false;
  }
  return true;
}

export function createFastCalls(
  deps: CallToolDeps,
  s: CallingSession,
  transport: StreamableHttpTransport,
  onerror: (err: Error) => void,
  /** The session's tools/list answer (its `tools` array). */
  listTools: () => readonly unknown[],
): FastCalls {
  const inflight = new Map<RequestId, FastCall>();
  /**
   * Controllers of calls that ended without being aborted and that nothing listens to any more, reused.
   * Node 20 builds each AbortSignal with a prototype swap (about 20 µs of a call's ~450 µs of CPU in
   * a profile under load, docs/benchmarks.md "Throughput"). A controller is reused only when its signal
   * was never aborted and has no listener or hook left: the direct upstream path and runToolCall remove
   * their abort hooks (call-controller.ts) when the call settles, while a path that keeps one (the SDK's request() for progress and remote
   * upstreams) leaves its controller out of the pool, so no old call can see a later call's abort.
   */
  const spare: CallController[] = [];

  const release = (ctl: CallController): void => {
    if (
      spare.length < MAX_SPARE_CONTROLLERS &&
      !ctl.signal.aborted &&
      ctl.hooks.size === 0 &&
      getEventListeners(ctl.signal, 'abort').length === 0
    ) {
      spare.push(ctl);
    }
  };

  // Answers go out synchronously (sendNow): no promise per call.
  const send = (message: JSONRPCMessage): void => {
    try {
      transport.sendNow(message);
    } catch (err) {
      onerror(new Error(`Failed to send response: ${String(err)}`));
    }
  };

  const state: FastCallsState = {
    ended(call) {
      if (inflight.get(call.id) === call) inflight.delete(call.id);
      release(call.ctl);
    },
    send,
  };

  function start(id: RequestId, params: Record<string, unknown> | undefined): void {
    const call = new FastCall(spare.pop() ?? new CallController(), id, state);
    inflight.set(id, call);
    const token = isPlainObject(params?.['_meta']) ? params['_meta']['progressToken'] : undefined;
    const progressToken = typeof token === 'string' || typeof token === 'number' ? token : undefined;
    // Only a call with a progress token notifies.
    const notify =
      progressToken === undefined
        ? notifyNothing
        : async (n: ServerNotification): Promise<void> => {
            if (!call.cancelled) await transport.send({ ...n, jsonrpc: '2.0' } as JSONRPCMessage, { relatedRequestId: id });
          };
    startToolCall(deps, s, params, call.ctl, progressToken, notify, call);
  }

  function list(id: RequestId): void {
    let tools: readonly unknown[];
    try {
      tools = listTools();
    } catch (err) {
      const e = err as { message?: unknown };
      const message = typeof e?.message === 'string' ? e.message : 'Internal error';
      return send({ jsonrpc: '2.0', id, error: { code: McpErrorCode.InternalError, message } } as JSONRPCMessage);
    }
    const answer = { result: { tools }, jsonrpc: '2.0', id } as JSONRPCMessage;
    const text = listText(tools);
    const sent =
      text === undefined
        ? transport.send(answer)
        : transport.sendSerialized(answer, `{"result":${text},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`);
    sent.catch((err: unknown) => onerror(new Error(`Failed to send response: ${String(err)}`)));
  }

  return {
    take(message) {
      const m = message as { method?: unknown; id?: unknown; params?: unknown };
      if (m.method === 'tools/list') {
        if (!('id' in m) || !isRequestId(m.id) || !plainListParams(m.params)) return false;
        list(m.id);
        return true;
      }
      if (m.method === 'tools/call') {
        if (!('id' in m) || !isRequestId(m.id)) return false;
        const params = m.params;
        if (params !== undefined && !isPlainObject(params)) return false;
        // Task-augmented requests keep Protocol's handling (it refuses them: no task capability).
        if (
          params !== undefined &&
          ('task' in params || (isPlainObject(params['_meta']) && Object.keys(params['_meta']).some((k) => k !== 'progressToken')))
        ) {
          return false;
        }
        start(m.id, params);
        return true;
      }
      if (m.method === 'notifications/cancelled' && inflight.size > 0 && isPlainObject(m.params)) {
        const id = m.params['requestId'];
        const call = isRequestId(id) ? inflight.get(id) : undefined;
        if (!call) return false;
        inflight.delete(id as RequestId);
        call.cancelled = true;
        call.ctl.abort(m.params['reason']);
        return true;
      }
      return false;
    },
  };
}
