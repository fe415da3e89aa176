/**
 * Containers (only when `docker info` answers): upstreams as `docker` entries (docs/docker.md) running
 * the echo fixture inside the local test image (scripts/build-test-image.sh; no registry needed).
 *
 * First a probe: one docker entry must reach `running` AND a container labelled
 * `mcp-warden.instance=<instanceId>` must exist (otherwise the entry did not run in a container, and
 * the section is skipped with the reason). Then, per repetition, with `n` container upstreams:
 * spawn → all running; SIGTERM → daemon exit and the number of its containers left; SIGKILL → no
 * container with its instance label left (polled with `docker ps` every 100 ms; "not reaped" after
 * `limitMs`, then the bench removes them itself).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO } from './lib/paths.js';
import { exited, isAlive, sleep, watchdogsOf, type Reaper } from './lib/proc.js';
import { startWarden, stopWarden, type WardenProcess } from './lib/warden.js';

export const LABEL_INSTANCE = 'mcp-warden.instance';
const IMAGE_NODE = '/usr/bin/node';
const IMAGE_ECHO = '/app/dist/test/fixtures/echo-server.js';

export interface ContainerResult {
  ran: boolean;
  skipped?: string;
  image?: string;
  upstreams: number;
  startMs: number[];
  sigtermMs: number[];
  sigtermLeft: number[];
  sigkillMs: number[];
  /** ms from SIGKILL until the instance's watchdog exited (Infinity: still alive after limitMs). */
  watchdogExitMs: number[];
  removedByBench: number;
  errors: string[];
}

function docker(args: string[], timeout = 15_000): { ok: boolean; out: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.status === 0 ? '' : (r.stderr ?? r.error?.message ?? '')}`.trim() };
}

export function containersOf(instanceId: string): string[] {
  const r = docker(['ps', '-aq', '--filter', `label=${LABEL_INSTANCE}=${instanceId}`], 10_000);
  return r.ok ? r.out.split('\n').filter(Boolean) : [];
}

export function removeContainersOf(instanceId: string): number {
  const ids = containersOf(instanceId);
  if (ids.length > 0) docker(['rm', '-f', ...ids], 60_000);
  return ids.length;
}

function ensureImage(log: (s: string) => void): { tag?: string; reason?: string } {
  const script = join(REPO, 'scripts', 'build-test-image.sh');
  if (!existsSync(script)) return { reason: 'scripts/build-test-image.sh not found' };
  const printed = spawnSync('bash', [script, '--print-tag'], { encoding: 'utf8', timeout: 60_000, cwd: REPO });
  const tag = printed.stdout?.trim().split('\n').pop();
  if (printed.status === 0 && tag && docker(['image', 'inspect', tag]).ok) return { tag };
  log('  building the local test image (scripts/build-test-image.sh) …');
  const built = spawnSync('bash', [script], { encoding: 'utf8', timeout: 600_000, cwd: REPO });
  const builtTag = built.stdout?.trim().split('\n').pop();
  if (built.status !== 0 || !builtTag) {
    return {
      reason: `image build failed: ${(built.stderr || built.error?.message || '').trim().split('\n').slice(-2).join(' | ').slice(0, 200)}`,
    };
  }
  return { tag: builtTag };
}

export async function runContainers(
  reaper: Reaper,
  cfg: { upstreams: number; reps: number; limitMs: number },
  log: (s: string) => void,
): Promise<ContainerResult> {
  const res: ContainerResult = {
    ran: false,
    upstreams: cfg.upstreams,
    startMs: [],
    sigtermMs: [],
    sigtermLeft: [],
    sigkillMs: [],
    watchdogExitMs: [],
    removedByBench: 0,
    errors: [],
  };
  const image = ensureImage(log);
  if (!image.tag) return { ...res, skipped: image.reason };
  res.image = image.tag;
  const servers = (n: number) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) out[`c${i}`] = { command: IMAGE_NODE, args: [IMAGE_ECHO], docker: { image: image.tag } };
    return out;
  };
  const cleanupInstance = (w: WardenProcess) => {
    res.removedByBench += removeContainersOf(w.instanceId);
  };

  // Probe: does a docker entry run, in a container?
  let probe: WardenProcess | undefined;
  try {
    probe = await startWarden(reaper, servers(1) as never);
    const w = probe;
    try {
      // A restart (backoff) already means the container did not come up.
      await w.waitAllRunning(1, 30_000, 50, /halted|backoff|stopp|reaping/);
    } catch (err) {
      return { ...res, skipped: `a docker entry did not reach running: ${err instanceof Error ? err.message.slice(0, 300) : String(err)}` };
    }
    if (containersOf(w.instanceId).length === 0) {
      return {
        ...res,
        skipped:
          'the docker entry reached running but no container carries its instance label: mcp-warden does not run `docker` entries in containers yet',
      };
    }
  } catch (err) {
    return { ...res, skipped: `probe failed: ${err instanceof Error ? err.message.slice(0, 300) : String(err)}` };
  } finally {
    if (probe) {
      await stopWarden(reaper, probe, 30_000);
      cleanupInstance(probe);
      reaper.removeDir(probe.dataDir);
    }
  }

  res.ran = true;
  for (let rep = 0; rep < cfg.reps; rep++) {
    try {
      const w = await startWarden(reaper, servers(cfg.upstreams) as never);
      try {
        const at = await w.waitAllRunning(cfg.upstreams, 120_000, 20);
        res.startMs.push(at - w.spawnedAt);
        let left = 0;
        res.sigtermMs.push(
          await stopWarden(reaper, w, 30_000, () => {
            left = containersOf(w.instanceId).length;
          }),
        );
        res.sigtermLeft.push(left);
      } finally {
        cleanupInstance(w);
        reaper.removeDir(w.dataDir);
      }
      const k = await startWarden(reaper, servers(cfg.upstreams) as never);
      try {
        await k.waitAllRunning(cfg.upstreams, 120_000, 20);
        const dogs = watchdogsOf(k.instanceId);
        const t0 = performance.now();
        process.kill(k.pid, 'SIGKILL');
        // Containers (docker ps, ~every 100 ms) and the watchdog (/proc, same loop) polled together.
        let zero = Number.POSITIVE_INFINITY;
        let dogGone = dogs.length > 0 ? Number.POSITIVE_INFINITY : Number.NaN;
        while (performance.now() - t0 < cfg.limitMs) {
          if (!Number.isFinite(zero) && containersOf(k.instanceId).length === 0) zero = performance.now() - t0;
          if (dogGone === Number.POSITIVE_INFINITY && !dogs.some(isAlive)) dogGone = performance.now() - t0;
          if (Number.isFinite(zero) && dogGone !== Number.POSITIVE_INFINITY) break;
          await sleep(100);
        }
        res.sigkillMs.push(zero);
        if (!Number.isNaN(dogGone)) res.watchdogExitMs.push(dogGone);
        await exited(k.child);
      } finally {
        cleanupInstance(k);
        await reaper.killTree(k.pid, 500);
        reaper.removeDir(k.dataDir);
      }
      log(
        `  rep ${rep + 1}/${cfg.reps}: start ${res.startMs.at(-1)?.toFixed(0)} ms, SIGTERM ${res.sigtermMs.at(-1)?.toFixed(0)} ms, SIGKILL → no containers ${Number.isFinite(res.sigkillMs.at(-1)!) ? `${res.sigkillMs.at(-1)!.toFixed(0)} ms` : 'not reaped'}`,
      );
    } catch (err) {
      res.errors.push(`rep ${rep + 1}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300));
      log(`  ⚠ ${res.errors.at(-1)}`);
    }
  }
  return res;
}
