/**
 * The daemon's Prometheus metrics (`GET /metrics`, docs/observability.md), on a Registry of its own so
 * several daemons in one process (tests) never share a series. prom-client's default process metrics
 * describe the process, not a daemon: they live on one process-wide registry, created on first use
 * and appended to every daemon's exposition.
 *
 * Per call (the hot path, front-call-tool.ts) only a cached counter child is incremented and a cached
 * histogram child observed. Labels stay bounded whatever clients send: `server` is a configured server
 * or "(unknown)", `tool` a tool that server listed or "(unknown)". Everything else (server states,
 * sessions, ledger entries) is read when scraped; restarts and reap attempts are counted from the
 * server events.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CALL_OUTCOMES, routeOf, type CallOutcome } from './call-record.js';

export const UNKNOWN_LABEL = '(unknown)';

/** The top-level states of the server statechart (src/machines/server-machine.ts), plus `disabled`. */
export const SERVER_STATES = ['starting', 'running', 'quarantined', 'stopping', 'reaping', 'stopped', 'disabled'] as const;

/** Seconds; tool calls run from a millisecond to toolCallTimeoutMs (60 s by default). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface MetricsSources {
  /** Every server's view: name and dotted state. */
  servers(): ReadonlyArray<{ name: string; state: string }>;
  /** Open MCP sessions on /mcp. */
  sessions(): number;
  /** Ledger counts per owner and kind. */
  ledgerCounts(): Record<string, Partial<Record<string, number>>>;
  /** Is `server` configured? */
  knownServer(server: string): boolean;
  /** Did `server` list `tool`? */
  knownTool(server: string, tool: string): boolean;
  /** Calls the call log dropped (it was full), if it runs. */
  callLogDropped?(): number;
}

/** The server event the metrics follow (src/daemon/server-events.ts). */
export interface ServerStateEvent {
  type: string;
  server?: { name: string; state: string; reapAttempt: number };
  name?: string;
}

interface Children {
  duration: Histogram.Internal<'server' | 'tool'>;
  calls: Record<CallOutcome, Counter.Internal>;
}

let processRegistry: Registry | undefined;

/** Node's process metrics (CPU, memory, event loop lag, GC, handles), once per process. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class WardenMetrics {
  readonly registry = new Registry();
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  private readonly calls: Counter<'server' | 'tool' | 'outcome'>;
  private readonly duration: Histogram<'server' | 'tool'>;
  private readonly restarts: Counter<'server'>;
  private readonly reaps: Counter<'server'>;
  /** `<scope>\n<name>` → the metric children of that call's labels; cleared when a server changes. */
  private readonly byName = new Map<string, Children>();
  private readonly byLabels = new Map<string, Children>();
  private readonly launched = new Set<string>();
  private readonly reapAttempt = new Map<string, number>();

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    this.calls = new Counter({
      name: 'mcp_warden_tool_calls_total',
      help: 'tools/call requests by server, upstream tool name and outcome (ok, tool_error, error, timeout, cancelled)',
      labelNames: ['server', 'tool', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'mcp_warden_tool_call_duration_seconds',
      help: 'Duration of tools/call requests, from arrival to answer',
      labelNames: ['server', 'tool'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.restarts = new Counter({
      name: 'mcp_warden_server_restarts_total',
      help: 'Restarts of a server, after a crash or on request',
      labelNames: ['server'],
      registers,
    });
    this.reaps = new Counter({
      name: 'mcp_warden_reap_attempts_total',
      help: "Forced-release attempts (and hand-overs to the daemon's reaper) while reaping a stopped server's resources",
      labelNames: ['server'],
      registers,
    });
    new Gauge({
      name: 'mcp_warden_server_state',
      help: 'Server state: 1 for the current top-level state, 0 for the others',
      labelNames: ['server', 'state'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.servers()) {
          const top = s.state.split('.', 1)[0]!;
          for (const state of SERVER_STATES) this.set({ server: s.name, state }, state === top ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'mcp_warden_sessions',
      help: 'Open MCP client sessions on /mcp and /mcp/<server>',
      registers,
      collect() {
        this.set(sources.sessions());
      },
    });
    new Gauge({
      name: 'mcp_warden_ledger_entries',
      help: 'Resources held, from the resource ledger, by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const byKind = new Map<string, number>();
        for (const kinds of Object.values(sources.ledgerCounts())) {
          for (const [kind, n] of Object.entries(kinds)) byKind.set(kind, (byKind.get(kind) ?? 0) + (n ?? 0));
        }
        for (const [kind, n] of byKind) this.set({ kind }, n);
      },
    });
    new Counter({
      name: 'mcp_warden_call_log_dropped_total',
      help: 'Calls the call log dropped because more than callLogMaxPending waited for the next write',
      registers,
      collect() {
        this.reset();
        this.inc(sources.callLogDropped?.() ?? 0);
      },
    });
  }

  /** The hot path: one counter increment, one histogram observation (children cached per name). */
  observeCall(scope: string | undefined, name: string, outcome: CallOutcome, seconds: number): void {
    const key = scope === undefined ? name : `${scope}\n${name}`;
    let children = this.byName.get(key);
    if (children === undefined) {
      const { server, tool } = routeOf(scope, name);
      children = this.childrenFor(server, tool);
      // A client can send endless distinct names; they all map to few children, the key cache stays bounded.
      if (this.byName.size >= 10_000) this.byName.clear();
      this.byName.set(key, children);
    }
    children.calls[outcome].inc();
    children.duration.observe(seconds);
  }

  private childrenFor(server: string, tool: string): Children {
    const s = server !== '' && this.sources.knownServer(server) ? server : UNKNOWN_LABEL;
    const t = s !== UNKNOWN_LABEL && this.sources.knownTool(server, tool) ? tool : UNKNOWN_LABEL;
    const key = `${s}\n${t}`;
    let c = this.byLabels.get(key);
    if (c === undefined) {
      const calls = {} as Children['calls'];
      for (const outcome of CALL_OUTCOMES) calls[outcome] = this.calls.labels({ server: s, tool: t, outcome });
      c = { duration: this.duration.labels({ server: s, tool: t }), calls };
      this.byLabels.set(key, c);
    }
    return c;
  }

  /**
   * A server event: a change of tools or servers may change labels (the name cache is dropped); each
   * launch after the server's first (since its actor started) is a restart; each increase of its reap
   * attempt counts one.
   */
  onServerEvent(e: ServerStateEvent): void {
    this.byName.clear();
    if (e.type === 'server-removed' && e.name !== undefined) {
      this.launched.delete(e.name);
      this.reapAttempt.delete(e.name);
      return;
    }
    const v = e.server;
    if (e.type !== 'server' || v === undefined) return;
    if (v.state === 'starting.launching') {
      if (this.launched.has(v.name)) this.restarts.inc({ server: v.name });
      else this.launched.add(v.name);
    } else if (v.state === 'stopped') {
      this.launched.delete(v.name);
    } else if (!v.state.startsWith('starting')) {
      // Past its launch (the first launch of a server may not be seen as an event of its own).
      this.launched.add(v.name);
    }
    const before = this.reapAttempt.get(v.name) ?? 0;
    if (v.reapAttempt > before) this.reaps.inc({ server: v.name }, v.reapAttempt - before);
    this.reapAttempt.set(v.name, v.reapAttempt);
  }

  /** The exposition: this daemon's metrics, then the process metrics. */
  async text(): Promise<string> {
    const own = await this.registry.metrics();
    const proc = await processMetrics().metrics();
    return `${own}\n${proc}`;
  }
}
