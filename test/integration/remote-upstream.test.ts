/**
 * Remote (url) upstreams against real remote MCP servers on 127.0.0.1 (the SDK's McpServer over
 * Streamable HTTP and over the legacy SSE transport, test/fixtures/remote-server.ts): tools listed
 * and called through /mcp, headers with secret references, session expiry renewed transparently,
 * the SSE fallback, back-off and recovery when the server goes away and returns, every socket closed
 * within a second of removing the entry, and each bad input as its own error code while the daemon
 * keeps serving the others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { get as httpGet } from 'node:http';
import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { startTestDaemon, NODE, demoServer, everythingServer } from '../helpers/test-daemon.js';
import { childEnv } from '../helpers/cli-daemon.js';
import { waitFor } from '../helpers/leak-check.js';
import { FIXTURE_RESOURCE, startRemoteFixture } from '../fixtures/remote-server.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const text = (r: unknown) => ((r as { content: Array<{ text: string }> }).content[0]?.text ?? '').trim();

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('Streamable HTTP remote: tools through /mcp, headers from ${env:…}, session expiry renewed with its subscriptions and logging level, removal closes every socket within 1 s', async () => {
  process.env.MCP_WARDEN_TEST_REMOTE_KEY = 'k-secret-123';
  const fx = await startRemoteFixture('http', { headerKey: 'k-secret-123' });
  const t = await startTestDaemon({
    r: { type: 'http', url: fx.url, headers: { 'x-test-key': '${env:MCP_WARDEN_TEST_REMOTE_KEY}' } },
  });
  try {
    const v = await t.waitForState('r', 'running');
    assert.equal(v.toolCount, 2);
    assert.equal(v.pid, null, 'no process');
    assert.ok((v.resources.socket ?? 0) >= 1, `its sockets are in the ledger: ${JSON.stringify(v.resources)}`);
    assert.equal(v.resources.timer, 1, 'the ping timer is in the ledger');
    const { client } = await t.connect();
    const names = (await client.listTools()).tools.map((x) => x.name).sort();
    assert.deepEqual(names, ['r__add', 'r__echo']);
    assert.equal(text(await client.callTool({ name: 'r__echo', arguments: { text: 'hi' } })), 'echo: hi');
    assert.equal(fx.initializes(), 1);

    // Session state on the server: a resource subscription and a logging level.
    const updated: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      updated.push(n.params.uri);
    });
    const federated = `mcp-warden://r/${FIXTURE_RESOURCE}`;
    await client.subscribeResource({ uri: federated });
    await client.setLoggingLevel('warning');
    assert.deepEqual(fx.sessionState(), [{ subscribed: [FIXTURE_RESOURCE], loggingLevel: 'warning' }]);

    // The server forgets the session: the next call is renewed transparently (one new initialize),
    // and the new session is given the subscription and the logging level again.
    await fx.forgetSessions();
    assert.equal(text(await client.callTool({ name: 'r__add', arguments: { a: 2, b: 3 } })), '5');
    assert.equal(fx.initializes(), 2, 'one new session');
    assert.equal(t.view('r')!.state, 'running', 'never left running');
    assert.equal(t.view('r')!.attempt, 0);
    const restored = await waitFor(
      () => JSON.stringify(fx.sessionState()) === JSON.stringify([{ subscribed: [FIXTURE_RESOURCE], loggingLevel: 'warning' }]),
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    assert.ok(restored, `the new session holds ${JSON.stringify(fx.sessionState())}`);
    assert.equal(await fx.notifyUpdated(FIXTURE_RESOURCE), 1);
    assert.ok(
      await waitFor(() => updated.includes(federated), { timeoutMs: 5_000, intervalMs: 20 }),
      `resources/updated: ${updated.join(', ')}`,
    );
    // Unsubscribed: not asked for again by a later renewal.
    await client.unsubscribeResource({ uri: federated });
    await fx.forgetSessions();
    assert.equal(text(await client.callTool({ name: 'r__echo', arguments: { text: 'again' } })), 'echo: again');
    assert.equal(fx.initializes(), 3);
    assert.ok(await waitFor(() => fx.sessionState()[0]?.loggingLevel === 'warning', { timeoutMs: 5_000, intervalMs: 20 }));
    assert.deepEqual(fx.sessionState(), [{ subscribed: [], loggingLevel: 'warning' }]);

    assert.ok(fx.connections() >= 1);
    const t0 = Date.now();
    await t.daemon.registry.remove('r');
    const closed = await waitFor(() => fx.connections() === 0, { timeoutMs: 1_000, intervalMs: 5 });
    const ms = Date.now() - t0;
    assert.ok(closed, `server-side connections left after 1 s: ${fx.connections()}`);
    console.log(`# remote removal: every socket closed after ${ms} ms`);
    assert.ok((fx.counts.get('DELETE /mcp') ?? 0) >= 1, 'the session was ended with DELETE');
    await waitFor(() => t.view('r') === undefined, { timeoutMs: 5_000 });
    assert.equal(t.daemon.ledger.countFor('server:r'), 0);
  } finally {
    await t.close();
    await fx.close();
    delete process.env.MCP_WARDEN_TEST_REMOTE_KEY;
  }
});

test('type omitted: an SSE-only server is reached over the legacy SSE transport after the Streamable HTTP probe fails', async () => {
  const fx = await startRemoteFixture('sse');
  const t = await startTestDaemon({ s: { url: fx.url } });
  try {
    await t.waitForState('s', 'running');
    assert.ok((fx.counts.get('POST /sse') ?? 0) >= 1, 'Streamable HTTP was tried first');
    const { client } = await t.connect();
    assert.equal(text(await client.callTool({ name: 's__echo', arguments: { text: 'over sse' } })), 'echo: over sse');
    const t0 = Date.now();
    await t.daemon.registry.remove('s');
    assert.ok(await waitFor(() => fx.connections() === 0, { timeoutMs: 1_000, intervalMs: 5 }), 'every socket closed within 1 s');
    console.log(`# sse removal: every socket closed after ${Date.now() - t0} ms`);
  } finally {
    await t.close();
    await fx.close();
  }
});

test('a remote server that goes away: backs off with E_REMOTE_UNREACHABLE and recovers when it returns', async () => {
  const fx = await startRemoteFixture('http');
  const t = await startTestDaemon({ r: { type: 'streamable-http', url: fx.url } }, { remotePingIntervalMs: 200, restartIntensityMax: 100 });
  try {
    await t.waitForState('r', 'running');
    await fx.stop();
    const down = await t.waitForState('r', (v) => v.lastError?.code === 'E_REMOTE_UNREACHABLE' && v.state !== 'running');
    assert.match(down.lastError!.message, /ECONNREFUSED|ECONNRESET/);
    const attempts = await t.waitForState('r', (v) => v.attempt >= 2);
    assert.ok(attempts.attempt >= 2, 'it keeps trying on its backoff');
    await fx.restart();
    await t.waitForState('r', 'running', 10_000);
    const { client } = await t.connect();
    assert.equal(text(await client.callTool({ name: 'r__echo', arguments: { text: 'back' } })), 'echo: back');
  } finally {
    await t.close();
    await fx.close();
  }
});

test('bad input: unreachable, TLS, HTML, a 500 loop, Retry-After, a redirect to another host, 401 without login: each its own code, the others keep serving', async () => {
  const plain = await startRemoteFixture('http');
  const html = await startRemoteFixture('html');
  const s500 = await startRemoteFixture('status500');
  const s503 = await startRemoteFixture('status503');
  const redirect = await startRemoteFixture('redirect', { redirectTo: `http://localhost:${plain.port}/mcp` });
  const s401 = await startRemoteFixture('status401');
  const closedPort = await freePort();
  const t = await startTestDaemon(
    {
      gone: { type: 'http', url: `http://127.0.0.1:${closedPort}/mcp` },
      tls: { type: 'http', url: `https://127.0.0.1:${plain.port}/mcp` },
      html: { url: html.url },
      fails: { type: 'http', url: s500.url },
      busy: { type: 'http', url: s503.url },
      moved: { type: 'http', url: redirect.url },
      locked: { type: 'http', url: s401.url },
      demo: { command: NODE, args: [demoServer] },
    },
    { restartIntensityMax: 3, restartBackoffInitialMs: 1_000, restartBackoffMaxMs: 2_000 },
  );
  try {
    const codeOf = async (name: string, code: string) => {
      const v = await t.waitForState(name, (x) => x.lastError?.code === code);
      return v.lastError!.message;
    };
    assert.match(await codeOf('gone', 'E_REMOTE_UNREACHABLE'), /ECONNREFUSED/);
    assert.match(await codeOf('tls', 'E_REMOTE_TLS'), /TLS/);
    assert.match(await codeOf('html', 'E_REMOTE_NOT_MCP'), /HTML/);
    assert.match(await codeOf('fails', 'E_REMOTE_HTTP_STATUS'), /HTTP 500/);
    assert.match(await codeOf('moved', 'E_REMOTE_REDIRECT'), /another origin.*localhost/);
    assert.equal(plain.initializes(), 0, 'the redirect was not followed');
    // 401 and nobody logged in: it waits for a login instead of retrying.
    const locked = await t.waitForState('locked', 'starting.needsAuth');
    assert.equal(locked.lastError?.code, 'E_REMOTE_NEEDS_AUTH');
    const lockedPosts = s401.counts.get('POST /mcp') ?? 0;
    // Retry-After: 2 s, although the backoff alone would retry after 1 s.
    assert.match(await codeOf('busy', 'E_REMOTE_HTTP_STATUS'), /HTTP 503.*Retry-After 2 s/);
    const firstBusy = s503.counts.get('POST /mcp') ?? 0;
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal(s503.counts.get('POST /mcp') ?? 0, firstBusy, 'no new attempt before Retry-After');
    // The 500 loop ends in the crash-loop halt, not in a retry storm.
    const halted = await t.waitForState('fails', 'starting.halted', 15_000);
    assert.equal(halted.lastError?.code, 'E_CRASH_LOOP');
    const posts = s500.counts.get('POST /mcp') ?? 0;
    assert.ok(posts >= 3 && posts <= 5, `${posts} attempts`);
    assert.equal(s401.counts.get('POST /mcp') ?? 0, lockedPosts, 'no retries while it waits for a login');
    assert.equal(t.view('locked')!.state, 'starting.needsAuth');
    // The daemon serves the others meanwhile.
    await t.waitForState('demo', 'running');
    const { client } = await t.connect();
    assert.match(text(await client.callTool({ name: 'demo__echo', arguments: { text: 'still here' } })), /still here/);
  } finally {
    await t.close();
    for (const fx of [plain, html, s500, s503, redirect, s401]) await fx.close();
  }
});

/** Established TCP connections whose local port is `port` (the server's side of each connection). */
function serverSideConnections(port: number): number {
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const local = parseInt(cols[1]!.split(':')[1] ?? '', 16);
      if (local === port && cols[3] === '01') n++;
    }
  }
  return n;
}

async function startEverything(mode: 'streamableHttp' | 'sse', port: number): Promise<ChildProcess> {
  const child = spawn(NODE, [everythingServer, mode], { env: childEnv({ PORT: String(port) }), stdio: 'ignore' });
  // Up = answers HTTP. No keep-alive: the probe's own socket must not count as the daemon's later.
  const up = await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const req = httpGet({ host: '127.0.0.1', port, path: '/health-probe', agent: false, timeout: 1_000 }, (res) => {
          res.resume();
          res.once('end', () => resolve(true));
        });
        req.once('error', () => resolve(false));
        req.once('timeout', () => req.destroy());
      }),
    { timeoutMs: 15_000, intervalMs: 50 },
  );
  assert.ok(up, `server-everything ${mode} did not listen on ${port}`);
  return child;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
}

test('server-everything in streamableHttp and sse modes: tools through /mcp, back-off and recovery after its process stops, no socket left after removal', async () => {
  const httpPort = await freePort();
  const ssePort = await freePort();
  const procs = { eh: await startEverything('streamableHttp', httpPort), es: await startEverything('sse', ssePort) };
  const t = await startTestDaemon(
    {
      eh: { type: 'http', url: `http://127.0.0.1:${httpPort}/mcp` },
      es: { type: 'sse', url: `http://127.0.0.1:${ssePort}/sse` },
    },
    { remotePingIntervalMs: 300, restartIntensityMax: 100, restartBackoffMaxMs: 500 },
  );
  try {
    await t.waitForState('eh', 'running', 15_000);
    await t.waitForState('es', 'running', 15_000);
    const { client } = await t.connect();
    const names = (await client.listTools()).tools.map((x) => x.name);
    assert.ok(names.includes('eh__echo') && names.includes('es__echo'), names.join(','));
    for (const name of ['eh', 'es'] as const) {
      assert.match(text(await client.callTool({ name: `${name}__echo`, arguments: { message: `hi ${name}` } })), new RegExp(`hi ${name}`));
    }
    for (const [name, mode, port] of [
      ['eh', 'streamableHttp', httpPort],
      ['es', 'sse', ssePort],
    ] as const) {
      await killChild(procs[name]);
      await t.waitForState(name, (v) => v.state !== 'running' && v.lastError?.code === 'E_REMOTE_UNREACHABLE', 10_000);
      procs[name] = await startEverything(mode, port);
      const t0 = Date.now();
      console.log(`# ${name}: server up again at ${new Date(t0).toISOString()}`);
      await t.waitForState(name, 'running', 15_000);
      console.log(`# ${name}: running again ${Date.now() - t0} ms after its server was started again`);
      assert.match(text(await client.callTool({ name: `${name}__echo`, arguments: { message: 'again' } })), /again/);
    }
    for (const [name, port] of [
      ['eh', httpPort],
      ['es', ssePort],
    ] as const) {
      assert.ok(serverSideConnections(port) >= 1, `${name} has connections before removal`);
      const t0 = Date.now();
      await t.daemon.registry.remove(name);
      const closed = await waitFor(() => serverSideConnections(port) === 0, { timeoutMs: 1_000, intervalMs: 5 });
      assert.ok(closed, `${name}: ${serverSideConnections(port)} connection(s) left 1 s after removal`);
      console.log(`# ${name}: no socket left ${Date.now() - t0} ms after removal`);
    }
  } finally {
    await t.close();
    await killChild(procs.eh);
    await killChild(procs.es);
  }
});
