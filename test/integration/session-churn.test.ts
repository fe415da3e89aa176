/**
 * The seed's listener leak, on the client side: 1,000 MCP sessions opened on /mcp of a real daemon,
 * most closed with DELETE, the rest abandoned to the idle TTL. Afterwards no session, per-session
 * server, listener or timer is left: the front's ledger slice is empty, sessionCount() is 0, and the
 * process's active handles are back to their baseline.
 *
 * MCP_WARDEN_SESSION_CYCLES sets the session count (default 1000, the full count CI runs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { demoServer, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';

const SESSIONS = Number(process.env.MCP_WARDEN_SESSION_CYCLES ?? 1000);
const ABANDON_EVERY = 10; // every 10th session is left for the TTL to expire
const TTL_MS = 1_500;

function handleSummary(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

test(`${SESSIONS} MCP sessions opened and closed (some expired by TTL) leave nothing per session`, { timeout: 10 * 60_000 }, async () => {
  const t = await startTestDaemon(
    { demo: { command: NODE, args: [demoServer] } },
    { sessionIdleTtlMs: TTL_MS, maxSessions: SESSIONS + 10 },
  );
  try {
    await t.waitForState('demo', 'running');
    // Baseline after one full session, so lazily created module-level state is already there.
    const warm = await t.connect();
    await warm.client.listTools();
    await warm.close();
    assert.ok(await waitFor(() => t.daemon.ledger.countFor('front') === 0, { timeoutMs: 5_000 }));
    await new Promise((r) => setTimeout(r, 100));
    const base = handleSummary();

    let abandoned = 0;
    for (let i = 0; i < SESSIONS; i++) {
      const client = new Client({ name: `churn-${i}`, version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(t.daemon.mcpUrl));
      await client.connect(transport);
      if (i % 50 === 0) {
        const tools = await client.listTools();
        assert.equal(tools.tools.length, 4);
      }
      if (i % ABANDON_EVERY === 0) {
        abandoned++;
        await client.close(); // no DELETE: the daemon only learns of it through the idle TTL
      } else {
        await transport.terminateSession();
        await client.close();
      }
    }
    assert.ok(abandoned > 0);
    const live = t.daemon.ledger.countFor('front');
    assert.ok(live <= abandoned + 1, `only abandoned sessions may be live now, saw ${live}`);

    const drained = await waitFor(() => t.daemon.ledger.countFor('front') === 0, { timeoutMs: TTL_MS * 4 + 5_000, intervalMs: 50 });
    assert.ok(drained, `sessions left in the ledger: ${t.daemon.ledger.countFor('front')}`);
    assert.equal((t.daemon.health() as { sessions: number }).sessions, 0);

    const back = await waitFor(() => Object.entries(handleSummary()).every(([k, n]) => n <= (base[k] ?? 0)), {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    assert.ok(back, `active handles grew: before ${JSON.stringify(base)} after ${JSON.stringify(handleSummary())}`);
    console.log(`session churn: ${SESSIONS} sessions, ${abandoned} expired by TTL; handles ${JSON.stringify(handleSummary())}`);
  } finally {
    await t.close();
  }
});
