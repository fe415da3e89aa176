/**
 * The tool-call log: every tools/call the front answered, buffered in memory on the call path (one
 * array push) and, every `callLogFlushMs`, written to `<dataDir>/calls.jsonl` as JSON lines (rotated by
 * size like daemon.log: calls.jsonl.1 … .<callLogFileCount>), kept in a ring of the most recent
 * `callLogMemoryEntries` for `calls.list` and UIs, and handed to listeners (the control channel's
 * `calls` events). The call path never touches the disk: one write per flush, of whole lines.
 *
 * The file is opened without following a symlink (rotating-file-destination.ts → no-follow.ts).
 * Owned resources (ledger owner `daemon`: the daemon itself holds them, as it holds its watchdog): the
 * file and the flush timer, released by close(), which writes what is still buffered first.
 */
import type { Logger } from 'pino';
import type { LedgerHandle, ResourceLedger } from '../../core/resource-ledger.js';
import type { Settings } from '../../core/settings.js';
import { RotatingFileDestination } from '../log/rotating-file-destination.js';
import { loggedPayload } from './call-payload.js';
import { clip, routeOf, type CallEntry, type CallLogLine, type CallOutcome } from './call-record.js';

export const CALL_LOG_OWNER = 'daemon';
export const CALL_LOG_FILE = 'calls.jsonl';

/** A chunk written at once: a few pages, and never more than a fraction of the file size bound. */
const MAX_CHUNK_BYTES = 64 * 1024;

/** Routes remembered per called name (a client can send endless names: the cache is dropped beyond this). */
const MAX_CACHED_ROUTES = 10_000;

/** One called name as the log writes it: its server and tool (clipped) and their JSON text. */
interface LoggedRoute {
  readonly server: string;
  readonly tool: string;
  /** `"server":…,"tool":…` as JSON.stringify writes them. */
  readonly json: string;
}

/** `JSON.stringify(v)` of a string or null, the one JSON value a session id or error code can be. */
function jsonOf(v: string | null): string {
  return v === null ? 'null' : JSON.stringify(v);
}

type CallLogSettings = Pick<
  Settings,
  | 'callLogPayloads'
  | 'callLogPayloadMaxBytes'
  | 'callLogFlushMs'
  | 'callLogMaxBytes'
  | 'callLogFileCount'
  | 'callLogMemoryEntries'
  | 'callLogMaxPending'
>;

export interface CallLogOptions {
  /** The JSONL file; none: memory only. */
  file?: string;
  settings: CallLogSettings;
  ledger: ResourceLedger;
  logger: Logger;
}

/** A call as the call path leaves it: raw, cheap; turned into a CallLogLine at flush time. */
interface PendingCall {
  at: number;
  scope: string | undefined;
  name: string;
  session: string | undefined;
  durationMs: number;
  outcome: CallOutcome;
  errorCode: string | null;
  args: unknown;
  result: unknown;
}

export interface CallFilter {
  server?: string;
  limit?: number;
}

export class CallLog {
  private pending: PendingCall[] = [];
  private readonly ring: CallEntry[] = [];
  private readonly listeners = new Set<(calls: CallEntry[]) => void>();
  private readonly dest: RotatingFileDestination | undefined;
  private readonly keepArgs: boolean;
  private readonly keepResult: boolean;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private _dropped = 0;
  private readonly handles: LedgerHandle[] = [];

  constructor(private readonly opts: CallLogOptions) {
    const s = opts.settings;
    this.keepArgs = s.callLogPayloads !== 'none';
    this.keepResult = s.callLogPayloads === 'all';
    if (opts.file) {
      const dest = new RotatingFileDestination({ path: opts.file, maxBytes: s.callLogMaxBytes, maxFiles: s.callLogFileCount });
      this.dest = dest;
      if (dest.lastError) opts.logger.error({ file: opts.file, err: dest.lastError.message }, 'call log file cannot be opened');
      this.handles.push(
        opts.ledger.acquire(CALL_LOG_OWNER, {
          kind: 'file',
          description: `call log ${opts.file}`,
          release: () => this.close(),
          facts: { file: opts.file },
        }),
      );
    }
    this.handles.push(
      opts.ledger.acquire(CALL_LOG_OWNER, {
        kind: 'timer',
        description: `call log flush timer (${s.callLogFlushMs} ms)`,
        release: () => this.close(),
        isGone: () => this.timer === undefined,
        facts: { intervalMs: s.callLogFlushMs },
      }),
    );
  }

  /** Calls dropped because more than callLogMaxPending waited for a flush. */
  get dropped(): number {
    return this._dropped;
  }

  /** The last I/O error of the file (E_DATA_FILE_SYMLINK for a link at its path). */
  fileError(): Error | undefined {
    return this.dest?.lastError;
  }

  /** The file's rotation count and I/O errors (tests, /healthz). */
  fileStats(): { rotations: number; errors: number } | undefined {
    return this.dest ? { rotations: this.dest.rotations, errors: this.dest.errorCount } : undefined;
  }

  /** The call path: one push, and a timer armed when the buffer was empty. */
  record(
    at: number,
    scope: string | undefined,
    name: string,
    session: string | undefined,
    durationMs: number,
    outcome: CallOutcome,
    errorCode: string | null,
    args: unknown,
    result: unknown,
  ): void {
    if (this.closed) return;
    if (this.pending.length >= this.opts.settings.callLogMaxPending) {
      this._dropped++;
      return;
    }
    this.pending.push({
      at,
      scope,
      name,
      session,
      durationMs,
      outcome,
      errorCode,
      args: this.keepArgs ? args : undefined,
      result: this.keepResult ? result : undefined,
    });
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.opts.settings.callLogFlushMs);
      this.timer.unref();
    }
  }

  /** Writes what is buffered, updates the ring, tells listeners. Never throws. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const s = this.opts.settings;
    const entries: CallEntry[] = [];
    let chunk = '';
    const chunkMax = Math.min(MAX_CHUNK_BYTES, s.callLogMaxBytes);
    for (const p of batch) {
      const route = this.routeOf(p.scope, p.name);
      const entry: CallEntry = {
        time: this.isoTime(p.at),
        server: route.server,
        tool: route.tool,
        session: p.session ?? null,
        durationMs: Math.round(p.durationMs * 1000) / 1000,
        outcome: p.outcome,
        errorCode: p.errorCode,
      };
      entries.push(entry);
      if (!this.dest) continue;
      let text: string;
      if (this.keepArgs) {
        const line: CallLogLine = { ...entry, arguments: loggedPayload(p.args ?? {}, s.callLogPayloadMaxBytes) };
        if (this.keepResult && p.result !== undefined) line.result = loggedPayload(p.result, s.callLogPayloadMaxBytes);
        text = JSON.stringify(line) + '\n';
      } else {
        // JSON.stringify(entry) written out (same keys, order and text): a third of the flush's time per call.
        const d = entry.durationMs;
        text =
          `{"time":"${entry.time}",${route.json},"session":${this.sessionJson(entry.session)},` +
          `"durationMs":${Number.isFinite(d) ? String(d) : 'null'},"outcome":"${entry.outcome}","errorCode":${jsonOf(entry.errorCode)}}\n`;
      }
      if (chunk.length > 0 && chunk.length + text.length > chunkMax) {
        this.dest.write(chunk);
        chunk = '';
      }
      chunk += text;
    }
    if (chunk.length > 0) this.dest?.write(chunk);
    this.ring.push(...entries);
    const max = s.callLogMemoryEntries;
    if (this.ring.length > max) this.ring.splice(0, this.ring.length - max);
    for (const l of this.listeners) {
      try {
        l(entries);
      } catch (err) {
        this.opts.logger.warn({ err: String(err) }, 'call log listener failed');
      }
    }
  }

  private readonly routes = new Map<string, LoggedRoute>();
  private readonly scopedRoutes = new Map<string, LoggedRoute>();

  /** routeOf with the names clipped, remembered per name: a client calls the same few tools again and again. */
  private routeOf(scope: string | undefined, name: string): LoggedRoute {
    const cache = scope === undefined ? this.routes : this.scopedRoutes;
    const key = scope === undefined ? name : `${scope}\n${name}`;
    let r = cache.get(key);
    if (r === undefined) {
      const { server, tool } = routeOf(scope, name);
      const sv = clip(server);
      const tl = clip(tool);
      r = { server: sv, tool: tl, json: `"server":${JSON.stringify(sv)},"tool":${JSON.stringify(tl)}` };
      if (cache.size >= MAX_CACHED_ROUTES) cache.clear();
      cache.set(key, r);
    }
    return r;
  }

  private lastSession: string | null = null;
  private lastSessionJson = 'null';

  /** JSON text of a session id; consecutive calls mostly come from one session. */
  private sessionJson(session: string | null): string {
    if (session !== this.lastSession) {
      this.lastSession = session;
      this.lastSessionJson = jsonOf(session);
    }
    return this.lastSessionJson;
  }

  private isoSecond = Number.NaN;
  /** toISOString() of isoSecond up to and including its '.', e.g. `2026-12-03T20:47:48.` */
  private isoPrefix = '';

  /** `new Date(at).toISOString()`, with the date part formatted once per second. */
  private isoTime(at: number): string {
    const ms = Math.trunc(at); // what a Date keeps of `at`
    const sec = Math.floor(ms / 1000);
    if (!Number.isFinite(sec)) return new Date(at).toISOString();
    if (sec !== this.isoSecond) {
      this.isoSecond = sec;
      this.isoPrefix = new Date(sec * 1000).toISOString().slice(0, -4);
    }
    const frac = ms - sec * 1000;
    return `${this.isoPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
  }

  /** The most recent calls in memory, newest last (flushed ones: at most callLogFlushMs behind). */
  recent(filter: CallFilter = {}): CallEntry[] {
    const limit = filter.limit ?? this.ring.length;
    const out: CallEntry[] = [];
    for (let i = this.ring.length - 1; i >= 0 && out.length < limit; i--) {
      const e = this.ring[i]!;
      if (filter.server === undefined || e.server === filter.server) out.push(e);
    }
    return out.reverse();
  }

  /** Every flushed batch, newest last. Returns the unsubscribe. */
  subscribe(listener: (calls: CallEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Writes what is buffered, stops the timer, closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.listeners.clear();
    this.dest?.close();
    for (const h of this.handles) h.settle();
  }
}
