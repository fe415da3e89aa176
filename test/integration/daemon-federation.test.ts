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
import { request as httpRequest } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { FAIL_CODE, FAIL_DATA, FAIL_MESSAGE } from '../fixtures/fixture-server.js';
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

test("a real upstream's JSON-RPC error reaches the client unchanged: its code, its message once, its data under data.upstream", async () => {
  const t = await startTestDaemon({ fx: { command: NODE, args: [fixture('echo-server')], env: { FIXTURE_FAIL_TOOL: '1' } } });
  // The SDK client over Streamable HTTP, with a fetch that keeps every answer body as it came off the wire.
  const bodies: string[] = [];
  const recordingFetch = async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const res = await fetch(url, init);
    const text = await res.clone().text();
    bodies.push(text);
    return res;
  };
  const client = new Client({ name: 'mcp-warden-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(t.daemon.mcpUrl), { fetch: recordingFetch });
  try {
    await t.waitForState('fx', 'running');
    await client.connect(transport);

    const err = await mcpErrorOf(client.callTool({ name: 'fx__fail', arguments: {} }));
    assert.equal(err.code, FAIL_CODE);
    // The client's SDK prefixes "MCP error <code>: " once; everything after it is the upstream's text.
    assert.equal(err.message, `MCP error ${FAIL_CODE}: ${FAIL_MESSAGE}`);
    assert.equal(err.message.split(FAIL_MESSAGE).length - 1, 1, 'the upstream text appears exactly once');
    assert.equal(err.message.split('MCP error').length - 1, 1, 'one SDK prefix, not one per hop');
    assert.deepEqual(err.data, { code: 'E_UPSTREAM_ERROR', upstream: FAIL_DATA });

    // The wire form, exactly (docs/error-codes.md, docs/mcp-endpoint.md).
    const wire = bodies
      .flatMap((b) => (b.trim() === '' ? [] : [JSON.parse(b) as unknown]))
      .flat()
      .find((m) => (m as { error?: unknown }).error !== undefined) as { error: unknown } | undefined;
    assert.ok(wire, `no error answer among ${JSON.stringify(bodies)}`);
    assert.deepEqual(wire.error, { code: FAIL_CODE, message: FAIL_MESSAGE, data: { code: 'E_UPSTREAM_ERROR', upstream: FAIL_DATA } });

    // the upstream is fine afterwards
    const echo = await client.callTool({ name: 'fx__echo', arguments: { message: 'after' } });
    assert.match(JSON.stringify(echo.content), /after/);
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close().catch(() => undefined);
    await t.close();
  }
});

/** One raw POST /mcp; `chunked` sends the body without Content-Length. */
function rawPost(url: string, body: Buffer, chunked: boolean): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(chunked ? {} : { 'content-length': String(body.length) }),
      },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    // The server answers without reading the rest and closes: a reset while still writing is expected.
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e);
    });
    req.end(body);
  });
}

test('an oversized POST /mcp gets the JSON-RPC 413 the docs promise, with router and front at httpMaxBodyBytes', async () => {
  const limit = 64 * 1024;
  const t = await startTestDaemon({}, { httpMaxBodyBytes: limit });
  try {
    const expected = {
      jsonrpc: '2.0',
      error: { code: -32600, message: `Request body exceeds ${limit} bytes`, data: { code: 'E_BODY_TOO_LARGE' } },
      id: null,
    };
    const big = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { pad: 'x'.repeat(limit) } }));
    for (const chunked of [false, true]) {
      const res = await rawPost(t.daemon.mcpUrl, big, chunked);
      assert.equal(res.status, 413, `chunked=${chunked}`);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(res.headers['connection'], 'close', `chunked=${chunked}: the unread rest must not be reused`);
      assert.deepEqual(JSON.parse(res.text), expected, `chunked=${chunked}`);
    }
    // exactly at the limit is read: blanks are not JSON, so it is refused for that, not for its size
    const atLimit = await rawPost(t.daemon.mcpUrl, Buffer.alloc(limit, ' '), false);
    assert.equal(atLimit.status, 400);
    assert.deepEqual(JSON.parse(atLimit.text), {
      jsonrpc: '2.0',
      error: { code: -32700, message: 'Parse error: invalid JSON', data: { code: 'E_BAD_JSON' } },
      id: null,
    });
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
    // Long enough for a healthy server on a loaded machine (initTimeoutMs is global), short enough to test.
    { initTimeoutMs: 3_000, restartBackoffInitialMs: 1_000 },
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

test('an unreachable remote entry shows E_REMOTE_UNREACHABLE without stopping the others; disabled entries are listed, not started', async () => {
  const t = await startTestDaemon({
    far: { url: 'https://example.invalid/mcp' },
    off: { command: NODE, args: [demoServer], disabled: true },
    demo: { command: NODE, args: [demoServer] },
  });
  try {
    const far = await t.waitForState('far', (v) => v.lastError?.code === 'E_REMOTE_UNREACHABLE');
    assert.match(far.lastError!.message, /example\.invalid/);
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
    assert.deepEqual(await t.daemon.registry.approve('q', t.daemon.registry.toolView('q').fingerprint), { name: 'q', changed: true });
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
