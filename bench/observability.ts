/**
 * The cost of observability on the tool-call hot path: the same mcp-warden twice in one run, with
 * metrics and the call log on (the defaults: a counter, a histogram observation and a buffered call
 * log entry per call, written once a second) and with both off (settings.metrics / settings.callLog
 * "off"), each with its own upstream. Method as in overhead.ts: warm-up, then rounds in which each
 * target gets one block of calls in an order rotated every round, sequential and then at concurrency;
 * the result is the ratio on/off of p50, p99 and throughput, and the median of the per-round p50 ratios.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CallLog } from '../src/adapters/observability/call-log.js';
import { WardenMetrics } from '../src/adapters/observability/call-metrics.js';
import { createCallObserver } from '../src/adapters/observability/call-observer.js';
import { ResourceLedger } from '../src/core/resource-ledger.js';
import { DEFAULT_SETTINGS } from '../src/core/settings.js';
import { RUN_ARG, type Reaper } from './lib/proc.js';
import { concurrent, connectHttp, sequential, type EchoConn } from './lib/client.js';
import { startWarden, stopWarden } from './lib/warden.js';
import { percentile, sortNum } from './lib/stats.js';

export interface ObservabilityConfig {
  warmup: number;
  rounds: number;
  block: number;
  concurrency: number;
  upstream: { command: string; args: string[]; label: string };
}

export interface ObservedDist {
  n: number;
  p50: number;
  p99: number;
  roundP50: number[];
}

export interface ObservabilityTarget {
  id: 'on' | 'off';
  seq: ObservedDist;
  conc: ObservedDist & { callsPerSec: number };
  /** Lines in calls.jsonl after the run (on only): every measured call was logged. */
  logged?: number;
}

export interface ObservabilityResult {
  config: ObservabilityConfig;
  targets: ObservabilityTarget[];
  /** In-process cost of the per-call hook (µs per call): on the call path, and the flush's share per call. */
  hook?: { calls: number; callPathUs: number; flushUs: number };
  /** on / off. */
  ratio?: { seqP50: number; seqP99: number; seqRoundP50Median: number; concP50: number; concP99: number; throughput: number };
  skipped?: string;
  wallMs: number;
}

function dist(rounds: number[][]): ObservedDist {
  const all = sortNum(rounds.flat());
  return { n: all.length, p50: percentile(all, 50), p99: percentile(all, 99), roundP50: rounds.map((r) => percentile(sortNum(r), 50)) };
}

function median(xs: number[]): number {
  const s = sortNum(xs);
  return s.length === 0 ? Number.NaN : percentile(s, 50);
}

/**
 * The hook alone, in this process: the observer front-call-tool.ts calls, with real metrics and a real
 * call log file; the call path is timed apart from the flushes (every 1000 calls, as a busy second would).
 */
async function measureHook(calls: number): Promise<{ calls: number; callPathUs: number; flushUs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-bench-hook-'));
  const ledger = new ResourceLedger();
  const logger = pino({ enabled: false });
  const metrics = new WardenMetrics({
    servers: () => [],
    sessions: () => 0,
    ledgerCounts: () => ({}),
    knownServer: (s) => s === 'up',
    knownTool: (_s, t) => t === 'echo',
  });
  const callLog = new CallLog({
    file: join(dir, 'calls.jsonl'),
    settings: { ...DEFAULT_SETTINGS, callLogFlushMs: 60_000 },
    ledger,
    logger,
  });
  const observer = createCallObserver({ metrics, callLog, logger })!;
  const result = { content: [{ type: 'text', text: 'Echo: hi' }] };
  const args = { message: 'hi' };
  let callPath = 0;
  let flush = 0;
  try {
    for (let i = 0; i < calls; i += 1000) {
      const t0 = performance.now();
      for (let k = 0; k < 1000; k++)
        observer.ended(undefined, 'up__echo', 'session-1', args, performance.now() - 1, result, undefined, false);
      const t1 = performance.now();
      callLog.flush();
      const t2 = performance.now();
      callPath += t1 - t0;
      flush += t2 - t1;
    }
  } finally {
    await callLog.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { calls, callPathUs: (callPath * 1000) / calls, flushUs: (flush * 1000) / calls };
}

export async function runObservability(reaper: Reaper, cfg: ObservabilityConfig, log: (s: string) => void): Promise<ObservabilityResult> {
  const t0 = performance.now();
  const up = { command: cfg.upstream.command, args: [...cfg.upstream.args, RUN_ARG] };
  const variants: Array<{ id: 'on' | 'off'; settings: Record<string, unknown> }> = [
    { id: 'on', settings: { metrics: 'on', callLog: 'on' } },
    { id: 'off', settings: { metrics: 'off', callLog: 'off' } },
  ];
  const live: Array<{ id: 'on' | 'off'; conn: EchoConn; stop: () => Promise<void>; seq: number[][]; conc: number[][]; wall: number }> = [];
  let logged = 0;
  try {
    for (const v of variants) {
      log(`  starting mcp-warden (metrics + call log ${v.id}) …`);
      const w = await startWarden(reaper, { up }, v.settings);
      await w.waitAllRunning(1, 30_000);
      const conn = await connectHttp(w.mcpUrl, 'streamable', `mcp-warden ${v.id}`);
      live.push({
        id: v.id,
        conn,
        stop: async () => {
          await conn.close();
          // The call log is written at the daemon's stop at the latest: every call of the run is a line.
          await stopWarden(reaper, w, 20_000, () => {
            if (v.id !== 'on') return;
            try {
              logged = readFileSync(join(w.dataDir, 'calls.jsonl'), 'utf8').split('\n').filter(Boolean).length;
            } catch {
              logged = 0;
            }
          });
        },
        seq: [],
        conc: [],
        wall: 0,
      });
    }
    log(`  warm-up: ${cfg.warmup} calls each …`);
    for (let r = 0; r < 3; r++) {
      for (let k = 0; k < live.length; k++) {
        const t = live[(k + r) % live.length]!;
        await sequential(t.conn, Math.ceil(cfg.warmup / 6));
        await concurrent(t.conn, Math.floor(cfg.warmup / 6), cfg.concurrency);
      }
    }
    for (let r = 0; r < cfg.rounds; r++) {
      for (let k = 0; k < live.length; k++) {
        const t = live[(k + r) % live.length]!;
        t.seq.push(await sequential(t.conn, cfg.block));
      }
    }
    log(`  ${cfg.rounds} sequential rounds done`);
    for (let r = 0; r < cfg.rounds; r++) {
      for (let k = 0; k < live.length; k++) {
        const t = live[(k + r) % live.length]!;
        const { lat, wallMs } = await concurrent(t.conn, cfg.block, cfg.concurrency);
        t.conc.push(lat);
        t.wall += wallMs;
      }
    }
    log(`  ${cfg.rounds} concurrency-${cfg.concurrency} rounds done`);
  } catch (err) {
    for (const t of live) await t.stop().catch(() => undefined);
    return { config: cfg, targets: [], skipped: err instanceof Error ? err.message : String(err), wallMs: performance.now() - t0 };
  }
  const targets: ObservabilityTarget[] = [];
  for (const t of live) {
    await t.stop().catch(() => undefined);
    const conc = dist(t.conc);
    const target: ObservabilityTarget = { id: t.id, seq: dist(t.seq), conc: { ...conc, callsPerSec: (conc.n / t.wall) * 1000 } };
    if (t.id === 'on') target.logged = logged;
    targets.push(target);
  }
  const on = targets.find((t) => t.id === 'on')!;
  const off = targets.find((t) => t.id === 'off')!;
  const ratio = {
    seqP50: on.seq.p50 / off.seq.p50,
    seqP99: on.seq.p99 / off.seq.p99,
    seqRoundP50Median: median(on.seq.roundP50.map((v, i) => v / off.seq.roundP50[i]!)),
    concP50: on.conc.p50 / off.conc.p50,
    concP99: on.conc.p99 / off.conc.p99,
    throughput: on.conc.callsPerSec / off.conc.callsPerSec,
  };
  log(
    `  on/off: sequential p50 ×${ratio.seqP50.toFixed(3)} (per-round median ×${ratio.seqRoundP50Median.toFixed(3)}), p99 ×${ratio.seqP99.toFixed(3)}; ` +
      `concurrent p50 ×${ratio.concP50.toFixed(3)}, throughput ×${ratio.throughput.toFixed(3)}; ${on.logged} calls logged`,
  );
  const hook = await measureHook(200_000);
  log(
    `  the hook in-process: ${hook.callPathUs.toFixed(2)} µs per call on the call path, ${hook.flushUs.toFixed(2)} µs per call in the flush`,
  );
  return { config: cfg, targets, ratio, hook, wallMs: performance.now() - t0 };
}
