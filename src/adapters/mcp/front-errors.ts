/**
 * How the MCP front reports errors: every status and JSON-RPC code comes from the error catalogue
 * (src/core/error-catalogue.ts); an upstream's own JSON-RPC error goes out with its code and message as
 * they were and its data under `error.data.upstream` (docs/error-codes.md).
 */
import type { ServerResponse } from 'node:http';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  ErrorCodes,
  RpcCodes,
  WardenError,
  httpStatusOf,
  rpcCodeOf,
  type ErrorCode,
  type UpstreamRpcError,
} from '../../core/error-codes.js';
import { sendJson } from '../http/http-server.js';
import { upstreamRpcErrorOf } from './upstream-rpc-error.js';

/** An McpError whose wire message is exactly `message` (McpError itself prefixes "MCP error <code>: "). */
export class FrontMcpError extends McpError {
  constructor(code: number, message: string, data: { code: string; [k: string]: unknown }) {
    super(code, message, data);
    this.message = message;
  }
}

/** Maps anything `catalog.callTool` rejects with to the MCP error sent downstream. */
export function toMcpError(err: unknown, toolName: string): McpError {
  if (err instanceof WardenError) {
    const upstream = err.code === ErrorCodes.UPSTREAM_ERROR ? err.detail?.upstream : undefined;
    if (upstream) return upstreamMcpError(upstream);
    const message = err.code === ErrorCodes.UNKNOWN_TOOL ? `Unknown tool: ${toolName}` : err.message;
    return new FrontMcpError(rpcCodeOf(err.code), message, { code: err.code });
  }
  if (err instanceof McpError) {
    const d = err.data;
    if (d && typeof d === 'object' && typeof (d as { code?: unknown }).code === 'string') return err;
    return upstreamMcpError(upstreamRpcErrorOf(err));
  }
  return new FrontMcpError(RpcCodes.INTERNAL, 'Internal error', { code: ErrorCodes.INTERNAL });
}

/** The upstream's code and message as they were; its data, untouched, beside our code (docs/error-codes.md). */
export function upstreamMcpError(u: UpstreamRpcError): McpError {
  const code = Number.isSafeInteger(u.code) ? u.code : rpcCodeOf(ErrorCodes.UPSTREAM_ERROR);
  const data = u.data === undefined ? { code: ErrorCodes.UPSTREAM_ERROR } : { code: ErrorCodes.UPSTREAM_ERROR, upstream: u.data };
  return new FrontMcpError(code, u.message, data);
}

/** An HTTP-level refusal: JSON-RPC error body, `id: null`, status and JSON-RPC code from the catalogue. */
export function refuse(res: ServerResponse, code: ErrorCode, message: string, headers?: Record<string, string>): void {
  sendJson(res, httpStatusOf(code), { jsonrpc: '2.0', error: { code: rpcCodeOf(code), message, data: { code } }, id: null }, headers);
}
