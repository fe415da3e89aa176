/**
 * The watchdog adapter in-process, with this test process as the "daemon": a clean disarm leaves
 * the instance alone; a disarm while the ledger still holds something hands the leftovers to the
 * watchdog (it reaps and exits); a killed watchdog is respawned; the watchdog never carries the
 * instance marker itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { findByEnv, processStartTime, readEnviron, readProc } from '../helpers/process-table.js';
import { startWatchdog } from '../../src/adapters/process/watchdog.js';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { ENV_INSTANCE, ENV_OWNER, ownerMarker, parseOwnerMarker, type InstanceIdentity } from '../../src/core/instance-identity.js';
import { killProcessesWithMarker, memoryLogger, processesWithMarker, waitFor } from '../helpers/leak-check.js';

function identity(): InstanceIdentity {
  return { instanceId: `wdtest${randomBytes(6).toString('base64url')}`, pid: process.pid, startTime: processStartTime(process.pid)! };
}

const alive = (pid: number) => {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z';
};

/** A detached process of the instance that ignores SIGTERM (so the reap must escalate). */
function marked(id: InstanceIdentity): number {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('MCP_WARDEN_') && k !== 'NODE_OPTIONS') env[k] = v;
  const c = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1e9)"], {
    detached: true,
    stdio: 'ignore',
    env: { ...env, [ENV_INSTANCE]: id.instanceId, [ENV_OWNER]: ownerMarker(id) },
  });
  c.unref();
  return c.pid!;
}

const watchdogsOf = (id: InstanceIdentity) => findByEnv('MCP_WARDEN_WATCHDOG', (v) => parseOwnerMarker(v)?.instanceId === id.instanceId);

describe('watchdog adapter', { timeout: 60_000 }, () => {
  it('arms a detached watchdog without the instance marker; a clean disarm leaves the instance alone', async () => {
    const id = identity();
    const ledger = new ResourceLedger();
    const { logger, lines } = memoryLogger();
    const pid = marked(id);
    try {
      const wd = await startWatchdog({ identity: id, logger, ledger });
      const info = readProc(wd.pid)!;
      assert.equal(info.pgid, wd.pid, 'own process group');
      assert.notEqual(info.pgid, readProc(process.pid)!.pgid);
      const env = readEnviron(wd.pid)!;
      assert.equal(env[ENV_INSTANCE], undefined);
      assert.equal(env.MCP_WARDEN_WATCHDOG, ownerMarker(id));
      assert.deepEqual(ledger.counts(), { daemon: { 'process-group': 1 } });

      await wd.disarm();
      assert.ok(!alive(info.pid), 'watchdog exited');
      assert.equal(wd.pid, -1);
      assert.equal(ledger.size(), 0);
      assert.ok(alive(pid), 'a disarmed watchdog reaps nothing');
      assert.ok(lines.some((l) => l.msg === 'watchdog disarmed'));
    } finally {
      killProcessesWithMarker(id.instanceId);
    }
    assert.ok(await waitFor(() => processesWithMarker(id.instanceId).length === 0, { timeoutMs: 2_000 }));
  });

  it('with resources still held, the ledger sweep hands them to the watchdog, which reaps and exits', async () => {
    const id = identity();
    const ledger = new ResourceLedger();
    const { logger, lines } = memoryLogger();
    const pids = [marked(id), marked(id)];
    try {
      assert.ok(await waitFor(() => processesWithMarker(id.instanceId).length === 2, { timeoutMs: 3_000 }));
      const wd = await startWatchdog({ identity: id, logger, ledger, settleWaitMs: 200, termGraceMs: 200 });
      const wdPid = wd.pid;
      // A resource whose release keeps failing: still held when the watchdog's turn comes.
      ledger.acquire('server:stuck', {
        kind: 'process-group',
        description: 'stuck',
        release: async () => {
          throw new Error('cannot');
        },
      });
      const t0 = Date.now();
      const failures = await ledger.sweep('force');
      assert.deepEqual(
        failures.map((f) => f.description),
        ['stuck'],
      );
      assert.ok(!alive(wdPid), 'watchdog exited');
      for (const p of pids) assert.ok(!alive(p), `marked process ${p} survived the hand-over`);
      assert.ok(lines.some((l) => /closing the pipe without disarming/.test(l.msg)));
      console.log(`# hand-over: SIGTERM-immune processes reaped, watchdog gone ${Date.now() - t0} ms after the sweep began`);
      await wd.disarm(); // idempotent
    } finally {
      killProcessesWithMarker(id.instanceId);
    }
    assert.ok(await waitFor(() => processesWithMarker(id.instanceId).length === 0, { timeoutMs: 2_000 }));
  });

  it('respawns a watchdog that was killed while the daemon runs', async () => {
    const id = identity();
    const ledger = new ResourceLedger();
    const { logger, lines } = memoryLogger();
    const wd = await startWatchdog({ identity: id, logger, ledger });
    const first = wd.pid;
    try {
      process.kill(first, 'SIGKILL');
      assert.ok(await waitFor(() => wd.pid > 0 && wd.pid !== first, { timeoutMs: 5_000 }), 'not respawned');
      assert.ok(lines.some((l) => l.msg === 'watchdog exited unexpectedly; respawning it'));
      assert.equal(ledger.size(), 1);
      // SIGTERM does not end a watchdog whose owner is alive.
      const second = wd.pid;
      process.kill(second, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(alive(second));
      await wd.disarm();
      assert.ok(!alive(second));
      assert.equal(ledger.size(), 0);
    } finally {
      for (const w of watchdogsOf(id)) process.kill(w.pid, 'SIGKILL');
    }
    assert.equal(watchdogsOf(id).length, 0);
  });
});
