/**
 * Per-source rate limit of log lines, applied in pino's `logMethod` hook (so every child logger, the
 * MCP adapters' included, is covered without changing its call sites).
 *
 * A source is a logger's set of child bindings (`component`, `server`, …): an upstream writing
 * garbage to stdout floods only its own `upstream-client/<server>` source. Each source has a token
 * bucket of `linesPerSecond` (burst: one second's worth); lines beyond it are counted, and one
 * `N log lines suppressed` warning per second and source says how many — the idea of the stderr drain
 * (src/adapters/process/stderr-drain.ts), moved to the logger so no source can flood the file
 * (17 MB of garbage in 10 s rotated away all earlier history). `fatal` is never limited.
 */
import pino from 'pino';
import type { Logger } from 'pino';

export interface SourceRateLimitOptions {
  /** Lines per second and source; 0 disables the limit. */
  linesPerSecond: number;
  /** Time source (ms). Default Date.now. */
  now?: () => number;
  /** How often a pending suppression summary is written. Default 1000. */
  summaryIntervalMs?: number;
}

interface Bucket {
  tokens: number;
  last: number;
  suppressed: number;
  /** A logger with this source's bindings, to write the summary under them. */
  logger?: Logger;
  timer?: NodeJS.Timeout;
}

/** Sources remembered at most; idle full buckets are forgotten beyond this. */
const MAX_SOURCES = 1_024;
const FATAL = 60;
const chindingsSym = pino.symbols.chindingsSym as unknown as string;

export class SourceRateLimit {
  private readonly rate: number;
  private readonly now: () => number;
  private readonly summaryMs: number;
  private readonly buckets = new Map<string, Bucket>();
  private bypass = false;
  private total = 0;

  constructor(opts: SourceRateLimitOptions) {
    this.rate = Math.max(0, opts.linesPerSecond);
    this.now = opts.now ?? Date.now;
    this.summaryMs = opts.summaryIntervalMs ?? 1_000;
  }

  /** Lines suppressed so far, every source together. */
  suppressed(): number {
    return this.total;
  }

  /** True when `logger` (the `this` of pino's logMethod hook) may write a line at `level` now. */
  allow(logger: Logger, level: number): boolean {
    if (this.rate === 0 || this.bypass || level >= FATAL) return true;
    const key = String((logger as unknown as Record<string, unknown>)[chindingsSym] ?? '');
    const t = this.now();
    let found = this.buckets.get(key);
    if (!found) {
      if (this.buckets.size >= MAX_SOURCES) this.forgetIdle();
      found = { tokens: this.rate, last: t, suppressed: 0 };
      this.buckets.set(key, found);
    }
    const b: Bucket = found;
    const elapsed = t - b.last;
    if (elapsed > 0) {
      b.tokens = Math.min(this.rate, b.tokens + (elapsed * this.rate) / 1000);
      b.last = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    b.suppressed++;
    this.total++;
    b.logger = logger;
    if (!b.timer) {
      b.timer = setTimeout(() => this.summarise(b), this.summaryMs);
      b.timer.unref();
    }
    return false;
  }

  /** Writes every pending summary now and stops the timers (the logger is closing). */
  flush(): void {
    for (const b of this.buckets.values()) this.summarise(b);
  }

  private summarise(b: Bucket): void {
    if (b.timer) clearTimeout(b.timer);
    b.timer = undefined;
    const n = b.suppressed;
    const logger = b.logger;
    b.suppressed = 0;
    b.logger = undefined;
    if (n === 0 || !logger) return;
    this.bypass = true;
    try {
      logger.warn({ suppressed: n }, `${n} log lines suppressed (settings.logLinesPerSecond)`);
    } finally {
      this.bypass = false;
    }
  }

  private forgetIdle(): void {
    for (const [k, b] of this.buckets) {
      if (b.suppressed === 0 && !b.timer) this.buckets.delete(k);
    }
    // Still full of flooding sources: start over rather than grow (summaries already scheduled still fire).
    if (this.buckets.size >= MAX_SOURCES) this.buckets.clear();
  }
}
