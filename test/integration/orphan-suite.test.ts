/**
 * The orphan suite: real daemons through the CLI, each with every hostile fixture, killed in every
 * way we promise to survive (docs/guarantees.md):
 *   - SIGTERM: the daemon exits by itself and nothing of its instance remains;
 *   - SIGKILL: the watchdog alone ends everything within 3 s, then exits;
 *   - SIGKILL of daemon and watchdog: the next `serve` on the data dir reaps it all before it starts;
 *   - `reap [--dry-run]`: lists / kills orphans, never touches a live daemon's processes;
 *   - a forged owner marker (live pid, wrong start time) counts as dead.
 * Every test removes whatever it started (daemons, upstreams by marker, watchdogs) and checks so.
 */
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findByEnv, processStartTime, readEnviron, readProc, type ProcInfo } from '../../src/adapters/proc-scan.js';
import { isOwnerAlive, parseOwnerMarker } from '../../src/daemon/instance-identity.js';
import type { ReapReport } from '../../src/daemon/startup-reaper.js';
import { killProcessesWithMarker, processesWithMarker, waitFor } from '../helpers/leak-check.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const fixture = (name: string) => join(FIXTURES, `${name}.js`);
const NODE = process.execPath;

const SETTINGS = { stopEofGraceMs: 300, stopTermGraceMs: 500, stopKillGraceMs: 1000, initTimeoutMs: 2000 };

type ServerSpec = { command: string; args: string[] };

/** Every hostile fixture plus a well-behaved echo server. */
const HOSTILE: Record<string, ServerSpec> = {
  echo: { command: NODE, args: [fixture('echo-server')] },
  'ignore-eof': { command: NODE, args: [fixture('ignore-eof-server')] },
  'ignore-sigterm': { command: NODE, args: [fixture('ignore-sigterm-server')] },
  // The shell variant from grandchild-server.ts's header: `sleep` is left behind in the group.
  'grandchild-sh': { command: 'sh', args: ['-c', `sleep 3600 & exec ${NODE} ${fixture('echo-server')}`] },
  // A node grandchild that ignores SIGTERM and holds the server's stdout/stderr.
  'grandchild-node': { command: NODE, args: [fixture('grandchild-server')] },
  // A grandchild that silently ignores SIGTERM (SIG_IGN survives fork and exec): only SIGKILL ends it.
  'term-immune-sh': { command: 'sh', args: ['-c', `trap '' TERM; sleep 3600 & exec ${NODE} ${fixture('echo-server')}`] },
  'hang-initialize': { command: NODE, args: [fixture('hang-initialize-server')] },
  'stderr-flood': { command: NODE, args: [fixture('stderr-flood-server')] },
};
/** The servers that reach `running` (hang-initialize never does). */
const RUNNABLE = Object.keys(HOSTILE).filter((n) => n !== 'hang-initialize');

// ---------------------------------------------------------------------------------------------
// Bookkeeping: whatever a test started is killed in its cleanup, whatever happens.

const instanceIds = new Set<string>();
const daemons = new Set<ChildProcess>();
const strayPids = new Set<number>();
const tempDirs = new Set<string>();

function watchdogsOf(instanceId: string): ProcInfo[] {
  return findByEnv('MCP_WARDEN_WATCHDOG', (v) => parseOwnerMarker(v)?.instanceId === instanceId);
}

function alive(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z' && p.state !== 'X';
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

async function cleanupAll(): Promise<void> {
  for (const d of daemons) {
    if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    d.stdout?.destroy();
    d.stderr?.destroy();
  }
  daemons.clear();
  for (const id of instanceIds) {
    for (const w of watchdogsOf(id)) kill(w.pid, 'SIGKILL');
    killProcessesWithMarker(id);
  }
  for (const pid of strayPids) kill(pid, 'SIGKILL');
  const clean = await waitFor(
    () => [...instanceIds].every((id) => processesWithMarker(id).length === 0 && watchdogsOf(id).length === 0) && [...strayPids].every((p) => !alive(p)),
    { timeoutMs: 3_000 },
  );
  strayPids.clear();
  instanceIds.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
  assert.ok(clean, 'cleanup left processes behind');
}

after(cleanupAll);

/** Asserts (after the test's own checks) that nothing of this test is left, then forgets it. */
async function assertNothingLeft(): Promise<void> {
  for (const d of daemons) {
    const exited = await waitFor(() => d.exitCode !== null || d.signalCode !== null, { timeoutMs: 5_000 });
    assert.ok(exited, `daemon ${d.pid} still running`);
  }
  for (const id of instanceIds) {
    const ok = await waitFor(() => processesWithMarker(id).length === 0 && watchdogsOf(id).length === 0, { timeoutMs: 2_000 });
    assert.ok(ok, `instance ${id}: processes ${JSON.stringify(processesWithMarker(id))}, watchdogs ${JSON.stringify(watchdogsOf(id))}`);
  }
  for (const pid of strayPids) assert.ok(!alive(pid), `stray pid ${pid} alive`);
  await cleanupAll();
}

// ---------------------------------------------------------------------------------------------
// Daemons through the CLI.

function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('MCP_WARDEN_') || k === 'NODE_OPTIONS' || k === 'NODE_TEST_CONTEXT') continue;
    env[k] = v;
  }
  return env;
}

function tempDataDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `warden-orphans-${label}-`));
  tempDirs.add(dir);
  return dir;
}

function writeConfig(dataDir: string, servers: Record<string, ServerSpec>): string {
  const file = join(dataDir, 'cfg.json');
  writeFileSync(file, JSON.stringify({ mcpServers: servers, settings: SETTINGS }, null, 2));
  return file;
}

interface Serve {
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

const CAPTURE_LIMIT = 512 * 1024;

async function serveOnce(dataDir: string, config: string): Promise<Serve | { exitCode: number | null; stderr: string }> {
  const child = spawn(NODE, [CLI, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--config', config], {
    env: childEnv(),
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
    const timer = setTimeout(() => resolve(undefined), 20_000);
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
    return { exitCode: child.exitCode, stderr: err };
  }
  const health = (await healthz(url)) as { instanceId: string };
  instanceIds.add(health.instanceId);
  return { child, pid: child.pid!, url, instanceId: health.instanceId, dataDir, stdout: () => out, stderr: () => err, exited };
}

/** `serve`, retrying while the data dir's single-instance lock is still held by a killed predecessor (exit 4). */
async function serve(dataDir: string, config: string): Promise<Serve> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await serveOnce(dataDir, config);
    if ('child' in r) return r;
    if (r.exitCode === 4 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 500));
      continue;
    }
    assert.fail(`serve failed (exit ${r.exitCode}): ${r.stderr.slice(-2000)}`);
  }
}

function healthz(url: string): Promise<unknown> {
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

async function waitRunning(s: Serve, names: string[]): Promise<void> {
  let last: unknown;
  const ok = await waitFor(
    async () => {
      const h = (await healthz(s.url)) as { servers: Array<{ name: string; state: string }> };
      last = h.servers.map((x) => `${x.name}=${x.state}`);
      return names.every((n) => h.servers.find((x) => x.name === n)?.state === 'running');
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  assert.ok(ok, `servers not running: ${JSON.stringify(last)}`);
}

/** The `sleep 3600` left behind by the sh -c wrapper of `grandchild-sh`. */
function shGrandchild(instanceId: string): ProcInfo | undefined {
  return processesWithMarker(instanceId).find(
    (p) => p.comm === 'sleep' && readEnviron(p.pid)?.MCP_WARDEN_SERVER === `${instanceId}/grandchild-sh`,
  );
}

function onlyWatchdog(instanceId: string): ProcInfo {
  const w = watchdogsOf(instanceId);
  assert.equal(w.length, 1, `expected one watchdog of ${instanceId}, found ${w.length}`);
  return w[0]!;
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, ...args], { env: childEnv(), timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function reapJson(dryRun: boolean): Promise<ReapReport> {
  const r = await runCli(['reap', '--json', ...(dryRun ? ['--dry-run'] : [])]);
  assert.equal(r.code, 0, `reap exited ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as ReapReport;
}

/** The marked pids of an instance once the set stopped changing (upstreams exiting on EOF settle first). */
async function settledPids(instanceId: string): Promise<number[]> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const now = processesWithMarker(instanceId).map((p) => p.pid).sort().join(',');
    if (now === last) break;
    last = now;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last ? last.split(',').map(Number).sort() : [];
}

/** SIGSTOP the watchdog (so it can neither react nor be respawned for), SIGKILL the daemon. */
async function killDaemonWithWatchdogStopped(s: Serve): Promise<ProcInfo> {
  const wd = onlyWatchdog(s.instanceId);
  strayPids.add(wd.pid);
  kill(wd.pid, 'SIGSTOP');
  assert.ok(await waitFor(() => readProc(wd.pid)?.state === 'T', { timeoutMs: 2_000 }), 'watchdog did not stop');
  s.child.kill('SIGKILL');
  await s.exited;
  return wd;
}

// ---------------------------------------------------------------------------------------------

describe('orphan suite: real daemons with hostile upstreams', { timeout: 120_000 }, () => {
  it('SIGTERM: the daemon exits by itself and nothing of its instance remains', async () => {
    const dir = tempDataDir('term');
    const s = await serve(dir, writeConfig(dir, HOSTILE));
    await waitRunning(s, RUNNABLE);
    const sleeper = shGrandchild(s.instanceId);
    assert.ok(sleeper, 'the sh -c grandchild (sleep) is running');
    const before = processesWithMarker(s.instanceId);
    assert.ok(before.length >= RUNNABLE.length + 2, `expected upstreams and grandchildren, got ${before.length}`);
    const wd = onlyWatchdog(s.instanceId);

    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const { code, signal } = await s.exited;
    const stopMs = Date.now() - t0;
    assert.equal(signal, null);
    assert.equal(code, 0, s.stderr().slice(-2000));
    // Budget: per server stopEof + stopTerm + stopKill (servers stop concurrently), plus slack.
    assert.ok(stopMs < 10_000, `stop took ${stopMs} ms`);
    assert.ok(await waitFor(() => processesWithMarker(s.instanceId).length === 0, { timeoutMs: 1_000 }), 'upstreams survived SIGTERM');
    assert.ok(!alive(sleeper.pid), 'the sh -c grandchild survived');
    assert.ok(await waitFor(() => !alive(wd.pid), { timeoutMs: 2_000 }), 'the watchdog survived a clean stop');
    const log = readFileSync(join(dir, 'daemon.log'), 'utf8');
    assert.match(log, /watchdog disarmed/);
    assert.doesNotMatch(readFileSync(join(dir, 'watchdog.log'), 'utf8'), /reaping instance/);
    console.log(`# SIGTERM → daemon exited in ${stopMs} ms with ${before.length} marked processes, zero left`);
    await assertNothingLeft();
  });

  it('SIGKILL: the watchdog alone leaves zero survivors within 3 s, then exits', async () => {
    const dir = tempDataDir('kill');
    const s = await serve(dir, writeConfig(dir, HOSTILE));
    await waitRunning(s, RUNNABLE);
    const wd = onlyWatchdog(s.instanceId);
    const before = processesWithMarker(s.instanceId);
    const sleeper = shGrandchild(s.instanceId);
    assert.ok(sleeper);

    const t0 = Date.now();
    s.child.kill('SIGKILL');
    let zeroAt = 0;
    const clean = await waitFor(
      () => {
        if (processesWithMarker(s.instanceId).length > 0) return false;
        zeroAt ||= Date.now();
        return !alive(wd.pid);
      },
      { timeoutMs: 3_000, intervalMs: 10 },
    );
    const left = processesWithMarker(s.instanceId);
    assert.ok(clean, `after 3 s: ${left.length} survivor(s) ${left.map((p) => `${p.pid}/${p.comm}`).join(', ')}; watchdog alive: ${alive(wd.pid)}`);
    assert.ok(!alive(sleeper.pid));
    const wlog = readFileSync(join(dir, 'watchdog.log'), 'utf8');
    assert.match(wlog, /daemon gone without disarming/);
    assert.match(wlog, /watchdog done/);
    // The term-immune grandchild made the watchdog escalate to SIGKILL.
    assert.match(wlog, /"escalation":"sigkill"/);
    console.log(`# SIGKILL → ${before.length} marked processes at zero after ${zeroAt - t0} ms, watchdog gone after ${Date.now() - t0} ms`);
    await assertNothingLeft();
  });

  it('SIGKILL of daemon and watchdog: the next serve reaps every survivor before it starts anything', async () => {
    const dir = tempDataDir('both');
    const config = writeConfig(dir, HOSTILE);
    const a = await serve(dir, config);
    await waitRunning(a, RUNNABLE);
    const wd = await killDaemonWithWatchdogStopped(a);
    kill(wd.pid, 'SIGKILL');
    assert.ok(await waitFor(() => !alive(wd.pid), { timeoutMs: 2_000 }));
    await settledPids(a.instanceId);
    const survivors = processesWithMarker(a.instanceId);
    assert.ok(survivors.length > 0, 'with daemon and watchdog SIGKILLed, something must have survived');
    assert.ok(shGrandchild(a.instanceId), 'the sh -c grandchild survived the double kill');

    const b = await serve(dir, config);
    // Right after the URL is printed: the predecessor's processes are all gone.
    const left = processesWithMarker(a.instanceId);
    assert.equal(left.length, 0, `not reaped: ${left.map((p) => `${p.pid}/${p.comm}`).join(', ')}`);
    for (const p of survivors) assert.ok(!alive(p.pid), `survivor ${p.pid} (${p.comm}) still alive`);
    // ... and it says so, on the console and in its log.
    const says = new RegExp(`reaped \\d+ orphaned process\\(es\\) of dead instance ${a.instanceId}`);
    assert.match(b.stderr(), says);
    assert.match(readFileSync(join(dir, 'daemon.log'), 'utf8'), says);
    for (const p of survivors) assert.ok(b.stderr().includes(String(p.pid)) || readFileSync(join(dir, 'daemon.log'), 'utf8').includes(`"pid":${p.pid}`));
    console.log(`# SIGKILL both → ${survivors.length} survivors, reaped by the next serve before it listened`);

    await waitRunning(b, ['echo']);
    b.child.kill('SIGTERM');
    assert.equal((await b.exited).code, 0);
    await assertNothingLeft();
  });

  it('reap --dry-run lists orphans without killing, reap kills them; a live daemon is untouched by both', async () => {
    const liveDir = tempDataDir('live');
    const live = await serve(
      liveDir,
      writeConfig(liveDir, { echo: HOSTILE.echo!, 'ignore-sigterm': HOSTILE['ignore-sigterm']!, 'grandchild-sh': HOSTILE['grandchild-sh']! }),
    );
    const deadDir = tempDataDir('dead');
    const dead = await serve(
      deadDir,
      writeConfig(deadDir, {
        'ignore-eof': HOSTILE['ignore-eof']!,
        'ignore-sigterm': HOSTILE['ignore-sigterm']!,
        'grandchild-sh': HOSTILE['grandchild-sh']!,
      }),
    );
    await Promise.all([waitRunning(live, ['echo', 'ignore-sigterm', 'grandchild-sh']), waitRunning(dead, ['ignore-eof', 'ignore-sigterm', 'grandchild-sh'])]);
    const livePids = processesWithMarker(live.instanceId).map((p) => p.pid).sort();
    const liveWd = onlyWatchdog(live.instanceId);
    // The dead daemon's watchdog stays, stopped: an orphaned watchdog for the reaper to find.
    const deadWd = await killDaemonWithWatchdogStopped(dead);
    const orphanPids = await settledPids(dead.instanceId);
    assert.ok(orphanPids.length >= 3, `orphans: ${orphanPids.join(', ')}`);

    // Dry run: listed, not signalled.
    const dry = await reapJson(true);
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.containers.filter((c) => c.instanceId === dead.instanceId), [], 'the dead daemon ran no containers');
    const listed = dry.processes.filter((p) => p.instanceId === dead.instanceId);
    assert.deepEqual(listed.filter((p) => p.role === 'upstream').map((p) => p.pid).sort(), orphanPids);
    assert.deepEqual(listed.filter((p) => p.role === 'watchdog').map((p) => p.pid), [deadWd.pid]);
    assert.ok(listed.some((p) => p.server === 'grandchild-sh' && /sleep 3600/.test(p.command)));
    assert.ok(dry.instances.some((i) => i.instanceId === dead.instanceId && i.ownerPid === dead.pid));
    assert.ok(!dry.processes.some((p) => p.instanceId === live.instanceId), 'dry run lists a live daemon');
    assert.ok(listed.every((p) => !p.killed));
    assert.deepEqual(processesWithMarker(dead.instanceId).map((p) => p.pid).sort(), orphanPids, 'dry run killed something');
    assert.ok(alive(deadWd.pid));
    const human = await runCli(['reap', '--dry-run']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`instance ${dead.instanceId} \\(daemon pid ${dead.pid}, not running\\)`));
    assert.match(human.stdout, /dry run: nothing was signalled/);

    // Reap: killed and verified gone; the live daemon keeps every process.
    const real = await reapJson(false);
    assert.equal(real.dryRun, false);
    const reaped = real.processes.filter((p) => p.instanceId === dead.instanceId);
    assert.deepEqual(reaped.map((p) => p.pid).sort(), [...orphanPids, deadWd.pid].sort());
    assert.ok(reaped.every((p) => p.killed));
    assert.deepEqual(real.survivors, []);
    assert.equal(processesWithMarker(dead.instanceId).length, 0);
    assert.ok(!alive(deadWd.pid));
    assert.ok(!real.processes.some((p) => p.instanceId === live.instanceId), 'reap touched a live daemon');
    assert.deepEqual(processesWithMarker(live.instanceId).map((p) => p.pid).sort(), livePids);
    assert.ok(alive(liveWd.pid));
    assert.ok(alive(live.pid));
    await waitRunning(live, ['echo', 'ignore-sigterm', 'grandchild-sh']);
    const again = await runCli(['reap']);
    assert.equal(again.code, 0);

    live.child.kill('SIGTERM');
    assert.equal((await live.exited).code, 0);
    await assertNothingLeft();
  });

  it('a forged marker naming a live pid with the wrong start time counts as dead (pid reuse)', async () => {
    const myStart = processStartTime(process.pid)!;
    const forgedId = `forged${process.pid}x${Date.now()}`;
    const honestId = `honest${process.pid}x${Date.now()}`;
    const forgedOwner = `${process.pid}:${myStart + 1}:${forgedId}`;
    const honestOwner = `${process.pid}:${myStart}:${honestId}`;
    assert.equal(isOwnerAlive(parseOwnerMarker(forgedOwner)!), false);
    assert.equal(isOwnerAlive(parseOwnerMarker(honestOwner)!), true);
    const sleeper = (id: string, owner: string) => {
      const c = spawn(NODE, ['-e', 'setInterval(() => {}, 1e9)'], {
        detached: true,
        stdio: 'ignore',
        env: { ...childEnv(), MCP_WARDEN_INSTANCE: id, MCP_WARDEN_OWNER: owner, MCP_WARDEN_SERVER: `${id}/sleeper` },
      });
      c.unref();
      strayPids.add(c.pid!);
      instanceIds.add(id);
      return c.pid!;
    };
    const forged = sleeper(forgedId, forgedOwner);
    const honest = sleeper(honestId, honestOwner);
    assert.ok(await waitFor(() => processesWithMarker(forgedId).length === 1 && processesWithMarker(honestId).length === 1, { timeoutMs: 3_000 }));

    const dry = await reapJson(true);
    assert.deepEqual(dry.processes.filter((p) => p.instanceId === forgedId).map((p) => p.pid), [forged]);
    assert.ok(!dry.processes.some((p) => p.instanceId === honestId), 'a live owner was judged dead');
    assert.ok(alive(forged));

    const real = await reapJson(false);
    const r = real.processes.find((p) => p.pid === forged);
    assert.ok(r?.killed);
    assert.ok(!alive(forged));
    assert.ok(alive(honest), 'the live owner\'s process was killed');
    kill(honest, 'SIGKILL');
    await assertNothingLeft();
  });
});
