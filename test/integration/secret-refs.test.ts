/**
 * Secrets by reference (docs/config.md "Secrets"): `${env:…}` and `${file:…}` reach a real server's
 * environment (server-everything's `get-env` tool shows it), are never written back or logged, and
 * an unresolvable one fails that server only, with E_SECRET_UNRESOLVED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoServer, everythingServer, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { healthz } from '../helpers/cli-daemon.js';

test('${env:…} and ${file:…} reach the server; a missing variable fails that server only', async () => {
  const secret = `s3cret-${process.pid}-${Date.now()}`;
  const fileSecret = `f1le-${process.pid}-${Date.now()}`;
  process.env.MCP_WARDEN_TEST_SECRET_ONE = secret;
  delete process.env.MCP_WARDEN_TEST_SECRET_MISSING;
  // Written before the start, so the first launch finds it (a relative path is covered in test/unit/secret-refs.test.ts).
  const secretDir = mkdtempSync(join(tmpdir(), 'mcp-warden-secret-'));
  const secretFile = join(secretDir, 'secret.txt');
  writeFileSync(secretFile, `  ${fileSecret}\n`, { mode: 0o600 });
  const t = await startTestDaemon(
    {
      everything: {
        command: NODE,
        args: [everythingServer, 'stdio'],
        env: { API_TOKEN: 'Bearer ${env:MCP_WARDEN_TEST_SECRET_ONE}', FROM_FILE: `\${file:${secretFile}}`, PLAIN: 'no refs here' },
      },
      broken: { command: NODE, args: [demoServer], env: { KEY: '${env:MCP_WARDEN_TEST_SECRET_MISSING}' } },
    },
    // A slow retry, so the failed server is still showing its own error (not yet E_CRASH_LOOP) when looked at.
    { restartBackoffInitialMs: 5_000, restartBackoffMaxMs: 5_000 },
  );
  try {
    await t.waitForState('everything', 'running', 15_000);
    const { client } = await t.connect();
    const r = await client.callTool({ name: 'everything__get-env', arguments: {} });
    const text = JSON.stringify(r.content);
    assert.ok(text.includes(`Bearer ${secret}`), 'the env reference was expanded in the server environment');
    assert.ok(text.includes(fileSecret), 'the file reference was expanded (trimmed)');
    assert.ok(text.includes('no refs here'));
    assert.ok(!text.includes('${env:'), 'no reference left unexpanded');

    const broken = await t.waitForState('broken', (v) => v.lastError?.code === 'E_SECRET_UNRESOLVED');
    assert.match(
      broken.lastError!.message,
      /\$\.mcpServers\.broken\.env\.KEY: environment variable MCP_WARDEN_TEST_SECRET_MISSING is not set/,
    );
    assert.equal(broken.pid, null, 'nothing was spawned for it');
    assert.equal(t.view('everything')!.state, 'running', 'the other server is unaffected');

    // Never written back, never shown, never logged.
    const config = readFileSync(t.configPath, 'utf8');
    assert.ok(config.includes('${env:MCP_WARDEN_TEST_SECRET_ONE}') && !config.includes(secret));
    const health = JSON.stringify(await healthz(t.daemon.url));
    assert.ok(!health.includes(secret) && !health.includes(fileSecret));
    const log = readFileSync(join(t.dataDir, 'daemon.log'), 'utf8');
    assert.ok(!log.includes(secret) && !log.includes(fileSecret), 'no secret in the log file');
    assert.ok(t.daemon.registry.entry('everything')!.env.API_TOKEN!.includes('${env:'), 'the registry keeps the reference');
  } finally {
    delete process.env.MCP_WARDEN_TEST_SECRET_ONE;
    rmSync(secretDir, { recursive: true, force: true });
    await t.close();
  }
});
