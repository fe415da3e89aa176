/**
 * `serve --inspect [URL]`: streams the actor system's inspection events to a Stately inspector relay
 * (`npx @statelyai/inspect` / `createInspectorServer` from `@statelyai/inspect/server`, default
 * ws://localhost:8080), where Stately's inspector page draws every actor live.
 *
 * The event conversion is @statelyai/inspect's own (`createInspector`), so the relay sees exactly
 * what `createWebSocketInspector` would send. The transport is ours, because that adapter (0.7.2) is
 * not safe to run inside a daemon, measured here:
 * - an invalid URL throws synchronously out of `createWebSocketInspector`;
 * - on a connection error it schedules a reconnect with a referenced 5 s timer that `stop()` does not
 *   cancel, so an unreachable relay keeps reconnecting forever and the process never exits after stop.
 * Here: nothing throws to the caller, reconnects back off (1 s … 30 s) on unref'd timers that `close()`
 * cancels, unsent events are bounded (oldest dropped), a relay that does not read is not buffered
 * for, and after `close()` nothing is left running. Inspection is observation only: no failure of it
 * reaches the daemon.
 */
import { createInspector } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';
import WebSocket from 'ws';
import type { Logger } from 'pino';

export {} from '../../core/defaults.js';

export interface StatelyInspectorOptions {
  url: string;
  logger: Logger;
  /** Events kept while not connected (oldest dropped). Default 500. */
  maxDeferredEvents?: number;
  /** Unsent bytes queued to the relay beyond which events are dropped. Default 4 MiB. */
  maxBufferedBytes?: number;
  /** Reconnect backoff. Defaults 1000 / 30000. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

export interface StatelyInspector {
  /** Pass every inspection event here (from the root actor's `inspect` option). Never throws. */
  inspect(event: InspectionEvent): void;
  /** Stops for good: closes the socket, cancels reconnects. Idempotent, never rejects. */
  close(): Promise<void>;
  /** Events sent to the relay so far (for tests and diagnostics). */
  sentCount(): number;
}

/** JSON that survives cycles, actor refs (toJSON), functions and deep nesting. */
function safeJson(value: unknown, maxDepth = 12): string {
  const stack: unknown[] = [];
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'function') return { type: v.name || 'anonymous' };
    if (typeof v !== 'object') return undefined;
    if (depth > maxDepth) return '[…]';
    if (stack.includes(v)) return '[Circular]';
    const withToJson = v as { toJSON?: () => unknown };
    if (typeof withToJson.toJSON === 'function' && !(v instanceof Date)) {
      try {
        const j = withToJson.toJSON();
        if (j !== v) return walk(j, depth + 1);
      } catch {
        return '[unserializable]';
      }
    }
    if (v instanceof Date) return v.toISOString();
    if (v instanceof Error) return { name: v.name, message: v.message };
    stack.push(v);
    try {
      if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1) ?? null);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v)) {
        const w = walk((v as Record<string, unknown>)[k], depth + 1);
        if (w !== undefined) out[k] = w;
      }
      return out;
    } finally {
      stack.pop();
    }
  };
  return JSON.stringify(walk(value, 0)) ?? 'null';
}

export function createStatelyInspector(opts: StatelyInspectorOptions): StatelyInspector {
  const log = opts.logger;
  const maxDeferred = opts.maxDeferredEvents ?? 500;
  const maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  const initialMs = opts.reconnectInitialMs ?? 1_000;
  const maxMs = opts.reconnectMaxMs ?? 30_000;
  let ws: WebSocket | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let attempt = 0;
  let closed = false;
  let sent = 0;
  let droppedSinceLog = 0;
  const deferred: string[] = [];

  let url: URL | undefined;
  try {
    url = new URL(opts.url);
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new Error(`expected ws:// or wss://, got ${url.protocol}`);
  } catch (err) {
    log.warn({ url: opts.url, err: (err as Error).message }, 'inspector disabled: invalid URL');
    url = undefined;
  }

  const transmit = (text: string): void => {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      deferred.push(text);
      if (deferred.length > maxDeferred) deferred.shift();
      return;
    }
    if (ws.bufferedAmount > maxBuffered) {
      droppedSinceLog++;
      return;
    }
    ws.send(text, (err) => {
      if (err) droppedSinceLog++;
    });
    sent++;
  };

  /**
   * New actors by sessionId until their `@xstate.actor` event is sent, to name them by their systemId:
   * the inspector names an actor by its id, and a server actor's id is only its slot number
   * (src/machines/supervisor-machine.ts) while its systemId says `server:<name>`. xstate reports an
   * actor before it sets its systemId; the conversion runs later, by when it is set.
   */
  const newActors = new Map<string, { systemId?: unknown }>();
  const adapter = {
    start() {},
    stop() {},
    send(event: unknown) {
      if (closed || !url) return;
      try {
        const e = event as { type?: unknown; sessionId?: unknown; name?: unknown };
        if (e.type === '@xstate.actor' && typeof e.sessionId === 'string') {
          const systemId = newActors.get(e.sessionId)?.systemId;
          newActors.delete(e.sessionId);
          if (typeof systemId === 'string') e.name = systemId;
        }
        transmit(safeJson(event));
      } catch {
        // observation only
      }
    },
  };
  // Same conversion as createWebSocketInspector; no autoStart (the adapter is driven from here).
  const inspector = createInspector(adapter, { autoStart: false });

  const scheduleReconnect = () => {
    if (closed || reconnectTimer) return;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 16));
    attempt++;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      connect();
    }, delay);
    reconnectTimer.unref();
  };

  const connect = () => {
    if (closed || !url) return;
    let sock: WebSocket;
    try {
      sock = new WebSocket(url, { handshakeTimeout: 5_000, maxPayload: 1024 * 1024 });
    } catch (err) {
      log.warn({ url: url.href, err: (err as Error).message }, 'inspector connection failed');
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.on('open', () => {
      if (closed) return sock.terminate();
      attempt = 0;
      log.info({ url: url!.href }, 'inspector connected');
      const backlog = deferred.splice(0);
      for (const text of backlog) transmit(text);
    });
    sock.on('message', () => undefined); // relays broadcast other clients' events; not for us
    sock.on('error', (err) => {
      log.debug({ url: url!.href, err: err.message }, 'inspector connection error');
    });
    sock.on('close', () => {
      if (ws === sock) ws = undefined;
      if (droppedSinceLog > 0) {
        log.debug({ dropped: droppedSinceLog }, 'inspector events dropped');
        droppedSinceLog = 0;
      }
      if (!closed) scheduleReconnect();
    });
  };

  connect();

  return {
    inspect(event) {
      if (closed || !url) return;
      try {
        if (event.type === '@xstate.actor') newActors.set(event.actorRef.sessionId, event.actorRef as { systemId?: unknown });
        inspector.inspect.next?.(event);
      } catch {
        // observation only
      }
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      reconnectTimer = undefined;
      deferred.length = 0;
      newActors.clear();
      const sock = ws;
      ws = undefined;
      if (!sock || sock.readyState === WebSocket.CLOSED) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = setTimeout(() => {
          sock.terminate();
          resolve();
        }, 500);
        done.unref();
        sock.once('close', () => {
          clearTimeout(done);
          resolve();
        });
        try {
          if (sock.readyState === WebSocket.CONNECTING) sock.terminate();
          else sock.close(1001, 'daemon stopping');
        } catch {
          sock.terminate();
        }
      });
    },
    sentCount: () => sent,
  };
}
