/**
 * Structural JSON-RPC 2.0 checks for messages that come off a wire (a POST body, an upstream's stdout
 * line). They replace the SDK's `JSONRPCMessageSchema.parse` (a zod union that builds and discards
 * issue objects for every branch a message is not) on our hot paths; the SDK's Protocol still
 * classifies the messages it gets itself (tools/call and tools/list skip it: front-fast-call.ts) and a
 * handler's own schema validates a request's params.
 */
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { isPlainObject } from '../../core/plain-object.js';

/** A JSON-RPC request id as the SDK accepts it: a string or a safe integer. */
export function isRequestId(v: unknown): v is RequestId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
}

/** A request, notification, result or error in JSON-RPC 2.0 shape (what JSONRPCMessageSchema accepts). */
export function isJsonRpcMessage(m: unknown): m is JSONRPCMessage {
  if (!isPlainObject(m) || m['jsonrpc'] !== '2.0') return false;
  if (typeof m['method'] === 'string') {
    if (m['params'] !== undefined && !isPlainObject(m['params'])) return false;
    return !('id' in m) || isRequestId(m['id']);
  }
  if ('result' in m) return isRequestId(m['id']) && isPlainObject(m['result']);
  if ('error' in m) {
    const e = m['error'];
    return (
      (m['id'] === undefined || isRequestId(m['id'])) &&
      isPlainObject(e) &&
      typeof e['code'] === 'number' &&
      typeof e['message'] === 'string'
    );
  }
  return false;
}
