/**
 * mcp-warden as a user runs it: `node dist/bundle/cli.js serve … --quiet` in its own process group,
 * with a temp data dir and a config file written here.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { drain, exited, sleep, waitForLine, type Reaper } from './proc.js';
import { CLI_MAIN } from './paths.js';

/** A config entry: a local command, or a remote server (`type`, `url`). */
export type WardenServerSpec = { command: string; args: string[] } | { type: 'http' | 'sse'; url: string };

export interface WardenProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  mcpUrl: string;
  instanceId: string;
  dataDir: string;
  /** ms since spawn at which the "listening" line arrived. */
  listeningAfterMs: number;
  spawnedAt: number;
  health(): Promise<{ servers: Array<{ name: string; state: string; lastError?: unknown }> }>;
  /** Polls /healthz every intervalMs until every server is `running`; resolves with performance.now() of that poll. */
  waitAllRunning(expected: number, timeoutMs: number, intervalMs?: number, failIf?: RegExp): Promise<number>;
  lastOutput(): string;
}

/**
 * Starts `serve`. One retry after 3 s if the daemon dies before it listens: the project is edited and
 * rebuilt concurrently, and a half-written dist/ must not cost a whole bench section.
 */
export async function startWarden(
  reaper: Reaper,
  servers: Record<string, WardenServerSpec>,
  settings: Record<string, unknown> = {},
  /** Another build's CLI, for a baseline revision measured in the same run (dist/bundle/cli.js, or an older build's dist/src/cli/main.js). */
  cliMain: string = CLI_MAIN,
): Promise<WardenProcess> {
  try {
    return await startWardenOnce(reaper, servers, settings, cliMain);
  } catch (err) {
    if (!(err instanceof Error && /exited .* before it was ready/.test(err.message)) || reaper.isClosed()) throw err;
    process.stderr.write(`  (mcp-warden did not start, retrying once in 3 s: ${err.message.slice(0, 160)})\n`);
    await sleep(3_000);
    return startWardenOnce(reaper, servers, settings, cliMain);
  }
}

async function startWardenOnce(
  reaper: Reaper,
  servers: Record<string, WardenServerSpec>,
  settings: Record<string, unknown>,
  cliMain: string,
): Promise<WardenProcess> {
  const dataDir = reaper.trackDir(mkdtempSync(join(tmpdir(), 'mcp-warden-bench-')));
  const configPath = join(dataDir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ mcpServers: servers, settings }, null, 2));
  const spawnedAt = performance.now();
  const child = reaper.spawn(process.execPath, [
    cliMain,
    'serve',
    '--data-dir',
    dataDir,
    '--config',
    configPath,
    '--listen',
    '127.0.0.1:0',
    '--quiet',
  ]);
  const pid = child.pid!;
  let m: RegExpMatchArray;
  try {
    m = await waitForLine(child, /listening on (http:\/\/127\.0\.0\.1:\d+)\/mcp/, 60_000, 'mcp-warden');
  } catch (err) {
    await reaper.killTree(pid, 500);
    throw err;
  }
  const listeningAfterMs = performance.now() - spawnedAt;
  const lastOutput = drain(child);
  const url = m[1]!;
  const info = JSON.parse(readFileSync(join(dataDir, 'daemon.json'), 'utf8')) as { instanceId: string; pid: number };
  reaper.instances.add(info.instanceId);
  const health = async () => {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    return (await r.json()) as { servers: Array<{ name: string; state: string; lastError?: unknown }> };
  };
  return {
    child,
    pid,
    url,
    mcpUrl: `${url}/mcp`,
    instanceId: info.instanceId,
    dataDir,
    listeningAfterMs,
    spawnedAt,
    health,
    lastOutput,
    async waitAllRunning(expected, timeoutMs, intervalMs = 10, failIf) {
      const deadline = performance.now() + timeoutMs;
      let last = '';
      for (;;) {
        const h = await health().catch((e: unknown) => ({ servers: [], error: String(e) }));
        const now = performance.now();
        const running = h.servers.filter((s) => s.state === 'running').length;
        if (running >= expected) return now;
        last = JSON.stringify(h.servers.filter((s) => s.state !== 'running').slice(0, 3));
        const bad = failIf ? h.servers.find((s) => failIf.test(s.state)) : undefined;
        if (bad) throw new Error(`mcp-warden: server ${bad.name} is ${bad.state}: ${JSON.stringify(bad.lastError ?? null).slice(0, 300)}`);
        if (now > deadline) throw new Error(`mcp-warden: ${running}/${expected} running after ${timeoutMs} ms; e.g. ${last}`);
        await sleep(intervalMs);
      }
    },
  };
}

/** SIGTERM and wait for exit; returns ms from signal to exit (or Infinity, after a SIGKILL of the tree, past timeoutMs). */
export async function stopWarden(
  reaper: Reaper,
  w: WardenProcess,
  timeoutMs = 30_000,
  /** Runs right after the exit (or the timeout), before the bench cleans up what might be left. */
  beforeCleanup?: () => void,
): Promise<number> {
  const t0 = performance.now();
  const done = exited(w.child);
  try {
    process.kill(w.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  const ok = await Promise.race([done.then(() => true), sleep(timeoutMs).then(() => false)]);
  const elapsed = performance.now() - t0;
  beforeCleanup?.();
  await reaper.killTree(w.pid, 500);
  return ok ? elapsed : Number.POSITIVE_INFINITY;
}
