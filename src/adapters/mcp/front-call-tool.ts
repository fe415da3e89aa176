/**
 * The tools/call path of the MCP front, the hot path: validate by hand, forward to the catalog with
 * our own abort controller (downstream cancellation, session close and the backstop deadline all end
 * up there), relay progress with the client's own token, map failures with front-errors.ts.
 *
 * tools/call is registered through Protocol.prototype.setRequestHandler (see mcp-front.ts), so the
 * SDK's Server does not re-validate (and strip) the upstream's result.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  ErrorCode as McpErrorCode,
  McpError,
  type ServerNotification,
  type ServerRequest,
  type ServerResult,
} from '@modelcontextprotocol/sdk/types.js';
import type { Clock } from '../../core/clock.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { isPlainObject } from '../../core/plain-object.js';
import type { CatalogCallOptions, CatalogCallResult, DownstreamPeer, ProgressUpdate, ToolCatalog } from '../../core/tool-catalog.js';
import type { DeadlineQueue, Deadline } from './deadline-queue.js';
import { CallController, onAbort } from './call-controller.js';
import { toMcpError } from './front-errors.js';

/**
 * tools/call as it comes off the wire: validated by hand (InvalidParams on failure), never stripped.
 * Registered through Protocol.prototype.setRequestHandler so Server does not re-validate the result.
 */
export const CallToolWireSchema = z.object({ method: z.literal('tools/call'), params: z.unknown().optional() });
export type CallToolWire = z.infer<typeof CallToolWireSchema>;
export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface CallToolDeps {
  catalog: ToolCatalog;
  clock: Clock;
  /** The front's own deadline: toolCallTimeoutMs plus a margin, only fires if the catalog never settles. */
  callDeadlineMs: number;
  /** The backstop deadlines of calls in flight (length callDeadlineMs): one timer for all of them. */
  deadlines: DeadlineQueue;
  logger: Logger;
  /** Metrics, the call log, traces (src/adapters/observability/); none: nothing is measured. */
  observer?: CallObserver;
}

/**
 * Told once per tools/call when it ends (hot path: it must only count and buffer, never wait or throw).
 * `startedAt` is the `performance.now()` of the call's arrival; `aborted`: our controller was aborted.
 */
export interface CallObserver {
  ended(
    scope: string | undefined,
    name: string,
    session: string | undefined,
    args: unknown,
    startedAt: number,
    result: unknown,
    err: unknown,
    aborted: boolean,
  ): void;
}

/** What a tool call needs of its session. */
export interface CallingSession {
  readonly scope: string | undefined;
  /** The MCP session id (for the call log). */
  readonly id?: string | undefined;
  readonly peer: DownstreamPeer;
  readonly closed: boolean;
  /** Our own controller per in-flight tools/call; the session aborts them when it closes. */
  readonly calls: Set<AbortController>;
}

export async function callTool(deps: CallToolDeps, s: CallingSession, request: CallToolWire, extra: Extra): Promise<ServerResult> {
  const token = extra._meta?.progressToken;
  const progressToken = typeof token === 'string' || typeof token === 'number' ? token : undefined;
  const ctl = new CallController();
  const onDownstreamAbort = () => ctl.abort(extra.signal.reason);
  if (extra.signal.aborted) ctl.abort(extra.signal.reason);
  else extra.signal.addEventListener('abort', onDownstreamAbort, { once: true });
  try {
    return await runToolCall(deps, s, request.params, ctl, progressToken, (n) => extra.sendNotification(n));
  } finally {
    extra.signal.removeEventListener('abort', onDownstreamAbort);
  }
}

/** Where startToolCall reports a call's end: exactly one of the two, once. */
export interface ToolCallSink {
  succeed(result: ServerResult): void;
  fail(err: McpError): void;
}

/**
 * One tools/call under `ctl`, the call's only controller: downstream cancellation, the session's close
 * and the backstop deadline all abort it. `notify` sends a notification tied to the request (progress).
 * The promise form of startToolCall, for the SDK-dispatched path above.
 */
export function runToolCall(
  deps: CallToolDeps,
  s: CallingSession,
  params: unknown,
  ctl: CallController,
  progressToken: string | number | undefined,
  notify: (n: ServerNotification) => Promise<void>,
): Promise<ServerResult> {
  return new Promise<ServerResult>((resolve, reject) =>
    startToolCall(deps, s, params, ctl, progressToken, notify, { succeed: resolve, fail: reject }),
  );
}

/**
 * runToolCall reporting to `sink` instead of a promise: the direct path (front-fast-call.ts) answers
 * from the sink, without a promise of its own and the microtask hop its settling costs per call.
 * The outcome is observed and mapped where the catalog's promise settles.
 */
export function startToolCall(
  deps: CallToolDeps,
  s: CallingSession,
  params: unknown,
  ctl: CallController,
  progressToken: string | number | undefined,
  notify: (n: ServerNotification) => Promise<void>,
  sink: ToolCallSink,
): void {
  const { catalog, deadlines, callDeadlineMs, logger, observer } = deps;
  if (!isPlainObject(params) || typeof params['name'] !== 'string') {
    return sink.fail(new McpError(McpErrorCode.InvalidParams, 'Invalid tools/call request: params.name must be a string'));
  }
  const name = params['name'];
  const args = params['arguments'];
  if (args !== undefined && !isPlainObject(args)) {
    return sink.fail(new McpError(McpErrorCode.InvalidParams, 'Invalid tools/call request: params.arguments must be an object'));
  }
  const startedAt = observer === undefined ? 0 : performance.now();
  s.calls.add(ctl);
  if (s.closed) ctl.abort(new WardenError(ErrorCodes.SHUTTING_DOWN, 'session closed'));

  let settled = false;
  let deadline: Deadline | undefined;
  let stopAbort: (() => void) | undefined;
  const fail = (err: unknown) => {
    observer?.ended(s.scope, name, s.id, args, startedAt, undefined, err, ctl.signal.aborted);
    const mapped = toMcpError(err, name);
    if (!(err instanceof WardenError) && !(err instanceof McpError) && !ctl.signal.aborted) {
      logger.warn({ err, tool: name }, 'tool call failed unexpectedly');
    }
    s.calls.delete(ctl);
    sink.fail(mapped);
  };
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    deadlines.cancel(deadline);
    stopAbort?.();
    return true;
  };
  // Once aborted nobody will read the answer: stop waiting even if the catalog ignores the signal.
  const aborted = () => {
    if (settle()) fail(ctl.signal.reason);
  };
  // The deadline aborts the call; the abort hook above settles it (with the signal aborted, as observers expect).
  const expire = () =>
    ctl.abort(new WardenError(ErrorCodes.UPSTREAM_TIMEOUT, `Tool call ${name} did not complete within ${callDeadlineMs} ms`));
  if (ctl.signal.aborted) return aborted();
  stopAbort = onAbort(ctl.signal, aborted);
  deadline = deadlines.add(expire);

  const onprogress =
    progressToken === undefined
      ? undefined
      : (u: ProgressUpdate) => {
          if (settled) return;
          // Progress proves liveness, as resetTimeoutOnProgress does upstream.
          deadlines.cancel(deadline);
          deadline = deadlines.add(expire);
          const p: Record<string, unknown> = { progressToken, progress: u.progress };
          if (u.total !== undefined) p['total'] = u.total;
          if (u.message !== undefined) p['message'] = u.message;
          notify({ method: 'notifications/progress', params: p } as ServerNotification).catch((err: unknown) =>
            logger.debug({ err: String(err) }, 'progress not delivered'),
          );
        };

  let pending: Promise<CatalogCallResult>;
  try {
    // One options object per call, as before: it also marks the call in flight for routing.
    const callOpts: CatalogCallOptions = { signal: ctl.signal, signalPerCall: true, peer: s.peer, scope: s.scope };
    if (onprogress) callOpts.onprogress = onprogress;
    pending = Promise.resolve(catalog.callTool(name, args, callOpts));
  } catch (err) {
    pending = Promise.reject(err);
  }
  pending.then(
    (result) => {
      if (!settle()) return;
      if (!isPlainObject(result)) return fail(new WardenError(ErrorCodes.INTERNAL, 'catalog returned a non-object tool result'));
      observer?.ended(s.scope, name, s.id, args, startedAt, result, undefined, false);
      s.calls.delete(ctl);
      sink.succeed(result as ServerResult);
    },
    (err: unknown) => {
      if (settle()) fail(err);
    },
  );
}
