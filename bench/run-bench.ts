/**
 * `npm run bench`: tool-call overhead (vs direct stdio, the bare-HTTP floor and the peers), start-up at
 * scale, churn through the supervisor, and teardown. Prints a markdown report and writes BENCHMARKS.md
 * (only on a full run; quick or partial runs write .bench/BENCHMARKS.partial.md).
 *
 * Environment:
 *   BENCH_QUICK=1                   small samples (minutes → about a minute), for checking the harness
 *   BENCH_ONLY=overhead,scale,…     run only these sections (overhead, observability, throughput, scale, churn, teardown, containers, search, remote)
 *   BENCH_UPSTREAM=everything       overhead upstream: @modelcontextprotocol/server-everything (default: the echo fixture)
 *   BENCH_REINSTALL_PEERS=1         reinstall the peers into .bench/peers
 *   BENCH_WRITE=1                   write BENCHMARKS.md even for a quick or partial run
 *   BENCH_WARDEN_BASELINE=<dist/bundle/cli.js (or dist/src/cli/main.js) of another checkout>[@label]
 *                                   overhead: also measure that build (a regression check in the same run)
 *   BENCH_SCALE_COUNTS=1,50,500     the upstream counts of the scale section (default 1,10,50,200,500)
 *
 * Everything the run starts is in its own process group and carries the run id (environment or
 * argv); it is all stopped, and temp dirs removed, on every exit path (including SIGINT/SIGTERM).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { CHURN, ECHO_FIXTURE, EVERYTHING_SERVER, REPO, SEARCH_BENCH } from './lib/paths.js';
import { RUN_ARG, RUN_ID, Reaper, waitForLine, sleep } from './lib/proc.js';
import { envInfo } from './lib/env-info.js';
import { installPeers } from './lib/peers.js';
import { nativeEcho } from './lib/native-fixture.js';
import { renderReport, type BenchResults, type ChurnResult } from './lib/report.js';
import { runOverhead } from './overhead.js';
import { runObservability } from './observability.js';
import { runScale } from './scale.js';
import { runThroughput } from './throughput.js';
import { runTeardown } from './teardown.js';
import { removeContainersOf, runContainers } from './containers.js';
import type { SearchBenchResult } from './search.js';
import { runSearchE2e } from './search-e2e.js';
import { runRemote } from './remote.js';

const started = performance.now();
const quick = process.env['BENCH_QUICK'] === '1';

function baselineBuild(): { cliMain: string; label: string } | undefined {
  const v = process.env['BENCH_WARDEN_BASELINE'];
  if (!v) return undefined;
  const at = v.lastIndexOf('@');
  return at > 0 ? { cliMain: v.slice(0, at), label: v.slice(at + 1) } : { cliMain: v, label: 'baseline build' };
}
const ALL = ['overhead', 'observability', 'throughput', 'scale', 'churn', 'teardown', 'containers', 'search', 'remote'];
const only = (process.env['BENCH_ONLY'] ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const sections = only.length > 0 ? ALL.filter((s) => only.includes(s)) : ALL;
const full = !quick && sections.length === ALL.length;

const log = (s: string) => process.stderr.write(`${s}\n`);
const reaper = new Reaper();

// The SDK's HTTP client transports hand one long-lived AbortSignal to every fetch(); undici only drops
// its listener when the request is garbage-collected, so Node warns once thousands pile up between
// GCs. It is client-side and the same for every HTTP target: count it instead of printing it.
let listenerWarnings = 0;
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') listenerWarnings++;
  else process.stderr.write(`${w.name}: ${w.message}\n`);
});

// Machine load while the bench runs (other work on the box shows up here).
// The bench's own processes count too (the scale section starts 50 servers at once), so it is kept per
// section: during `overhead` only client, proxy and upstream should be busy.
const loadSamples: number[] = [];
const loadBySection: Record<string, number[]> = {};
let section = 'setup';
const loadTimer = setInterval(() => {
  const l = loadavg()[0]!;
  loadSamples.push(l);
  (loadBySection[section] ??= []).push(l);
}, 2_000);
loadTimer.unref();

let cleaning: Promise<string[]> | undefined;
let dockerUsed = false;
const cleanup = () =>
  (cleaning ??= reaper.killAll().then((swept) => {
    if (dockerUsed) {
      for (const id of reaper.instances) {
        const n = removeContainersOf(id);
        if (n > 0) swept.push(`${n} container(s) labelled mcp-warden.instance=${id}`);
      }
    }
    return swept;
  }));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`\n${sig}: stopping everything this run started …`);
    void cleanup().finally(() => process.exit(130));
  });
}

const echo = {
  command: process.execPath,
  args: [ECHO_FIXTURE],
  label: 'the echo fixture (dist/test/fixtures/echo-server.js, SDK low-level Server over stdio)',
};
const everything = {
  command: process.execPath,
  args: [EVERYTHING_SERVER, 'stdio'],
  label: '@modelcontextprotocol/server-everything (stdio)',
};
const overheadUpstream = process.env['BENCH_UPSTREAM'] === 'everything' ? everything : echo;

async function runChurn(cycles: number, warmup: number): Promise<ChurnResult> {
  const empty = {
    cycles,
    warmup,
    loopMs: 0,
    cycleMs: [],
    upMs: [],
    downMs: [],
    heapSamples: [],
    heapStart: 0,
    heapEnd: 0,
    rssBefore: 0,
    rssAfter: 0,
    handlesBefore: {},
    handlesAfter: {},
    fdsBefore: 0,
    fdsAfter: 0,
    ledgerSize: 0,
  };
  const args = JSON.stringify({
    cycles,
    warmup,
    sampleEvery: Math.max(1, Math.floor(cycles / 50)),
    command: process.execPath,
    args: [ECHO_FIXTURE, RUN_ARG],
  });
  const child = reaper.spawn(process.execPath, ['--expose-gc', CHURN, args]);
  try {
    const inst = await waitForLine(child, /INSTANCE (\S+)/, 60_000, 'churn daemon');
    reaper.instances.add(inst[1]!);
    const timeoutMs = 60_000 + cycles * 2_000;
    const m = await waitForLine(child, /(RESULT|ERROR) (.+)\n/, timeoutMs, 'churn');
    if (m[1] === 'ERROR') return { ...empty, ok: false, error: String(JSON.parse(m[2]!)).slice(0, 400) };
    return { ok: true, ...(JSON.parse(m[2]!) as Omit<ChurnResult, 'ok'>) };
  } catch (err) {
    return { ...empty, ok: false, error: (err instanceof Error ? err.message : String(err)).slice(0, 400) };
  } finally {
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
    await reaper.killTree(child.pid!, 2_000);
  }
}

/** bench/search.ts in a process of its own (its memory numbers are then its own). */
async function runSearchBench(): Promise<SearchBenchResult | { error: string }> {
  const child = reaper.spawn(process.execPath, ['--expose-gc', SEARCH_BENCH, RUN_ARG]);
  try {
    const m = await waitForLine(child, /(RESULT|ERROR) (.+)\n/, 300_000, 'search bench');
    if (m[1] === 'ERROR') return { error: String(JSON.parse(m[2]!)).slice(0, 400) };
    return JSON.parse(m[2]!) as SearchBenchResult;
  } catch (err) {
    return { error: (err instanceof Error ? err.message : String(err)).slice(0, 400) };
  } finally {
    await reaper.killTree(child.pid!, 2_000);
  }
}

async function main(): Promise<void> {
  log(`mcp-warden bench (run ${RUN_ID}${quick ? ', QUICK' : ''}; sections: ${sections.join(', ')})`);
  const env = envInfo();
  const loadStart = loadavg()[0]!;
  log(
    `machine: ${env.nproc} CPUs, ${env.cpu}, ${env.memory}, Node ${env.node}; docker: ${env.docker.available ? env.docker.detail : 'no engine'}`,
  );
  const peers = sections.includes('overhead')
    ? installPeers(log)
    : { ok: false, reason: 'overhead section not run', versions: {}, installedNow: false };
  if (!peers.ok && sections.includes('overhead')) log(`⚠ peers SKIPPED: ${peers.reason}`);
  const results: BenchResults = { env, peers, quick, sections, wallMs: 0 };

  if (sections.includes('overhead')) {
    log('\n## overhead');
    section = 'overhead';
    results.overhead = await runOverhead(
      reaper,
      {
        warmup: quick ? 300 : 6_000,
        rounds: quick ? 3 : 10,
        block: quick ? 50 : 200,
        concurrency: 16,
        upstream: overheadUpstream,
        baselineBuild: baselineBuild(),
      },
      peers,
      log,
    );
  }
  if (sections.includes('observability')) {
    log('\n## observability (metrics + call log on vs off)');
    section = 'observability';
    results.observability = await runObservability(
      reaper,
      { warmup: quick ? 300 : 3_000, rounds: quick ? 3 : 10, block: quick ? 50 : 200, concurrency: 16, upstream: overheadUpstream },
      log,
    );
  }
  // A C echo server: 500 of them start in well under a second, and its stdio hop is cheap, so the proxy's own cost shows.
  const native = sections.includes('scale') || sections.includes('throughput') ? nativeEcho() : undefined;
  if (native && !native.ok) log(`  ⚠ native echo fixture unavailable (${native.reason}); using the Node echo fixture`);
  const upstream =
    native?.ok === true
      ? { command: native.path, args: [], label: 'the C echo fixture (bench/fixtures/echo-server.c, compiled into .bench/)' }
      : { ...echo, label: `${echo.label}; the C fixture was unavailable: ${native && !native.ok ? native.reason : ''}` };
  if (sections.includes('throughput')) {
    log('\n## throughput');
    section = 'throughput';
    results.throughput = await runThroughput(
      reaper,
      {
        connections: [16, 64],
        durationSec: quick ? 3 : 8,
        reps: quick ? 1 : 3,
        listCounts: [1, 500],
        listCalls: quick ? 100 : 300,
        upstream,
      },
      log,
    );
  }
  if (sections.includes('scale')) {
    log('\n## scale');
    section = 'scale';
    const counts = (process.env['BENCH_SCALE_COUNTS'] ?? '1,10,50,200,500')
      .split(',')
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
    results.scale = await runScale(reaper, { counts, reps: quick ? 1 : 3, upstream }, log);
  }
  if (sections.includes('churn')) {
    log('\n## churn');
    section = 'churn';
    const cycles = quick ? 60 : 500;
    results.churn = await runChurn(cycles, quick ? 10 : 500);
    log(
      results.churn.ok ? `  ${cycles} cycles in ${(results.churn.loopMs / 1000).toFixed(1)} s` : `  ⚠ churn failed: ${results.churn.error}`,
    );
  }
  if (sections.includes('teardown')) {
    log('\n## teardown');
    section = 'teardown';
    results.teardown = await runTeardown(reaper, { upstreams: 20, reps: quick ? 1 : 3, orphanLimitMs: 10_000, upstream: echo }, log);
  }

  if (sections.includes('containers')) {
    log('\n## containers');
    section = 'containers';
    if (env.docker.available) {
      dockerUsed = true;
      results.containers = await runContainers(reaper, { upstreams: 5, reps: quick ? 1 : 3, limitMs: 10_000 }, log);
      if (results.containers.skipped) log(`  skipped: ${results.containers.skipped}`);
    } else log(`  skipped: no Docker engine (${env.docker.detail})`);
  }

  if (sections.includes('search')) {
    log('\n## search');
    section = 'search';
    results.search = await runSearchBench();
    if ('error' in results.search) log(`  ⚠ search failed: ${results.search.error}`);
    else {
      const q = results.search.quality;
      log(`  recall@5 ${q.concepts.all.recallAt5.toFixed(3)} (BM25 only ${q.bm25.all.recallAt5.toFixed(3)})`);
    }
    try {
      results.searchE2e = await runSearchE2e(reaper, { servers: 50, perServer: 100, rounds: quick ? 2 : 10 });
      log(`  retrieve_tools p50 ${results.searchE2e.retrieveP50Ms.toFixed(1)} ms with ${results.searchE2e.tools} tools`);
    } catch (err) {
      results.searchE2e = { error: (err instanceof Error ? err.message : String(err)).slice(0, 400) };
      log(`  ⚠ search e2e failed: ${results.searchE2e.error}`);
    }
  }

  if (sections.includes('remote')) {
    log('\n## remote');
    section = 'remote';
    results.remote = await runRemote(
      reaper,
      { warmup: quick ? 200 : 2_000, rounds: quick ? 3 : 10, block: quick ? 50 : 200, reconnects: quick ? 2 : 5 },
      log,
    );
    if (!results.remote.ok) log(`  ⚠ remote failed: ${results.remote.error}`);
  }

  const swept = await cleanup();
  results.cleanup = { swept };
  if (swept.length > 0) log(`final sweep killed: ${swept.join('; ')}`);
  clearInterval(loadTimer);
  const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  results.load = {
    start: loadStart,
    samples: loadSamples.length,
    mean: meanOf(loadSamples),
    max: Math.max(loadStart, ...loadSamples),
    bySection: Object.fromEntries(Object.entries(loadBySection).map(([k, v]) => [k, meanOf(v)])),
  };
  results.clientListenerWarnings = listenerWarnings;
  results.wallMs = performance.now() - started;
  const report = renderReport(results);
  process.stdout.write(`\n${report}\n`);
  const outDir = join(REPO, '.bench');
  mkdirSync(join(outDir, 'results'), { recursive: true });
  const stamp = env.date.replace(/[:.]/g, '-');
  writeFileSync(join(outDir, 'results', `${stamp}.json`), JSON.stringify(results, null, 2));
  const target = full || process.env['BENCH_WRITE'] === '1' ? join(REPO, 'BENCHMARKS.md') : join(outDir, 'BENCHMARKS.partial.md');
  writeFileSync(target, report + '\n');
  log(`\nwrote ${target} (raw samples: .bench/results/${stamp}.json); wall time ${(results.wallMs / 1000).toFixed(0)} s`);
}

try {
  await main();
} catch (err) {
  log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
process.exit();
