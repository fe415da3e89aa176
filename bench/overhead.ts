/**
 * Tool-call overhead: `tools/call echo` latency through mcp-warden, the baselines and the peers, all in
 * one run, measured with the same SDK client code.
 *
 * Method: every target is started and connected first. Warm-up: `warmup` calls per target (half
 * sequential, half at the concurrency level), in WARMUP_ROUNDS rotated rounds. Then `rounds` rounds; in each round every target gets
 * one block of `block` calls, in an order rotated by one each round, so slow drift of the machine
 * (thermal, noisy neighbours) spreads over all targets instead of biasing one. Sequential rounds
 * first, then the same for the concurrent blocks.
 *
 * Floor = bare HTTP + direct stdio, composed per round: each bare-HTTP sample of a round is added to a
 * direct-stdio sample of the same round drawn without replacement in a seeded random order (an
 * empirical convolution of the two measured distributions); p50/p99 are taken over those sums.
 */
import { BARE_HTTP_SERVER } from './lib/paths.js';
import { RUN_ARG, waitForLine, type Reaper } from './lib/proc.js';
import { concurrent, connectHttp, connectStdio, sequential, type EchoConn } from './lib/client.js';
import { startWarden, stopWarden } from './lib/warden.js';
import { PEER_VARIANTS, startPeer, stopPeer, type PeerInstall } from './lib/peers.js';
import { percentile, rng, shuffle, sortNum } from './lib/stats.js';

const WARMUP_ROUNDS = 3;

export interface OverheadConfig {
  warmup: number;
  rounds: number;
  block: number;
  concurrency: number;
  upstream: { command: string; args: string[]; label: string };
  /**
   * Another build of mcp-warden measured as one more target, `mcp-warden @ <label>` (BENCH_WARDEN_BASELINE):
   * a regression check of this revision against an earlier one in the same run.
   */
  baselineBuild?: { cliMain: string; label: string };
}

export type TargetGroup = 'baseline' | 'ours' | 'peer';

export interface Dist {
  n: number;
  p50: number;
  p99: number;
  /** p50 of each round, in round order (drift check). */
  roundP50: number[];
}

export interface TargetResult {
  id: string;
  group: TargetGroup;
  note: string;
  ok: boolean;
  skipped?: string;
  seq?: Dist;
  conc?: Dist & { callsPerSec: number };
  /** Raw latencies (ms) per round, for the results JSON. */
  raw?: { seq: number[][]; conc: number[][] };
}

export interface OverheadResult {
  config: OverheadConfig;
  targets: TargetResult[];
  floor?: { seq: Dist; conc: Dist };
  wallMs: number;
}

interface Live {
  id: string;
  group: TargetGroup;
  note: string;
  conn: EchoConn;
  stop: () => Promise<void>;
  seq: number[][];
  conc: number[][];
  concWall: number;
  failed?: string;
}

function dist(rounds: number[][]): Dist {
  const all = sortNum(rounds.flat());
  return {
    n: all.length,
    p50: percentile(all, 50),
    p99: percentile(all, 99),
    roundP50: rounds.map((r) => percentile(sortNum(r), 50)),
  };
}

function composeFloor(bare: number[][], direct: number[][], seed: number): number[][] {
  const rand = rng(seed);
  return bare.map((b, r) => {
    const d = shuffle(direct[r] ?? [], rand);
    return b.map((x, i) => x + (d[i % Math.max(1, d.length)] ?? Number.NaN));
  });
}

export async function runOverhead(
  reaper: Reaper,
  cfg: OverheadConfig,
  peers: PeerInstall,
  log: (s: string) => void,
): Promise<OverheadResult> {
  const t0 = performance.now();
  const live: Live[] = [];
  const results: TargetResult[] = [];
  const up = cfg.upstream;
  const upArgs = [...up.args, RUN_ARG];

  const add = async (id: string, group: TargetGroup, note: string, start: () => Promise<{ conn: EchoConn; stop: () => Promise<void> }>) => {
    log(`  starting ${id} …`);
    try {
      const { conn, stop } = await start();
      live.push({ id, group, note, conn, stop, seq: [], conc: [], concWall: 0 });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      log(`  ⚠ ${id} SKIPPED: ${why}`);
      results.push({ id, group, note, ok: false, skipped: why.slice(0, 300) });
    }
  };

  try {
    await add('direct stdio', 'baseline', `SDK Client + StdioClientTransport → ${up.label}`, async () => {
      const conn = await connectStdio(up.command, upArgs);
      return { conn, stop: () => conn.close() };
    });
    await add('bare SDK HTTP', 'baseline', 'SDK Streamable HTTP server answering echo itself (no upstream)', async () => {
      const child = reaper.spawn(process.execPath, [BARE_HTTP_SERVER]);
      const m = await waitForLine(child, /PORT (\d+)/, 15_000, 'bare http server');
      const conn = await connectHttp(`http://127.0.0.1:${m[1]}/mcp`, 'streamable', 'bare SDK HTTP');
      return {
        conn,
        stop: async () => {
          await conn.close();
          await reaper.killTree(child.pid!, 1_000);
        },
      };
    });
    await add(
      'mcp-warden',
      'ours',
      'Streamable HTTP `/mcp` (own transport, JSON answer; headers at once when alone, with the answer while other calls are open), tool `up__echo`',
      async () => {
        const w = await startWarden(reaper, { up: { command: up.command, args: upArgs } });
        await w.waitAllRunning(1, 30_000);
        const conn = await connectHttp(w.mcpUrl, 'streamable', 'mcp-warden');
        return {
          conn,
          stop: async () => {
            await conn.close();
            await stopWarden(reaper, w, 20_000);
          },
        };
      },
    );
    const bb = cfg.baselineBuild;
    if (bb) {
      await add(`mcp-warden @ ${bb.label}`, 'ours', `the same, built from ${bb.label} (regression baseline)`, async () => {
        const w = await startWarden(reaper, { up: { command: up.command, args: upArgs } }, {}, bb.cliMain);
        await w.waitAllRunning(1, 30_000);
        const conn = await connectHttp(w.mcpUrl, 'streamable', `mcp-warden @ ${bb.label}`);
        return {
          conn,
          stop: async () => {
            await conn.close();
            await stopWarden(reaper, w, 20_000);
          },
        };
      });
    }
    for (const v of PEER_VARIANTS) {
      if (!peers.ok) {
        results.push({ id: v.id, group: 'peer', note: v.transportNote, ok: false, skipped: peers.reason ?? 'not installed' });
        continue;
      }
      await add(v.id, 'peer', v.transportNote, async () => {
        const p = await startPeer(reaper, v, up.command, upArgs);
        try {
          const conn = await connectHttp(p.url, v.wire, v.id, 30_000);
          return {
            conn,
            stop: async () => {
              await conn.close();
              await stopPeer(reaper, p);
            },
          };
        } catch (err) {
          await stopPeer(reaper, p);
          throw new Error(`${err instanceof Error ? err.message : String(err)}; output: ${p.lastOutput().trim().slice(-200)}`, {
            cause: err,
          });
        }
      });
    }

    const guarded = async (t: Live, fn: () => Promise<void>) => {
      if (t.failed) return;
      try {
        await fn();
      } catch (err) {
        t.failed = err instanceof Error ? err.message : String(err);
        log(`  ⚠ ${t.id} failed during measurement: ${t.failed}`);
      }
    };

    // Warm-up in rotated rounds too: every target's JIT gets the same work, and no target is measured
    // right after sitting idle through everybody else's whole warm-up.
    log(`  warm-up: ${cfg.warmup} calls per target (${live.length} targets, ${WARMUP_ROUNDS} rotated rounds) …`);
    for (let r = 0; r < WARMUP_ROUNDS; r++) {
      for (let k = 0; k < live.length; k++) {
        const t = live[(k + r) % live.length]!;
        await guarded(t, async () => {
          await sequential(t.conn, Math.ceil(cfg.warmup / 2 / WARMUP_ROUNDS));
          await concurrent(t.conn, Math.floor(cfg.warmup / 2 / WARMUP_ROUNDS), cfg.concurrency);
        });
      }
    }
    for (let r = 0; r < cfg.rounds; r++) {
      for (let k = 0; k < live.length; k++) {
        const t = live[(k + r) % live.length]!;
        await guarded(t, async () => {
          t.seq.push(await sequential(t.conn, cfg.block));
        });
      }
      log(`  sequential round ${r + 1}/${cfg.rounds} done`);
    }
    for (let r = 0; r < cfg.rounds; r++) {
      for (let k = 0; k < live.length; k++) {
        const t = live[(k + r) % live.length]!;
        await guarded(t, async () => {
          const { lat, wallMs } = await concurrent(t.conn, cfg.block, cfg.concurrency);
          t.conc.push(lat);
          t.concWall += wallMs;
        });
      }
      log(`  concurrency-${cfg.concurrency} round ${r + 1}/${cfg.rounds} done`);
    }
  } finally {
    for (const t of live) {
      await t.stop().catch(() => undefined);
    }
  }

  for (const t of live) {
    if (t.failed) {
      results.push({ id: t.id, group: t.group, note: t.note, ok: false, skipped: `failed during measurement: ${t.failed.slice(0, 300)}` });
      continue;
    }
    const concDist = dist(t.conc);
    results.push({
      id: t.id,
      group: t.group,
      note: t.note,
      ok: true,
      seq: dist(t.seq),
      conc: { ...concDist, callsPerSec: (concDist.n / t.concWall) * 1000 },
      raw: {
        seq: t.seq.map((r) => r.map((x) => Math.round(x * 1000) / 1000)),
        conc: t.conc.map((r) => r.map((x) => Math.round(x * 1000) / 1000)),
      },
    });
  }
  const order = (r: TargetResult) =>
    ['direct stdio', 'bare SDK HTTP', 'mcp-warden'].indexOf(r.id) + 1 || (r.id.startsWith('mcp-warden @') ? 4 : 10);
  results.sort((a, b) => order(a) - order(b));

  const direct = live.find((t) => t.id === 'direct stdio' && !t.failed);
  const bare = live.find((t) => t.id === 'bare SDK HTTP' && !t.failed);
  const floor =
    direct && bare ? { seq: dist(composeFloor(bare.seq, direct.seq, 1)), conc: dist(composeFloor(bare.conc, direct.conc, 2)) } : undefined;
  return { config: cfg, targets: results, floor, wallMs: performance.now() - t0 };
}
