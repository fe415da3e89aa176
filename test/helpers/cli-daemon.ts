/**
 * Real daemons through the CLI (`mcp-warden serve` as a child process), for the integration tests
 * that kill them in every way we promise to survive (orphan-suite.test.ts, docker-daemon.test.ts).
 * `cliDaemonHarness` keeps the bookkeeping of one test file: whatever a test started (daemons,
 * instances, stray pids, temp data dirs) is killed or removed in its cleanup, whatever happens.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findByEnv, readProc, type ProcInfo } from './process-table.js';
import { parseOwnerMarker } from '../../src/core/instance-identity.js';
import type { ServerView } from '../../src/daemon/server-view.js';
import { killProcessesWithMarker, processesWithMarker, waitFor } from './leak-check.js';
import { NODE } from './process-fixtures.js';
import { ENV_PROCESS_TABLE } from '../../src/adapters/process/process-table.js';

/** The bundled CLI users run (package.json `bin`; scripts/bundle.mjs). */
export const CLI = fileURLToPath(new URL('../../bundle/cli.js', import.meta.url));

/** The watchdog processes of an instance (found by their MCP_WARDEN_WATCHDOG owner marker). */
export function watchdogsOf(instanceId: string): ProcInfo[] {
  return findByEnv('MCP_WARDEN_WATCHDOG', (v) => parseOwnerMarker(v)?.instanceId === instanceId);
}

/** Running: a zombie counts as dead. */
export function alive(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z' && p.state !== 'X';
}

export function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

export function onlyWatchdog(instanceId: string): ProcInfo {
  const w = watchdogsOf(instanceId);
  assert.equal(w.length, 1, `expected one watchdog of ${instanceId}, found ${w.length}`);
  return w[0]!;
}

/**
 * This process's environment without the test runner's plumbing and any MCP_WARDEN_* of ours, plus
 * `extra`; MCP_WARDEN_PROCESS_TABLE stays, so the daemons of the portable pass (test/run-tests.mjs) use ps too.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === 'NODE_OPTIONS' || k === 'NODE_TEST_CONTEXT') continue;
    if (k.startsWith('MCP_WARDEN_') && k !== ENV_PROCESS_TABLE) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface Health {
  instanceId: string;
  servers: ServerView[];
  ledger: Record<string, Record<string, number>>;
}

export function healthz(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/healthz`, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('healthz timeout')));
    req.end();
  });
}

export interface Serve {
  child: ChildProcess;
  pid: number;
  /** Base URL (without /mcp). */
  url: string;
  instanceId: string;
  dataDir: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServeOptions {
  /** Added to the daemon's environment (childEnv). */
  env?: Record<string, string>;
  /** Runs before every attempt (the first and each retry after exit 4). */
  beforeAttempt?: () => Promise<void>;
}

export interface CliDaemonHarnessOptions {
  /** Temp data dirs are named `${tempDirPrefix}-${label}-XXXXXX`. */
  tempDirPrefix: string;
  /** The config file's settings (a test's own settings override them). */
  settings: Record<string, unknown>;
  /** How long one `serve` may take to print its URL, and how long `serve` keeps retrying exit 4. */
  startTimeoutMs: number;
  /** The pause between `serve` attempts while the lock is held. */
  lockRetryDelayMs: number;
  /** Whether a `serve` that failed to start is dropped from the tracked daemons (it has exited). */
  forgetFailedStarts: boolean;
  /** waitRunning's default timeout. */
  runningTimeoutMs: number;
  /** runCli's timeout. */
  cliTimeoutMs: number;
  /** How long assertNothingLeft waits for each instance's processes and watchdogs to be gone. */
  instanceGoneTimeoutMs: number;
  /** cleanupAll: runs first (e.g. stopping in-process daemons). */
  beforeCleanup?: () => Promise<void>;
  /** cleanupAll: runs for each instance after its processes were killed (e.g. removing its containers). */
  cleanupInstance?: (instanceId: string) => Promise<void>;
  /** assertNothingLeft: runs for each instance once its processes and watchdogs are gone. */
  assertInstanceLeftNothing?: (instanceId: string) => Promise<void>;
  /** assertNothingLeft: runs after the instance and stray pid checks, before cleanupAll. */
  assertNothingElseLeft?: () => Promise<void>;
}

const CAPTURE_LIMIT = 512 * 1024;

export function cliDaemonHarness(opts: CliDaemonHarnessOptions) {
  const instanceIds = new Set<string>();
  const daemons = new Set<ChildProcess>();
  const strayPids = new Set<number>();
  const tempDirs = new Set<string>();

  async function cleanupAll(): Promise<void> {
    await opts.beforeCleanup?.();
    for (const d of daemons) {
      if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
      d.stdout?.destroy();
      d.stderr?.destroy();
    }
    daemons.clear();
    for (const id of instanceIds) {
      for (const w of watchdogsOf(id)) kill(w.pid, 'SIGKILL');
      killProcessesWithMarker(id);
      await opts.cleanupInstance?.(id);
    }
    for (const pid of strayPids) kill(pid, 'SIGKILL');
    const clean = await waitFor(
      () =>
        [...instanceIds].every((id) => processesWithMarker(id).length === 0 && watchdogsOf(id).length === 0) &&
        [...strayPids].every((p) => !alive(p)),
      { timeoutMs: 3_000 },
    );
    strayPids.clear();
    instanceIds.clear();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    tempDirs.clear();
    assert.ok(clean, 'cleanup left processes behind');
  }

  /** Asserts (after the test's own checks) that nothing of this test is left, then forgets it. */
  async function assertNothingLeft(): Promise<void> {
    for (const d of daemons) {
      const exited = await waitFor(() => d.exitCode !== null || d.signalCode !== null, { timeoutMs: 5_000 });
      assert.ok(exited, `daemon ${d.pid} still running`);
    }
    for (const id of instanceIds) {
      const ok = await waitFor(() => processesWithMarker(id).length === 0 && watchdogsOf(id).length === 0, {
        timeoutMs: opts.instanceGoneTimeoutMs,
      });
      assert.ok(ok, `instance ${id}: processes ${JSON.stringify(processesWithMarker(id))}, watchdogs ${JSON.stringify(watchdogsOf(id))}`);
      await opts.assertInstanceLeftNothing?.(id);
    }
    for (const pid of strayPids) assert.ok(!alive(pid), `stray pid ${pid} alive`);
    await opts.assertNothingElseLeft?.();
    await cleanupAll();
  }

  function tempDataDir(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `${opts.tempDirPrefix}-${label}-`));
    tempDirs.add(dir);
    return dir;
  }

  function writeConfig(dataDir: string, servers: Record<string, unknown>, settings: Record<string, unknown> = {}): string {
    const file = join(dataDir, 'cfg.json');
    writeFileSync(file, JSON.stringify({ mcpServers: servers, settings: { ...opts.settings, ...settings } }, null, 2));
    return file;
  }

  async function serveOnce(
    dataDir: string,
    config: string,
    env: Record<string, string>,
  ): Promise<Serve | { exitCode: number | null; stderr: string }> {
    const child = spawn(NODE, [CLI, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--config', config], {
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemons.add(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      if (out.length < CAPTURE_LIMIT) out += c.toString('utf8');
    });
    child.stderr!.on('data', (c: Buffer) => {
      if (err.length < CAPTURE_LIMIT) err += c.toString('utf8');
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const url = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), opts.startTimeoutMs);
      const onData = () => {
        const m = /listening on (http:\/\/\S+)\/mcp/.exec(out);
        if (m) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          resolve(m[1]);
        }
      };
      child.stdout!.on('data', onData);
      void exited.then(() => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
    if (!url) {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      if (opts.forgetFailedStarts) daemons.delete(child);
      return { exitCode: child.exitCode, stderr: err };
    }
    const health = (await healthz(url)) as { instanceId: string };
    instanceIds.add(health.instanceId);
    return { child, pid: child.pid!, url, instanceId: health.instanceId, dataDir, stdout: () => out, stderr: () => err, exited };
  }

  /** `serve`, retrying while the data dir's single-instance lock is still held by a killed predecessor (exit 4). */
  async function serve(dataDir: string, config: string, serveOpts: ServeOptions = {}): Promise<Serve> {
    const deadline = Date.now() + opts.startTimeoutMs;
    for (;;) {
      await serveOpts.beforeAttempt?.();
      const r = await serveOnce(dataDir, config, serveOpts.env ?? {});
      if ('child' in r) return r;
      if (r.exitCode === 4 && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, opts.lockRetryDelayMs));
        continue;
      }
      assert.fail(`serve failed (exit ${r.exitCode}): ${r.stderr.slice(-2000)}`);
    }
  }

  async function waitRunning(s: Serve, names: string[], timeoutMs = opts.runningTimeoutMs): Promise<void> {
    let last: unknown;
    const ok = await waitFor(
      async () => {
        const h = (await healthz(s.url)) as Health;
        last = h.servers.map((x) => `${x.name}=${x.state}${x.lastError ? ` (${x.lastError.code}: ${x.lastError.message})` : ''}`);
        return names.every((n) => h.servers.find((x) => x.name === n)?.state === 'running');
      },
      { timeoutMs, intervalMs: 100 },
    );
    assert.ok(ok, `servers not running: ${JSON.stringify(last)}`);
  }

  /** SIGTERM, then the clean exit every test expects (code 0, not killed); returns how long it took. */
  async function stopWithSigterm(s: Serve, stderrTail = 2_000): Promise<number> {
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const { code, signal } = await s.exited;
    const stopMs = Date.now() - t0;
    assert.equal(signal, null);
    assert.equal(code, 0, s.stderr().slice(-stderrTail));
    return stopMs;
  }

  /**
   * SIGSTOP the watchdog (so it can neither react nor be respawned for), SIGKILL the daemon.
   * With trackWatchdog, the watchdog's pid is a stray pid: killed in cleanup, checked gone at the end.
   */
  async function killDaemonWithWatchdogStopped(s: Serve, { trackWatchdog }: { trackWatchdog: boolean }): Promise<ProcInfo> {
    const wd = onlyWatchdog(s.instanceId);
    if (trackWatchdog) strayPids.add(wd.pid);
    kill(wd.pid, 'SIGSTOP');
    assert.ok(await waitFor(() => readProc(wd.pid)?.state === 'T', { timeoutMs: 2_000 }), 'watchdog did not stop');
    s.child.kill('SIGKILL');
    await s.exited;
    return wd;
  }

  function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        NODE,
        [CLI, ...args],
        { env: childEnv(env), timeout: opts.cliTimeoutMs, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  return {
    instanceIds,
    strayPids,
    cleanupAll,
    assertNothingLeft,
    tempDataDir,
    writeConfig,
    serve,
    waitRunning,
    stopWithSigterm,
    killDaemonWithWatchdogStopped,
    runCli,
  };
}
