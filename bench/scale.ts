/**
 * Scale: time from process start to "all N upstreams usable", mcp-warden vs no proxy; the stop of
 * all of them; the daemon's memory.
 *
 * - mcp-warden: spawn `serve` with N echo-fixture servers; poll /healthz every 10 ms; the time is
 *   from spawn to the first poll that shows all N `running` (which includes initialize + tools/list).
 * - no proxy: spawn bench/no-proxy-spawn.js, which spawns the same N servers with SDK Client +
 *   StdioClientTransport in parallel, initializes them and lists their tools; the time is from spawn
 *   to its `READY` line.
 * Both are measured from the parent's spawn() call, so both include Node start-up and module loading.
 * Repetitions alternate which of the two goes first.
 *
 * Stop: the wall time of `mcp-warden stop --data-dir …` run as the bin (bin/mcp-warden, the shell launcher
 * package.json names; a CLI process of its own: its Node start-up,
 * the SIGTERM, the daemon stopping every upstream and verifying each group is gone, the CLI noticing
 * the exit), then a /proc sweep for anything still carrying the daemon's MCP_WARDEN_INSTANCE
 * (survivors; must be 0). The daemon's own share (SIGTERM → its `stopped` log line) is kept beside it.
 *
 * RSS: the daemon's own VmRSS (children excluded) 1 s after all are running; per upstream actor =
 * (RSS with N − RSS with 0 servers) / N, medians over the repetitions, and the least-squares slope of
 * RSS over N across all counts. A bare `node` process idling (no imports) is measured beside it.
 */
import { readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { CLI_BIN, NO_PROXY_SPAWN } from './lib/paths.js';
import { RUN_ARG, exited, processesWithEnv, rssKiB, sleep, waitForLine, type Reaper } from './lib/proc.js';
import { startWarden, stopWarden, type WardenProcess } from './lib/warden.js';
import { median, slope } from './lib/stats.js';

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
  /** Wall time of `mcp-warden stop` (CLI spawn → CLI exit). */
  stopMs: number[];
  /** The daemon's own part of it: SIGTERM → its `stopped` log line (the rest is the CLI's start-up and its wait for the exit). */
  daemonStopMs: number[];
  /** Processes still carrying the daemon's instance marker right after the stop. */
  survivors: number[];
  errors: string[];
}

export interface ScaleResult {
  config: ScaleConfig;
  baseRssKiB: number[];
  /** `node -e` idling, no imports. */
  bareNodeRssKiB: number[];
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
    daemonStopMs: [],
    survivors: [],
    errors: [],
  }));
  const baseRssKiB: number[] = [];
  const bareNodeRssKiB: number[] = [];
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
      try {
        const { ms, survivors } = await cliStop(reaper, w);
        row.stopMs.push(ms);
        row.survivors.push(survivors);
        const own = daemonStopMs(w.dataDir);
        if (own !== undefined) row.daemonStopMs.push(own);
      } finally {
        await stopWarden(reaper, w, 30_000);
        reaper.removeDir(w.dataDir);
      }
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
    try {
      bareNodeRssKiB.push(await bareNodeRss(reaper));
    } catch (err) {
      log(`  ⚠ bare node: ${err instanceof Error ? err.message : String(err)}`);
    }
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
        `  rep ${rep + 1}/${cfg.reps} N=${row.n}: warden ${row.wardenMs.at(-1)?.toFixed(0) ?? '—'} ms, no proxy ${row.plainMs.at(-1)?.toFixed(0) ?? '—'} ms, ` +
          `stop ${row.stopMs.at(-1)?.toFixed(0) ?? '—'} ms (daemon ${row.daemonStopMs.at(-1) ?? '—'} ms, ${row.survivors.at(-1) ?? '?'} survivors), RSS ${((row.rssKiB.at(-1) ?? 0) / 1024).toFixed(1)} MiB`,
      );
    }
  }
  return { config: cfg, baseRssKiB, bareNodeRssKiB, rows, wallMs: performance.now() - t0 };
}

/** `mcp-warden stop` as a user runs it, timed from its spawn to its exit; then what is left of the instance. */
async function cliStop(reaper: Reaper, w: WardenProcess): Promise<{ ms: number; survivors: number }> {
  const t0 = performance.now();
  // The bin as a user types it; its `node` is this bench's (first on PATH), as for every other process here.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
  const child = reaper.spawn(CLI_BIN, ['stop', '--data-dir', w.dataDir, '--timeout-ms', '60000'], { env });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`mcp-warden stop exited with ${String(code)}`);
  return { ms, survivors: processesWithEnv('MCP_WARDEN_INSTANCE', (v) => v === w.instanceId).length };
}

/** The `ms` of the daemon's last `stopped` log line (shutting down → everything released), if it wrote one. */
function daemonStopMs(dataDir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'daemon.log'), 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.trimEnd().split('\n').reverse()) {
    try {
      const rec = JSON.parse(line) as { msg?: unknown; ms?: unknown };
      if (rec.msg === 'stopped' && typeof rec.ms === 'number') return rec.ms;
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}

/** RSS of a Node process that imports nothing and idles: what any Node daemon costs at least. */
async function bareNodeRss(reaper: Reaper): Promise<number> {
  const child = reaper.spawn(process.execPath, ['-e', 'process.stdout.write("UP\\n"); setInterval(() => {}, 1e6)']);
  try {
    await waitForLine(child, /UP/, 10_000, 'bare node');
    await sleep(1_000);
    const rss = rssKiB(child.pid!);
    if (rss === undefined) throw new Error('no VmRSS');
    return rss;
  } finally {
    const gone = exited(child);
    child.kill('SIGKILL');
    await gone;
  }
}

export function rssPerActorKiB(res: ScaleResult, row: ScaleRow): number {
  return (median(row.rssKiB) - median(res.baseRssKiB)) / row.n;
}

/** Least-squares slope of daemon RSS over N (KiB per upstream), over every sample, the 0-server daemons included. */
export function rssSlopeKiB(res: ScaleResult): number {
  const xs: number[] = res.baseRssKiB.map(() => 0);
  const ys: number[] = [...res.baseRssKiB];
  for (const row of res.rows) {
    for (const r of row.rssKiB) {
      xs.push(row.n);
      ys.push(r);
    }
  }
  return slope(xs, ys);
}
