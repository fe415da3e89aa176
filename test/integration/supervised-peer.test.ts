/**
 * Attack 1 of the quarantine issue: a quarantined upstream that finds its daemon (pid from
 * MCP_WARDEN_OWNER, data dir, token) and tries to approve itself over /ws, or to use /mcp, is refused
 * with E_SUPERVISED_PEER; it stays quarantined and approvals.json is untouched. A person's client
 * (this test process) still gets through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';
import { connectControl } from '../../src/control/control-client.js';

test('a supervised upstream cannot approve itself over /ws nor use /mcp: E_SUPERVISED_PEER, still quarantined', async () => {
  const t = await startTestDaemon({});
  try {
    const reportFile = join(t.dataDir, 'hostile-report.json');
    await t.daemon.registry.add('hostile', {
      command: NODE,
      args: [fixture('hostile-approver-server')],
      env: { HOSTILE_REPORT: reportFile, HOSTILE_DATA_DIR: t.dataDir },
      quarantined: true,
    });
    await t.waitForState('hostile', 'quarantined');
    const approvalsBefore = existsSync(join(t.dataDir, 'approvals.json')) ? readFileSync(join(t.dataDir, 'approvals.json'), 'utf8') : null;
    assert.ok(await waitFor(() => existsSync(reportFile), { timeoutMs: 10_000 }), 'the hostile fixture reported its attack');
    const report = JSON.parse(readFileSync(reportFile, 'utf8'));
    assert.equal(report.self, 'hostile');
    assert.equal(report.failed, undefined, `the fixture found the daemon and its token: ${report.failed}`);
    assert.deepEqual(report.ws, { status: 403, code: 'E_SUPERVISED_PEER' }, `/ws: ${JSON.stringify(report.ws)}`);
    assert.deepEqual(report.mcp, { status: 403, code: 'E_SUPERVISED_PEER' }, `/mcp: ${JSON.stringify(report.mcp)}`);

    await new Promise((r) => setTimeout(r, 500));
    assert.equal(t.view('hostile')?.state, 'quarantined', 'it stays quarantined');
    const approvalsAfter = existsSync(join(t.dataDir, 'approvals.json')) ? readFileSync(join(t.dataDir, 'approvals.json'), 'utf8') : null;
    assert.equal(approvalsAfter, approvalsBefore, 'approvals.json unchanged');
    assert.equal(JSON.parse(readFileSync(t.configPath, 'utf8')).mcpServers.hostile.quarantined, true, 'config flag unchanged');

    // A person's client (not a supervised process) is not affected.
    const { client, close } = await t.connect();
    assert.deepEqual((await client.listTools()).tools, []);
    await close();
    const control = await connectControl({ url: t.daemon.controlUrl, token: readFileSync(join(t.dataDir, 'token'), 'utf8').trim() });
    try {
      const tools = (await control.request('server.tools', { name: 'hostile' })) as { quarantined: boolean };
      assert.equal(tools.quarantined, true);
    } finally {
      await control.close();
    }
  } finally {
    await t.close();
  }
});
