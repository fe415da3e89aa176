/**
 * A pino destination that hands each JSON log record to in-process listeners (the control channel's
 * opt-in log streams). Records arrive already redacted (the root logger's redact paths and
 * serializers ran before the line was written). With no listener, a line costs one size check.
 * Never throws into pino.
 */
export type LogRecord = Record<string, unknown>;

export class LogTap {
  private readonly listeners = new Set<(record: LogRecord) => void>();

  /** pino (multistream) calls this with one JSON line. */
  write(line: string): void {
    if (this.listeners.size === 0) return;
    let record: LogRecord;
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return;
      record = v as LogRecord;
    } catch {
      return;
    }
    for (const l of [...this.listeners]) {
      try {
        l(record);
      } catch {
        // a failing listener must not break logging
      }
    }
  }

  subscribe(listener: (record: LogRecord) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  listenerCount(): number {
    return this.listeners.size;
  }
}
