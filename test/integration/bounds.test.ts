/**
 * Bounded under abuse, against real daemons: silent sockets are closed on time and
 * counted, slow bodies get 408, /healthz and the visualizer refuse foreign Hosts, /ws refuses other
 * loopback origins, an upstream spewing garbage on stdout adds a bounded number of log bytes.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, mkdtempSync, writeFileSync, symlinkSync, lstatSync, chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startTestDaemon, fixture, NODE, cliMain, type TestDaemon } from '../helpers/test-daemon.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';
import { CONTROL_PROTOCOL } from '../../src/control/protocol.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import { connectControl } from '../../src/control/control-client.js';
import { WardenError } from '../../src/core/error-codes.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function daemon(servers: Record<string, unknown> = {}, settings: Record<string, unknown> = {}): Promise<TestDaemon> {
  const td = await startTestDaemon(servers, settings);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await td.close();
  };
  cleanups.push(close);
  return { ...td, close };
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

describe('HTTP connection bounds', () => {
  it('closes 200 sockets that never send a byte within httpHeadersTimeoutMs, and counts them', async () => {
    const td = await daemon(); // default httpHeadersTimeoutMs: 10 s
    const port = new URL(td.daemon.url).port;
    const sockets = await Promise.all(Array.from({ length: 200 }, () => openSocket(Number(port))));
    const t0 = Date.now();
    const closedAt: number[] = [];
    for (const s of sockets) {
      s.on('error', () => undefined);
      s.once('close', () => closedAt.push(Date.now() - t0));
    }
    const allClosed = await waitFor(() => closedAt.length === 200, { timeoutMs: 14_000, intervalMs: 100 });
    for (const s of sockets) s.destroy();
    assert.ok(allClosed, `${closedAt.length} of 200 idle sockets closed within 14 s`);
    const slowest = Math.max(...closedAt);
    console.log(`# 200 idle sockets closed after ${Math.min(...closedAt)}–${slowest} ms`);
    assert.ok(slowest <= 12_000, `slowest idle socket closed after ${slowest} ms (deadline 10 s)`);
    const health = td.daemon.health() as { http: { idleClosed: number; connections: number } };
    assert.ok(health.http.idleClosed >= 200, `idleClosed ${health.http.idleClosed}`);
    await td.close();
  });

  it('keeps upgraded and in-flight connections past the deadline; a slow body gets 408; beyond the cap 503', async () => {
    const td = await daemon({}, { httpHeadersTimeoutMs: 1_000, httpRequestTimeoutMs: 1_500, httpMaxConnections: 20 });
    const port = Number(new URL(td.daemon.url).port);
    const token = readFileSync(join(td.dataDir, 'token'), 'utf8').trim();
    const ws = new WebSocket(td.daemon.controlUrl, [CONTROL_PROTOCOL], { headers: { authorization: `Bearer ${token}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // A request whose body never comes: in flight, so not idle; its body deadline answers 408.
    const slow = await openSocket(port);
    let slowText = '';
    slow.on('data', (c: Buffer) => (slowText += c.toString('latin1')));
    const slowClosed = new Promise<number>((r) => slow.once('close', () => r(Date.now())));
    const t0 = Date.now();
    slow.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
    // Bounded: without a body deadline the socket would stay for Node's 300 s default.
    const closedAt = await Promise.race([slowClosed, new Promise<number>((r) => setTimeout(() => r(Number.NaN), 8_000))]);
    slow.destroy();
    const closedAfter = closedAt - t0;
    assert.match(slowText, /^HTTP\/1\.1 408/, `slow body answer: ${slowText.slice(0, 80)}`);
    assert.ok(closedAfter >= 1_000 && closedAfter < 4_500, `slow body closed after ${closedAfter} ms (NaN: still open after 8 s)`);
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal(ws.readyState, WebSocket.OPEN, 'the control WebSocket outlived httpHeadersTimeoutMs');
    // The cap: 20 connections, one of them the WebSocket.
    const held = await Promise.all(Array.from({ length: 19 }, () => openSocket(port)));
    const extra = await openSocket(port);
    let extraText = '';
    extra.on('data', (c: Buffer) => (extraText += c.toString('latin1')));
    await new Promise<void>((r) => extra.once('close', () => r()));
    assert.match(extraText, /^HTTP\/1\.1 503/);
    for (const s of held) s.destroy();
    ws.terminate();
    const stats = (td.daemon.health() as { http: { refused: number; timedOut: number } }).http;
    assert.ok(stats.refused >= 1 && stats.timedOut >= 1, JSON.stringify(stats));
    await td.close();
  });
});

describe('every route behind the Host/Origin guard', () => {
  it('/healthz and the visualizer refuse a foreign Host (403); the own Host works', async () => {
    const td = await daemon();
    const port = new URL(td.daemon.url).port;
    const foreign = await get(`${td.daemon.url}/healthz`, { host: `evil.example:${port}` });
    assert.equal(foreign.status, 403, foreign.body);
    assert.match(foreign.body, /E_FORBIDDEN_HOST/);
    assert.doesNotMatch(foreign.body, /instanceId/);
    assert.equal((await get(`${td.daemon.url}/`, { host: `evil.example:${port}` })).status, 403);
    assert.equal((await get(`${td.daemon.url}/nowhere`, { host: `evil.example:${port}` })).status, 403);
    assert.equal((await get(`${td.daemon.url}/healthz`, { origin: `http://localhost:${Number(port) + 1}` })).status, 403);
    assert.equal((await get(`${td.daemon.url}/healthz`, { origin: `http://localhost:${port}` })).status, 200);
    assert.equal((await get(`${td.daemon.url}/healthz`, { origin: 'https://evil.example' })).status, 403);
    assert.equal((await get(`${td.daemon.url}/healthz`)).status, 200);
    assert.equal((await get(`${td.daemon.url}/healthz`, { host: `localhost:${port}` })).status, 200);
    await td.close();
  });

  it('with --allow-remote, /healthz needs the bearer token (401 without it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-remote-'));
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({ mcpServers: {} }));
    const d = await startDaemon({
      dataDir: dir,
      configPath,
      listen: { host: '0.0.0.0', port: 0 },
      allowRemote: true,
      logLevel: 'warn',
      console: false,
    });
    cleanups.push(async () => {
      await d.stop('test done');
      rmSync(dir, { recursive: true, force: true });
    });
    const port = new URL(d.url).port;
    const url = `http://127.0.0.1:${port}/healthz`;
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    const anonymous = await get(url);
    assert.equal(anonymous.status, 401, anonymous.body);
    assert.doesNotMatch(anonymous.body, /instanceId/);
    assert.equal((await get(url, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await get(url, { authorization: `Bearer ${token}` })).status, 200);
    // A page of another origin cannot read it even with the token.
    assert.equal((await get(url, { authorization: `Bearer ${token}`, origin: 'http://attacker.example' })).status, 403);
    assert.equal((await get(url, { authorization: `Bearer ${token}`, origin: `http://127.0.0.1:${port}` })).status, 200);
    await d.stop('test done');
    assert.equal(d.ledger.size(), 0);
  });

  it('/ws refuses a browser origin on another loopback port (403); its own origin and no origin are accepted', async () => {
    const td = await daemon({}, { allowedOrigins: ['https://app.example'] });
    const port = new URL(td.daemon.url).port;
    const token = readFileSync(join(td.dataDir, 'token'), 'utf8').trim();
    const attempt = (origin?: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(td.daemon.controlUrl, [CONTROL_PROTOCOL], {
          headers: { authorization: `Bearer ${token}`, ...(origin ? { origin } : {}) },
        });
        ws.once('open', () => {
          ws.terminate();
          resolve(101);
        });
        ws.once('unexpected-response', (_req, res) => {
          res.resume();
          ws.terminate();
          resolve(res.statusCode ?? 0);
        });
        ws.once('error', () => resolve(-1));
      });
    const otherPort = Number(port) === 5173 ? 5174 : 5173;
    assert.equal(await attempt(`http://localhost:${otherPort}`), 403);
    assert.equal(await attempt(`http://127.0.0.1:${otherPort}`), 403);
    assert.equal(await attempt(`http://127.0.0.1:${port}`), 101);
    assert.equal(await attempt(`http://localhost:${port}`), 101);
    assert.equal(await attempt(`http://[::1]:${port}`), 101);
    assert.equal(await attempt('https://app.example'), 101);
    assert.equal(await attempt(undefined), 101);
    await td.close();
  });
});

/** Bytes of daemon.log and its rotated files. */
function logBytes(dir: string): number {
  return readdirSync(dir)
    .filter((n) => n.startsWith('daemon.log'))
    .reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
}

describe('log volume under an upstream spewing garbage on stdout', () => {
  it('10 s of garbage adds under 2 MiB to the log file and console together, with a suppression summary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-spew-'));
    const config = join(dir, 'cfg.json');
    const settings = Number(process.env.SPEW_LOG_LINES_PER_SECOND ?? NaN);
    writeFileSync(
      config,
      JSON.stringify({
        mcpServers: { spew: { command: NODE, args: [fixture('stdout-garbage-server')] } },
        settings: { shutdownBudgetMs: 8_000, ...(Number.isFinite(settings) ? { logLinesPerSecond: settings } : {}) },
      }),
    );
    const child = spawn(NODE, [cliMain, 'serve', '--data-dir', dir, '--listen', '127.0.0.1:0', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '', NODE_TEST_CONTEXT: '' },
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let instanceId = '';
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      if (instanceId) await waitFor(() => processesWithMarker(instanceId).length === 0, { timeoutMs: 3_000 });
      rmSync(dir, { recursive: true, force: true });
    });
    let out = '';
    let consoleBytes = 0;
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (consoleBytes += c.length));
    const started = await waitFor(() => /listening on http/.test(out), { timeoutMs: 30_000 });
    assert.ok(started, `serve did not start: ${out}`);
    const t0 = Date.now();
    const file0 = logBytes(dir);
    const console0 = consoleBytes;
    await new Promise((r) => setTimeout(r, 10_000));
    const fileAdded = logBytes(dir) - file0;
    const consoleAdded = consoleBytes - console0;
    const total = fileAdded + consoleAdded;
    console.log(`# 10 s of stdout garbage: log file +${fileAdded} B, console +${consoleAdded} B, total ${total} B (${Date.now() - t0} ms)`);
    const text = readdirSync(dir)
      .filter((n) => n.startsWith('daemon.log'))
      .map((n) => readFileSync(join(dir, n), 'utf8'))
      .join('');
    const m = /"instanceId":"([^"]+)"/.exec(text);
    instanceId = m?.[1] ?? '';
    assert.ok(/log lines suppressed/.test(text), 'a suppression summary was logged');
    assert.ok(total < 2 * 1024 * 1024, `10 s of garbage added ${total} bytes (limit 2 MiB)`);
    child.kill('SIGTERM');
    await exited;
    assert.equal(child.exitCode, 0);
    assert.ok(instanceId, 'instance id found in the log');
    assert.ok(
      await waitFor(() => processesWithMarker(instanceId).length === 0, { timeoutMs: 3_000 }),
      'the spewing server is gone after the daemon stopped',
    );
  });
});

describe('data-dir files and secrets', () => {
  for (const name of ['daemon.log', 'token']) {
    it(`a ${name} symlink in the data dir is refused (E_DATA_FILE_SYMLINK naming it), its target untouched`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-link-'));
      const outside = mkdtempSync(join(tmpdir(), 'mcp-warden-target-'));
      cleanups.push(async () => {
        rmSync(dir, { recursive: true, force: true });
        rmSync(outside, { recursive: true, force: true });
      });
      const target = join(outside, 'precious.txt');
      writeFileSync(target, 'do not touch\n');
      chmodSync(target, 0o644);
      symlinkSync(target, join(dir, name));
      const configPath = join(dir, 'config.json');
      writeFileSync(configPath, JSON.stringify({ mcpServers: {} }));
      const err = await startDaemon({
        dataDir: dir,
        configPath,
        listen: { host: '127.0.0.1', port: 0 },
        logLevel: 'info',
        console: false,
      }).then(
        async (d) => {
          await d.stop('unexpected start');
          assert.fail('the daemon started through a symlink');
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof WardenError, String(err));
      assert.equal(err.code, 'E_DATA_FILE_SYMLINK');
      assert.ok(err.message.includes(join(dir, name)), err.message);
      assert.equal(readFileSync(target, 'utf8'), 'do not touch\n');
      assert.equal(statSync(target).mode & 0o777, 0o644, 'the target was not chmod-ed');
      assert.ok(lstatSync(join(dir, name)).isSymbolicLink());
      // The refused start left the data dir usable: without the link the daemon starts.
      rmSync(join(dir, name));
      const d = await startDaemon({ dataDir: dir, configPath, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'info', console: false });
      await d.stop('test done');
      assert.equal(d.ledger.size(), 0);
      assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600);
    });
  }

  it('server.add does not echo a secret in args or command; lastError does not show it either', async () => {
    const td = await daemon();
    const token = readFileSync(join(td.dataDir, 'token'), 'utf8').trim();
    const client = await connectControl({ url: td.daemon.controlUrl, token });
    try {
      const result = await client.request('server.add', {
        name: 'secretive',
        trusted: true,
        entry: {
          command: '/nonexistent/bin/server --password=hunter2-command',
          args: ['--api-key=sk-live-123456', '--token', 'tok-abcdef', 'https://user:pw-in-url@example.invalid/x', '--port', '8080'],
        },
      });
      const text = JSON.stringify(result);
      for (const secret of ['hunter2-command', 'sk-live-123456', 'tok-abcdef', 'pw-in-url']) {
        assert.ok(!text.includes(secret), `server.add echoed ${secret}: ${text}`);
      }
      assert.ok(text.includes('8080'), 'non-secret arguments are kept');
      const failed = await td.waitForState('secretive', (v) => v.lastError !== null, 10_000);
      const health = JSON.stringify(td.daemon.health());
      assert.ok(!health.includes('hunter2-command'), `lastError shows the secret: ${JSON.stringify(failed.lastError)}`);
      await client.request('server.remove', { name: 'secretive' });
    } finally {
      await client.close();
    }
    await td.close();
  });
});
