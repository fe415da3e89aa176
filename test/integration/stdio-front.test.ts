/**
 * `mcp-warden stdio` with the SDK's own StdioClientTransport: list and call through it, with a
 * daemon already running (used, left running, its session ended) and without one (started inside the
 * stdio process and gone, with everything it started, once stdin closes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { readDaemonFile } from '../../src/adapters/store/daemon-file.js';
import { locateDaemon } from '../../src/cli/daemon-locator.js';
import { cliMain, demoServer, FAST_SETTINGS, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { alive, childEnv, watchdogsOf } from '../helpers/cli-daemon.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';

async function connectStdio(dataDir: string) {
  const transport = new StdioClientTransport({
    command: NODE,
    args: [cliMain, 'stdio', '--data-dir', dataDir],
    env: childEnv(),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const client = new Client({ name: 'stdio-front-test', version: '1.0.0' });
  await client.connect(transport);
  // The SDK keeps the child private; the test needs it to close stdin itself and see the exit.
  const child = (transport as unknown as { _process: ChildProcess })._process;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return { client, transport, child, exited, stderr: () => stderr };
}

async function listAndCall(client: Client): Promise<void> {
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes('demo__echo'), names.join(','));
  const r = await client.callTool({ name: 'demo__echo', arguments: { text: 'through stdio' } });
  assert.match(JSON.stringify(r.content), /through stdio/);
}

test('stdio front without a running daemon: starts one, serves, and leaves nothing once stdin closes', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mcp-warden-stdio-'));
  writeFileSync(
    join(dataDir, 'config.json'),
    JSON.stringify({ mcpServers: { demo: { command: NODE, args: [demoServer] } }, settings: FAST_SETTINGS }),
  );
  let pid: number | undefined;
  try {
    const s = await connectStdio(dataDir);
    pid = s.child.pid;
    await listAndCall(s.client);
    const info = await readDaemonFile(dataDir);
    assert.equal(info.kind, 'ok');
    if (info.kind !== 'ok') return;
    assert.equal(info.info.pid, s.child.pid, 'the daemon runs inside the stdio process');
    const instanceId = info.info.instanceId;
    assert.ok(processesWithMarker(instanceId).length > 0, 'the demo server runs');

    s.child.stdin!.end();
    const exit = await s.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${s.stderr()}`);
    await s.client.close();
    assert.ok(await waitFor(() => processesWithMarker(instanceId).length === 0, { timeoutMs: 3_000 }), 'no server process left');
    assert.ok(await waitFor(() => watchdogsOf(instanceId).length === 0, { timeoutMs: 3_000 }), 'no watchdog left');
    assert.equal(existsSync(join(dataDir, 'daemon.json')), false);
    assert.equal((await locateDaemon(dataDir)).kind, 'none', 'the lock is released');
    assert.equal(s.stderr().includes('failed'), false, s.stderr());
  } finally {
    if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('stdio front with a running daemon: uses it, ends its session, leaves it running', async () => {
  const t = await startTestDaemon({ demo: { command: NODE, args: [demoServer] } });
  try {
    await t.waitForState('demo', 'running');
    const s = await connectStdio(t.dataDir);
    await listAndCall(s.client);
    assert.equal(t.daemon.health().sessions, 1, 'the stdio client has one session on /mcp');
    const demoPid = t.view('demo')!.pid;
    s.child.stdin!.end();
    assert.deepEqual(await s.exited, { code: 0, signal: null }, `stderr: ${s.stderr()}`);
    await s.client.close();
    assert.ok(await waitFor(() => t.daemon.health().sessions === 0, { timeoutMs: 3_000 }), 'its session was ended');
    assert.equal(t.view('demo')!.state, 'running');
    assert.equal(t.view('demo')!.pid, demoPid, 'the daemon and its servers were left alone');
  } finally {
    await t.close();
  }
});
