/**
 * Churn, in its own process (run with `node --expose-gc`): an in-process daemon (`startDaemon`), then
 * cycles of `addServer` → wait for `running` → `removeServer` → wait until the actor is gone
 * (`toolsOf(name)` undefined: no child actor left in the supervisor) and its ledger slice is empty.
 *
 * Measured after `warmup` cycles: time per cycle, heap after a forced GC (every `sampleEvery` cycles,
 * slope by least squares, and end minus start), RSS, `process.getActiveResourcesInfo()` counts and the
 * number of open fds (/proc/self/fd) before and after.
 *
 * argv[2]: JSON {cycles, warmup, sampleEvery, command, args}. Prints `INSTANCE <id>` first and
 * `RESULT <json>` last on stdout.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import { startDaemon, type Daemon } from '../src/daemon/daemon.js';
import type { ServerEntry } from '../src/config/config-types.js';

interface ChurnArgs {
  cycles: number;
  warmup: number;
  sampleEvery: number;
  command: string;
  args: string[];
}

const gcFn = (globalThis as { gc?: () => void }).gc;
if (!gcFn) {
  process.stderr.write('churn.js needs node --expose-gc\n');
  process.exit(2);
}
const gc: () => void = gcFn;

const cfg = JSON.parse(process.argv[2] ?? '{}') as ChurnArgs;

/** Used bytes per V8 heap space at the last heapAfterGc() (old_space, code_space, …). */
const spaceSamples: Array<[number, Record<string, number>]> = [];

function heapAfterGc(cycle?: number): number {
  for (let i = 0; i < 3; i++) gc();
  if (cycle !== undefined) {
    const spaces: Record<string, number> = {};
    for (const sp of getHeapSpaceStatistics()) spaces[sp.space_name] = sp.space_used_size;
    spaceSamples.push([cycle, spaces]);
  }
  return process.memoryUsage().heapUsed;
}

function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

const sameCounts = (a: Record<string, number>, b: Record<string, number>) => {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => (a[k] ?? 0) === (b[k] ?? 0));
};

function waitEvent(daemon: Daemon, pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (pred()) return resolve();
    let poll: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => done(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
    const check = () => {
      if (pred()) done();
    };
    const unsub = daemon.subscribe(check);
    // Some conditions (actor removed from the supervisor, ledger emptied) need no further event.
    const tick = () => {
      check();
      if (!finished) poll = setTimeout(tick, 2);
    };
    let finished = false;
    const done = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (poll) clearTimeout(poll);
      unsub();
      if (err) reject(err);
      else resolve();
    };
    poll = setTimeout(tick, 2);
  });
}

const dataDir = mkdtempSync(join(tmpdir(), 'mcp-warden-bench-churn-'));
const configPath = join(dataDir, 'config.json');
writeFileSync(configPath, JSON.stringify({ mcpServers: {} }));
let daemon: Daemon | undefined;
try {
  daemon = await startDaemon({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'warn',
    console: false,
    configPath,
  });
  const d = daemon;
  process.stdout.write(`INSTANCE ${d.identity.instanceId}\n`);
  const entry: ServerEntry = { type: 'stdio', command: cfg.command, args: cfg.args, env: {}, disabled: false, quarantined: false };
  const name = 'churn';
  const owner = `server:${name}`;
  const running = () => d.servers().some((s) => s.name === name && s.state === 'running');
  const gone = () => d.registry.toolsOf(name) === undefined && d.ledger.countFor(owner) === 0;

  const cycle = async (): Promise<[number, number]> => {
    const t0 = performance.now();
    await d.registry.add(name, entry, { trusted: true });
    await waitEvent(d, running, 30_000, 'running');
    const t1 = performance.now();
    await d.registry.remove(name);
    await waitEvent(d, gone, 30_000, 'actor gone');
    return [t1 - t0, performance.now() - t1];
  };

  for (let i = 0; i < cfg.warmup; i++) await cycle();
  await new Promise((r) => setTimeout(r, 300));
  const handlesBefore = resources();
  const fdsBefore = fdCount();
  const heapSamples: Array<[number, number]> = [[0, heapAfterGc(0)]];
  const rssBefore = process.memoryUsage().rss;
  const cycleMs: number[] = [];
  const upMs: number[] = [];
  const downMs: number[] = [];
  const t0 = performance.now();
  for (let i = 1; i <= cfg.cycles; i++) {
    const [up, down] = await cycle();
    upMs.push(up);
    downMs.push(down);
    cycleMs.push(up + down);
    if (i % cfg.sampleEvery === 0 || i === cfg.cycles) heapSamples.push([i, heapAfterGc(i)]);
  }
  const loopMs = performance.now() - t0;
  // Let timers of the last cycle settle (as a user of the daemon would see it a moment later).
  let handlesAfter = resources();
  let fdsAfter = fdCount();
  const settleUntil = Date.now() + 3_000;
  while ((!sameCounts(handlesAfter, handlesBefore) || fdsAfter !== fdsBefore) && Date.now() < settleUntil) {
    await new Promise((r) => setTimeout(r, 50));
    handlesAfter = resources();
    fdsAfter = fdCount();
  }
  const heapEnd = heapAfterGc();
  const rssAfter = process.memoryUsage().rss;
  const result = {
    cycles: cfg.cycles,
    warmup: cfg.warmup,
    loopMs,
    cycleMs,
    upMs,
    downMs,
    heapSamples,
    spaceSamples,
    heapStart: heapSamples[0]![1],
    heapEnd,
    rssBefore,
    rssAfter,
    handlesBefore,
    handlesAfter,
    fdsBefore,
    fdsAfter,
    ledgerSize: d.ledger.size(),
    ledgerCounts: d.ledger.counts(),
  };
  await d.stop('bench done');
  daemon = undefined;
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
} catch (err) {
  process.stdout.write(`ERROR ${JSON.stringify(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
  process.exitCode = 1;
} finally {
  await daemon?.stop('bench failed').catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit();
