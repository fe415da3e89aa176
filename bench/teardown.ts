/**
 * Teardown.
 *
 * - Graceful: `serve` with `n` echo-fixture upstreams, all `running`; SIGTERM to the daemon; time until
 *   the daemon process exits; then count processes still carrying its MCP_WARDEN_INSTANCE marker.
 * - SIGKILL: `serve` with `n` upstreams that keep running after stdin EOF (test/fixtures/
 *   ignore-eof-server), all `running`; SIGKILL to the daemon; scan /proc/*\/environ every 10 ms for
 *   processes carrying MCP_WARDEN_INSTANCE=<instanceId from daemon.json>; time until none is left.
 *   After `orphanLimitMs` it is reported as "not reaped" and the bench kills them itself.
 */
import { existsSync } from 'node:fs';
import { IGNORE_EOF_FIXTURE, WATCHDOG_MAIN } from './lib/paths.js';
import { RUN_ARG, exited, processesWithEnv, sleep, waitGone, watchdogsOf, type Reaper } from './lib/proc.js';
import { startWarden, stopWarden } from './lib/warden.js';

export interface TeardownConfig {
  upstreams: number;
  reps: number;
  orphanLimitMs: number;
  upstream: { command: string; args: string[]; label: string };
}

export interface TeardownResult {
  config: TeardownConfig;
  watchdogPresent: boolean;
  sigtermMs: number[];
  /** Marker processes alive right after the daemon exited on SIGTERM, per rep. */
  sigtermLeft: number[];
  /** ms from SIGKILL to zero marker processes; Infinity = not reaped within orphanLimitMs. */
  sigkillMs: number[];
  /** Marker processes alive right after the SIGKILL (first scan). */
  sigkillAtStart: number[];
  /** ms from SIGKILL until the instance's watchdog process exited (Infinity: still alive after orphanLimitMs). */
  watchdogExitMs: number[];
  killedByBench: number;
  errors: string[];
  wallMs: number;
}

export async function runTeardown(reaper: Reaper, cfg: TeardownConfig, log: (s: string) => void): Promise<TeardownResult> {
  const t0 = performance.now();
  const res: TeardownResult = {
    config: cfg,
    watchdogPresent: existsSync(WATCHDOG_MAIN),
    sigtermMs: [],
    sigtermLeft: [],
    sigkillMs: [],
    sigkillAtStart: [],
    watchdogExitMs: [],
    killedByBench: 0,
    errors: [],
    wallMs: 0,
  };
  const servers = (command: string, args: string[]) => {
    const out: Record<string, { command: string; args: string[] }> = {};
    for (let i = 0; i < cfg.upstreams; i++) out[`t${i}`] = { command, args: [...args, RUN_ARG] };
    return out;
  };
  const marked = (id: string) => processesWithEnv('MCP_WARDEN_INSTANCE', (v) => v === id);
  const killMarked = (id: string) => {
    const left = marked(id);
    for (const p of left) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    return left.length;
  };

  for (let rep = 0; rep < cfg.reps; rep++) {
    // Graceful.
    try {
      const w = await startWarden(reaper, servers(cfg.upstream.command, cfg.upstream.args));
      await w.waitAllRunning(cfg.upstreams, 60_000);
      await sleep(300);
      let left = 0;
      const ms = await stopWarden(reaper, w, 30_000, () => {
        left = marked(w.instanceId).length;
      });
      res.sigtermMs.push(ms);
      res.sigtermLeft.push(left);
      if (left > 0) res.killedByBench += killMarked(w.instanceId);
      reaper.removeDir(w.dataDir);
      log(`  rep ${rep + 1}/${cfg.reps} SIGTERM → exit: ${ms.toFixed(0)} ms, marker processes left: ${left}`);
    } catch (err) {
      res.errors.push(`SIGTERM rep ${rep + 1}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300));
      log(`  ⚠ ${res.errors.at(-1)}`);
    }
    // SIGKILL with upstreams that ignore stdin EOF.
    try {
      const w = await startWarden(reaper, servers(process.execPath, [IGNORE_EOF_FIXTURE]));
      await w.waitAllRunning(cfg.upstreams, 60_000);
      await sleep(300);
      const before = marked(w.instanceId).length;
      const dogs = watchdogsOf(w.instanceId);
      const k0 = performance.now();
      process.kill(w.pid, 'SIGKILL');
      let first = -1;
      let zeroAt = Number.POSITIVE_INFINITY;
      while (performance.now() - k0 < cfg.orphanLimitMs) {
        const n = marked(w.instanceId).length;
        if (first < 0) first = n;
        if (n === 0) {
          zeroAt = performance.now() - k0;
          break;
        }
        await sleep(10);
      }
      res.sigkillMs.push(zeroAt);
      res.sigkillAtStart.push(first);
      if (!Number.isFinite(zeroAt)) res.killedByBench += killMarked(w.instanceId);
      await exited(w.child);
      // The watchdog exits by itself once it has reaped (bounded by its own deadline).
      if (dogs.length > 0) res.watchdogExitMs.push(await waitGone(dogs, k0, cfg.orphanLimitMs));
      await reaper.killTree(w.pid, 200);
      reaper.removeDir(w.dataDir);
      log(
        `  rep ${rep + 1}/${cfg.reps} SIGKILL → zero orphans: ${Number.isFinite(zeroAt) ? `${zeroAt.toFixed(0)} ms` : `not reaped in ${cfg.orphanLimitMs} ms`} (${before} marker processes before); watchdog exited after ${Number.isFinite(res.watchdogExitMs.at(-1) ?? Number.NaN) ? `${res.watchdogExitMs.at(-1)!.toFixed(0)} ms` : dogs.length === 0 ? '— (none found)' : 'still running'}`,
      );
    } catch (err) {
      res.errors.push(`SIGKILL rep ${rep + 1}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300));
      log(`  ⚠ ${res.errors.at(-1)}`);
    }
  }
  res.wallMs = performance.now() - t0;
  return res;
}
