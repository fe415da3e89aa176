/**
 * One tool call as the observability side records it (metrics, the call log, traces), and how its
 * outcome is read from what the call path saw. Pure: no I/O.
 */
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { isPlainObject } from '../../core/plain-object.js';
import { splitToolName } from '../../core/tool-catalog.js';

/** `tool_error`: the upstream answered with `isError: true`; `error`: the call failed; `timeout`, `cancelled`: as said. */
export const CALL_OUTCOMES = ['ok', 'tool_error', 'error', 'timeout', 'cancelled'] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/** What `mcp-warden calls --json`, `calls.list` and the visualizer get for one call. */
export interface CallEntry {
  /** When the call arrived (ISO 8601, UTC). */
  time: string;
  /** The server the name routes to ("" when the name names none). */
  server: string;
  /** The upstream's own tool name. */
  tool: string;
  /** The MCP session id of the client (null before it has one). */
  session: string | null;
  durationMs: number;
  outcome: CallOutcome;
  /** The E_* code of a failed call (E_UPSTREAM_ERROR for an upstream JSON-RPC error); null otherwise. */
  errorCode: string | null;
}

/** A call-log line: the entry, plus arguments and result when settings.callLogPayloads asks (redacted). */
export interface CallLogLine extends CallEntry {
  arguments?: unknown;
  result?: unknown;
}

/** Names are cut to this length in records: an agent may send anything as a tool name. */
const MAX_NAME = 128;

export function clip(s: string): string {
  return s.length > MAX_NAME ? s.slice(0, MAX_NAME) : s;
}

/** `<server>__<tool>` on /mcp, the upstream's own name on /mcp/<server>. */
export function routeOf(scope: string | undefined, name: string): { server: string; tool: string } {
  if (scope !== undefined) return { server: scope, tool: name };
  return splitToolName(name) ?? { server: '', tool: name };
}

/** The outcome of a call that returned `result`, or failed with `err` (`aborted`: our controller was aborted). */
export function outcomeOf(result: unknown, err: unknown, aborted: boolean): { outcome: CallOutcome; errorCode: string | null } {
  if (err === undefined) {
    return isPlainObject(result) && result['isError'] === true
      ? { outcome: 'tool_error', errorCode: null }
      : { outcome: 'ok', errorCode: null };
  }
  const code = errorCodeOf(err);
  if (code === ErrorCodes.UPSTREAM_TIMEOUT) return { outcome: 'timeout', errorCode: code };
  // A client's cancellation carries the SDK's reason, not one of our codes; a closed session says E_SHUTTING_DOWN.
  if (aborted) return { outcome: 'cancelled', errorCode: err instanceof WardenError ? err.code : null };
  return { outcome: 'error', errorCode: code };
}

function errorCodeOf(err: unknown): string {
  if (err instanceof WardenError) return err.code;
  if (err instanceof McpError) {
    const d: unknown = err.data;
    if (isPlainObject(d) && typeof d['code'] === 'string') return d['code'];
    return ErrorCodes.UPSTREAM_ERROR;
  }
  return ErrorCodes.INTERNAL;
}
