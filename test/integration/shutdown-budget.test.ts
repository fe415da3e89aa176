/**
 * The shutdown budget on a real daemon: a server whose polite stop would take far longer than
 * `shutdownBudgetMs` (it ignores stdin EOF and SIGTERM) does not hold the daemon. At the budget its
 * actor hands what it owns to the reaper (owner `reaper` in the ledger) and finishes; the daemon's
 * last sweep kills the group. Nothing of ours is left (startTestDaemon's close() checks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { processesWithMarker } from '../helpers/leak-check.js';

test('a server that ignores EOF and SIGTERM is handed to the reaper at the budget; stop is bounded by it', async () => {
  const budget = 1_000;
  const t = await startTestDaemon(
    { stubborn: { command: NODE, args: [fixture('ignore-sigterm-server')] } },
    // The polite escalation alone would take 12 s (plus its own 1 s safety margin).
    { stopEofGraceMs: 4_000, stopTermGraceMs: 4_000, stopKillGraceMs: 4_000, shutdownBudgetMs: budget },
  );
  try {
    await t.waitForState('stubborn', 'running', 15_000);
    const toReaper: string[] = [];
    const off = t.daemon.ledger.subscribe((c) => {
      if (c.type === 'transferred' && c.entry.owner === 'reaper') toReaper.push(`${c.from}:${c.entry.kind}`);
    });
    const t0 = Date.now();
    await t.daemon.stop('test');
    const ms = Date.now() - t0;
    off();
    assert.ok(ms >= budget, `stop waited for the budget (${ms} ms)`);
    assert.ok(ms < budget + 3_000, `stop is bounded by the budget plus a margin, took ${ms} ms`);
    assert.ok(toReaper.includes('server:stubborn:process-group'), `the group went to the reaper: ${JSON.stringify(toReaper)}`);
    assert.equal(t.daemon.ledger.size(), 0);
    assert.deepEqual(processesWithMarker(t.daemon.identity.instanceId), []);
  } finally {
    await t.close();
  }
});
