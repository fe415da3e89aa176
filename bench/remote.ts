/**
 * Remote upstreams: the tool-call overhead of mcp-warden in front of a remote Streamable
 * HTTP server against the same client calling that server directly, in the same run (rounds with the
 * order of the two rotated); and the reconnect time after the remote server restarts: from the moment
 * the restarted server prints that it listens to the moment `/healthz` shows the server `running`
 * again, with the daemon's default restart backoff (so it includes the backoff delay it was in).
 *
 * The remote server is bench/bare-http-server.ts (an SDK Streamable HTTP server answering `echo`
 * itself), restarted on the same port.
 */
import { BARE_HTTP_SERVER } from './lib/paths.js';
import { sleep, waitForLine, type Reaper } from './lib/proc.js';
import { connectHttp, sequential, type EchoConn } from './lib/client.js';
import { startWarden, stopWarden } from './lib/warden.js';
import { percentile, sortNum } from './lib/stats.js';

export interface RemoteConfig {
  warmup: number;
  rounds: number;
  block: number;
  reconnects: number;
}

export interface RemoteResult {
  ok: boolean;
  error?: string;
  rounds: number;
  block: number;
  direct: { p50: number; p99: number; n: number };
  proxied: { p50: number; p99: number; n: number };
  /** Median over rounds of proxied p50 / direct p50. */
  roundRatios: number[];
  /** ms from "the restarted server listens" to "running again", per restart. */
  reconnectMs: number[];
  /** The daemon's settings for the reconnect part (defaults unless listed). */
  settings: Record<string, number>;
}

const empty = (cfg: RemoteConfig, error: string): RemoteResult => ({
  ok: false,
  error,
  rounds: cfg.rounds,
  block: cfg.block,
  direct: { p50: NaN, p99: NaN, n: 0 },
  proxied: { p50: NaN, p99: NaN, n: 0 },
  roundRatios: [],
  reconnectMs: [],
  settings: {},
});

function summary(all: number[]): { p50: number; p99: number; n: number } {
  const s = sortNum(all);
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
}

export async function runRemote(reaper: Reaper, cfg: RemoteConfig, log: (s: string) => void): Promise<RemoteResult> {
  let upstream = reaper.spawn(process.execPath, [BARE_HTTP_SERVER]);
  const conns: EchoConn[] = [];
  // Restarts must not reach the crash-loop halt, and each reconnect sample is a first restart (an
  // earlier sample's restarts leave the 1 s window); everything else stays at its default.
  const settings = { restartIntensityMax: 1_000, restartIntensityWindowMs: 1_000 };
  let warden: Awaited<ReturnType<typeof startWarden>> | undefined;
  try {
    const port = Number((await waitForLine(upstream, /PORT (\d+)/, 15_000, 'remote server'))[1]);
    const url = `http://127.0.0.1:${port}/mcp`;
    warden = await startWarden(reaper, { up: { type: 'http', url } }, settings);
    await warden.waitAllRunning(1, 30_000);
    const direct = await connectHttp(url, 'streamable', 'remote server directly');
    const proxied = await connectHttp(warden.mcpUrl, 'streamable', 'mcp-warden → remote');
    conns.push(direct, proxied);
    await sequential(direct, cfg.warmup);
    await sequential(proxied, cfg.warmup);
    const d: number[] = [];
    const p: number[] = [];
    const roundRatios: number[] = [];
    for (let round = 0; round < cfg.rounds; round++) {
      const order = round % 2 === 0 ? ['direct', 'proxied'] : ['proxied', 'direct'];
      const got: Record<string, number[]> = {};
      for (const which of order) got[which] = await sequential(which === 'direct' ? direct : proxied, cfg.block);
      d.push(...got.direct!);
      p.push(...got.proxied!);
      roundRatios.push(percentile(sortNum(got.proxied!), 50) / percentile(sortNum(got.direct!), 50));
    }
    await direct.close().catch(() => undefined);
    conns.splice(conns.indexOf(direct), 1);
    log(`  direct p50 ${summary(d).p50.toFixed(3)} ms, through mcp-warden p50 ${summary(p).p50.toFixed(3)} ms`);

    const reconnectMs: number[] = [];
    for (let i = 0; i < cfg.reconnects; i++) {
      await reaper.killTree(upstream.pid!, 1_000);
      // Until the daemon has noticed (its ping or the broken stream), then start the server again.
      const deadline = performance.now() + 30_000;
      for (;;) {
        const h = await warden.health().catch(() => ({ servers: [] as Array<{ state: string }> }));
        if (h.servers[0] && h.servers[0].state !== 'running') break;
        if (performance.now() > deadline) throw new Error('the daemon did not notice the remote server stopped');
        await sleep(20);
      }
      upstream = reaper.spawn(process.execPath, [BARE_HTTP_SERVER, '--port', String(port)]);
      await waitForLine(upstream, /PORT (\d+)/, 15_000, 'remote server (restarted)');
      const listening = performance.now();
      const running = await warden.waitAllRunning(1, 60_000, 5);
      reconnectMs.push(running - listening);
    }
    log(`  reconnect after a restart of the remote server: ${reconnectMs.map((x) => x.toFixed(0)).join(', ')} ms`);
    return {
      ok: true,
      rounds: cfg.rounds,
      block: cfg.block,
      direct: summary(d),
      proxied: summary(p),
      roundRatios,
      reconnectMs,
      settings,
    };
  } catch (err) {
    return empty(cfg, (err instanceof Error ? err.message : String(err)).slice(0, 400));
  } finally {
    for (const c of conns) await c.close().catch(() => undefined);
    if (warden) await stopWarden(reaper, warden);
    await reaper.killTree(upstream.pid!, 1_000);
  }
}
