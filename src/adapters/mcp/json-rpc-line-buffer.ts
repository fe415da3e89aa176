/**
 * Newline-delimited JSON-RPC framing for an upstream's stdout, with the SDK ReadBuffer's contract
 * (append throws when an unterminated message outgrows maxBufferSize; readMessage returns null until
 * a whole line is there and throws for a malformed line after consuming it) but a structural check
 * instead of a zod parse per message (json-rpc-message.ts).
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcMessage } from './json-rpc-message.js';

/** The SDK's default (STDIO_DEFAULT_MAX_BUFFER_SIZE): 10 MiB. */
const DEFAULT_MAX_LINE_BUFFER_BYTES = 10 * 1024 * 1024;

export class JsonRpcLineBuffer {
  private buffer: Buffer | undefined;
  private readonly maxBytes: number;

  constructor(opts: { maxBufferSize?: number } = {}) {
    this.maxBytes = opts.maxBufferSize ?? DEFAULT_MAX_LINE_BUFFER_BYTES;
  }

  append(chunk: Buffer): void {
    const size = (this.buffer?.length ?? 0) + chunk.length;
    if (size > this.maxBytes) {
      this.clear();
      throw new Error(`ReadBuffer exceeded maximum size of ${this.maxBytes} bytes`);
    }
    this.buffer = this.buffer && this.buffer.length > 0 ? Buffer.concat([this.buffer, chunk]) : chunk;
  }

  readMessage(): JSONRPCMessage | null {
    const buf = this.buffer;
    if (!buf) return null;
    const nl = buf.indexOf(10); // '\n'
    if (nl === -1) return null;
    const end = nl > 0 && buf[nl - 1] === 13 ? nl - 1 : nl; // drop a '\r' before it
    const line = buf.toString('utf8', 0, end);
    this.buffer = nl + 1 < buf.length ? buf.subarray(nl + 1) : undefined;
    const value: unknown = JSON.parse(line);
    if (!isJsonRpcMessage(value)) throw new Error(`not a JSON-RPC 2.0 message: ${line.length > 200 ? `${line.slice(0, 200)}…` : line}`);
    return value;
  }

  clear(): void {
    this.buffer = undefined;
  }
}
