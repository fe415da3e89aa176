/**
 * OAuth for remote upstreams against the SDK's own OAuth example (simpleStreamableHttp --oauth: an MCP
 * server plus an in-memory authorization server with metadata discovery, dynamic client registration
 * and PKCE, whose authorization endpoint approves at once and redirects): the server waits in
 * starting.needsAuth; `mcp-warden auth login --no-open` prints the URL, the test follows it with fetch
 * (as a browser would), the redirect reaches the daemon's /oauth/callback, tokens are stored 0600 and
 * the tools are served. A refresh that fails, and tokens the restarted example no longer accepts (it
 * forgets them and issues no refresh tokens), put the server back into needsAuth without a retry
 * storm; `auth logout` forgets the tokens. Tokens never appear in /healthz or the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestDaemon, NODE, cliMain, type TestDaemon } from '../helpers/test-daemon.js';
import { childEnv } from '../helpers/cli-daemon.js';
import { connectControl } from '../../src/control/control-client.js';
import { freePort, startOAuthExample, stopOAuthExample } from '../helpers/oauth-example.js';

async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawn(NODE, [cliMain, ...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  cli.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  cli.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => cli.once('exit', (c) => r(c)));
  return { code, stdout, stderr };
}

/** `mcp-warden auth login NAME --no-open`, following the printed URL like a browser; resolves to the exit code. */
async function login(t: TestDaemon, name: string): Promise<{ code: number | null; stdout: string; stderr: string; page: string }> {
  const cli = spawn(NODE, [cliMain, 'auth', 'login', name, '--no-open', '--data-dir', t.dataDir], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  cli.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    cli.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split('\n').find((l) => /^https?:\/\//.test(l));
      if (line) resolve(line.trim());
    });
    void exit.then((code) => reject(new Error(`auth login exited (${code}) before printing a URL: ${stdout} ${stderr}`)));
  });
  // The browser: the authorization server approves at once and redirects to the daemon's callback.
  const res = await fetch(url);
  const page = await res.text();
  assert.equal(res.status, 200, page);
  return { code: await exit, stdout, stderr, page };
}

test('OAuth: needsAuth, auth login completed by following the printed URL, tokens 0600, refresh failure and refused tokens back to needsAuth without a storm, logout', async () => {
  const mcpPort = await freePort();
  const authPort = await freePort();
  let example = await startOAuthExample(mcpPort, authPort);
  let t: TestDaemon | undefined;
  try {
    t = await startTestDaemon(
      { r: { type: 'http', url: `http://localhost:${mcpPort}/mcp` } },
      { remotePingIntervalMs: 300, restartIntensityMax: 50 },
    );
    const waiting = await t.waitForState('r', 'starting.needsAuth');
    assert.equal(waiting.lastError?.code, 'E_REMOTE_NEEDS_AUTH');
    assert.match(waiting.lastError!.message, /mcp-warden auth login r/);
    const health = (await (await fetch(`${t.daemon.url}/healthz`)).json()) as { servers: Array<{ name: string; state: string }> };
    assert.equal(health.servers.find((s) => s.name === 'r')?.state, 'starting.needsAuth', '/healthz shows it');
    const control = await connectControl({ url: t.daemon.controlUrl, token: readFileSync(join(t.dataDir, 'token'), 'utf8').trim() });
    try {
      const listed = (await control.request('server.list')) as { servers: Array<{ name: string; state: string }> };
      assert.equal(listed.servers.find((s) => s.name === 'r')?.state, 'starting.needsAuth', 'the control channel shows it');
    } finally {
      await control.close();
    }
    const status = await runCli(['status', '--data-dir', t.dataDir]);
    assert.match(status.stdout, /r\s+starting\.needsAuth/);
    assert.match(status.stdout, /login needed: r: run mcp-warden auth login r/);

    // A redirect with a state of no login under way is refused.
    const bogus = await fetch(`${t.daemon.url}/oauth/callback?code=x&state=nope`);
    assert.equal(bogus.status, 400);
    assert.match(await bogus.text(), /E_AUTH_CALLBACK_INVALID/);

    const first = await login(t, 'r');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.page, /Logged in to r/);
    assert.match(first.stdout, /logged in to r/);
    await t.waitForState('r', 'running');
    const tokenFile = join(t.dataDir, 'oauth', 'r.json');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600, 'token file mode 0600');
    assert.equal(statSync(join(t.dataDir, 'oauth')).mode & 0o777, 0o700);
    const stored = JSON.parse(readFileSync(tokenFile, 'utf8')) as {
      tokens: { access_token: string };
      clientInformation: { client_id: string };
    };
    assert.ok(stored.tokens.access_token && stored.clientInformation.client_id);
    const { client } = await t.connect();
    const tools = (await client.listTools()).tools.map((x) => x.name);
    assert.ok(tools.includes('r__greet'), tools.join(','));
    const greeting = await client.callTool({ name: 'r__greet', arguments: { name: 'warden' } });
    assert.match(JSON.stringify(greeting), /warden/);
    const healthText = await (await fetch(`${t.daemon.url}/healthz`)).text();
    assert.ok(!healthText.includes(stored.tokens.access_token), 'no token in /healthz');

    // A refresh that fails: a stale access token and a refresh token the server does not honour.
    writeFileSync(tokenFile, JSON.stringify({ ...stored, tokens: { ...stored.tokens, access_token: 'stale', refresh_token: 'bogus' } }), {
      mode: 0o600,
    });
    t.daemon.registry.restart('r');
    const refreshFailed = await t.waitForState('r', (v) => v.state === 'starting.needsAuth' && v.upSince === null);
    assert.equal(refreshFailed.lastError?.code, 'E_REMOTE_NEEDS_AUTH');
    assert.match(refreshFailed.lastError!.message, /refresh/);

    const second = await login(t, 'r');
    assert.equal(second.code, 0, second.stderr);
    await t.waitForState('r', 'running');

    // The example restarts: it forgets its tokens and issues no refresh tokens → needsAuth again.
    await stopOAuthExample(example);
    example = await startOAuthExample(mcpPort, authPort);
    const refused = await t.waitForState('r', (v) => v.state === 'starting.needsAuth', 15_000);
    assert.match(refused.lastError!.message, /refused the access token|requires an OAuth login/);
    const before = refused.attempt;
    await new Promise((r) => setTimeout(r, 1_500));
    const later = t.view('r')!;
    assert.equal(later.state, 'starting.needsAuth', 'it waits');
    assert.equal(later.attempt, before, 'no retry storm');

    // Logout forgets the tokens.
    const out = await runCli(['auth', 'logout', 'r', '--data-dir', t.dataDir]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /forgot the OAuth tokens of r/);
    assert.equal(existsSync(tokenFile), false);
    await t.waitForState('r', 'starting.needsAuth');

    const log = readFileSync(join(t.dataDir, 'daemon.log'), 'utf8');
    assert.ok(!log.includes(stored.tokens.access_token), 'no token in the log');
  } finally {
    await t?.close();
    await stopOAuthExample(example);
  }
});

test('auth login on a server that is not remote, or unknown: a clear error and exit 1', async () => {
  const t = await startTestDaemon({ local: { command: NODE, args: ['-e', 'setInterval(()=>{},1000)'], disabled: true } });
  try {
    for (const [name, code] of [
      ['local', 'E_NOT_REMOTE'],
      ['nope', 'E_UNKNOWN_SERVER'],
    ] as const) {
      const cli = spawn(NODE, [cliMain, 'auth', 'login', name, '--no-open', '--data-dir', t.dataDir], {
        env: childEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      cli.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const exit = await new Promise<number | null>((r) => cli.once('exit', (c) => r(c)));
      assert.equal(exit, 1, err);
      assert.match(err, new RegExp(code));
    }
  } finally {
    await t.close();
  }
});
