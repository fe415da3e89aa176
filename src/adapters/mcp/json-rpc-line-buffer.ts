/**
 * Newline-delimited JSON-RPC framing for an upstream's stdout, with the SDK ReadBuffer's contract
 * (append throws when an unterminated message outgrows maxBufferSize; readMessage returns null until
 * a whole line is there and throws for a malformed line after consuming it) but a structural check
 * instead of a zod parse per message (json-rpc-message.ts).
 *
 * An unterminated line is kept as a list of chunks and joined once, when its newline arrives: joining
 * on every chunk would copy a 30 MB message hundreds of times.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcMessage } from './json-rpc-message.js';

/** The SDK's default (STDIO_DEFAULT_MAX_BUFFER_SIZE): 10 MiB. */
const DEFAULT_MAX_LINE_BUFFER_BYTES = 10 * 1024 * 1024;

/** Bytes kept of each end of an oversized line: enough to find a response's id. */
export const LINE_END_BYTES = 256;

/**
 * A line over the size limit. `prefix` is its first LINE_END_BYTES; `suffix` its last ones when the
 * whole line was seen (readMessage), undefined when append gave up before its end (the rest of the
 * line is still to come on the stream).
 */
export class LineTooLongError extends Error {
  constructor(
    readonly maxBytes: number,
    readonly prefix: string,
    readonly suffix?: string,
  ) {
    super(`ReadBuffer exceeded maximum size of ${maxBytes} bytes`);
    this.name = 'LineTooLongError';
  }
}

/** The first `n` bytes of the concatenation of `parts`, without joining them all. */
function firstBytes(parts: Buffer[], n: number): Buffer {
  const out: Buffer[] = [];
  let size = 0;
  for (const p of parts) {
    if (size >= n) break;
    out.push(p.subarray(0, n - size));
    size += Math.min(p.length, n - size);
  }
  return Buffer.concat(out);
}

export class JsonRpcLineBuffer {
  /**
   * Complete data not yet read: `head` from `start` on (which may hold newlines) followed by `tail`
   * chunks without one. Reading a line moves `start` instead of making a view of the rest per line.
   */
  private head: Buffer | undefined;
  private start = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private readonly maxBytes: number;

  constructor(opts: { maxBufferSize?: number } = {}) {
    this.maxBytes = opts.maxBufferSize ?? DEFAULT_MAX_LINE_BUFFER_BYTES;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const head = this.head;
    if (chunk.indexOf(10) === -1) {
      // Still inside one line: its size so far is what follows the head's last newline, plus the tail.
      const restAt = head ? Math.max(this.start, head.lastIndexOf(10) + 1) : 0;
      const headRest = head ? head.length - restAt : 0;
      if (headRest + this.tailBytes + chunk.length > this.maxBytes) {
        const pieces = head ? [head.subarray(restAt), ...this.tail, chunk] : [...this.tail, chunk];
        const prefix = firstBytes(pieces, LINE_END_BYTES).toString('utf8');
        this.clear();
        throw new LineTooLongError(this.maxBytes, prefix);
      }
      this.tail.push(chunk);
      this.tailBytes += chunk.length;
      return;
    }
    if (head === undefined && this.tail.length === 0) {
      this.head = chunk;
    } else {
      const parts = head ? [head.subarray(this.start), ...this.tail, chunk] : [...this.tail, chunk];
      this.head = Buffer.concat(parts);
      this.tail = [];
      this.tailBytes = 0;
    }
    this.start = 0;
  }

  readMessage(): JSONRPCMessage | null {
    const buf = this.head;
    if (!buf) return null;
    const start = this.start;
    const nl = buf.indexOf(10, start); // '\n'
    if (nl === -1) return null;
    if (nl - start > this.maxBytes) {
      const prefix = buf.toString('utf8', start, start + LINE_END_BYTES);
      const suffix = buf.toString('utf8', Math.max(start, nl - LINE_END_BYTES), nl);
      this.consume(buf, nl + 1);
      throw new LineTooLongError(this.maxBytes, prefix, suffix);
    }
    const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl; // drop a '\r' before it
    const line = buf.toString('utf8', start, end);
    this.consume(buf, nl + 1);
    const value: unknown = JSON.parse(line);
    if (!isJsonRpcMessage(value)) throw new Error(`not a JSON-RPC 2.0 message: ${preview(line)}`);
    return value;
  }

  /** The head is read up to `at`. */
  private consume(buf: Buffer, at: number): void {
    if (at < buf.length) {
      this.start = at;
    } else {
      this.head = undefined;
      this.start = 0;
    }
  }

  clear(): void {
    this.head = undefined;
    this.start = 0;
    this.tail = [];
    this.tailBytes = 0;
  }
}

function preview(line: string): string {
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
