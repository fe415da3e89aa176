/**
 * The daemon's Prometheus metrics (`GET /metrics`, docs/observability.md), on a Registry of its own so
 * several daemons in one process (tests) never share a series. prom-client's default process metrics
 * describe the process, not a daemon: they live on one process-wide registry, created on first use
 * and appended to every daemon's exposition.
 *
 * Per call (the hot path, front-call-tool.ts) one number is incremented and one histogram bucket
 * counted, in plain typed arrays of a cell cached per tool name; prom-client reads the cells when
 * scraped (its own labelled `inc`/`observe` hash the labels on every call, about as costly again as
 * everything else the hook does). Labels stay bounded whatever clients send: `server` is a configured
 * server or "(unknown)", `tool` a tool that server listed or "(unknown)". Everything else (server
 * states, sessions, ledger entries) is read when scraped; restarts and reap attempts are counted from
 * the server events.
 *
 * prom-client (with the OpenTelemetry API it pulls in: ~150 modules, ~10 MB) loads with the first
 * scrape: until then every count lives in the plain structures here, so a daemon nobody scrapes never
 * pays for it. Node's process metrics therefore start with the first scrape too (CPU and memory are
 * totals of the process anyway; GC and event-loop figures cover the time since).
 */
import type * as PromClientModule from 'prom-client';
import type { Registry } from 'prom-client';
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

const OUTCOME_INDEX: Readonly<Record<CallOutcome, number>> = Object.freeze(
  Object.fromEntries(CALL_OUTCOMES.map((o, i) => [o, i])) as Record<CallOutcome, number>,
);

/** One (server, tool) label pair: calls per outcome, duration buckets (the last one is +Inf), sum. */
interface Cell {
  readonly server: string;
  readonly tool: string;
  readonly calls: Float64Array;
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

const DURATION_NAME = 'mcp_warden_tool_call_duration_seconds';

type PromClient = typeof PromClientModule;
let promClient: Promise<PromClient> | undefined;
const loadPromClient = (): Promise<PromClient> => (promClient ??= import('prom-client'));

let processRegistry: Registry | undefined;

/** Node's process metrics (CPU, memory, event loop lag, GC, handles), once per process. */
function processMetrics(prom: PromClient): Registry {
  if (!processRegistry) {
    processRegistry = new prom.Registry();
    prom.collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** prom-client's Registry.PROMETHEUS_CONTENT_TYPE (the text exposition format 0.0.4), known before it loads. */
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class WardenMetrics {
  readonly contentType = PROMETHEUS_CONTENT_TYPE;
  private registry: Registry | undefined;
  /** Restarts and reap attempts per server, counted here (prom-client reads them when scraped). */
  private readonly restarts = new Map<string, number>();
  private readonly reaps = new Map<string, number>();
  /** `<scope>\n<name>` → the cell of that call's labels; cleared when a server changes. */
  private readonly byName = new Map<string, Cell>();
  private readonly cells = new Map<string, Cell>();
  private readonly launched = new Set<string>();
  private readonly reapAttempt = new Map<string, number>();

  constructor(private readonly sources: MetricsSources) {}

  /** This daemon's own registry, made with the first scrape. */
  private ownRegistry(prom: PromClient): Registry {
    const { Counter, Gauge } = prom;
    const registry = new prom.Registry();
    const registers = [registry];
    const { cells, sources, restarts, reaps } = this;
    new Counter({
      name: 'mcp_warden_tool_calls_total',
      help: 'tools/call requests by server, upstream tool name and outcome (ok, tool_error, error, timeout, cancelled)',
      labelNames: ['server', 'tool', 'outcome'],
      registers,
      collect() {
        this.reset();
        for (const c of cells.values()) {
          CALL_OUTCOMES.forEach((outcome, i) => this.inc({ server: c.server, tool: c.tool, outcome }, c.calls[i]!));
        }
      },
    });
    // A histogram prom-client cannot be told the counts of: exposed from the cells as prom-client's own would be.
    registry.registerMetric({
      name: DURATION_NAME,
      help: 'Duration of tools/call requests, from arrival to answer',
      type: 'histogram',
      aggregator: 'sum',
      get: () => {
        const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
        for (const c of cells.values()) {
          let cumulative = 0;
          for (let i = 0; i <= DURATION_BUCKETS.length; i++) {
            cumulative += c.buckets[i]!;
            const le = i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf';
            values.push({ labels: { le, server: c.server, tool: c.tool }, value: cumulative, metricName: `${DURATION_NAME}_bucket` });
          }
          values.push({ labels: { server: c.server, tool: c.tool }, value: c.sum, metricName: `${DURATION_NAME}_sum` });
          values.push({ labels: { server: c.server, tool: c.tool }, value: c.count, metricName: `${DURATION_NAME}_count` });
        }
        return {
          name: DURATION_NAME,
          help: 'Duration of tools/call requests, from arrival to answer',
          type: 'histogram',
          values,
          aggregator: 'sum',
        };
      },
    } as unknown as Parameters<Registry['registerMetric']>[0]);
    const perServer = (name: string, help: string, counts: Map<string, number>) =>
      new Counter({
        name,
        help,
        labelNames: ['server'],
        registers,
        collect() {
          this.reset();
          for (const [server, n] of counts) this.inc({ server }, n);
        },
      });
    perServer('mcp_warden_server_restarts_total', 'Restarts of a server, after a crash or on request', restarts);
    perServer(
      'mcp_warden_reap_attempts_total',
      "Forced-release attempts (and hand-overs to the daemon's reaper) while reaping a stopped server's resources",
      reaps,
    );
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
    return registry;
  }

  /** The hot path: one counter increment and one histogram bucket, in the cell cached for this name. */
  observeCall(scope: string | undefined, name: string, outcome: CallOutcome, seconds: number): void {
    const key = scope === undefined ? name : `${scope}\n${name}`;
    let cell = this.byName.get(key);
    if (cell === undefined) {
      const { server, tool } = routeOf(scope, name);
      cell = this.cellFor(server, tool);
      // A client can send endless distinct names; they all map to few cells, the key cache stays bounded.
      if (this.byName.size >= 10_000) this.byName.clear();
      this.byName.set(key, cell);
    }
    cell.calls[OUTCOME_INDEX[outcome]]!++;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    cell.buckets[i]!++;
    cell.sum += seconds;
    cell.count++;
  }

  private cellFor(server: string, tool: string): Cell {
    const s = server !== '' && this.sources.knownServer(server) ? server : UNKNOWN_LABEL;
    const t = s !== UNKNOWN_LABEL && this.sources.knownTool(server, tool) ? tool : UNKNOWN_LABEL;
    const key = `${s}\n${t}`;
    let c = this.cells.get(key);
    if (c === undefined) {
      c = {
        server: s,
        tool: t,
        calls: new Float64Array(CALL_OUTCOMES.length),
        buckets: new Float64Array(DURATION_BUCKETS.length + 1),
        sum: 0,
        count: 0,
      };
      this.cells.set(key, c);
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
      if (this.launched.has(v.name)) this.restarts.set(v.name, (this.restarts.get(v.name) ?? 0) + 1);
      else this.launched.add(v.name);
    } else if (v.state === 'stopped') {
      this.launched.delete(v.name);
    } else if (!v.state.startsWith('starting')) {
      // Past its launch (the first launch of a server may not be seen as an event of its own).
      this.launched.add(v.name);
    }
    const before = this.reapAttempt.get(v.name) ?? 0;
    if (v.reapAttempt > before) this.reaps.set(v.name, (this.reaps.get(v.name) ?? 0) + v.reapAttempt - before);
    this.reapAttempt.set(v.name, v.reapAttempt);
  }

  /** The exposition: this daemon's metrics, then the process metrics. */
  async text(): Promise<string> {
    const prom = await loadPromClient();
    this.registry ??= this.ownRegistry(prom);
    const own = await this.registry.metrics();
    const proc = await processMetrics(prom).metrics();
    return `${own}\n${proc}`;
  }
}
