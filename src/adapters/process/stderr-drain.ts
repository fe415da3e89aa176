/**
 * Drains a child's stderr into the logger, rate-limited.
 *
 * A child that writes to a full stderr pipe blocks (Node's own stderr writes to pipes are
 * synchronous on Linux), so this always reads, whatever the log budget: lines beyond
 * `maxLinesPerSecond` (token bucket) are counted and dropped, and one summary line per second says
 * how many. Lines longer than `maxLineBytes` are truncated; an unterminated line is never buffered
 * beyond that size.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';

export interface StderrDrainOptions {
  logger: Logger;
  maxLinesPerSecond: number;
  maxLineBytes: number;
  /** Time source for the token bucket (ms). Defaults to Date.now. */
  now?: () => number;
}

export interface StderrDrain {
  /** Remove every listener and timer (flushing a pending drop summary). Idempotent. */
  dispose(): void;
  /** Total number of lines dropped by the rate limit so far. */
  dropped(): number;
}

const NEWLINE = 0x0a;
const SUMMARY_INTERVAL_MS = 1_000;

export function drainStderr(stream: Readable, opts: StderrDrainOptions): StderrDrain {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  const rate = Math.max(0, opts.maxLinesPerSecond);
  const maxBytes = Math.max(1, Math.floor(opts.maxLineBytes));

  let tokens = rate;
  let lastRefill = now();
  let droppedTotal = 0;
  let droppedPending = 0;
  let summaryTimer: NodeJS.Timeout | undefined;
  let disposed = false;

  // The current unterminated line: at most maxBytes kept, the rest counted.
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let partialOverflow = 0;

  const flushSummary = (): void => {
    summaryTimer = undefined;
    if (droppedPending > 0) {
      const n = droppedPending;
      droppedPending = 0;
      logger.warn({ stream: 'stderr', dropped: n }, `${n} stderr lines dropped`);
    }
  };

  const takeToken = (): boolean => {
    const t = now();
    const elapsed = t - lastRefill;
    if (elapsed > 0) {
      tokens = Math.min(rate, tokens + (elapsed * rate) / 1000);
      lastRefill = t;
    }
    if (tokens >= 1) {
      tokens -= 1;
      return true;
    }
    return false;
  };

  const emitLine = (line: string, overflow: number): void => {
    if (takeToken()) {
      if (overflow > 0) logger.info({ stream: 'stderr', truncatedBytes: overflow }, line);
      else logger.info({ stream: 'stderr' }, line);
      return;
    }
    droppedTotal++;
    droppedPending++;
    if (!summaryTimer && !disposed) {
      summaryTimer = setTimeout(flushSummary, SUMMARY_INTERVAL_MS);
      summaryTimer.unref();
    }
  };

  const appendPartial = (chunk: Buffer): void => {
    const room = maxBytes - partialBytes;
    if (room <= 0) {
      partialOverflow += chunk.length;
      return;
    }
    if (chunk.length <= room) {
      partial.push(chunk);
      partialBytes += chunk.length;
    } else {
      partial.push(chunk.subarray(0, room));
      partialBytes += room;
      partialOverflow += chunk.length - room;
    }
  };

  const finishLine = (): void => {
    let line = partial.length === 1 ? partial[0]!.toString('utf8') : Buffer.concat(partial, partialBytes).toString('utf8');
    const overflow = partialOverflow;
    partial = [];
    partialBytes = 0;
    partialOverflow = 0;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    emitLine(line, overflow);
  };

  const onData = (chunk: Buffer | string): void => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl < 0) {
        appendPartial(buf.subarray(start));
        break;
      }
      appendPartial(buf.subarray(start, nl));
      finishLine();
      start = nl + 1;
    }
  };

  const onEnd = (): void => {
    if (partialBytes > 0 || partialOverflow > 0) finishLine();
  };

  const onError = (err: Error): void => {
    logger.debug({ stream: 'stderr', err }, 'stderr stream error');
  };

  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  // Make sure the stream flows even if it was paused before we attached.
  stream.resume();

  return {
    dispose(): void {
      if (disposed) return;
      disposed = true;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (partialBytes > 0 || partialOverflow > 0) finishLine();
      if (summaryTimer) {
        clearTimeout(summaryTimer);
        summaryTimer = undefined;
      }
      flushSummary();
    },
    dropped: () => droppedTotal,
  };
}
