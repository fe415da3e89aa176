/** BENCHMARKS.md, written as a whole from one run's results. */
import type { EnvInfo } from './env-info.js';
import type { PeerInstall } from './peers.js';
import type { OverheadResult, TargetResult } from '../overhead.js';
import { rssPerActorKiB, rssSlopeKiB, type ScaleResult } from '../scale.js';
import { listP, medianRate, type ThroughputResult } from '../throughput.js';
import type { TeardownResult } from '../teardown.js';
import type { ContainerResult } from '../containers.js';
import type { ObservabilityResult } from '../observability.js';
import type { SearchBenchResult } from '../search.js';
import type { SearchE2eResult } from '../search-e2e.js';
import { renderSearch } from '../search-report.js';
import type { RemoteResult } from '../remote.js';
import { kib, mark, median, ms, percentile, ratio, slope, sortNum } from './stats.js';

export interface ChurnResult {
  ok: boolean;
  error?: string;
  cycles: number;
  warmup: number;
  loopMs: number;
  cycleMs: number[];
  upMs: number[];
  downMs: number[];
  heapSamples: Array<[number, number]>;
  /** Used bytes per V8 heap space at each heap sample. */
  spaceSamples?: Array<[number, Record<string, number>]>;
  heapStart: number;
  heapEnd: number;
  rssBefore: number;
  rssAfter: number;
  handlesBefore: Record<string, number>;
  handlesAfter: Record<string, number>;
  fdsBefore: number;
  fdsAfter: number;
  ledgerSize: number;
}

export interface BenchResults {
  env: EnvInfo;
  peers: PeerInstall;
  quick: boolean;
  sections: string[];
  wallMs: number;
  overhead?: OverheadResult;
  scale?: ScaleResult;
  throughput?: ThroughputResult;
  churn?: ChurnResult;
  teardown?: TeardownResult;
  containers?: ContainerResult;
  observability?: ObservabilityResult;
  search?: SearchBenchResult | { error: string };
  searchE2e?: SearchE2eResult | { error: string };
  remote?: RemoteResult;
  cleanup?: { swept: string[] };
  /** 1-minute load average: at the start, and sampled every 2 s during the run. */
  load?: { start: number; samples: number; mean: number; max: number; bySection?: Record<string, number> };
  clientListenerWarnings?: number;
}

interface Goal {
  goal: string;
  measured: string;
  ok: boolean | undefined;
}

const samples = (xs: number[], f: (x: number) => string = (x) => x.toFixed(0)) => xs.map(f).join(', ');
const handleStr = (h: Record<string, number>) =>
  Object.entries(h)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';
const sameCounts = (a: Record<string, number>, b: Record<string, number>) =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].every((k) => (a[k] ?? 0) === (b[k] ?? 0));

interface HeapPerCycle {
  /** All V8 heap spaces (process.memoryUsage().heapUsed). */
  slope: number;
  endToEnd: number;
  /** Without code spaces (JIT machine code), when the per-space samples exist. */
  dataSlope: number;
  dataEndToEnd: number;
  /** Growth of the code spaces over the measured cycles, bytes. */
  codeGrowth: number;
}

const isCode = (space: string) => space.startsWith('code');

function churnHeapPerCycle(c: ChurnResult): HeapPerCycle {
  const xs = c.heapSamples.map(([i]) => i);
  const out: HeapPerCycle = {
    slope: slope(
      xs,
      c.heapSamples.map(([, h]) => h),
    ),
    endToEnd: (c.heapEnd - c.heapStart) / c.cycles,
    dataSlope: Number.NaN,
    dataEndToEnd: Number.NaN,
    codeGrowth: Number.NaN,
  };
  const sp = c.spaceSamples;
  if (sp && sp.length >= 2) {
    const data = (r: Record<string, number>) => Object.entries(r).reduce((a, [k, v]) => (isCode(k) ? a : a + v), 0);
    const code = (r: Record<string, number>) => Object.entries(r).reduce((a, [k, v]) => (isCode(k) ? a + v : a), 0);
    out.dataSlope = slope(
      sp.map(([i]) => i),
      sp.map(([, r]) => data(r)),
    );
    const first = sp[0]!;
    const last = sp[sp.length - 1]!;
    out.dataEndToEnd = (data(last[1]) - data(first[1])) / Math.max(1, last[0] - first[0]);
    out.codeGrowth = code(last[1]) - code(first[1]);
  }
  return out;
}

/** Median of a[i] / b[i] over the repetitions both measured: each pair ran back to back, so drift cancels. */
function pairedRatio(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  return median(Array.from({ length: n }, (_, i) => a[i]! / b[i]!));
}

function goals(r: BenchResults): Goal[] {
  const out: Goal[] = [];
  const o = r.overhead;
  if (o) {
    const ours = o.targets.find((t) => t.id === 'mcp-warden' && t.ok);
    const peers = o.targets.filter((t) => t.group === 'peer' && t.ok);
    if (ours?.seq && o.floor) {
      const x = ours.seq.p50 / o.floor.seq.p50;
      const perRound = median(ours.seq.roundP50.map((v, i) => v / o.floor!.seq.roundP50[i]!));
      out.push({
        goal: 'Overhead: mcp-warden p50 within 1.1× of the floor (sequential)',
        measured: `${ms(ours.seq.p50)} vs floor ${ms(o.floor.seq.p50)} = ${ratio(x)} (median of per-round ratios ${ratio(perRound)})`,
        ok: x <= 1.1,
      });
    } else out.push({ goal: 'Overhead: mcp-warden p50 within 1.1× of the floor', measured: 'not measured', ok: undefined });
    const base = o.targets.find((t) => t.id.startsWith('mcp-warden @') && t.ok);
    for (const mode of ['seq', 'conc'] as const) {
      const label = mode === 'seq' ? 'sequential' : `concurrency ${o.config.concurrency}`;
      if (base?.[mode] && ours?.[mode]) {
        const perRound = median(ours[mode]!.roundP50.map((v, i) => v / base[mode]!.roundP50[i]!));
        out.push({
          goal: `Overhead: no regression against ${base.id.slice('mcp-warden @ '.length)} (${label}; p50 within 1.05×)`,
          measured: `${ms(ours[mode]!.p50)} vs ${ms(base[mode]!.p50)} = ${ratio(ours[mode]!.p50 / base[mode]!.p50)} (median of per-round ratios ${ratio(perRound)})`,
          ok: ours[mode]!.p50 / base[mode]!.p50 <= 1.05,
        });
      }
      if (!ours?.[mode] || peers.length === 0) {
        out.push({ goal: `Overhead: p50 below every peer's (${label})`, measured: 'no peer measured', ok: undefined });
        continue;
      }
      const best = peers.reduce((a, b) => (a[mode]!.p50 <= b[mode]!.p50 ? a : b));
      out.push({
        goal: `Overhead: p50 below every peer's (${label})`,
        measured: `${ms(ours[mode]!.p50)} vs best peer ${best.id} ${ms(best[mode]!.p50)}`,
        ok: peers.every((p) => ours[mode]!.p50 < p[mode]!.p50),
      });
      const same = peers.filter((p) => p.id.includes('Streamable HTTP'));
      if (same.length > 0) {
        const bestSame = same.reduce((a, b) => (a[mode]!.p50 <= b[mode]!.p50 ? a : b));
        out.push({
          goal: `… same transport only: below every Streamable HTTP peer's (${label}; informative)`,
          measured: `${ms(ours[mode]!.p50)} vs ${bestSame.id} ${ms(bestSame[mode]!.p50)}`,
          ok: same.every((p) => ours[mode]!.p50 < p[mode]!.p50),
        });
      }
    }
  }
  const ob = r.observability?.ratio;
  if (ob) {
    out.push({
      goal: 'Metrics + call log on cost at most 5 % of the sequential p50',
      measured: `on/off p50 ${ratio(ob.seqP50)} (median of per-round ratios ${ratio(ob.seqRoundP50Median)}), throughput ${ratio(ob.throughput)}`,
      ok: ob.seqRoundP50Median <= 1.05,
    });
  }
  if (r.throughput) out.push(...throughputGoals(r.throughput));
  const s = r.scale;
  if (s) out.push(...scaleGoals(s));
  const c = r.churn;
  if (c?.ok) {
    const hOk = sameCounts(c.handlesBefore, c.handlesAfter);
    out.push({
      goal: 'Churn: no growth in handles/fds after warm-up',
      measured: `handles ${hOk ? 'unchanged' : `${handleStr(c.handlesBefore)} → ${handleStr(c.handlesAfter)}`}, fds ${c.fdsBefore} → ${c.fdsAfter}`,
      ok: hOk && c.fdsAfter <= c.fdsBefore,
    });
    const h = churnHeapPerCycle(c);
    const useData = Number.isFinite(h.dataSlope);
    out.push({
      goal: `Churn: < 1 KiB heap per cycle after ${c.warmup} warm-up cycles (after forced GC; whole V8 heap, slope and end − start)`,
      measured: useData
        ? `slope ${kib(h.slope)}/cycle, end − start ${kib(h.endToEnd)}/cycle (without the JIT code spaces: ${kib(h.dataSlope)}, ${kib(h.dataEndToEnd)})`
        : `slope ${kib(h.slope)}/cycle, end − start ${kib(h.endToEnd)}/cycle`,
      ok: h.slope < 1024 && h.endToEnd < 1024,
    });
  } else if (c) out.push({ goal: 'Churn', measured: `failed: ${c.error ?? '?'}`, ok: false });
  const t = r.teardown;
  if (t && t.watchdogPresent && t.sigkillMs.length > 0) {
    const worst = Math.max(...t.sigkillMs);
    out.push({
      goal: 'SIGKILL → zero orphans well under 3 s (watchdog present)',
      measured: `worst ${Number.isFinite(worst) ? ms(worst) : 'not reaped'} of ${t.sigkillMs.length}`,
      ok: worst < 3_000,
    });
  }
  return out;
}

function throughputGoals(t: ThroughputResult): Goal[] {
  const out: Goal[] = [];
  for (const c of t.config.connections) {
    const ours = medianRate(t, 'mcp-warden', c);
    const lean = medianRate(t, 'lean node:http', c);
    const goal = `tools/call throughput at ${c} connections ≥ 0.6× the lean node:http server's, every answer a 200 with a result`;
    if (!Number.isFinite(ours) || !Number.isFinite(lean)) {
      out.push({ goal, measured: 'not measured', ok: undefined });
      continue;
    }
    const bad = (t.load['mcp-warden']?.[c] ?? []).reduce((a, x) => a + x.bad, 0);
    const ok = (t.load['mcp-warden']?.[c] ?? []).reduce((a, x) => a + x.ok, 0);
    const sdk = medianRate(t, 'bare SDK HTTP', c);
    out.push({
      goal,
      measured:
        `${ours.toFixed(0)} vs ${lean.toFixed(0)} req/s = ${ratio(ours / lean)} (bare SDK HTTP ${Number.isFinite(sdk) ? sdk.toFixed(0) : '—'}); ` +
        `${ok} good answers, ${bad} other`,
      ok: ours / lean >= 0.6 && bad === 0,
    });
  }
  const one = t.list[1];
  const many = Object.keys(t.list)
    .map(Number)
    .filter((n) => n > 1)
    .at(-1);
  if (one && many !== undefined) {
    const x = listP(t, many, 50) / listP(t, 1, 50);
    out.push({
      goal: `tools/list p50 at ${many} upstreams within 1.5× of 1 upstream`,
      measured: `${ms(listP(t, many, 50))} vs ${ms(listP(t, 1, 50))} = ${ratio(x)} (${t.list[many]!.length} calls each)`,
      ok: x <= 1.5,
    });
  }
  return out;
}

function scaleGoals(s: ScaleResult): Goal[] {
  const out: Goal[] = [];
  for (const row of s.rows) {
    const goal = `${row.n} upstream${row.n === 1 ? '' : 's'} running within 1.2× of the no-proxy spawn time`;
    if (row.wardenMs.length === 0 || row.plainMs.length === 0) {
      out.push({ goal, measured: 'not measured', ok: undefined });
      continue;
    }
    const x = median(row.wardenMs) / median(row.plainMs);
    const paired = pairedRatio(row.wardenMs, row.plainMs);
    out.push({
      goal,
      measured: `${ms(median(row.wardenMs))} vs ${ms(median(row.plainMs))} = ${ratio(x)} (per-repetition ratios ${samples(
        row.wardenMs.slice(0, row.plainMs.length).map((w, i) => w / row.plainMs[i]!),
        (v) => v.toFixed(2),
      )}, median ${ratio(paired)})`,
      ok: x <= 1.2,
    });
  }
  const big = s.rows.at(-1);
  if (big) {
    const goal = `\`mcp-warden stop\` with ${big.n} upstreams within 0.5 s, every group verified gone (wall time of the CLI)`;
    const survivors = big.survivors.reduce((a, b) => a + b, 0);
    out.push(
      big.stopMs.length === 0
        ? { goal, measured: 'not measured', ok: undefined }
        : {
            goal,
            measured: `${ms(median(big.stopMs))} [${samples(big.stopMs)}], ${survivors} survivor(s) over ${big.survivors.length} stops`,
            ok: median(big.stopMs) <= 500 && survivors === 0 && big.survivors.length === big.stopMs.length,
          },
    );
  }
  const one = s.rows.find((x) => x.n === 1);
  if (one && one.rssKiB.length > 0) {
    const rss = median(one.rssKiB);
    const bare =
      s.bareNodeRssKiB.length > 0
        ? ` (an idle bare \`node\`: ${kib(median(s.bareNodeRssKiB) * 1024)}, ratio ${ratio(rss / median(s.bareNodeRssKiB))})`
        : '';
    out.push({
      goal: 'Daemon RSS with one upstream ≤ 60 MiB',
      measured: `${kib(rss * 1024)} [${samples(one.rssKiB, (x) => (x / 1024).toFixed(1))} MiB]${bare}`,
      ok: rss <= 60 * 1024,
    });
  }
  const sl = rssSlopeKiB(s);
  if (Number.isFinite(sl))
    out.push({
      goal: 'Per-upstream actor cost ≤ 100 KiB (slope of daemon RSS over N)',
      measured: `${kib(sl * 1024)} per upstream`,
      ok: sl <= 100,
    });
  return out;
}

function overheadTables(o: OverheadResult, lines: string[]): void {
  const direct = o.targets.find((t) => t.id === 'direct stdio' && t.ok);
  const row = (t: TargetResult, mode: 'seq' | 'conc') => {
    const d = t[mode]!;
    const f = o.floor?.[mode];
    const dir = direct?.[mode];
    const vsFloor = t.group === 'baseline' || !f ? '' : `${ratio(d.p50 / f.p50)} / ${ratio(d.p99 / f.p99)}`;
    const vsDirect = t.id === 'direct stdio' || !dir ? '' : `${ratio(d.p50 / dir.p50)} / ${ratio(d.p99 / dir.p99)}`;
    const extra = mode === 'conc' ? ` | ${t.conc!.callsPerSec.toFixed(0)}` : '';
    const name = t.group === 'ours' ? `**${t.id}**` : t.id;
    return `| ${name} | ${ms(d.p50)} | ${ms(d.p99)} | ${d.n}${extra} | ${vsFloor} | ${vsDirect} | ${t.note} |`;
  };
  for (const mode of ['seq', 'conc'] as const) {
    const title =
      mode === 'seq'
        ? 'Sequential (one call in flight)'
        : `Concurrency ${o.config.concurrency} (one session, ${o.config.concurrency} calls in flight)`;
    lines.push(`### ${title}`, '');
    lines.push(
      mode === 'seq'
        ? '| target | p50 | p99 | samples | ÷ floor (p50 / p99) | ÷ direct (p50 / p99) | transport |'
        : '| target | p50 | p99 | samples | calls/s | ÷ floor (p50 / p99) | ÷ direct (p50 / p99) | transport |',
    );
    lines.push(mode === 'seq' ? '|---|---:|---:|---:|---:|---:|---|' : '|---|---:|---:|---:|---:|---:|---:|---|');
    for (const t of o.targets.filter((x) => x.group === 'baseline' && x.ok)) lines.push(row(t, mode));
    if (o.floor) {
      const f = o.floor[mode];
      const dir = direct?.[mode];
      const vsDirect = dir ? `${ratio(f.p50 / dir.p50)} / ${ratio(f.p99 / dir.p99)}` : '';
      lines.push(
        `| *floor = bare HTTP + direct stdio* | ${ms(f.p50)} | ${ms(f.p99)} | ${f.n}${mode === 'conc' ? ' | ' : ''} | 1.00× | ${vsDirect} | per-round convolution of the two rows above |`,
      );
    }
    for (const t of o.targets.filter((x) => x.group !== 'baseline')) {
      if (t.ok) lines.push(row(t, mode));
      else lines.push(`| ${t.id} | — | — | 0${mode === 'conc' ? ' | —' : ''} | — | — | **skipped**: ${t.skipped} |`);
    }
    lines.push('');
  }
  const drift = o.targets.filter((t) => t.ok && t.seq);
  if (drift.length > 0) {
    lines.push('<details><summary>p50 of each sequential round (drift check)</summary>', '');
    lines.push(`| target | ${drift[0]!.seq!.roundP50.map((_, i) => `r${i + 1}`).join(' | ')} |`);
    lines.push(`|---|${drift[0]!.seq!.roundP50.map(() => '---:').join('|')}|`);
    for (const t of drift) lines.push(`| ${t.id} | ${t.seq!.roundP50.map((x) => x.toFixed(2)).join(' | ')} |`);
    if (o.floor) lines.push(`| floor | ${o.floor.seq.roundP50.map((x) => x.toFixed(2)).join(' | ')} |`);
    lines.push('', 'Values in ms.', '', '</details>', '');
  }
}

export function renderReport(r: BenchResults): string {
  const e = r.env;
  const L: string[] = [];
  L.push('# Benchmarks', '');
  L.push(
    `Generated by \`npm run bench\` (bench/run-bench.ts) on ${e.date}${r.quick ? ' — **quick mode (BENCH_QUICK=1): small samples, not for comparison**' : ''}. ` +
      `Whole run: ${(r.wallMs / 1000).toFixed(0)} s. Method and caveats: [docs/benchmarks.md](docs/benchmarks.md). ` +
      'This file is overwritten by every full run.',
    '',
  );
  L.push('## Machine and versions', '', '| | |', '|---|---|');
  L.push(`| CPUs (\`nproc\`) | ${e.nproc} |`, `| CPU model | ${e.cpu} |`, `| Memory | ${e.memory} |`, `| Node | ${e.node} |`);
  L.push(`| Kernel | ${e.kernel} |`, `| mcp-warden | ${e.warden} |`, `| @modelcontextprotocol/sdk | ${e.sdk} |`);
  if (r.peers.ok) {
    for (const [k, v] of Object.entries(r.peers.versions)) L.push(`| ${k} | ${v ?? 'not installed'} (in .bench/peers) |`);
  } else L.push(`| peers | not available: ${r.peers.reason} |`);
  if (r.load) {
    L.push(
      `| Load average (1 min) | ${r.load.start.toFixed(2)} at start; during the run mean ${r.load.mean.toFixed(2)}, max ${r.load.max.toFixed(2)} (${r.load.samples} samples, every 2 s; includes the bench's own processes)` +
        `${
          r.load.bySection
            ? `; mean per section: ${Object.entries(r.load.bySection)
                .map(([k, v]) => `${k} ${v.toFixed(1)}`)
                .join(', ')}`
            : ''
        } |`,
    );
  }
  L.push(`| Docker | ${e.docker.available ? e.docker.detail : `no engine (${e.docker.detail})`} |`, '');

  const g = goals(r);
  if (g.length > 0) {
    L.push('## Goals', '', 'Marks, not assertions: a failing goal does not fail the run.', '');
    L.push('| goal | measured | |', '|---|---|---|');
    for (const x of g) L.push(`| ${x.goal} | ${x.measured} | ${mark(x.ok)} |`);
    L.push('');
  }

  const o = r.overhead;
  if (o) {
    L.push('## 1–2. Tool-call overhead, and peers', '');
    L.push(
      `\`tools/call\` of \`echo\` {message} on ${o.config.upstream.label}, through each target, with the same client code ` +
        `(MCP SDK \`Client\`; StdioClientTransport, StreamableHTTPClientTransport or SSEClientTransport). ` +
        `Warm-up ${o.config.warmup} calls per target (half sequential, half at concurrency ${o.config.concurrency}, in 3 rotated rounds), then ${o.config.rounds} rounds × ${o.config.block} calls per target and mode, ` +
        'target order rotated every round. Ratios are p50 / p50 and p99 / p99. ' +
        '**floor = bare HTTP + direct stdio**: in each round every bare-HTTP sample is added to a direct-stdio sample of the same ' +
        'round (seeded random pairing, i.e. an empirical convolution); the floor p50/p99 are taken over those sums. ' +
        `At concurrency ${o.config.concurrency} the sum is a loose floor: a proxy pipelines HTTP and stdio work, and on ${e.nproc} cores ` +
        'client, proxy and upstream compete for CPU.',
      '',
    );
    overheadTables(o, L);
    if (r.clientListenerWarnings) {
      L.push(
        `Client side: ${r.clientListenerWarnings} MaxListenersExceededWarning(s) in the bench process (the SDK HTTP client transports pass one ` +
          'long-lived AbortSignal to every fetch; undici releases its listener only at GC). Same for every HTTP target; suppressed, counted here.',
        '',
      );
    }
  }

  const obs = r.observability;
  if (obs) {
    L.push('## Observability on the hot path: metrics + call log on vs off', '');
    if (obs.skipped || !obs.ratio) L.push(`Skipped: ${obs.skipped ?? 'no result'}`, '');
    else {
      const c = obs.config;
      L.push(
        `The same daemon twice in one run (bench/observability.ts): \`metrics\` and \`callLog\` "on" (the defaults) vs "off", ` +
          `${c.rounds} rounds × ${c.block} calls of \`up__echo\` (${c.upstream.label}), rotated each round, sequential then ${c.concurrency} in flight.`,
        '',
        '| | sequential p50 | p99 | concurrent p50 | p99 | calls/s |',
        '|---|---|---|---|---|---|',
      );
      for (const t of obs.targets) {
        L.push(
          `| ${t.id === 'on' ? '**on**' : 'off'} | ${ms(t.seq.p50)} | ${ms(t.seq.p99)} | ${ms(t.conc.p50)} | ${ms(t.conc.p99)} | ${t.conc.callsPerSec.toFixed(0)} |`,
        );
      }
      const x = obs.ratio;
      const logged = obs.targets.find((t) => t.id === 'on')?.logged;
      L.push(
        `| on/off | ${ratio(x.seqP50)} (per-round median ${ratio(x.seqRoundP50Median)}) | ${ratio(x.seqP99)} | ${ratio(x.concP50)} | ${ratio(x.concP99)} | ${ratio(x.throughput)} |`,
        '',
        logged === undefined ? '' : `The call log of the "on" daemon held ${logged} lines at its stop (warm-up and measured calls).`,
        '',
      );
      if (obs.hook) {
        L.push(
          `The hook alone (in the bench process, real metrics and call log file, ${obs.hook.calls} calls): ` +
            `${obs.hook.callPathUs.toFixed(2)} µs per call on the call path, ${obs.hook.flushUs.toFixed(2)} µs per call in the deferred flush.`,
          '',
        );
      }
    }
  }
  const tp = r.throughput;
  if (tp) {
    L.push('## 2b. Throughput: tools/call under load, tools/list at scale', '');
    L.push(
      `autocannon, one MCP session per target, \`tools/call\` of echo, ${tp.config.durationSec} s per run, ${tp.config.reps} repetition(s) alternating the order; ` +
        `upstream of mcp-warden: ${tp.config.upstream.label}. The lean node:http server (bench/lean-http-server.ts) answers the JSON-RPC itself ` +
        '(no SDK, no upstream): the floor. A good answer is a 200 whose body holds the echo result; "other" counts everything else.',
      '',
    );
    L.push('| target | connections | req/s (median) | ratio to lean | p50 / p99 latency | good | other |');
    L.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const [id, byC] of Object.entries(tp.load)) {
      for (const [c, xs] of Object.entries(byC)) {
        const rate = median(xs.map((x) => x.reqPerSec));
        const lean = medianRate(tp, 'lean node:http', Number(c));
        L.push(
          `| ${id} | ${c} | ${rate.toFixed(0)} [${samples(xs.map((x) => x.reqPerSec))}] | ${ratio(rate / lean)} | ` +
            `${median(xs.map((x) => x.p50))} / ${median(xs.map((x) => x.p99))} ms | ${xs.reduce((a, x) => a + x.ok, 0)} | ${xs.reduce((a, x) => a + x.bad, 0)} |`,
        );
      }
    }
    L.push('');
    const counts = Object.keys(tp.list).map(Number);
    if (counts.length > 0) {
      L.push('| upstreams | tools/list p50 | p99 | calls |', '|---:|---:|---:|---:|');
      for (const n of counts) L.push(`| ${n} | ${ms(listP(tp, n, 50))} | ${ms(listP(tp, n, 99))} | ${tp.list[n]!.length} |`);
      L.push('');
    }
    if (tp.errors.length > 0) L.push(`Errors: ${tp.errors.join('; ')}`, '');
  }

  const s = r.scale;
  if (s) {
    L.push('## 3. Scale: start → all upstreams usable', '');
    L.push(
      `Upstreams: ${s.config.upstream.label}. mcp-warden: spawn of \`serve\` → first \`/healthz\` poll (every 25 ms) showing all \`running\`. ` +
        'No proxy: spawn of bench/no-proxy-spawn.js → its `READY` line (SDK Client + StdioClientTransport per server, all in parallel, ' +
        '`initialize` + `tools/list`, the same work mcp-warden does before `running`; the servers get the same environment as under mcp-warden). Both include Node start-up. ' +
        `Medians of ${s.config.reps} repetitions (samples in brackets, ms). Daemon RSS: the daemon process only (children excluded), 1 s after all are running; ` +
        `with 0 servers: ${kib(median(s.baseRssKiB) * 1024)} [${samples(s.baseRssKiB, (x) => (x / 1024).toFixed(1))} MiB].`,
      '',
    );
    L.push(
      'Stop: wall time of `mcp-warden stop --data-dir …` run through the bin (bin/mcp-warden, as a user types it; its own Node start-up, SIGTERM, every upstream stopped and its group verified ' +
        'empty, daemon exit, the CLI noticing), then a /proc sweep for processes still carrying the instance marker (survivors). ' +
        `Idle bare \`node\` (no imports): ${s.bareNodeRssKiB.length > 0 ? kib(median(s.bareNodeRssKiB) * 1024) : 'not measured'}. ` +
        `Slope of daemon RSS over N (all samples): ${kib(rssSlopeKiB(s) * 1024)} per upstream.`,
      '',
    );
    L.push(
      '| N | mcp-warden | of which spawn → listening | no proxy | ratio | daemon RSS | RSS per upstream actor | `mcp-warden stop` | survivors |',
    );
    L.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    // RSS of an idle Node process moves by a few MiB on its own: a delta inside the spread of the
    // 0-server samples is not attributed to the actors.
    const baseSpread = s.baseRssKiB.length > 1 ? Math.max(...s.baseRssKiB) - Math.min(...s.baseRssKiB) : 0;
    const perActor = (row: ScaleResult['rows'][number]) => {
      if (row.n < 10) return '— (N too small for RSS noise)';
      const delta = median(row.rssKiB) - median(s.baseRssKiB);
      if (Math.abs(delta) <= baseSpread) return `within noise (Δ ${kib(delta * 1024)}, 0-server spread ${kib(baseSpread * 1024)})`;
      return kib(rssPerActorKiB(s, row) * 1024);
    };
    for (const row of s.rows) {
      const w = median(row.wardenMs);
      const p = median(row.plainMs);
      const err = row.errors.length > 0 ? ` (${row.errors.length} failed: ${row.errors[0]})` : '';
      L.push(
        `| ${row.n} | ${ms(w)} [${samples(row.wardenMs)}] | ${ms(median(row.wardenListenMs))} | ${ms(p)} [${samples(row.plainMs)}] | ${ratio(w / p)} | ` +
          `${kib(median(row.rssKiB) * 1024)} | ${perActor(row)} | ${ms(median(row.stopMs))} [${samples(row.stopMs)}] | ${row.survivors.reduce((a, b) => a + b, 0)}${err} |`,
      );
    }
    L.push('');
  }

  const c = r.churn;
  if (c) {
    L.push('## 4. Churn: add → running → remove → gone, through the supervisor', '');
    if (!c.ok) L.push(`**Failed**: ${c.error}`, '');
    else {
      const h = churnHeapPerCycle(c);
      const cyc = sortNum(c.cycleMs);
      L.push(
        `In-process daemon (\`startDaemon\`, default settings), one stdio echo-fixture server added with \`daemon.registry.add\` (trusted), ` +
          `waited for \`running\`, removed with \`daemon.registry.remove\`, waited until the actor is gone (\`registry.toolsOf\` undefined) and its ledger slice is empty. ` +
          `${c.warmup} warm-up cycles, then ${c.cycles} measured. Heap after 3 forced GCs (\`--expose-gc\`) every ` +
          `${c.heapSamples.length > 1 ? c.heapSamples[1]![0] : '?'} cycles.`,
        '',
      );
      L.push('| measure | value | samples |', '|---|---:|---:|');
      L.push(`| time per cycle p50 / p99 | ${ms(percentile(cyc, 50))} / ${ms(percentile(cyc, 99))} | ${c.cycleMs.length} |`);
      L.push(`| time per cycle, mean (loop wall / cycles) | ${ms(c.loopMs / c.cycles)} | ${c.cycles} |`);
      L.push(`| add → running p50 | ${ms(median(c.upMs))} | ${c.upMs.length} |`);
      L.push(`| remove → actor gone p50 | ${ms(median(c.downMs))} | ${c.downMs.length} |`);
      if (Number.isFinite(h.dataSlope)) {
        L.push(
          `| heap per cycle without JIT code spaces: slope / (end − start) | ${kib(h.dataSlope)} / ${kib(h.dataEndToEnd)} | ${c.spaceSamples!.length} heap samples |`,
        );
        L.push(`| JIT code spaces, growth over the measured cycles | ${kib(h.codeGrowth)} | |`);
      }
      L.push(
        `| heap per cycle, all spaces: slope / (end − start) | ${kib(h.slope)} / ${kib(h.endToEnd)} | ${c.heapSamples.length} heap samples |`,
      );
      L.push(`| heap after GC, start → end | ${kib(c.heapStart)} → ${kib(c.heapEnd)} | |`);
      L.push(
        `| RSS start → end (per cycle) | ${kib(c.rssBefore)} → ${kib(c.rssAfter)} (${kib((c.rssAfter - c.rssBefore) / c.cycles)}) | |`,
      );
      L.push(`| active resources before | ${handleStr(c.handlesBefore)} | |`);
      L.push(`| active resources after | ${handleStr(c.handlesAfter)} | |`);
      L.push(`| open fds before → after | ${c.fdsBefore} → ${c.fdsAfter} | |`);
      L.push(`| ledger entries after the loop | ${c.ledgerSize} | |`, '');
    }
  }

  const t = r.teardown;
  if (t) {
    L.push('## 5. Teardown', '');
    L.push(
      `Watchdog (dist/src/watchdog/): ${t.watchdogPresent ? 'present' : 'absent'}. Graceful: ${t.config.upstreams} echo-fixture upstreams, SIGTERM → daemon exit, ` +
        `then processes carrying its MCP_WARDEN_INSTANCE counted. SIGKILL: ${t.config.upstreams} upstreams that keep running after stdin EOF ` +
        '(test/fixtures/ignore-eof-server), SIGKILL → no process with MCP_WARDEN_INSTANCE=<instanceId> left (scan of /proc/*/environ every 10 ms); ' +
        `"not reaped" after ${t.config.orphanLimitMs / 1000} s, then the bench kills them.`,
      '',
    );
    const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'not reaped');
    L.push('| measure | median | samples (ms) |', '|---|---:|---|');
    L.push(`| SIGTERM → exit, ${t.config.upstreams} upstreams | ${ms(median(t.sigtermMs))} | ${samples(t.sigtermMs, fmt)} |`);
    L.push(`| marker processes left after that exit | ${median(t.sigtermLeft)} | ${samples(t.sigtermLeft)} |`);
    const worst = t.sigkillMs.length ? Math.max(...t.sigkillMs) : Number.NaN;
    L.push(
      `| SIGKILL → zero orphans, ${t.config.upstreams} EOF-ignoring upstreams | ${Number.isFinite(worst) ? ms(median(t.sigkillMs)) : 'not reaped'} | ${samples(t.sigkillMs, fmt)} |`,
    );
    L.push(`| marker processes at the first scan after SIGKILL | ${median(t.sigkillAtStart)} | ${samples(t.sigkillAtStart)} |`);
    if (t.watchdogExitMs.length > 0) {
      L.push(
        `| SIGKILL → the instance's watchdog has exited | ${t.watchdogExitMs.every(Number.isFinite) ? ms(median(t.watchdogExitMs)) : 'still running'} | ${samples(t.watchdogExitMs, fmt)} |`,
      );
    }
    L.push(`| processes the bench had to kill itself | ${t.killedByBench} | |`, '');
    for (const err of t.errors) L.push(`- ⚠ ${err}`);
    if (t.errors.length) L.push('');
  }
  L.push('### Containers', '');
  const k = r.containers;
  if (!e.docker.available) L.push(`Skipped: \`docker info\` does not answer (${e.docker.detail}).`, '');
  else if (!r.sections.includes('containers')) L.push('Not run (section not selected).', '');
  else if (!k || !k.ran) L.push(`Skipped (${e.docker.detail} answers): ${k?.skipped ?? 'not run'}.`, '');
  else {
    const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'not reaped');
    L.push(
      `${k.upstreams} \`docker\` upstreams (image ${k.image}, the echo fixture inside). Containers counted by label \`mcp-warden.instance=<instanceId>\` (\`docker ps\`, every 100 ms after SIGKILL).`,
      '',
      '| measure | median | samples (ms) |',
      '|---|---:|---|',
      `| spawn → all running | ${ms(median(k.startMs))} | ${samples(k.startMs)} |`,
      `| SIGTERM → exit | ${ms(median(k.sigtermMs))} | ${samples(k.sigtermMs, fmt)} |`,
      `| containers left after that exit | ${median(k.sigtermLeft)} | ${samples(k.sigtermLeft)} |`,
      `| SIGKILL → zero containers | ${k.sigkillMs.every(Number.isFinite) ? ms(median(k.sigkillMs)) : 'not reaped'} | ${samples(k.sigkillMs, fmt)} |`,
      `| SIGKILL → the instance's watchdog has exited | ${k.watchdogExitMs.length && k.watchdogExitMs.every(Number.isFinite) ? ms(median(k.watchdogExitMs)) : k.watchdogExitMs.length ? 'still running' : '—'} | ${samples(k.watchdogExitMs, fmt)} |`,
      `| containers the bench had to remove | ${k.removedByBench} | |`,
      '',
    );
    for (const err of k.errors) L.push(`- ⚠ ${err}`);
  }
  L.push('## 6. Remote upstreams', '');
  const rm = r.remote;
  if (!r.sections.includes('remote')) L.push('Not run (section not selected).', '');
  else if (!rm || !rm.ok) L.push(`⚠ Failed: ${rm?.error ?? 'not run'}.`, '');
  else {
    L.push(
      `\`tools/call\` of \`echo\` on a remote Streamable HTTP server (bench/bare-http-server.ts, SDK server on 127.0.0.1) by the same client (SDK \`Client\` + StreamableHTTPClientTransport), directly and through mcp-warden (\`"type": "http"\` entry, tool \`up__echo\`), sequential, ${rm.rounds} rounds × ${rm.block} calls each, order alternated per round.`,
      '',
      '| target | p50 | p99 | samples | ÷ direct (p50 / p99) |',
      '|---|---:|---:|---:|---:|',
      `| remote server directly | ${ms(rm.direct.p50)} | ${ms(rm.direct.p99)} | ${rm.direct.n} | |`,
      `| **mcp-warden → remote** | ${ms(rm.proxied.p50)} | ${ms(rm.proxied.p99)} | ${rm.proxied.n} | ${ratio(rm.proxied.p50 / rm.direct.p50)} / ${ratio(rm.proxied.p99 / rm.direct.p99)} (median per-round p50 ratio ${median(rm.roundRatios).toFixed(2)}×) |`,
      '',
      `Reconnect after the remote server restarts (killed, the daemon notices, started again on the same port): from the restarted server listening to \`/healthz\` showing it \`running\`, with the default restart backoff (so this includes the rest of the backoff delay the server was in): median ${ms(median(rm.reconnectMs))}; samples ${samples(rm.reconnectMs)} ms. Settings: ${Object.entries(
        rm.settings,
      )
        .map(([k, v]) => `\`${k}\` ${v}`)
        .join(', ')}, the rest default.`,
      '',
    );
  }
  L.push(...renderSearch(r.search, r.searchE2e, r.sections.includes('search')));
  if (r.cleanup) {
    const s = r.cleanup.swept;
    L.push(
      s.length === 0
        ? 'Cleanup: the final sweep found nothing of this run left running.'
        : `Cleanup: after every section had stopped what it started, the final sweep still found and killed: ${s.map((x) => `\`${x}\``).join(', ')}.`,
      '',
    );
  }
  return L.join('\n');
}
