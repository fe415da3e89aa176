/**
 * Optional OpenTelemetry traces: one span per tools/call, from its arrival at the front to the
 * upstream's answer, exported over OTLP/HTTP. Only when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) variable is set; the OpenTelemetry packages are imported
 * dynamically then, so a daemon without it loads none of them and pays nothing per call.
 *
 * The exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself (endpoint, headers, timeout);
 * OTEL_SERVICE_NAME names the service (default "mcp-warden"). Spans are batched (the SDK's
 * BatchSpanProcessor): the call path only records the span; export runs on the processor's timer.
 * No global provider is registered: the daemon's spans are its own, and close() flushes and ends it.
 */
import type { Logger } from 'pino';
import type { CallOutcome } from './call-record.js';

export interface CallTracer {
  /** One finished call: `startMs`/`endMs` are epoch milliseconds. Never throws. */
  span(
    server: string,
    tool: string,
    session: string | undefined,
    startMs: number,
    endMs: number,
    outcome: CallOutcome,
    errorCode: string | null,
  ): void;
  /** Exports what is batched, then shuts the provider down. Idempotent. */
  close(): Promise<void>;
}

/** True when the environment asks for traces. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export async function startCallTracer(opts: { logger: Logger; version: string; env?: NodeJS.ProcessEnv }): Promise<CallTracer> {
  const env = opts.env ?? process.env;
  const [api, sdk, exporterMod, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const exporter = new exporterMod.OTLPTraceExporter();
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME || 'mcp-warden',
      'service.version': opts.version,
    }),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('mcp-warden', opts.version);
  let closed: Promise<void> | undefined;
  opts.logger.info({ endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'OpenTelemetry traces on');
  return {
    span(server, tool, session, startMs, endMs, outcome, errorCode) {
      if (closed) return;
      try {
        const attributes: Record<string, string> = {
          'mcp.method.name': 'tools/call',
          'mcp.server': server,
          'gen_ai.tool.name': tool,
          'mcp_warden.outcome': outcome,
        };
        if (session !== undefined) attributes['mcp.session.id'] = session;
        if (errorCode !== null) attributes['error.type'] = errorCode;
        const span = tracer.startSpan(`tools/call ${tool}`, { kind: api.SpanKind.SERVER, startTime: startMs, attributes });
        if (outcome !== 'ok') span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorCode ?? outcome });
        span.end(endMs);
      } catch (err) {
        opts.logger.debug({ err: String(err) }, 'span not recorded');
      }
    },
    close() {
      closed ??= provider.shutdown().catch((err: unknown) => opts.logger.warn({ err: String(err) }, 'exporting the last spans failed'));
      return closed;
    },
  };
}
