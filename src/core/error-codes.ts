/**
 * Stable error codes and the error that carries them. The codes themselves, with their HTTP status and
 * JSON-RPC code, live in the one catalogue (src/core/error-catalogue.ts); docs/error-codes.md describes
 * each. They appear in logs, /healthz, MCP error `data.code`, CLI output and the control channel.
 */
import type { ErrorCode } from './error-catalogue.js';

export {
  ErrorCatalogue,
  ErrorCodes,
  RpcCodes,
  allErrorSpecs,
  httpStatusOf,
  pickCodes,
  rpcCodeOf,
  type ErrorCode,
} from './error-catalogue.js';

/**
 * A JSON-RPC error an upstream server answered with, as it was on the wire: `message` without the
 * "MCP error <code>: " prefix the SDK's McpError adds, `data` untouched.
 */
export interface UpstreamRpcError {
  code: number;
  message: string;
  data?: unknown;
}

/** One problem of a config document; `path` is a JSON path as in a whole config file. */
interface ErrorIssue {
  path: string;
  message: string;
}

/**
 * What a WardenError may say besides its message: every field any producer sets, typed. All of it is
 * safe to show to users (no secrets: no env values, no tokens).
 */
export interface WardenErrorDetail {
  /** The server (config name) the error is about. */
  server?: string;
  /** The upstream's JSON-RPC error, for E_UPSTREAM_ERROR and E_INIT_FAILED; the MCP front forwards it. */
  upstream?: UpstreamRpcError;
  /** Config validation problems (read by the control channel's server.add). */
  issues?: ErrorIssue[];
  /** Config warnings found alongside the problems. */
  warnings?: { path: string; message: string; level: 'warning' | 'info' }[];
  /** The JSON-RPC method of a failed upstream request. */
  method?: string;
  timeoutMs?: number;
  /** The upstream connection was already closed when the request failed. */
  connectionClosed?: boolean;
  file?: string;
  line?: number;
  column?: number;
  /** An errno name, e.g. ENOENT. */
  errno?: string;
  command?: string;
  /** A process group that kept members after SIGKILL, and those members' pids. */
  pgid?: number;
  survivors?: number[];
  dataDir?: string;
  lockDir?: string;
  host?: string;
  port?: number;
  /** Docker: the engine address, the API call, its HTTP status, whether it missed its deadline. */
  engine?: string;
  op?: string;
  statusCode?: number;
  timedOut?: boolean;
  container?: string;
  containerId?: string;
  /** A container's exit code (null: unknown). */
  exitCode?: number | null;
  /** Docker: why removing a failed start's container failed too. */
  cleanupFailed?: string;
  /** A remote server's Retry-After (ms, capped by remoteRetryAfterMaxMs): the next restart waits at least this. */
  retryAfterMs?: number;
}

/** An error with a stable code; `detail` is safe to show to users (no secrets). */
export class WardenError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: WardenErrorDetail,
  ) {
    super(message);
    this.name = 'WardenError';
  }
}

/** A plain, serialisable description of any thrown value, for context and events (never throws). */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  at: number;
}

export function toErrorInfo(err: unknown, fallback: ErrorCode, at: number): ErrorInfo {
  if (err instanceof WardenError) return { code: err.code, message: err.message, at };
  const message = err instanceof Error ? err.message : String(err);
  return { code: fallback, message, at };
}
