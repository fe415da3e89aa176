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
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { processStartTime, readEnviron, type ProcInfo } from '../helpers/process-table.js';
import { isOwnerAlive, ownerMarker, parseOwnerMarker } from '../../src/core/instance-identity.js';
import type { ReapReport } from '../../src/daemon/startup-reaper.js';
import { alive, childEnv, cliDaemonHarness, kill, onlyWatchdog } from '../helpers/cli-daemon.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';
import { NODE, fixture } from '../helpers/process-fixtures.js';

// initTimeoutMs is generous on purpose: eight Node upstreams start at once, and on a loaded 2-core
// machine a healthy one can need several seconds; hang-initialize then stays in launching, alive, which
// is one more process for the reapers to find.
const SETTINGS = { stopEofGraceMs: 300, stopTermGraceMs: 500, stopKillGraceMs: 1000, initTimeoutMs: 10_000 };

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
// Daemons through the CLI (test/helpers/cli-daemon.ts). Bookkeeping: whatever a test started is
// killed in its cleanup, whatever happens; harness.assertNothingLeft() ends each test.

const harness = cliDaemonHarness({
  tempDirPrefix: 'warden-orphans',
  settings: SETTINGS,
  startTimeoutMs: 20_000,
  lockRetryDelayMs: 500,
  forgetFailedStarts: false,
  runningTimeoutMs: 20_000,
  cliTimeoutMs: 30_000,
  instanceGoneTimeoutMs: 2_000,
});

after(harness.cleanupAll);

/** The `sleep 3600` left behind by the sh -c wrapper of `grandchild-sh`. */
function shGrandchild(instanceId: string): ProcInfo | undefined {
  return processesWithMarker(instanceId).find(
    (p) => p.comm === 'sleep' && readEnviron(p.pid)?.MCP_WARDEN_SERVER === `${instanceId}/grandchild-sh`,
  );
}

async function reapJson(dryRun: boolean): Promise<ReapReport> {
  const r = await harness.runCli(['reap', '--json', ...(dryRun ? ['--dry-run'] : [])]);
  assert.equal(r.code, 0, `reap exited ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as ReapReport;
}

/** The marked pids of an instance once the set stopped changing (upstreams exiting on EOF settle first). */
async function settledPids(instanceId: string): Promise<number[]> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const now = processesWithMarker(instanceId)
      .map((p) => p.pid)
      .sort()
      .join(',');
    if (now === last) break;
    last = now;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last ? last.split(',').map(Number).sort() : [];
}

// ---------------------------------------------------------------------------------------------

describe('orphan suite: real daemons with hostile upstreams', { timeout: 120_000 }, () => {
  it('SIGTERM: the daemon exits by itself and nothing of its instance remains', async () => {
    const dir = harness.tempDataDir('term');
    const s = await harness.serve(dir, harness.writeConfig(dir, HOSTILE));
    await harness.waitRunning(s, RUNNABLE);
    const sleeper = shGrandchild(s.instanceId);
    assert.ok(sleeper, 'the sh -c grandchild (sleep) is running');
    const before = processesWithMarker(s.instanceId);
    assert.ok(before.length >= RUNNABLE.length + 2, `expected upstreams and grandchildren, got ${before.length}`);
    const wd = onlyWatchdog(s.instanceId);

    const stopMs = await harness.stopWithSigterm(s);
    // Budget: per server stopEof + stopTerm + stopKill (servers stop concurrently), plus slack.
    assert.ok(stopMs < 10_000, `stop took ${stopMs} ms`);
    assert.ok(await waitFor(() => processesWithMarker(s.instanceId).length === 0, { timeoutMs: 1_000 }), 'upstreams survived SIGTERM');
    assert.ok(!alive(sleeper.pid), 'the sh -c grandchild survived');
    assert.ok(await waitFor(() => !alive(wd.pid), { timeoutMs: 2_000 }), 'the watchdog survived a clean stop');
    const log = readFileSync(join(dir, 'daemon.log'), 'utf8');
    assert.match(log, /watchdog disarmed/);
    assert.doesNotMatch(readFileSync(join(dir, 'watchdog.log'), 'utf8'), /reaping instance/);
    console.log(`# SIGTERM → daemon exited in ${stopMs} ms with ${before.length} marked processes, zero left`);
    await harness.assertNothingLeft();
  });

  it('SIGKILL: the watchdog alone leaves zero survivors within 3 s, then exits', async () => {
    const dir = harness.tempDataDir('kill');
    const s = await harness.serve(dir, harness.writeConfig(dir, HOSTILE));
    await harness.waitRunning(s, RUNNABLE);
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
    assert.ok(
      clean,
      `after 3 s: ${left.length} survivor(s) ${left.map((p) => `${p.pid}/${p.comm}`).join(', ')}; watchdog alive: ${alive(wd.pid)}`,
    );
    assert.ok(!alive(sleeper.pid));
    const wlog = readFileSync(join(dir, 'watchdog.log'), 'utf8');
    assert.match(wlog, /daemon gone without disarming/);
    assert.match(wlog, /watchdog done/);
    // The term-immune grandchild made the watchdog escalate to SIGKILL.
    assert.match(wlog, /"escalation":"sigkill"/);
    console.log(`# SIGKILL → ${before.length} marked processes at zero after ${zeroAt - t0} ms, watchdog gone after ${Date.now() - t0} ms`);
    await harness.assertNothingLeft();
  });

  it('SIGKILL of daemon and watchdog: the next serve reaps every survivor before it starts anything', async () => {
    const dir = harness.tempDataDir('both');
    const config = harness.writeConfig(dir, HOSTILE);
    const a = await harness.serve(dir, config);
    await harness.waitRunning(a, RUNNABLE);
    const wd = await harness.killDaemonWithWatchdogStopped(a, { trackWatchdog: true });
    kill(wd.pid, 'SIGKILL');
    assert.ok(await waitFor(() => !alive(wd.pid), { timeoutMs: 2_000 }));
    await settledPids(a.instanceId);
    const survivors = processesWithMarker(a.instanceId);
    assert.ok(survivors.length > 0, 'with daemon and watchdog SIGKILLed, something must have survived');
    assert.ok(shGrandchild(a.instanceId), 'the sh -c grandchild survived the double kill');

    const b = await harness.serve(dir, config);
    // Right after the URL is printed: the predecessor's processes are all gone.
    const left = processesWithMarker(a.instanceId);
    assert.equal(left.length, 0, `not reaped: ${left.map((p) => `${p.pid}/${p.comm}`).join(', ')}`);
    for (const p of survivors) assert.ok(!alive(p.pid), `survivor ${p.pid} (${p.comm}) still alive`);
    // ... and it says so, on the console and in its log.
    const says = new RegExp(`reaped \\d+ orphaned process\\(es\\) of dead instance ${a.instanceId}`);
    assert.match(b.stderr(), says);
    assert.match(readFileSync(join(dir, 'daemon.log'), 'utf8'), says);
    for (const p of survivors)
      assert.ok(b.stderr().includes(String(p.pid)) || readFileSync(join(dir, 'daemon.log'), 'utf8').includes(`"pid":${p.pid}`));
    console.log(`# SIGKILL both → ${survivors.length} survivors, reaped by the next serve before it listened`);

    await harness.waitRunning(b, ['echo']);
    b.child.kill('SIGTERM');
    assert.equal((await b.exited).code, 0);
    await harness.assertNothingLeft();
  });

  it('reap --dry-run lists orphans without killing, reap kills them; a live daemon is untouched by both', async () => {
    const liveDir = harness.tempDataDir('live');
    const live = await harness.serve(
      liveDir,
      harness.writeConfig(liveDir, {
        echo: HOSTILE.echo!,
        'ignore-sigterm': HOSTILE['ignore-sigterm']!,
        'grandchild-sh': HOSTILE['grandchild-sh']!,
      }),
    );
    const deadDir = harness.tempDataDir('dead');
    const dead = await harness.serve(
      deadDir,
      harness.writeConfig(deadDir, {
        'ignore-eof': HOSTILE['ignore-eof']!,
        'ignore-sigterm': HOSTILE['ignore-sigterm']!,
        'grandchild-sh': HOSTILE['grandchild-sh']!,
      }),
    );
    await Promise.all([
      harness.waitRunning(live, ['echo', 'ignore-sigterm', 'grandchild-sh']),
      harness.waitRunning(dead, ['ignore-eof', 'ignore-sigterm', 'grandchild-sh']),
    ]);
    const livePids = processesWithMarker(live.instanceId)
      .map((p) => p.pid)
      .sort();
    const liveWd = onlyWatchdog(live.instanceId);
    // The dead daemon's watchdog stays, stopped: an orphaned watchdog for the reaper to find.
    const deadWd = await harness.killDaemonWithWatchdogStopped(dead, { trackWatchdog: true });
    const orphanPids = await settledPids(dead.instanceId);
    assert.ok(orphanPids.length >= 3, `orphans: ${orphanPids.join(', ')}`);

    // Dry run: listed, not signalled.
    const dry = await reapJson(true);
    assert.equal(dry.dryRun, true);
    assert.deepEqual(
      dry.containers.filter((c) => c.instanceId === dead.instanceId),
      [],
      'the dead daemon ran no containers',
    );
    const listed = dry.processes.filter((p) => p.instanceId === dead.instanceId);
    assert.deepEqual(
      listed
        .filter((p) => p.role === 'upstream')
        .map((p) => p.pid)
        .sort(),
      orphanPids,
    );
    assert.deepEqual(
      listed.filter((p) => p.role === 'watchdog').map((p) => p.pid),
      [deadWd.pid],
    );
    assert.ok(listed.some((p) => p.server === 'grandchild-sh' && /sleep 3600/.test(p.command)));
    assert.ok(dry.instances.some((i) => i.instanceId === dead.instanceId && i.ownerPid === dead.pid));
    assert.ok(!dry.processes.some((p) => p.instanceId === live.instanceId), 'dry run lists a live daemon');
    assert.ok(listed.every((p) => !p.killed));
    assert.deepEqual(
      processesWithMarker(dead.instanceId)
        .map((p) => p.pid)
        .sort(),
      orphanPids,
      'dry run killed something',
    );
    assert.ok(alive(deadWd.pid));
    const human = await harness.runCli(['reap', '--dry-run']);
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
    assert.deepEqual(
      processesWithMarker(live.instanceId)
        .map((p) => p.pid)
        .sort(),
      livePids,
    );
    assert.ok(alive(liveWd.pid));
    assert.ok(alive(live.pid));
    await harness.waitRunning(live, ['echo', 'ignore-sigterm', 'grandchild-sh']);
    const again = await harness.runCli(['reap']);
    assert.equal(again.code, 0);

    live.child.kill('SIGTERM');
    assert.equal((await live.exited).code, 0);
    await harness.assertNothingLeft();
  });

  it('a forged marker naming a live pid with the wrong start time counts as dead (pid reuse)', async () => {
    const myStart = processStartTime(process.pid)!;
    const forgedId = `forged${process.pid}x${Date.now()}`;
    const honestId = `honest${process.pid}x${Date.now()}`;
    const forgedOwner = ownerMarker({ pid: process.pid, startTime: myStart + 1, instanceId: forgedId });
    const honestOwner = ownerMarker({ pid: process.pid, startTime: myStart, instanceId: honestId });
    assert.equal(isOwnerAlive(parseOwnerMarker(forgedOwner)!), false);
    assert.equal(isOwnerAlive(parseOwnerMarker(honestOwner)!), true);
    const sleeper = (id: string, owner: string) => {
      const c = spawn(NODE, ['-e', 'setInterval(() => {}, 1e9)'], {
        detached: true,
        stdio: 'ignore',
        env: { ...childEnv(), MCP_WARDEN_INSTANCE: id, MCP_WARDEN_OWNER: owner, MCP_WARDEN_SERVER: `${id}/sleeper` },
      });
      c.unref();
      harness.strayPids.add(c.pid!);
      harness.instanceIds.add(id);
      return c.pid!;
    };
    const forged = sleeper(forgedId, forgedOwner);
    const honest = sleeper(honestId, honestOwner);
    assert.ok(
      await waitFor(() => processesWithMarker(forgedId).length === 1 && processesWithMarker(honestId).length === 1, { timeoutMs: 3_000 }),
    );

    const dry = await reapJson(true);
    assert.deepEqual(
      dry.processes.filter((p) => p.instanceId === forgedId).map((p) => p.pid),
      [forged],
    );
    assert.ok(!dry.processes.some((p) => p.instanceId === honestId), 'a live owner was judged dead');
    assert.ok(alive(forged));

    const real = await reapJson(false);
    const r = real.processes.find((p) => p.pid === forged);
    assert.ok(r?.killed);
    assert.ok(!alive(forged));
    assert.ok(alive(honest), "the live owner's process was killed");
    kill(honest, 'SIGKILL');
    await harness.assertNothingLeft();
  });
});
