/**
 * /healthz reuses each server's serialised view while its snapshot, config entry and ledger counts are
 * the same (src/daemon/healthz-body.ts): its answer must stay the daemon's `health()`, also after a
 * server changes state, is disabled (a new entry, no actor) and removed.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestDaemon, fixture, NODE, type TestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';

let td: TestDaemon | undefined;
after(async () => {
  await td?.close();
});

/** The answer without what changes from one read to the next (time, request counters). */
function stable(h: Record<string, unknown>): Record<string, unknown> {
  const { uptimeMs: _u, http: _h, ...rest } = h;
  return rest;
}

async function healthz(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/healthz`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json');
  return (await res.json()) as Record<string, unknown>;
}

/** /healthz equals health() read right after it; a state change in between is retried. */
async function assertSameAsHealth(t: TestDaemon): Promise<Record<string, unknown>> {
  let last: { served: unknown; direct: unknown } | undefined;
  const ok = await waitFor(
    async () => {
      const served = stable(await healthz(t.daemon.url));
      const direct = stable(JSON.parse(JSON.stringify(t.daemon.health())) as Record<string, unknown>);
      last = { served, direct };
      return JSON.stringify(served) === JSON.stringify(direct);
    },
    { timeoutMs: 5_000, intervalMs: 20 },
  );
  assert.ok(ok, `the /healthz answer differs from health(): ${JSON.stringify(last)}`);
  return last!.served as Record<string, unknown>;
}

describe('/healthz answer', () => {
  it('is the daemon health() through state changes, a disable and a removal', async () => {
    const echo = { command: NODE, args: [fixture('echo-server')] };
    td = await startTestDaemon({ a: echo, b: echo, c: echo });
    for (const name of ['a', 'b', 'c']) await td.waitForState(name, 'running');

    const first = await assertSameAsHealth(td);
    assert.deepEqual(Object.keys(first), ['status', 'version', 'instanceId', 'pid', 'sessions', 'servers', 'config', 'ledger']);
    // Served twice unchanged: the kept views.
    await assertSameAsHealth(td);

    await td.daemon.registry.setEnabled('b', false);
    await td.waitForState('b', 'disabled');
    const disabled = await assertSameAsHealth(td);
    const b = (disabled.servers as Array<{ name: string; state: string; resources: Record<string, number> }>).find((s) => s.name === 'b');
    assert.equal(b?.state, 'disabled');
    assert.deepEqual(b?.resources, {});

    await td.daemon.registry.remove('c');
    await waitFor(() => !td!.daemon.servers().some((s) => s.name === 'c'), { timeoutMs: 10_000 });
    const removed = await assertSameAsHealth(td);
    assert.deepEqual(
      (removed.servers as Array<{ name: string }>).map((s) => s.name),
      ['a', 'b'],
    );
  });
});
