/**
 * Churn soak: the seed's "goroutines stop" and "memory stays stable over time", for us.
 * Cycles of add → running → remove of a real stdio server through the supervisor; afterwards the
 * ledger is empty, no descendant process is left, the event loop holds the same kinds and numbers of
 * handles as before, and heap growth after a forced GC stays under a stated bound.
 *
 * MCP_WARDEN_SOAK_CYCLES sets the cycle count (default 500, the full count CI runs).
 *
 * The upstream is the C echo server (bench/fixtures/echo-server.c, compiled on first use) in nine
 * cycles of ten and the SDK-based Node echo fixture in the tenth: what churns is the daemon's side,
 * and a Node server's start-up (~0.3 s of CPU here) made the soak most of the suite's time. Without a
 * C compiler every cycle uses the Node fixture, and the test says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fixture, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';
import type { ServerEntry } from '../../src/config/config-types.js';
import { nativeEcho } from '../../bench/lib/native-fixture.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CYCLES = Number(process.env.MCP_WARDEN_SOAK_CYCLES ?? 500);
const WARMUP = Math.min(100, Math.floor(CYCLES / 5));
/** Below this many measured cycles JIT and cache warm-up dominate the heap figure. */
const MIN_CYCLES_FOR_HEAP_BOUND = 150;
/** Stated bound: retained heap per cycle after warm-up, measured after a forced GC. */
const HEAP_BOUND_PER_CYCLE = 4 * 1024;

function resourceSummary(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

test(`churn soak: ${CYCLES} cycles of add → running → remove leave nothing behind`, { timeout: 15 * 60_000 }, async () => {
  assert.ok(CYCLES >= 10, 'MCP_WARDEN_SOAK_CYCLES must be at least 10');
  const t = await startTestDaemon({});
  try {
    const nodeEntry: ServerEntry = {
      type: 'stdio',
      command: NODE,
      args: [fixture('echo-server')],
      env: {},
      disabled: false,
      quarantined: false,
    };
    const native = nativeEcho();
    if (!native.ok) console.error(`*** churn soak: no C echo server (${native.reason}); every cycle uses the Node fixture (slower) ***`);
    const entryFor = (i: number): ServerEntry => (native.ok && i % 10 !== 0 ? { ...nodeEntry, command: native.path, args: [] } : nodeEntry);
    const cycle = async (i: number) => {
      const name = `churn${i % 3}`;
      await t.daemon.registry.add(name, entryFor(i), { trusted: true });
      await t.waitForState(name, 'running', 15_000);
      assert.deepEqual(await t.daemon.registry.remove(name), { name, removed: true });
      const gone = await waitFor(() => t.daemon.ledger.countFor(`server:${name}`) === 0 && !t.view(name), {
        timeoutMs: 15_000,
        intervalMs: 5,
      });
      assert.ok(gone, `cycle ${i}: ${name} still held ${JSON.stringify(t.daemon.ledger.counts())}`);
    };

    for (let i = 0; i < WARMUP; i++) await cycle(i);
    await new Promise((r) => setTimeout(r, 200));
    const baseHandles = resourceSummary();
    const baseHeap = heapAfterGc();
    const started = Date.now();
    for (let i = WARMUP; i < CYCLES; i++) await cycle(i);
    const elapsed = Date.now() - started;

    assert.equal(t.daemon.ledger.countFor('server:churn0') + t.daemon.ledger.countFor('server:churn1'), 0);
    assert.deepEqual(
      Object.keys(t.daemon.ledger.counts()).filter((o) => o.startsWith('server:')),
      [],
      'no server owner holds anything',
    );
    assert.deepEqual(processesWithMarker(t.daemon.identity.instanceId), [], 'zero descendant processes');

    // Handles: the same kinds and counts as at the baseline (allow the runner's own timers to settle).
    const handlesBack = await waitFor(
      () => {
        const now = resourceSummary();
        return Object.entries(now).every(([k, n]) => n <= (baseHandles[k] ?? 0));
      },
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    assert.ok(handlesBack, `active resources grew: before ${JSON.stringify(baseHandles)} after ${JSON.stringify(resourceSummary())}`);

    const measured = CYCLES - WARMUP;
    const growth = heapAfterGc() - baseHeap;
    const perCycle = growth / measured;
    console.log(
      `churn soak: ${measured} measured cycles in ${elapsed} ms (${(elapsed / measured).toFixed(1)} ms/cycle), ` +
        `heap growth ${growth} B (${perCycle.toFixed(0)} B/cycle, bound ${HEAP_BOUND_PER_CYCLE} B/cycle)`,
    );
    if (measured >= MIN_CYCLES_FOR_HEAP_BOUND) {
      assert.ok(perCycle < HEAP_BOUND_PER_CYCLE, `heap grew ${perCycle.toFixed(0)} B per cycle`);
    } else {
      console.error(
        `*** churn soak: heap bound NOT asserted: only ${measured} measured cycles (< ${MIN_CYCLES_FOR_HEAP_BOUND}); run the full count ***`,
      );
    }
  } finally {
    await t.close();
  }
});
