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
import type {
  CallSink,
  CatalogCallOptions,
  CatalogCallResult,
  DownstreamPeer,
  ProgressUpdate,
  ToolCatalog,
} from '../../core/tool-catalog.js';
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
 * from the sink. With a catalog that has callToolThen (the daemon's) no promise is made per call at all,
 * and the call's state is one object, not a closure per step.
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
  if (!isPlainObject(params) || typeof params['name'] !== 'string') {
    return sink.fail(new McpError(McpErrorCode.InvalidParams, 'Invalid tools/call request: params.name must be a string'));
  }
  const name = params['name'];
  const args = params['arguments'];
  if (args !== undefined && !isPlainObject(args)) {
    return sink.fail(new McpError(McpErrorCode.InvalidParams, 'Invalid tools/call request: params.arguments must be an object'));
  }
  new ToolCallRun(deps, s, name, args, ctl, sink).start(progressToken, notify);
}

/** One tools/call from the front to the catalog: settled once, by the catalog, an abort or the backstop deadline. */
class ToolCallRun implements CallSink<CatalogCallResult> {
  private readonly startedAt: number;
  private settled = false;
  private deadline: Deadline | undefined = undefined;
  private stopAbort: (() => void) | undefined = undefined;
  private readonly expire = (): void =>
    this.ctl.abort(
      new WardenError(ErrorCodes.UPSTREAM_TIMEOUT, `Tool call ${this.name} did not complete within ${this.deps.callDeadlineMs} ms`),
    );

  constructor(
    private readonly deps: CallToolDeps,
    private readonly s: CallingSession,
    private readonly name: string,
    private readonly args: Record<string, unknown> | undefined,
    private readonly ctl: CallController,
    private readonly sink: ToolCallSink,
  ) {
    this.startedAt = deps.observer === undefined ? 0 : performance.now();
  }

  start(progressToken: string | number | undefined, notify: (n: ServerNotification) => Promise<void>): void {
    const { deps, s, ctl } = this;
    s.calls.add(ctl);
    if (s.closed) ctl.abort(new WardenError(ErrorCodes.SHUTTING_DOWN, 'session closed'));
    // Once aborted nobody will read the answer: stop waiting even if the catalog ignores the signal.
    if (ctl.signal.aborted) return this.aborted();
    this.stopAbort = onAbort(ctl.signal, () => this.aborted());
    // The deadline aborts the call; the abort hook above settles it (with the signal aborted, as observers expect).
    this.deadline = deps.deadlines.add(this.expire);

    // One options object per call, as before: it also marks the call in flight for routing.
    const callOpts: CatalogCallOptions = { signal: ctl.signal, signalPerCall: true, peer: s.peer, scope: s.scope };
    if (progressToken !== undefined) callOpts.onprogress = (u) => this.progress(u, progressToken, notify);
    const catalog = deps.catalog;
    try {
      if (catalog.callToolThen) return catalog.callToolThen(this.name, this.args, callOpts, this);
      Promise.resolve(catalog.callTool(this.name, this.args, callOpts)).then(
        (result) => this.succeed(result),
        (err: unknown) => this.fail(err),
      );
    } catch (err) {
      this.fail(err);
    }
  }

  private progress(u: ProgressUpdate, progressToken: string | number, notify: (n: ServerNotification) => Promise<void>): void {
    if (this.settled) return;
    // Progress proves liveness, as resetTimeoutOnProgress does upstream.
    const deadlines = this.deps.deadlines;
    deadlines.cancel(this.deadline);
    this.deadline = deadlines.add(this.expire);
    const p: Record<string, unknown> = { progressToken, progress: u.progress };
    if (u.total !== undefined) p['total'] = u.total;
    if (u.message !== undefined) p['message'] = u.message;
    notify({ method: 'notifications/progress', params: p } as ServerNotification).catch((err: unknown) =>
      this.deps.logger.debug({ err: String(err) }, 'progress not delivered'),
    );
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.deps.deadlines.cancel(this.deadline);
    this.stopAbort?.();
    return true;
  }

  private aborted(): void {
    if (this.settle()) this.failed(this.ctl.signal.reason);
  }

  /** The catalog's result (CallSink). */
  succeed(result: CatalogCallResult): void {
    if (!this.settle()) return;
    if (!isPlainObject(result)) return this.failed(new WardenError(ErrorCodes.INTERNAL, 'catalog returned a non-object tool result'));
    const { s, ctl } = this;
    this.deps.observer?.ended(s.scope, this.name, s.id, this.args, this.startedAt, result, undefined, false);
    s.calls.delete(ctl);
    this.sink.succeed(result as ServerResult);
  }

  /** The catalog's failure (CallSink). */
  fail(err: unknown): void {
    if (this.settle()) this.failed(err);
  }

  private failed(err: unknown): void {
    const { deps, s, ctl, name } = this;
    deps.observer?.ended(s.scope, name, s.id, this.args, this.startedAt, undefined, err, ctl.signal.aborted);
    const mapped = toMcpError(err, name);
    if (!(err instanceof WardenError) && !(err instanceof McpError) && !ctl.signal.aborted) {
      deps.logger.warn({ err, tool: name }, 'tool call failed unexpectedly');
    }
    s.calls.delete(ctl);
    this.sink.fail(mapped);
  }
}
