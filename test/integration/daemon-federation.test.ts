/**
 * The foundation, end to end: a real daemon supervising real upstreams from npm
 * (server-everything, server-memory) and hostile fixtures, reached through /mcp with the SDK's own
 * Streamable HTTP client. Every test ends with no process of the instance and an empty ledger.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  cliMain,
  demoServer,
  everythingServer,
  fixture,
  FAST_SETTINGS,
  memoryServer,
  NODE,
  startTestDaemon,
} from '../helpers/test-daemon.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';

async function mcpErrorOf(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof McpError, `expected an McpError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

test('federates real npm servers: list, call, progress, cancellation', async () => {
  const t = await startTestDaemon({
    everything: { command: NODE, args: [everythingServer, 'stdio'] },
    memory: { command: NODE, args: [memoryServer], env: { MEMORY_FILE_PATH: '/dev/null/nowhere.json' } },
  });
  try {
    await t.waitForState('everything', 'running');
    await t.waitForState('memory', 'running');
    const { client } = await t.connect();
    const names = (await client.listTools()).tools.map((x) => x.name);
    assert.ok(names.includes('everything__echo'), names.join(','));
    assert.ok(names.includes('everything__trigger-long-running-operation'));
    assert.ok(names.includes('memory__read_graph'), names.join(','));
    assert.equal(names.filter((n) => !n.startsWith('everything__') && !n.startsWith('memory__')).length, 0);

    // schemas pass through unchanged: compare with a direct listing via the supervisor's context
    const direct = t.daemon.registry.toolsOf('everything')!.find((x) => x.name === 'echo')!;
    const proxied = (await client.listTools()).tools.find((x) => x.name === 'everything__echo')!;
    assert.deepEqual(proxied.inputSchema, direct.inputSchema);

    const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'hello warden' } });
    assert.match(JSON.stringify(echo.content), /hello warden/);

    const progress: number[] = [];
    const long = await client.callTool(
      { name: 'everything__trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.match(JSON.stringify(long.content), /completed/i);
    assert.deepEqual(progress, [1, 2, 3], 'every upstream progress notification is relayed in order');

    const ac = new AbortController();
    const started = Date.now();
    const cancelled = client.callTool(
      { name: 'everything__trigger-long-running-operation', arguments: { duration: 20, steps: 20 } },
      undefined,
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(new Error('user cancelled')), 200);
    await assert.rejects(cancelled);
    assert.ok(Date.now() - started < 3_000, 'cancellation is prompt');
    // the upstream keeps serving after a cancelled call
    const again = await client.callTool({ name: 'everything__echo', arguments: { message: 'still here' } });
    assert.match(JSON.stringify(again.content), /still here/);

    const graph = await client.callTool({ name: 'memory__read_graph', arguments: {} });
    assert.ok(Array.isArray(graph.content));
  } finally {
    await t.close();
  }
});

test('distinct, coded errors: unknown tool, server down, upstream error, upstream timeout', async () => {
  const t = await startTestDaemon(
    {
      fx: { command: NODE, args: [fixture('echo-server')], env: { FIXTURE_FAIL_TOOL: '1' } },
      hang: { command: NODE, args: [fixture('hang-initialize-server')] },
    },
    { toolCallTimeoutMs: 400, initTimeoutMs: 60_000 },
  );
  try {
    await t.waitForState('fx', 'running');
    const { client } = await t.connect();

    const unknown = await mcpErrorOf(client.callTool({ name: 'fx__nope', arguments: {} }));
    assert.equal(unknown.code, -32602);
    assert.equal((unknown.data as { code?: string }).code, 'E_UNKNOWN_TOOL');

    const noServer = await mcpErrorOf(client.callTool({ name: 'ghost__echo', arguments: {} }));
    assert.equal((noServer.data as { code?: string }).code, 'E_UNKNOWN_TOOL');

    const down = await mcpErrorOf(client.callTool({ name: 'hang__echo', arguments: {} }));
    assert.equal((down.data as { code?: string }).code, 'E_SERVER_UNAVAILABLE');
    assert.match(down.message, /not running/);

    // the upstream's own JSON-RPC error: its code and message reach the client, tagged E_UPSTREAM_ERROR
    const upstream = await mcpErrorOf(client.callTool({ name: 'fx__fail', arguments: {} }));
    assert.equal(upstream.code, -32042);
    assert.match(upstream.message, /deliberate upstream failure/);
    assert.equal((upstream.data as { code?: string }).code, 'E_UPSTREAM_ERROR');

    // no progress token → nothing resets the deadline
    const slow = await mcpErrorOf(client.callTool({ name: 'fx__slow', arguments: { steps: 3, intervalMs: 1_000 } }));
    assert.equal(slow.code, -32001);
    assert.equal((slow.data as { code?: string }).code, 'E_UPSTREAM_TIMEOUT');
  } finally {
    await t.close();
  }
});

test('a crashed upstream is restarted with backoff and clients hear list_changed', async () => {
  const t = await startTestDaemon(
    { crashy: { command: NODE, args: [fixture('crash-after-server')], env: { CRASH_AFTER_MS: '700' } } },
    { restartBackoffInitialMs: 200, restartIntensityMax: 50 },
  );
  try {
    await t.waitForState('crashy', 'running');
    const { client, listChanged } = await t.connect();
    assert.ok((await client.listTools()).tools.some((x) => x.name === 'crashy__echo'));
    const firstPid = t.view('crashy')!.pid;
    const restarted = await t.waitForState('crashy', (v) => v.state === 'running' && v.pid !== firstPid && v.attempt >= 1);
    assert.equal(restarted.lastError?.code, 'E_UPSTREAM_EXITED');
    assert.ok(await waitFor(() => listChanged() >= 2, { timeoutMs: 5_000 }), 'left running and came back: two notifications');
    const res = await client.callTool({ name: 'crashy__echo', arguments: { message: 'after restart' } });
    assert.match(JSON.stringify(res.content), /after restart/);
  } finally {
    await t.close();
  }
});

test('a crash loop halts with a clear error instead of restarting forever', async () => {
  const t = await startTestDaemon(
    { loop: { command: NODE, args: [fixture('crash-after-server')], env: { CRASH_AFTER_MS: '50' } } },
    { restartBackoffInitialMs: 50, restartBackoffMaxMs: 100, restartIntensityMax: 3, restartIntensityWindowMs: 60_000 },
  );
  try {
    const halted = await t.waitForState('loop', 'starting.halted', 20_000);
    assert.equal(halted.lastError?.code, 'E_CRASH_LOOP');
    assert.equal(halted.pid, null);
    assert.deepEqual(halted.resources, {}, 'a halted server owns nothing');
    assert.equal(processesWithMarker(t.daemon.identity.instanceId).length, 0);
  } finally {
    await t.close();
  }
});

test('a server that never answers initialize times out, is reaped and retried; others are unaffected', async () => {
  const t = await startTestDaemon(
    {
      hang: { command: NODE, args: [fixture('hang-initialize-server')] },
      demo: { command: NODE, args: [demoServer] },
    },
    { initTimeoutMs: 500, restartBackoffInitialMs: 1_000 },
  );
  try {
    const v = await t.waitForState('hang', (s) => s.lastError?.code === 'E_INIT_TIMEOUT' && s.state === 'starting.backoff');
    assert.ok(v.attempt >= 1, 'the timeout counts as a restart attempt');
    assert.deepEqual(v.resources, {}, 'the hung process was released before the backoff');
    await t.waitForState('demo', 'running');
    const { client } = await t.connect();
    const res = await client.callTool({ name: 'demo__echo', arguments: { text: 'fine' } });
    assert.match(JSON.stringify(res.content), /fine/);
  } finally {
    await t.close();
  }
});

test('remote entries are accepted and shown as not supported; disabled entries are listed, not started', async () => {
  const t = await startTestDaemon({
    far: { url: 'https://example.invalid/mcp' },
    off: { command: NODE, args: [demoServer], disabled: true },
    demo: { command: NODE, args: [demoServer] },
  });
  try {
    const far = await t.waitForState('far', 'starting.halted');
    assert.equal(far.lastError?.code, 'E_REMOTE_UNSUPPORTED');
    assert.equal(t.view('off')!.state, 'disabled');
    await t.waitForState('demo', 'running');
  } finally {
    await t.close();
  }
});

test('a quarantined server runs but exposes nothing until approved', async () => {
  const t = await startTestDaemon({ q: { command: NODE, args: [demoServer], quarantined: true } });
  try {
    const v = await t.waitForState('q', 'quarantined');
    assert.equal(v.toolCount, 4, 'its tools are fetched for inspection');
    const { client, listChanged } = await t.connect();
    assert.equal((await client.listTools()).tools.length, 0);
    const err = await mcpErrorOf(client.callTool({ name: 'q__echo', arguments: { text: 'x' } }));
    assert.equal((err.data as { code?: string }).code, 'E_QUARANTINED');
    assert.deepEqual(await t.daemon.registry.approve('q'), { name: 'q', changed: true });
    await t.waitForState('q', 'running');
    assert.ok(await waitFor(() => listChanged() >= 1, { timeoutMs: 3_000 }));
    assert.equal((await client.listTools()).tools.length, 4);
  } finally {
    await t.close();
  }
});

test('SIGTERM of the daemon: zero processes of the instance remain, grandchildren of sh -c included', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mcp-warden-sigterm-'));
  const config = join(dataDir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      mcpServers: {
        shell: { command: 'sh', args: ['-c', `sleep 3600 & sleep 3600 & exec ${NODE} ${fixture('echo-server')}`] },
        grand: { command: NODE, args: [fixture('grandchild-server')] },
        stubborn: { command: NODE, args: [fixture('ignore-sigterm-server')] },
        demo: { command: NODE, args: [demoServer] },
      },
      settings: FAST_SETTINGS,
    }),
  );
  const child = spawn(NODE, [cliMain, 'serve', '--data-dir', dataDir, '--config', config, '--listen', '127.0.0.1:0', '--quiet'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    assert.ok(await waitFor(() => /listening on/.test(out), { timeoutMs: 10_000 }), `no start line: ${out} ${err}`);
    const info = JSON.parse(readFileSync(join(dataDir, 'daemon.json'), 'utf8')) as { instanceId: string; url: string };
    const running = async () => {
      const h = (await (await fetch(`${info.url}/healthz`)).json()) as { servers: Array<{ state: string }> };
      return h.servers.every((s) => s.state === 'running');
    };
    assert.ok(await waitFor(running, { timeoutMs: 10_000, intervalMs: 100 }), 'all four running');
    const before = processesWithMarker(info.instanceId);
    assert.ok(before.length >= 7, `expected the servers and their grandchildren, saw ${before.length}`);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `clean exit; stderr: ${err}`);
    assert.deepEqual(processesWithMarker(info.instanceId), [], 'nothing of the instance survives');
    assert.throws(() => readFileSync(join(dataDir, 'daemon.json')), 'daemon.json removed on clean exit');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
