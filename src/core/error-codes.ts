/**
 * Stable error codes. They appear in logs, /healthz, MCP error `data.code`, CLI output and the
 * control channel. docs/error-codes.md describes each; never change the meaning of an existing code.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'E_CONFIG_INVALID',
  CONFIG_UNREADABLE: 'E_CONFIG_UNREADABLE',
  REMOTE_UNSUPPORTED: 'E_REMOTE_UNSUPPORTED',
  SPAWN_FAILED: 'E_SPAWN_FAILED',
  INIT_TIMEOUT: 'E_INIT_TIMEOUT',
  INIT_FAILED: 'E_INIT_FAILED',
  UPSTREAM_EXITED: 'E_UPSTREAM_EXITED',
  CRASH_LOOP: 'E_CRASH_LOOP',
  STOP_FAILED: 'E_STOP_FAILED',
  REAP_FAILED: 'E_REAP_FAILED',
  UNKNOWN_TOOL: 'E_UNKNOWN_TOOL',
  SERVER_UNAVAILABLE: 'E_SERVER_UNAVAILABLE',
  QUARANTINED: 'E_QUARANTINED',
  TOOLS_CHANGED: 'E_TOOLS_CHANGED',
  APPROVALS_CORRUPT: 'E_APPROVALS_CORRUPT',
  UPSTREAM_ERROR: 'E_UPSTREAM_ERROR',
  UPSTREAM_TIMEOUT: 'E_UPSTREAM_TIMEOUT',
  SHUTTING_DOWN: 'E_SHUTTING_DOWN',
  TOO_MANY_SESSIONS: 'E_TOO_MANY_SESSIONS',
  FORBIDDEN_HOST: 'E_FORBIDDEN_HOST',
  FORBIDDEN_ORIGIN: 'E_FORBIDDEN_ORIGIN',
  UNAUTHORIZED: 'E_UNAUTHORIZED',
  LISTEN_FAILED: 'E_LISTEN_FAILED',
  NON_LOOPBACK_REFUSED: 'E_NON_LOOPBACK_REFUSED',
  DATA_DIR_UNWRITABLE: 'E_DATA_DIR_UNWRITABLE',
  ALREADY_RUNNING: 'E_ALREADY_RUNNING',
  LOCK_COMPROMISED: 'E_LOCK_COMPROMISED',
  DOCKER_UNAVAILABLE: 'E_DOCKER_UNAVAILABLE',
  DOCKER_FAILED: 'E_DOCKER_FAILED',
  DOCKER_IMAGE_MISSING: 'E_DOCKER_IMAGE_MISSING',
  CONTAINER_EXITED: 'E_CONTAINER_EXITED',
  INTERNAL: 'E_INTERNAL',
  BAD_ARGS: 'E_BAD_ARGS',
  SERVER_EXISTS: 'E_SERVER_EXISTS',
  UNKNOWN_SERVER: 'E_UNKNOWN_SERVER',
  SERVER_DISABLED: 'E_SERVER_DISABLED',
  NOT_AVAILABLE: 'E_NOT_AVAILABLE',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error with a stable code; `detail` is safe to show to users (no secrets). */
export class WardenError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: Record<string, unknown>,
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
