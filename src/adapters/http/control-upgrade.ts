/**
 * Authentication of a control-channel upgrade, before any WebSocket exists: the token as
 * `Authorization: Bearer <token>` or as the subprotocol entry `auth.<token>` beside `mcp-warden.v1`,
 * and refusals written as plain HTTP responses on the raw socket (docs/control-protocol.md).
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCodes, httpStatusOf } from '../../core/error-codes.js';
import { AUTH_PROTOCOL_PREFIX, CONTROL_PROTOCOL, ControlErrorCodes } from '../../control/protocol.js';
import { headerValue } from './headers.js';
import { checkBearer, safeEqual } from './request-guards.js';

export interface UpgradeRefusal {
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/** Null when the request carries the token and offers our subprotocol (or none); else the refusal. */
export function authenticateUpgrade(req: IncomingMessage, token: string): UpgradeRefusal | null {
  const protocols = offeredProtocols(req);
  const authorization = headerValue(req.headers.authorization);
  // A header sent twice has no agreed reading: it never authenticates.
  const bearerOk = authorization !== null && protocols !== null && checkBearer(authorization, token);
  let protocolOk = false;
  for (const p of protocols ?? []) {
    if (p.startsWith(AUTH_PROTOCOL_PREFIX) && safeEqual(p.slice(AUTH_PROTOCOL_PREFIX.length), token)) protocolOk = true;
  }
  if (!bearerOk && !protocolOk) {
    return {
      code: ErrorCodes.UNAUTHORIZED,
      message: `Unauthorized: send the token from the data dir's "token" file as "Authorization: Bearer <token>" or as the subprotocol "${AUTH_PROTOCOL_PREFIX}<token>" beside "${CONTROL_PROTOCOL}"`,
      headers: { 'WWW-Authenticate': 'Bearer' },
    };
  }
  if (protocols !== undefined && !protocols?.includes(CONTROL_PROTOCOL)) {
    return { code: ControlErrorCodes.BAD_SUBPROTOCOL, message: `the subprotocol "${CONTROL_PROTOCOL}" must be offered` };
  }
  return null;
}

/** An HTTP error response on a socket that was never upgraded, then the socket is closed. */
export function refuseUpgrade(socket: Duplex, code: string, message: string, extra: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const status = httpStatusOf(code);
  const body = JSON.stringify({ error: { code, message } });
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    Connection: 'close',
    ...extra,
  };
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n');
  socket.once('finish', () => socket.destroy());
  socket.once('error', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${head}\r\n\r\n${body}`);
  // A peer that never reads must not keep the socket: destroy after a short grace regardless.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

/** Splits a Sec-WebSocket-Protocol header into its entries; null when it cannot be read unambiguously. */
function offeredProtocols(req: IncomingMessage): string[] | undefined | null {
  const raw = headerValue(req.headers['sec-websocket-protocol']);
  if (raw === undefined || raw === null) return raw;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
