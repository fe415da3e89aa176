/**
 * The id of a JSON-RPC response too large to parse, read from the two ends of its line, so that only
 * the request it answers fails and the server's connection survives. Only shapes that surely are a
 * response count: `{"result"|"error": …, "jsonrpc":"2.0", "id": N}` (JavaScript SDKs put the id last)
 * and `{["jsonrpc":"2.0",] "id": N, ["jsonrpc":"2.0",] "result"|"error": …}` (pydantic puts it first).
 * Anything else (a server-to-client request, a notification, another key order) gives undefined, and
 * the caller fails the connection instead of guessing.
 */
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';

const ID = String.raw`(-?\d+|"(?:[^"\\]|\\.)*")`;
const JSONRPC = String.raw`(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?`;
const LEADING_ID = new RegExp(String.raw`^\s*\{\s*${JSONRPC}"id"\s*:\s*${ID}\s*,\s*${JSONRPC}"(?:result|error)"\s*:`);
const LEADING_RESULT = /^\s*\{\s*"(?:result|error)"\s*:/;
const TRAILING_ID = new RegExp(String.raw`"id"\s*:\s*${ID}\s*\}\s*$`);

export function oversizedResponseId(prefix: string, suffix: string | undefined): RequestId | undefined {
  let raw = LEADING_ID.exec(prefix)?.[1];
  if (raw === undefined && suffix !== undefined && LEADING_RESULT.test(prefix)) raw = TRAILING_ID.exec(suffix)?.[1];
  if (raw === undefined) return undefined;
  try {
    const id: unknown = JSON.parse(raw);
    return typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id)) ? id : undefined;
  } catch {
    return undefined;
  }
}
