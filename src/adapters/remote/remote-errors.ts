/**
 * The SDK client transports' own failures as coded errors (docs/error-codes.md, E_REMOTE_*). Errors
 * that our fetch produced (remote-fetch.ts) are WardenErrors already; the transports sometimes
 * re-wrap them (the SSE transport's EventSource keeps only the message), so the fetch's last
 * failure is consulted too.
 */
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { OAuthError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import type { RemoteFetch } from './remote-fetch.js';
import { needsAuthError } from './remote-auth-error.js';

/** HTTP statuses of the initialize POST on which a transport-less entry falls back to legacy SSE (the spec's 4xx). */
export const SSE_FALLBACK_STATUSES: ReadonlySet<number> = new Set([400, 404, 405]);

/** The HTTP status a transport error carries (StreamableHTTPError, SseError), if any. */
export function httpStatusOfTransportError(err: unknown): number | undefined {
  if (err instanceof StreamableHTTPError || err instanceof SseError) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'number' && code >= 100 ? code : undefined;
  }
  if (err instanceof WardenError && err.code === ErrorCodes.REMOTE_HTTP_STATUS) return err.detail?.statusCode;
  return undefined;
}

export function classifyRemoteError(name: string, err: unknown, pool?: RemoteFetch): WardenError | undefined {
  if (err instanceof WardenError) return err;
  if (err instanceof UnauthorizedError) return needsAuthError(name, 'the server requires an OAuth login');
  if (err instanceof OAuthError) return needsAuthError(name, `OAuth failed (${err.errorCode}: ${err.message})`);
  const status = httpStatusOfTransportError(err);
  const message = err instanceof Error ? err.message : String(err);
  if (status === 401) return needsAuthError(name, 'the server answered 401 (unauthorized)');
  if (status !== undefined) {
    const retryAfterMs = pool?.lastRetryAfterMs();
    return new WardenError(
      ErrorCodes.REMOTE_HTTP_STATUS,
      `${name}: the server answered HTTP ${status}${retryAfterMs !== undefined ? ` (Retry-After ${Math.round(retryAfterMs / 1000)} s)` : ''}: ${message}`,
      { server: name, statusCode: status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
    );
  }
  if (err instanceof StreamableHTTPError && /content type/i.test(message)) {
    return new WardenError(ErrorCodes.REMOTE_NOT_MCP, `${name}: ${message}`, { server: name });
  }
  if (err instanceof SseError || err instanceof StreamableHTTPError) {
    const last = pool?.lastFailure();
    if (last) return last;
    if (/content type|text\/event-stream/i.test(message))
      return new WardenError(ErrorCodes.REMOTE_NOT_MCP, `${name}: ${message}`, { server: name });
    return new WardenError(ErrorCodes.REMOTE_UNREACHABLE, `${name}: ${message}`, { server: name });
  }
  return undefined;
}
