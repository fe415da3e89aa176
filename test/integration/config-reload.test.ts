/**
 * Hot reload (docs/config.md "Hot reload") with real upstreams: the file is edited in place, saved
 * by rename, has an entry removed and is broken while the daemon runs; what starts, stops and keeps
 * serving is asserted, a command's own write causes no second apply, and the watch is gone after stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readEnviron } from '../../src/adapters/process/proc-table.js';
import type { DaemonEvent } from '../../src/daemon/daemon.js';
import { cliMain, demoServer, memoryServer, NODE, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { childEnv } from '../helpers/cli-daemon.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';

const demo = (extra: Record<string, unknown> = {}) => ({ command: NODE, args: [demoServer], ...extra });

function fsWatchers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
}

function processesOf(t: TestDaemon, server: string) {
  return processesWithMarker(t.daemon.identity.instanceId).filter((p) => readEnviron(p.pid)?.MCP_WARDEN_SERVER === server);
}

function rawConfig(t: TestDaemon): { mcpServers: Record<string, unknown>; settings: Record<string, unknown> } {
  return JSON.parse(readFileSync(t.configPath, 'utf8'));
}

/** Saves like editors that write a temp file and rename it over the original (a new inode). */
function renameSave(t: TestDaemon, doc: unknown): void {
  const tmp = join(t.dataDir, '.config.json.swp');
  writeFileSync(tmp, JSON.stringify(doc, null, 2));
  renameSync(tmp, t.configPath);
}

test('hot reload: edit, rename-save, remove and break the file while real upstreams run', async () => {
  const watchersBefore = fsWatchers();
  const t = await startTestDaemon({ a: demo(), b: demo() });
  const events: DaemonEvent[] = [];
  const unsubscribe = t.daemon.subscribe((e) => events.push(e));
  try {
    assert.equal(t.daemon.ledger.owned('config-watch').length, 1, 'the watch is owned in the ledger');
    assert.equal(fsWatchers(), watchersBefore + 1);
    const a0 = await t.waitForState('a', 'running');
    const b0 = await t.waitForState('b', 'running');

    // 1. In-place edit: add c (a real npm server), change b; a must not be disturbed.
    const doc = rawConfig(t);
    doc.mcpServers.c = { command: NODE, args: [memoryServer], env: { MEMORY_FILE_PATH: join(t.dataDir, 'memory.json') } };
    doc.mcpServers.b = demo({ env: { CHANGED: '1' } });
    const t0 = Date.now();
    writeFileSync(t.configPath, JSON.stringify(doc, null, 2));
    await t.waitForState('b', (v) => v.state === 'running' && v.pid !== b0.pid);
    await t.waitForState('c', 'running');
    const b1 = t.view('b')!;
    assert.equal(readEnviron(b1.pid!)?.CHANGED, '1', 'the changed entry runs with its new env');
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(t.view('a')!.pid, a0.pid, 'untouched entry kept its process');
    assert.equal(t.view('a')!.upSince, a0.upSince);
    assert.equal(t.view('c')!.quarantined, false, 'an entry added by editing is trusted on first use');

    // 2. Rename-save removing c: it stops and is reaped; the others are untouched.
    delete doc.mcpServers.c;
    renameSave(t, doc);
    assert.ok(await waitFor(() => t.view('c') === undefined, { timeoutMs: 10_000 }), 'c is forgotten');
    assert.ok(await waitFor(() => processesOf(t, 'c').length === 0, { timeoutMs: 10_000 }), 'c has no process left');
    assert.ok(await waitFor(() => t.daemon.ledger.owned('server:c').length === 0, { timeoutMs: 10_000 }), 'c owns nothing');
    assert.equal(t.view('a')!.pid, a0.pid);
    assert.equal(t.view('b')!.pid, b1.pid);
    assert.ok(events.some((e) => e.type === 'server-removed' && e.name === 'c'));

    // 3. A second rename-save (the watch survives the inode change): add d, quarantined by the file.
    doc.mcpServers.d = demo({ quarantined: true });
    renameSave(t, doc);
    const d = await t.waitForState('d', 'quarantined');
    assert.equal(d.quarantined, true);

    // 4. Break the file: reported, and the running set keeps serving unchanged.
    writeFileSync(t.configPath, '{ "mcpServers": { "a": ');
    assert.ok(
      await waitFor(() => (t.daemon.health().config as { ok: boolean }).ok === false, { timeoutMs: 5_000 }),
      'health reports the broken file',
    );
    const health = t.daemon.health().config as { ok: false; path: string; error: { code: string; message: string } };
    assert.equal(health.error.code, 'E_CONFIG_INVALID');
    assert.equal(health.path, t.configPath);
    assert.match(health.error.message, /invalid JSON/);
    assert.ok(events.some((e) => e.type === 'config' && !e.config.ok));
    const status = await new Promise<string>((resolve) =>
      execFile(NODE, [cliMain, 'status', '--data-dir', t.dataDir], { env: childEnv() }, (_err, stdout) => resolve(stdout)),
    );
    assert.match(
      status,
      /config .*config\.json NOT APPLIED \(E_CONFIG_INVALID\); the servers below keep running as before:\n {2}invalid config file/,
    );
    const { client } = await t.connect();
    const echo = await client.callTool({ name: 'a__echo', arguments: { text: 'still here' } });
    assert.match(JSON.stringify(echo.content), /still here/);
    assert.deepEqual(
      t.daemon
        .servers()
        .map((s) => [s.name, s.pid])
        .sort(),
      [
        ['a', a0.pid],
        ['b', b1.pid],
        ['d', d.pid],
      ].sort(),
    );
    // A valid-JSON file with an invalid entry is refused as well, with its path.
    writeFileSync(t.configPath, JSON.stringify({ mcpServers: { a: { args: 'x' } } }));
    assert.ok(
      await waitFor(() => /\$\.mcpServers\.a/.test(JSON.stringify(t.daemon.health().config)), { timeoutMs: 5_000 }),
      JSON.stringify(t.daemon.health().config),
    );
    assert.equal(t.view('a')!.pid, a0.pid);

    // 5. A valid file again: applied (d removed), status ok.
    delete doc.mcpServers.d;
    writeFileSync(t.configPath, JSON.stringify(doc, null, 2));
    assert.ok(await waitFor(() => (t.daemon.health().config as { ok: boolean }).ok, { timeoutMs: 5_000 }));
    assert.ok(await waitFor(() => t.view('d') === undefined, { timeoutMs: 10_000 }));
    assert.ok(events.some((e) => e.type === 'config' && e.config.ok));
    assert.equal(t.view('a')!.pid, a0.pid);
    assert.equal(t.view('b')!.pid, b1.pid);

    // 6. A command's own write is not applied a second time: e starts once and is never stopped.
    const eStates: string[] = [];
    const off = t.daemon.subscribe((e) => {
      if (e.type === 'server' && e.server.name === 'e') eStates.push(e.server.state);
    });
    await t.daemon.registry.add('e', demo(), { trusted: true });
    const e1 = await t.waitForState('e', 'running');
    await t.daemon.registry.quarantine('e');
    await new Promise((r) => setTimeout(r, 1_000));
    off();
    assert.equal(t.view('e')!.pid, e1.pid, 'e was not restarted by its own write');
    assert.ok(!eStates.some((s) => s.startsWith('stopping')), eStates.join(' → '));
    assert.equal(t.view('a')!.pid, a0.pid);
  } finally {
    unsubscribe();
    await t.close();
  }
  // The watch is released at stop: no fs watcher of ours is left.
  assert.equal(fsWatchers(), watchersBefore);
});
