/**
 * The per-call hook of the MCP front (front-call-tool.ts calls `ended` once per tools/call): a
 * counter increment and a histogram observation (call-metrics.ts), one push onto the call log's
 * buffer (call-log.ts) and, only when tracing is on, a span (call-tracer.ts). Nothing here waits, does
 * I/O or throws into the call path.
 */
import type { Logger } from 'pino';
import type { CallObserver } from '../mcp/front-call-tool.js';
import type { CallLog } from './call-log.js';
import type { WardenMetrics } from './call-metrics.js';
import type { CallTracer } from './call-tracer.js';
import { outcomeOf, routeOf } from './call-record.js';

export interface CallObserverParts {
  metrics?: WardenMetrics;
  callLog?: CallLog;
  tracer?: CallTracer;
  logger: Logger;
}

/** Undefined when nothing observes calls: the front then skips even the clock read. */
export function createCallObserver(parts: CallObserverParts): CallObserver | undefined {
  const { metrics, callLog, tracer, logger } = parts;
  if (!metrics && !callLog && !tracer) return undefined;
  const origin = performance.timeOrigin;
  let failures = 0;
  return {
    ended(scope, name, session, args, startedAt, result, err, aborted) {
      try {
        const durationMs = performance.now() - startedAt;
        const { outcome, errorCode } = outcomeOf(result, err, aborted);
        metrics?.observeCall(scope, name, outcome, durationMs / 1000);
        if (tracer) {
          const { server, tool } = routeOf(scope, name);
          tracer.span(server, tool, session, origin + startedAt, origin + startedAt + durationMs, outcome, errorCode);
        }
        callLog?.record(origin + startedAt, scope, name, session, durationMs, outcome, errorCode, args, result);
      } catch (e) {
        // Observation never breaks a call; say so once in a while.
        if (failures++ % 1000 === 0) logger.warn({ err: String(e) }, 'recording a tool call failed');
      }
    },
  };
}
