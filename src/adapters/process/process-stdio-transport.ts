/**
 * MCP client transport over an already-spawned process group's stdin/stdout (newline-delimited
 * JSON-RPC). Unlike the SDK's StdioClientTransport it does not spawn and does not kill: the process
 * belongs to its ProcessGroupHandle (and, through it, to the ledger). `close()` only detaches, ends
 * stdin and reports onclose once.
 *
 * A message larger than maxBufferSize is skipped to its end with bounded memory. When it is a
 * response whose id its ends show (oversized-response-id.ts), only that request fails: this transport
 * delivers an error answer for it (E_UPSTREAM_MESSAGE_TOO_LARGE) and the server goes on. Otherwise,
 * and for more than maxGarbageLines non-JSON-RPC lines within garbageWindowMs (E_UPSTREAM_PROTOCOL: a
 * server that sustains garbage is broken, not chatty), the connection ends with a coded reason
 * (`failure()`) that the upstream client gives to requests in flight and the server's lastError.
 */
import type { Readable, Writable } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import { JsonRpcLineBuffer, LINE_END_BYTES, LineTooLongError } from '../mcp/json-rpc-line-buffer.js';
import { oversizedResponseId } from '../mcp/oversized-response-id.js';
import { ErrorCodes, WardenError, rpcCodeOf } from '../../core/error-codes.js';
import { systemClock, type Clock } from '../../core/clock.js';
import type { ExitInfo, ProcessGroupHandle } from './process-group.js';

export type TransportProcess = Pick<ProcessGroupHandle, 'stdin' | 'stdout' | 'onExit'>;

export interface ProcessStdioTransportOptions {
  /** Largest unterminated message accepted on stdout (default: the SDK's 10 MiB). */
  maxBufferSize?: number;
  /** After the process exits, wait at most this long for stdout's EOF (last responses) before closing. */
  exitFlushMs?: number;
  /** More malformed stdout lines than this within garbageWindowMs fail the connection (0 or absent: never). */
  maxGarbageLines?: number;
  garbageWindowMs?: number;
  clock?: Clock;
}

const DEFAULT_EXIT_FLUSH_MS = 100;

/** `error.data` of the error answers this transport makes up itself (not the server's own). */
const SYNTHESIZED = new WeakSet<object>();

/** True for the `error.data` of an answer this transport made up (an oversized response it dropped). */
export function isSynthesizedErrorData(data: unknown): boolean {
  return typeof data === 'object' && data !== null && SYNTHESIZED.has(data);
}

export class ProcessStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  private readonly stdin: Writable;
  private readonly stdout: Readable;
  private readonly readBuffer: JsonRpcLineBuffer;
  private readonly exitFlushMs: number;
  private started = false;
  private closed = false;
  private readonly detachers: Array<() => void> = [];
  private readonly pendingDrains = new Set<(err?: Error) => void>();
  private exitTimer: NodeJS.Timeout | undefined;
  /** Set while stdin is corked: uncorks it at the end of this event-loop turn (coalesce()). */
  private uncorkImmediate: NodeJS.Immediate | undefined;
  private readonly inbox: JSONRPCMessage[] = [];
  private pumping = false;
  private closeAfterDrain = false;
  private failedWith: WardenError | undefined;
  /** Inside a line over maxBufferSize: its first bytes, and the last ones seen so far. */
  private skipping: { maxBytes: number; prefix: string; last: Buffer } | undefined;
  private readonly maxGarbageLines: number;
  private readonly garbageWindowMs: number;
  private readonly clock: Clock;
  private garbageWindowStart = 0;
  private garbageInWindow = 0;

  constructor(
    private readonly proc: TransportProcess,
    opts: ProcessStdioTransportOptions = {},
  ) {
    this.stdin = proc.stdin;
    this.stdout = proc.stdout;
    this.readBuffer = new JsonRpcLineBuffer({ maxBufferSize: opts.maxBufferSize });
    this.exitFlushMs = opts.exitFlushMs ?? DEFAULT_EXIT_FLUSH_MS;
    this.maxGarbageLines = opts.maxGarbageLines ?? 0;
    this.garbageWindowMs = opts.garbageWindowMs ?? 10_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** Why the transport failed the connection itself (oversized message, sustained garbage); undefined otherwise. */
  failure(): WardenError | undefined {
    return this.failedWith;
  }

  /** Ends the connection for a coded reason: reported once, kept for failure(). */
  private fail(err: WardenError): void {
    if (this.closed || this.failedWith) return;
    this.failedWith = err;
    this.reportError(err);
    void this.close();
  }

  private onStdout(chunk: Buffer): void {
    if (this.closed) return;
    if (this.skipping) {
      // The rest of an oversized line: dropped up to its newline, keeping its last bytes for the id.
      const nl = chunk.indexOf(10);
      const part = nl === -1 ? chunk : chunk.subarray(0, nl);
      const last = Buffer.concat([this.skipping.last, part]);
      this.skipping.last = last.subarray(Math.max(0, last.length - LINE_END_BYTES));
      if (nl === -1) return;
      const s = this.skipping;
      this.skipping = undefined;
      this.oversized(new LineTooLongError(s.maxBytes, s.prefix, s.last.toString('utf8').replace(/\r$/, '')));
      chunk = chunk.subarray(nl + 1);
      if (this.closed || chunk.length === 0) return this.processReadBuffer();
    }
    try {
      this.readBuffer.append(chunk);
    } catch (err) {
      if (err instanceof LineTooLongError) {
        // Too long and not over yet: skip to its end (bounded memory), then answer or fail.
        this.skipping = { maxBytes: err.maxBytes, prefix: err.prefix, last: chunk.subarray(Math.max(0, chunk.length - LINE_END_BYTES)) };
      } else {
        this.fail(new WardenError(ErrorCodes.UPSTREAM_PROTOCOL, `reading stdout failed: ${String(err)}`));
      }
      return;
    }
    this.processReadBuffer();
  }

  /**
   * A whole line over the limit was dropped. A response whose id can be read from its ends fails
   * only its request (E_UPSTREAM_MESSAGE_TOO_LARGE, as an error answer from us) and the server goes
   * on; anything else fails the connection with that code.
   */
  private oversized(err: LineTooLongError): void {
    const id = oversizedResponseId(err.prefix, err.suffix);
    const coded = this.tooLarge(err, id !== undefined);
    if (id === undefined) return this.fail(coded);
    this.reportError(coded);
    const data = { code: coded.code };
    SYNTHESIZED.add(data);
    this.inbox.push({ jsonrpc: '2.0', id, error: { code: rpcCodeOf(coded.code), message: coded.message, data } } as JSONRPCMessage);
  }

  private tooLarge(err: LineTooLongError, survived = false): WardenError {
    return new WardenError(
      ErrorCodes.UPSTREAM_MESSAGE_TOO_LARGE,
      `the server wrote a message larger than ${err.maxBytes} bytes on stdout (upstreamMaxMessageBytes); ${survived ? 'that answer was dropped' : 'its connection was closed'}`,
    );
  }

  /** One malformed stdout line: counted per window; beyond the threshold the server has failed. */
  private garbageLine(): void {
    if (this.maxGarbageLines <= 0) return;
    const now = this.clock.now();
    if (now - this.garbageWindowStart >= this.garbageWindowMs) {
      this.garbageWindowStart = now;
      this.garbageInWindow = 0;
    }
    if (++this.garbageInWindow > this.maxGarbageLines) {
      this.fail(
        new WardenError(
          ErrorCodes.UPSTREAM_PROTOCOL,
          `the server wrote more than ${this.maxGarbageLines} lines that are not JSON-RPC on stdout within ${this.garbageWindowMs} ms (upstreamGarbageLinesMax): protocol failure`,
        ),
      );
    }
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('ProcessStdioTransport already started');
    if (this.closed) throw new Error('ProcessStdioTransport is closed');
    this.started = true;

    this.on(this.stdout, 'data', (chunk: Buffer) => this.onStdout(chunk));
    this.on(this.stdout, 'end', () => this.endOfInput());
    this.on(this.stdout, 'close', () => this.endOfInput());
    this.on(this.stdout, 'error', (err: Error) => this.reportError(err));
    this.on(this.stdin, 'error', (err: Error) => {
      // EPIPE & co: the server closed its stdin or died. Report once and close.
      this.reportError(err);
      void this.close();
    });
    this.on(this.stdin, 'drain', () => this.settleDrains());
    this.on(this.stdin, 'close', () => {
      if (this.pendingDrains.size > 0) this.settleDrains(new Error('stdin closed'));
    });
    const unsubscribe = this.proc.onExit((info) => this.onProcessExit(info));
    this.detachers.push(unsubscribe);

    if (this.stdout.destroyed || this.stdout.readableEnded) this.endOfInput();
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ok: boolean;
      try {
        ok = this.sendNow(message);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (ok) {
        resolve();
        return;
      }
      // Backpressure: wait until the pipe drains (or the transport/stdin goes away).
      this.afterDrain((err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * send() without its promise, for the direct request path (upstream-direct-request.ts): throws what
   * send() rejects with at once; false when the pipe is backed up (send() would wait for 'drain':
   * afterDrain() tells when it drains or fails).
   */
  sendNow(message: JSONRPCMessage): boolean {
    if (this.closed || !this.started || this.stdin.destroyed || this.stdin.writableEnded) throw new Error('Not connected');
    this.coalesce();
    return this.stdin.write(serializeMessage(message));
  }

  /** `settle` runs once the backed-up pipe drains, or with the error when stdin or the transport goes away first. */
  afterDrain(settle: (err?: Error) => void): void {
    // One shared 'drain' listener (attached in start) serves every waiting send.
    this.pendingDrains.add(settle);
  }

  /**
   * Requests sent in one turn of the event loop (concurrent calls arriving together) reach the pipe in
   * one write: a write to a pipe was a fifth of the daemon's CPU per call under load. The pipe is
   * uncorked in the same turn's check phase, so a lone request waits microseconds.
   */
  private coalesce(): void {
    if (this.uncorkImmediate !== undefined) return;
    this.stdin.cork();
    this.uncorkImmediate = setImmediate(() => {
      this.uncorkImmediate = undefined;
      this.stdin.uncork();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.uncorkImmediate !== undefined) {
      clearImmediate(this.uncorkImmediate);
      this.uncorkImmediate = undefined;
      this.stdin.uncork(); // what is corked still goes out before the end below
    }
    if (this.exitTimer) {
      clearTimeout(this.exitTimer);
      this.exitTimer = undefined;
    }
    for (const d of this.detachers.splice(0)) {
      try {
        d();
      } catch {
        // ignore
      }
    }
    // An Error (and its stack) only when a send is waiting for it: 500 closes during a stop made none.
    if (this.pendingDrains.size > 0) this.settleDrains(new Error('Connection closed'));
    this.readBuffer.clear();
    this.inbox.length = 0;
    try {
      if (!this.stdin.destroyed && !this.stdin.writableEnded) this.stdin.end();
    } catch {
      // ignore: the process owner deals with a dead pipe
    }
    const cb = this.onclose;
    if (cb) {
      // The SDK's Protocol makes a "Connection closed" McpError on every close, requests pending or not,
      // and capturing its stack (this close path, through xstate's frames: nothing a reader needs) was
      // ~0.1 ms per upstream, a tenth of a 500-server stop. Errors made in the callback carry no stack.
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      let failure: { err: unknown } | undefined;
      try {
        cb();
      } catch (err) {
        failure = { err };
      } finally {
        Error.stackTraceLimit = limit;
      }
      if (failure) this.reportError(failure.err);
    }
  }

  private on(emitter: NodeJS.EventEmitter, event: string, fn: (...args: any[]) => void): void {
    emitter.on(event, fn);
    this.detachers.push(() => emitter.off(event, fn));
  }

  private processReadBuffer(): void {
    for (;;) {
      if (this.closed) return;
      let message: JSONRPCMessage | null;
      try {
        message = this.readBuffer.readMessage();
      } catch (err) {
        if (err instanceof LineTooLongError) {
          this.oversized(err);
          continue;
        }
        // A malformed line is consumed by readMessage; report it and go on with the next one.
        this.reportError(err);
        this.garbageLine();
        continue;
      }
      if (message === null) break;
      this.inbox.push(message);
    }
    if (!this.pumping) this.pump();
  }

  /**
   * Delivers queued messages in order. The SDK's Protocol handles responses synchronously but
   * notifications one microtask later (Promise.resolve().then(handler)), so a progress notification
   * followed by its response in the same chunk would be dispatched after the response had already
   * removed the progress handler: the last progress update was lost ("unknown token"). Before a
   * response that follows a notification we therefore yield a macrotask, letting every deferred
   * notification handler run first. Synchronous otherwise (no promise per chunk read).
   */
  private pump(): void {
    this.pumping = true;
    let notificationPending = false;
    while (this.inbox.length > 0 && !this.closed) {
      const message = this.inbox[0]!;
      const isResponse = 'id' in message && !('method' in message);
      if (isResponse && notificationPending) {
        // Still pumping: messages arriving meanwhile wait behind this one.
        setImmediate(() => this.pump());
        return;
      }
      this.inbox.shift();
      if ('method' in message && !('id' in message)) notificationPending = true;
      try {
        this.onmessage?.(message);
      } catch (err) {
        this.reportError(err);
      }
    }
    this.pumping = false;
    if (this.closeAfterDrain) void this.close();
  }

  /** Close once every message already received has been delivered (stdout EOF). */
  private endOfInput(): void {
    if (this.pumping || this.inbox.length > 0) this.closeAfterDrain = true;
    else void this.close();
  }

  private onProcessExit(_info: ExitInfo): void {
    if (this.closed) return;
    // stdout may still hold the last responses; its EOF closes us. A grandchild holding stdout open
    // would delay EOF forever, so bound the wait.
    this.exitTimer = setTimeout(() => {
      this.exitTimer = undefined;
      this.endOfInput();
    }, this.exitFlushMs);
  }

  private settleDrains(err?: Error): void {
    const waiters = [...this.pendingDrains];
    this.pendingDrains.clear();
    for (const settle of waiters) settle(err);
  }

  private reportError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      this.onerror?.(error);
    } catch {
      // ignore
    }
  }
}
