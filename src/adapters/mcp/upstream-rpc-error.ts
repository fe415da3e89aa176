/**
 * An upstream's JSON-RPC error as a typed value (core's UpstreamRpcError), recovered from the SDK's
 * McpError. McpError's message is "MCP error <code>: <wire message>"; an upstream built on the SDK that
 * throws McpError puts that prefixed text on the wire already, so the client side sees it twice. Both
 * copies of the prefix are SDK formatting, not the upstream's words: they are removed here, once, so the
 * text reaches our clients exactly once (their own SDK adds one prefix back).
 */
import type { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { UpstreamRpcError } from '../../core/error-codes.js';

/** `message` without any leading "MCP error <code>: " (for this code only; other text is the upstream's). */
export function stripMcpErrorPrefix(code: number, message: string): string {
  const prefix = `MCP error ${code}: `;
  let m = message;
  while (m.startsWith(prefix)) m = m.slice(prefix.length);
  return m;
}

export function upstreamRpcErrorOf(err: McpError): UpstreamRpcError {
  const u: UpstreamRpcError = { code: err.code, message: stripMcpErrorPrefix(err.code, err.message) };
  if (err.data !== undefined) u.data = err.data;
  return u;
}
