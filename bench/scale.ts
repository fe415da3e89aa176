/**
 * Scale: time from process start to "all N upstreams usable", mcp-warden vs no proxy.
 *
 * - mcp-warden: spawn `serve` with N echo-fixture servers; poll /healthz every 10 ms; the time is
 *   from spawn to the first poll that shows all N `running` (which includes initialize + tools/list).
 * - no proxy: spawn bench/no-proxy-spawn.js, which spawns the same N servers with SDK Client +
 *   StdioClientTransport in parallel, initializes them and lists their tools; the time is from spawn
 *   to its `READY` line.
 * Both are measured from the parent's spawn() call, so both include Node start-up and module loading.
 * Repetitions alternate which of the two goes first.
 *
 * RSS: the daemon's own VmRSS (children excluded) 1 s after all are running; per upstream actor =
 * (RSS with N − RSS with 0 servers) / N, medians over the repetitions.
 */
import { NO_PROXY_SPAWN } from './lib/paths.js';
import { RUN_ARG, rssKiB, sleep, waitForLine, type Reaper } from './lib/proc.js';
import { startWarden, stopWarden } from './lib/warden.js';
import { median } from './lib/stats.js';

export interface ScaleConfig {
  counts: number[];
  reps: number;
  upstream: { command: string; args: string[]; label: string };
}

export interface ScaleRow {
  n: number;
  wardenMs: number[];
  /** spawn → "listening" line, part of wardenMs. */
  wardenListenMs: number[];
  plainMs: number[];
  rssKiB: number[];
  stopMs: number[];
  errors: string[];
}

export interface ScaleResult {
  config: ScaleConfig;
  baseRssKiB: number[];
  rows: ScaleRow[];
  wallMs: number;
}

/**
 * /healthz poll interval while waiting for all running. Every poll makes the daemon serialise every
 * server's view; at 10 ms that was ~4% of the daemon's CPU during a 50-server start (load the no-proxy
 * side does not carry), for a resolution the multi-second figures do not need.
 */
const HEALTH_POLL_MS = 25;

export async function runScale(reaper: Reaper, cfg: ScaleConfig, log: (s: string) => void): Promise<ScaleResult> {
  const t0 = performance.now();
  const rows: ScaleRow[] = cfg.counts.map((n) => ({
    n,
    wardenMs: [],
    wardenListenMs: [],
    plainMs: [],
    rssKiB: [],
    stopMs: [],
    errors: [],
  }));
  const baseRssKiB: number[] = [];
  const upArgs = [...cfg.upstream.args, RUN_ARG];

  const warden = async (row: ScaleRow) => {
    const servers: Record<string, { command: string; args: string[] }> = {};
    for (let i = 0; i < row.n; i++) servers[`s${i}`] = { command: cfg.upstream.command, args: upArgs };
    const w = await startWarden(reaper, servers);
    try {
      const allAt = await w.waitAllRunning(row.n, 120_000, HEALTH_POLL_MS);
      row.wardenMs.push(allAt - w.spawnedAt);
      row.wardenListenMs.push(w.listeningAfterMs);
      await sleep(1_000);
      const rss = rssKiB(w.pid);
      if (rss !== undefined) row.rssKiB.push(rss);
    } finally {
      row.stopMs.push(await stopWarden(reaper, w, 30_000));
      reaper.removeDir(w.dataDir);
    }
  };

  const plain = async (row: ScaleRow) => {
    const spawnedAt = performance.now();
    const child = reaper.spawn(process.execPath, [NO_PROXY_SPAWN, String(row.n), cfg.upstream.command, ...upArgs]);
    try {
      await waitForLine(child, /READY ([\d.]+)/, 120_000, 'no-proxy spawn');
      row.plainMs.push(performance.now() - spawnedAt);
    } finally {
      child.stdin?.end();
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5_000)]);
      await reaper.killTree(child.pid!, 1_000);
    }
  };

  const attempt = async (row: ScaleRow, what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      const msg = `${what} N=${row.n}: ${err instanceof Error ? err.message : String(err)}`;
      row.errors.push(msg.slice(0, 300));
      log(`  ⚠ ${msg}`);
    }
  };

  for (let rep = 0; rep < cfg.reps; rep++) {
    // Baseline RSS: a daemon with no servers.
    try {
      const w = await startWarden(reaper, {});
      await w.health();
      await sleep(1_000);
      const rss = rssKiB(w.pid);
      if (rss !== undefined) baseRssKiB.push(rss);
      await stopWarden(reaper, w, 15_000);
      reaper.removeDir(w.dataDir);
    } catch (err) {
      log(`  ⚠ baseline daemon: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const row of rows) {
      if (rep % 2 === 0) {
        await attempt(row, 'mcp-warden', () => warden(row));
        await attempt(row, 'no-proxy', () => plain(row));
      } else {
        await attempt(row, 'no-proxy', () => plain(row));
        await attempt(row, 'mcp-warden', () => warden(row));
      }
      log(
        `  rep ${rep + 1}/${cfg.reps} N=${row.n}: warden ${row.wardenMs.at(-1)?.toFixed(0) ?? '—'} ms, no proxy ${row.plainMs.at(-1)?.toFixed(0) ?? '—'} ms`,
      );
    }
  }
  return { config: cfg, baseRssKiB, rows, wallMs: performance.now() - t0 };
}

export function rssPerActorKiB(res: ScaleResult, row: ScaleRow): number {
  return (median(row.rssKiB) - median(res.baseRssKiB)) / row.n;
}
