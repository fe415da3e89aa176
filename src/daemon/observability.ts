/**
 * Composition of the daemon's observability (docs/observability.md): Prometheus metrics (GET
 * /metrics), the tool-call log (calls.jsonl, `calls.list`, `calls` events) and, when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set, OpenTelemetry traces. Each part is off when its setting says
 * so; the MCP front gets one observer for all of them (src/adapters/observability/call-observer.ts).
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ResourceLedger } from '../core/resource-ledger.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import type { Settings } from '../core/settings.js';
import type { HttpServerHandle } from '../adapters/http/http-server.js';
import type { CallObserver } from '../adapters/mcp/front-call-tool.js';
import { CallLog, CALL_LOG_FILE } from '../adapters/observability/call-log.js';
import { WardenMetrics, type MetricsSources, type ServerStateEvent } from '../adapters/observability/call-metrics.js';
import { startCallTracer, tracingRequested, type CallTracer } from '../adapters/observability/call-tracer.js';
import { createCallObserver } from '../adapters/observability/call-observer.js';
import type { CallEntry } from '../adapters/observability/call-record.js';

/** What the metrics and the call log need of the running daemon, bound once it is up. */
export interface ObservedDaemon extends Omit<MetricsSources, 'callLogDropped'> {
  /** Server events (restarts, reap attempts, tool changes). Returns the unsubscribe. */
  subscribe(listener: (e: ServerStateEvent) => void): () => void;
  /** Publishes a batch of calls as a `calls` event. */
  publishCalls(calls: CallEntry[]): void;
}

export interface Observability {
  readonly observer: CallObserver | undefined;
  readonly callLog: CallLog | undefined;
  readonly metrics: WardenMetrics | undefined;
  bind(daemon: ObservedDaemon): void;
  /** Daemon-event subscriptions held here (not counted as outside subscribers by the daemon). */
  subscriptions(): number;
  /** GET /metrics on the daemon's HTTP server (behind its guard), when metrics are on. */
  route(http: HttpServerHandle): void;
  /** Writes the buffered calls, exports the last spans, unsubscribes. Idempotent. */
  close(): Promise<void>;
}

export async function startObservability(opts: {
  settings: Settings;
  dataDir: string;
  ledger: ResourceLedger;
  logger: Logger;
  version: string;
  env?: NodeJS.ProcessEnv;
}): Promise<Observability> {
  const { settings, logger } = opts;
  let bound: ObservedDaemon | undefined;
  const callLog =
    settings.callLog === 'on'
      ? new CallLog({
          file: join(opts.dataDir, CALL_LOG_FILE),
          settings,
          ledger: opts.ledger,
          logger: logger.child({ component: 'call-log' }),
        })
      : undefined;
  // A calls.jsonl symlink is refused, not followed (no-follow.ts), and like daemon.log it stops the start.
  const fileError = callLog?.fileError();
  if (fileError instanceof WardenError && fileError.code === ErrorCodes.DATA_FILE_SYMLINK) {
    await callLog?.close();
    throw fileError;
  }
  const metrics =
    settings.metrics === 'on'
      ? new WardenMetrics({
          servers: () => bound?.servers() ?? [],
          sessions: () => bound?.sessions() ?? 0,
          ledgerCounts: () => bound?.ledgerCounts() ?? {},
          knownServer: (s) => bound?.knownServer(s) ?? false,
          knownTool: (s, t) => bound?.knownTool(s, t) ?? false,
          callLogDropped: () => callLog?.dropped ?? 0,
        })
      : undefined;
  let tracer: CallTracer | undefined;
  if (tracingRequested(opts.env)) {
    try {
      tracer = await startCallTracer({ logger: logger.child({ component: 'otel' }), version: opts.version, env: opts.env });
    } catch (err) {
      // Observation only: a broken exporter setup never keeps the daemon from serving.
      logger.error({ err: String(err) }, 'OpenTelemetry traces requested but could not start; continuing without');
    }
  }
  const tracerHandle = tracer
    ? opts.ledger.acquire('daemon', {
        kind: 'timer',
        description: 'OpenTelemetry span export (batch processor)',
        release: async () => tracer?.close(),
      })
    : undefined;
  const observer = createCallObserver({ metrics, callLog, tracer, logger });
  const offs: Array<() => void> = [];
  let eventSubscriptions = 0;
  let closing: Promise<void> | undefined;
  return {
    observer,
    callLog,
    metrics,
    bind(daemon) {
      bound = daemon;
      if (metrics) {
        const off = daemon.subscribe((e) => metrics.onServerEvent(e));
        eventSubscriptions++;
        offs.push(() => {
          off();
          eventSubscriptions--;
        });
      }
      if (callLog) offs.push(callLog.subscribe((calls) => daemon.publishCalls(calls)));
    },
    subscriptions: () => eventSubscriptions,
    route(http) {
      if (!metrics) return;
      http.route('GET', '/metrics', async (_req, res) => {
        const text = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
      });
    },
    close() {
      closing ??= (async () => {
        await callLog?.close();
        for (const off of offs.splice(0)) off();
        await tracer?.close();
        tracerHandle?.settle();
      })();
      return closing;
    },
  };
}
