/**
 * The control channel (/ws) against a real daemon started in-process with startDaemon, real demo
 * servers (processes) and real WebSocket clients: authentication, snapshot + events, the command set,
 * 200 add/remove cycles under 20 subscribers with a full leak check (ledger, processes, config file),
 * connection churn, fuzzing, atomic config persistence under a concurrent reader, shutdown, and the
 * Stately inspector option against a real relay.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createInspectorServer } from '@statelyai/inspect/server';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { connectControl, ControlRequestError, type ControlClient } from '../../src/control/control-client.js';
import {
  COMMAND_NAMES,
  CONTROL_PROTOCOL,
  DaemonMessageSchema,
  SnapshotMessageSchema,
  type DaemonMessage,
} from '../../src/control/protocol.js';
import type { Settings } from '../../src/core/settings.js';
import { processesWithMarker, waitFor } from '../helpers/leak-check.js';

const NODE = process.execPath;
const DEMO = fileURLToPath(new URL('../../src/demo/demo-server.js', import.meta.url));
const DEMO_ENTRY = { command: NODE, args: [DEMO] };

const SETTINGS: Partial<Settings> = {
  initTimeoutMs: 15_000,
  restartBackoffInitialMs: 50,
  stopEofGraceMs: 300,
  stopTermGraceMs: 500,
  stopKillGraceMs: 500,
  reapBackoffInitialMs: 20,
  shutdownBudgetMs: 8_000,
  controlHeartbeatIntervalMs: 1_000,
  controlMaxConnections: 40,
};

/** A config with a disabled server carrying secrets and keys we do not read: all must survive every command. */
const INITIAL_CONFIG = {
  $schema: 'https://example.invalid/mcp-warden.schema.json',
  mcpServers: {
    keep: {
      command: NODE,
      args: [DEMO, '--flag'],
      env: { API_KEY: 'sk-secret-value-1234' },
      disabled: true,
      description: 'kept as it is',
    },
  },
  settings: { maxSessions: 8 },
};

interface Started {
  daemon: Daemon;
  dir: string;
  token: string;
  configPath: string;
  initialText: string;
}

async function start(extra: { config?: unknown; settings?: Partial<Settings>; inspectUrl?: string } = {}): Promise<Started> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-ctl-'));
  const configPath = join(dir, 'config.json');
  const initialText = JSON.stringify(extra.config ?? INITIAL_CONFIG, null, 2) + '\n';
  await writeFile(configPath, initialText, { mode: 0o600 });
  const daemon = await startDaemon({
    dataDir: dir,
    configPath,
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'info',
    console: false,
    settingsOverride: { ...SETTINGS, ...extra.settings },
    inspectUrl: extra.inspectUrl,
  });
  const token = (await readFile(join(dir, 'token'), 'utf8')).trim();
  return { daemon, dir, token, configPath, initialText };
}

async function finish(s: Started): Promise<void> {
  await s.daemon.stop('test end');
  assert.deepEqual(processesWithMarker(s.daemon.identity.instanceId), [], 'no upstream process may survive stop()');
  assert.equal(s.daemon.ledger.size(), 0, 'the ledger is empty after stop()');
  await rm(s.dir, { recursive: true, force: true });
}

const connect = (s: Started, extra: Partial<Parameters<typeof connectControl>[0]> = {}) =>
  connectControl({ url: s.daemon.controlUrl, token: s.token, ...extra });

interface RawResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A hand-made upgrade request: the status and headers the daemon answers with (101 sockets are closed). */
function rawUpgrade(url: string, headers: Record<string, string>): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url.replace(/^ws/, 'http'), {
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function getHealth(baseUrl: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${baseUrl}/healthz`, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Collects every message of a client (after the snapshot). */
function record(client: ControlClient): DaemonMessage[] {
  const out: DaemonMessage[] = [];
  client.onMessage((m) => out.push(m));
  return out;
}

function statesOf(messages: DaemonMessage[], name: string): string[] {
  const states: string[] = [];
  for (const m of messages) {
    if (m.type !== 'event' || m.event.type !== 'server' || m.event.server.name !== name) continue;
    if (states[states.length - 1] !== m.event.server.state) states.push(m.event.server.state);
  }
  return states;
}

function stateCount(messages: DaemonMessage[], name: string, state: string): number {
  return messages.filter(
    (m) => m.type === 'event' && m.event.type === 'server' && m.event.server.name === name && m.event.server.state === state,
  ).length;
}

const stoppedCount = (messages: DaemonMessage[], name: string) => stateCount(messages, name, 'stopped');

/** Deterministic PRNG (mulberry32) so a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CLI = fileURLToPath(new URL('../../bundle/cli.js', import.meta.url)); // what users run

/** Runs the CLI asynchronously (the daemon lives in this process: a blocking spawn would deadlock). */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('control channel', () => {
  let s: Started;

  before(async () => {
    s = await start();
  });

  after(async () => {
    if (s) await finish(s);
  });

  it('creates the token file 0600, base64url without padding', async () => {
    const st = await stat(join(s.dir, 'token'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.match(s.token, /^[A-Za-z0-9_-]{43}$/);
  });

  it('authenticates the upgrade before handing out a WebSocket', async () => {
    const url = s.daemon.controlUrl;
    const none = await rawUpgrade(url, {});
    assert.equal(none.status, 401);
    assert.equal((JSON.parse(none.body) as { error: { code: string } }).error.code, 'E_UNAUTHORIZED');

    assert.equal((await rawUpgrade(url, { Authorization: 'Bearer wrong-token' })).status, 401);
    assert.equal((await rawUpgrade(url, { 'Sec-WebSocket-Protocol': `${CONTROL_PROTOCOL}, auth.wrong` })).status, 401);
    assert.equal((await rawUpgrade(url, { Authorization: `Bearer ${s.token}x` })).status, 401);

    const header = await rawUpgrade(url, { Authorization: `Bearer ${s.token}` });
    assert.equal(header.status, 101);
    assert.equal(header.headers['sec-websocket-protocol'], undefined, 'no protocol offered, none selected');

    const sub = await rawUpgrade(url, { 'Sec-WebSocket-Protocol': `${CONTROL_PROTOCOL}, auth.${s.token}` });
    assert.equal(sub.status, 101);
    assert.equal(sub.headers['sec-websocket-protocol'], CONTROL_PROTOCOL);
    assert.ok(!JSON.stringify(sub.headers).includes(s.token), 'the token is never echoed');

    const foreign = await rawUpgrade(url, { Authorization: `Bearer ${s.token}`, Origin: 'https://evil.example' });
    assert.equal(foreign.status, 403);
    assert.equal((JSON.parse(foreign.body) as { error: { code: string } }).error.code, 'E_FORBIDDEN_ORIGIN');
    assert.equal((await rawUpgrade(url, { Authorization: `Bearer ${s.token}`, Origin: 'null' })).status, 403);
    // Only the daemon's own origin: another loopback port is another web app.
    const port = new URL(s.daemon.controlUrl).port;
    assert.equal((await rawUpgrade(url, { Authorization: `Bearer ${s.token}`, Origin: 'http://localhost:5173' })).status, 403);
    assert.equal((await rawUpgrade(url, { Authorization: `Bearer ${s.token}`, Origin: `http://localhost:${port}` })).status, 101);
    assert.equal((await rawUpgrade(url, { Authorization: `Bearer ${s.token}`, Host: 'evil.example' })).status, 403);

    const wrongProto = await rawUpgrade(url, { Authorization: `Bearer ${s.token}`, 'Sec-WebSocket-Protocol': 'graphql-ws' });
    assert.equal(wrongProto.status, 400);

    // Through the client, both ways.
    const viaHeader = await connect(s);
    assert.equal(viaHeader.protocol, CONTROL_PROTOCOL);
    const viaSub = await connect(s, { tokenVia: 'subprotocol' });
    assert.equal(viaSub.protocol, CONTROL_PROTOCOL);
    await assert.rejects(connect(s, { token: 'nope' }), (e: unknown) => e instanceof ControlRequestError && e.status === 401);
    await assert.rejects(
      connect(s, { origin: 'https://evil.example' }),
      (e: unknown) => e instanceof ControlRequestError && e.status === 403,
    );
    await viaHeader.close();
    await viaSub.close();
    await waitFor(() => s.daemon.ledger.countFor('control') === 0, { timeoutMs: 2_000 });
  });

  it('sends a snapshot, then events starting → running → stopping → … stopped for a server added and removed', async () => {
    const c = await connect(s);
    assert.ok(SnapshotMessageSchema.safeParse(c.snapshot).success, 'the snapshot matches its schema');
    assert.equal(c.snapshot.daemon.instanceId, s.daemon.identity.instanceId);
    assert.equal(c.snapshot.daemon.pid, process.pid);
    assert.equal(c.snapshot.machine.id, 'server');
    assert.deepEqual(
      c.snapshot.servers.map((v) => [v.name, v.state]),
      [['keep', 'disabled']],
    );
    assert.ok(!JSON.stringify(c.snapshot).includes('sk-secret-value-1234'), 'no secret in the snapshot');
    const messages = record(c);

    const added = await c.request<{ name: string; entry: { env: Record<string, string> }; started: boolean }>('server.add', {
      name: 'ev1',
      entry: { ...DEMO_ENTRY, env: { TOKEN: 'do-not-echo-me' } },
      trusted: true,
    });
    assert.equal(added.started, true);
    assert.deepEqual(added.entry.env, { TOKEN: '[redacted]' });
    assert.ok(!JSON.stringify(added).includes('do-not-echo-me'));
    assert.ok(await waitFor(() => statesOf(messages, 'ev1').includes('running'), { timeoutMs: 15_000 }), 'ev1 reaches running');

    const tools = await c.request<{ tools: { name: string; description?: string; inputSchema: unknown }[] }>('server.tools', {
      name: 'ev1',
    });
    assert.ok(tools.tools.some((t) => t.name === 'echo' && typeof t.description === 'string' && typeof t.inputSchema === 'object'));

    await c.request('server.remove', { name: 'ev1' });
    assert.ok(await waitFor(() => stoppedCount(messages, 'ev1') > 0, { timeoutMs: 10_000 }), 'ev1 reaches stopped');

    const states = statesOf(messages, 'ev1');
    const first = (p: (x: string) => boolean) => states.findIndex(p);
    const iStarting = first((x) => x.startsWith('starting'));
    const iRunning = first((x) => x === 'running');
    const iStopping = first((x) => x === 'stopping');
    const iStopped = first((x) => x === 'stopped');
    assert.ok(iStarting === 0 && iStarting < iRunning && iRunning < iStopping && iStopping < iStopped, `order: ${states.join(' → ')}`);
    assert.equal(iStopped, states.length - 1, 'stopped is last');
    assert.ok(messages.some((m) => m.type === 'event' && m.event.type === 'server-removed' && m.event.name === 'ev1'));
    for (const m of messages) assert.ok(DaemonMessageSchema.safeParse(m).success, `schema of ${JSON.stringify(m).slice(0, 200)}`);
    await c.close();
  });

  it('a server added without --trusted starts quarantined (persisted) and reaches clients only after approval', async () => {
    const c = await connect(s);
    const messages = record(c);
    const added = await c.request<{ quarantined: boolean }>('server.add', { name: 'newq', entry: DEMO_ENTRY });
    assert.equal(added.quarantined, true);
    assert.ok(await waitFor(() => statesOf(messages, 'newq').includes('quarantined'), { timeoutMs: 15_000 }), 'newq is quarantined');
    assert.ok(!statesOf(messages, 'newq').includes('running'), 'never running before approval');
    assert.equal(JSON.parse(readFileSync(s.daemon.configPath, 'utf8')).mcpServers.newq.quarantined, true, 'persisted');
    const tools = await c.request<{ tools: { name: string }[]; fingerprint: string }>('server.tools', { name: 'newq' });
    assert.ok(tools.tools.length > 0, 'its tools can be inspected while quarantined');
    await assert.rejects(
      c.request('server.approve', { name: 'newq' }),
      { code: 'E_BAD_ARGS' },
      'approval needs the fingerprint of what was shown',
    );
    await assert.rejects(c.request('server.approve', { name: 'newq', fingerprint: '0'.repeat(64) }), { code: 'E_TOOLS_MISMATCH' });
    await c.request('server.approve', { name: 'newq', fingerprint: tools.fingerprint });
    assert.ok(await waitFor(() => statesOf(messages, 'newq').includes('running'), { timeoutMs: 10_000 }), 'running after approval');
    assert.equal(JSON.parse(readFileSync(s.daemon.configPath, 'utf8')).mcpServers.newq.quarantined, false, 'approval persisted');
    await c.request('server.remove', { name: 'newq' });
    assert.ok(await waitFor(() => stoppedCount(messages, 'newq') > 0, { timeoutMs: 10_000 }));
    await c.close();
  });
  it('runs every server command, persisting only the key it changes', async () => {
    const c = await connect(s);
    const messages = record(c);
    const cfg = async () => JSON.parse(await readFile(s.configPath, 'utf8')) as { mcpServers: Record<string, Record<string, unknown>> };

    await assert.rejects(c.request('server.add', { name: 'keep', entry: DEMO_ENTRY }), { code: 'E_SERVER_EXISTS' });
    await assert.rejects(c.request('server.add', { name: 'bad name!', entry: DEMO_ENTRY }), { code: 'E_BAD_ARGS' });
    await assert.rejects(c.request('server.add', { name: 'x', entry: { command: '' } }), (e: unknown) => {
      assert.ok(e instanceof ControlRequestError);
      assert.equal(e.code, 'E_CONFIG_INVALID');
      assert.ok(e.issues?.some((i) => i.path === '$.mcpServers.x.command'));
      return true;
    });
    await assert.rejects(c.request('server.remove', { name: 'ghost' }), { code: 'E_UNKNOWN_SERVER' });
    await assert.rejects(c.request('server.restart', { name: 'keep' }), { code: 'E_SERVER_DISABLED' });
    await assert.rejects(c.request('server.frobnicate', {}), { code: 'E_UNKNOWN_COMMAND' });
    await assert.rejects(c.request('server.remove', { name: 'keep', extra: 1 }), { code: 'E_BAD_ARGS' });

    // enable: only "disabled" changes; the secret env, unknown key and args stay as they were.
    assert.deepEqual(await c.request('server.enable', { name: 'keep' }), { name: 'keep', changed: true });
    assert.deepEqual((await cfg()).mcpServers.keep, { ...INITIAL_CONFIG.mcpServers.keep, disabled: false });
    assert.ok(await waitFor(() => statesOf(messages, 'keep').includes('running'), { timeoutMs: 15_000 }));
    assert.deepEqual(await c.request('server.enable', { name: 'keep' }), { name: 'keep', changed: false });

    assert.deepEqual(await c.request('server.quarantine', { name: 'keep' }), { name: 'keep', changed: true });
    assert.equal((await cfg()).mcpServers.keep!.quarantined, true);
    assert.ok(await waitFor(() => statesOf(messages, 'keep').includes('quarantined'), { timeoutMs: 5_000 }));
    const qt = await c.request<{ quarantined: boolean; tools: unknown[]; fingerprint: string }>('server.tools', { name: 'keep' });
    assert.equal(qt.quarantined, true);
    assert.ok(qt.tools.length > 0, 'tools are listed while quarantined');
    assert.deepEqual(await c.request('server.approve', { name: 'keep', fingerprint: qt.fingerprint }), { name: 'keep', changed: true });
    assert.equal((await cfg()).mcpServers.keep!.quarantined, false);

    const pidBefore = s.daemon.servers().find((v) => v.name === 'keep')!.pid;
    assert.deepEqual(await c.request('server.restart', { name: 'keep' }), { name: 'keep' });
    assert.ok(
      await waitFor(
        () => {
          const v = s.daemon.servers().find((x) => x.name === 'keep');
          return v?.state === 'running' && v.pid !== pidBefore;
        },
        { timeoutMs: 15_000 },
      ),
      'restarted with a new pid',
    );

    assert.deepEqual(await c.request('server.disable', { name: 'keep' }), { name: 'keep', changed: true });
    assert.ok(await waitFor(() => s.daemon.servers().find((v) => v.name === 'keep')?.state === 'disabled', { timeoutMs: 10_000 }));
    const final = await cfg();
    assert.deepEqual(final.mcpServers.keep, { ...INITIAL_CONFIG.mcpServers.keep, disabled: true, quarantined: false });
    assert.deepEqual((final as unknown as { settings: unknown }).settings, INITIAL_CONFIG.settings);
    assert.equal((final as unknown as { $schema: unknown }).$schema, INITIAL_CONFIG.$schema);

    const report = await c.request<{ dryRun: boolean; errors: unknown[] }>('reap', { dryRun: true });
    assert.equal(report.dryRun, true);
    assert.ok(Array.isArray(report.errors));

    const list = await c.request<{ servers: { name: string }[] }>('server.list');
    assert.deepEqual(
      list.servers.map((v) => v.name),
      ['keep'],
    );
    assert.ok(!JSON.stringify(messages).includes('sk-secret-value-1234'), 'no secret in any event');
    await c.close();
    // Restore the initial file content for the cycle test's comparison.
    await writeFile(s.configPath, s.initialText);
  });

  it('streams log records of subscribed servers only', async () => {
    const c = await connect(s);
    const messages = record(c);
    c.sendRaw(JSON.stringify({ type: 'subscribe', logs: ['logsrv'] }));
    await c.request('server.add', { name: 'logsrv', entry: DEMO_ENTRY, trusted: true });
    await c.request('server.add', { name: 'other', entry: DEMO_ENTRY, trusted: true });
    assert.ok(await waitFor(() => messages.some((m) => m.type === 'subscribed'), { timeoutMs: 2_000 }));
    assert.ok(
      await waitFor(() => messages.some((m) => m.type === 'log' && m.server === 'logsrv' && m.record.msg === 'upstream initialized'), {
        timeoutMs: 15_000,
      }),
    );
    assert.ok(await waitFor(() => statesOf(messages, 'other').includes('running'), { timeoutMs: 15_000 }));
    assert.ok(!messages.some((m) => m.type === 'log' && m.server !== 'logsrv'), 'only the subscribed server');
    assert.equal(s.daemon.ledger.owned('control').filter((e) => e.kind === 'listener').length, 1);
    c.sendRaw(JSON.stringify({ type: 'subscribe', logs: [] }));
    assert.ok(await waitFor(() => s.daemon.ledger.owned('control').every((e) => e.kind !== 'listener'), { timeoutMs: 2_000 }));
    await c.request('server.remove', { name: 'logsrv' });
    await c.request('server.remove', { name: 'other' });
    assert.ok(await waitFor(() => stoppedCount(messages, 'logsrv') > 0 && stoppedCount(messages, 'other') > 0, { timeoutMs: 10_000 }));
    await c.close();
    assert.equal(await readFile(s.configPath, 'utf8'), s.initialText);
  });

  it('200 add/remove cycles with 20 subscribers leave no resource, process or config change behind', async () => {
    const c = await connect(s);
    const own = record(c);
    await waitFor(() => s.daemon.ledger.countFor('http') === 1 + 1, { timeoutMs: 2_000 }); // listener + this connection
    const baseline = s.daemon.ledger.counts();
    const subscribers = await Promise.all(Array.from({ length: 20 }, () => connect(s)));
    const received = subscribers.map(record);
    const t0 = Date.now();
    let waitedRunning = 0;
    const CYCLES = 200;
    for (let i = 0; i < CYCLES; i++) {
      const stoppedBefore = stoppedCount(own, 'cyc');
      const runningBefore = stateCount(own, 'cyc', 'running');
      await c.request('server.add', { name: 'cyc', entry: DEMO_ENTRY, trusted: true });
      // Every 4th cycle waits for running; the others remove the server while it is still launching.
      if (i % 4 === 0) {
        assert.ok(await waitFor(() => stateCount(own, 'cyc', 'running') > runningBefore, { timeoutMs: 15_000, intervalMs: 5 }));
        waitedRunning++;
      }
      await c.request('server.remove', { name: 'cyc' });
      assert.ok(await waitFor(() => stoppedCount(own, 'cyc') > stoppedBefore, { timeoutMs: 15_000, intervalMs: 5 }), `cycle ${i} stops`);
    }
    const ms = Date.now() - t0;
    process.stderr.write(
      `# control-channel: ${CYCLES} add/remove cycles (${waitedRunning} up to running) in ${ms} ms, ${(ms / CYCLES).toFixed(1)} ms/cycle\n`,
    );

    // Every subscriber saw every cycle end, in order, and none was dropped.
    for (const r of received) {
      assert.equal(r.filter((m) => m.type === 'event' && m.event.type === 'server-removed' && m.event.name === 'cyc').length, CYCLES);
      assert.equal(stoppedCount(r, 'cyc'), CYCLES);
    }
    assert.equal(s.daemon.subscriberCount(), 21);
    await Promise.all(subscribers.map((x) => x.close()));

    const settled = await waitFor(() => JSON.stringify(s.daemon.ledger.counts()) === JSON.stringify(baseline), { timeoutMs: 5_000 });
    assert.ok(settled, `ledger back to baseline: ${JSON.stringify(s.daemon.ledger.counts())} vs ${JSON.stringify(baseline)}`);
    assert.deepEqual(Object.keys(s.daemon.ledger.counts()).sort(), Object.keys(baseline).sort());
    for (const owner of Object.keys(baseline))
      assert.ok(['http', 'front', 'control', 'daemon', 'config-watch'].includes(owner), `baseline owner ${owner}`);
    assert.deepEqual(processesWithMarker(s.daemon.identity.instanceId), [], 'no upstream process left');
    assert.equal(await readFile(s.configPath, 'utf8'), s.initialText, 'config file back to its initial content');
    assert.deepEqual(
      s.daemon.servers().map((v) => v.name),
      ['keep'],
    );
    await c.close();
    assert.ok(await waitFor(() => s.daemon.ledger.countFor('control') === 0, { timeoutMs: 2_000 }));
  });

  it('100 connections opened and closed leave no control resource and no subscriber', async () => {
    for (let batch = 0; batch < 4; batch++) {
      const clients = await Promise.all(Array.from({ length: 25 }, (_, i) => connect(s, { tokenVia: i % 2 ? 'header' : 'subprotocol' })));
      assert.equal(s.daemon.ledger.countFor('control'), 25 * 3, 'socket, timer and subscription per connection');
      // Half close politely, half vanish without a close frame.
      await Promise.all(
        clients.map(async (cl, i) => {
          if (i % 2) cl.sendRaw('{"type":"ping"}');
          await cl.close();
        }),
      );
    }
    // Abrupt disconnects: raw sockets destroyed right after the upgrade.
    for (let i = 0; i < 10; i++) {
      const r = await rawUpgrade(s.daemon.controlUrl, { Authorization: `Bearer ${s.token}` });
      assert.equal(r.status, 101);
    }
    assert.ok(await waitFor(() => s.daemon.ledger.countFor('control') === 0, { timeoutMs: 3_000 }), 'control resources released');
    assert.equal(s.daemon.subscriberCount(), 0);
  });

  it('refuses connections beyond controlMaxConnections with 503', async () => {
    const max = SETTINGS.controlMaxConnections!;
    const clients = await Promise.all(Array.from({ length: max }, () => connect(s)));
    const over = await rawUpgrade(s.daemon.controlUrl, { Authorization: `Bearer ${s.token}` });
    assert.equal(over.status, 503);
    assert.equal((JSON.parse(over.body) as { error: { code: string } }).error.code, 'E_TOO_MANY_CONNECTIONS');
    await clients[0]!.close();
    const again = await connect(s);
    await Promise.all([again, ...clients.slice(1)].map((x) => x.close()));
    assert.ok(await waitFor(() => s.daemon.ledger.countFor('control') === 0, { timeoutMs: 3_000 }));
  });

  it('answers thousands of malformed messages with errors and keeps serving', async () => {
    const rand = prng(0xc0ffee);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const randString = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rand() * 95))).join('');
    const maxPayload = 64 * 1024;
    const safeCommands = COMMAND_NAMES.filter((n) => n !== 'shutdown' && n !== 'reap');
    const frames: (string | Buffer)[] = [];
    const N = 3_000;
    for (let i = 0; i < N; i++) {
      switch (i % 12) {
        case 0:
          frames.push(randomBytes(1 + Math.floor(rand() * 512))); // binary frame
          break;
        case 1:
          frames.push(randString(1 + Math.floor(rand() * 200))); // not JSON (mostly)
          break;
        case 2:
          frames.push(pick(['1', '"str"', 'null', 'true', '[]', '[1,2]', '{}', '""', '-0', '1e999']));
          break;
        case 3:
          frames.push(JSON.stringify({ type: pick([1, null, {}, [], 'frob', 'COMMAND', 'event', 'snapshot', randString(10)]) }));
          break;
        case 4: {
          let name = randString(1 + Math.floor(rand() * 30));
          if ((COMMAND_NAMES as readonly string[]).includes(name)) name += '!';
          frames.push(JSON.stringify({ type: 'command', id: i, command: name, args: {} }));
          break;
        }
        case 5: {
          // A known, non-destructive-when-invalid command with args that cannot validate (strict: extra key).
          const cmd = pick(safeCommands);
          const args = pick([
            { name: 'keep', ['zz' + randString(4)]: 1 },
            'not-an-object',
            42,
            [],
            { name: 7 },
            { name: null },
            { entry: {} },
          ]);
          frames.push(JSON.stringify({ type: 'command', id: `f${i}`, command: cmd, args }));
          break;
        }
        case 6: // huge strings just under maxPayload
          frames.push(JSON.stringify({ type: 'command', id: i, command: 'x'.repeat(maxPayload - 100) }));
          break;
        case 7:
          frames.push(JSON.stringify({ type: 'subscribe', logs: ['a'.repeat(maxPayload - 60)] }));
          break;
        case 8:
          frames.push(JSON.stringify({ type: 'command', id: pick([{}, [], -1, 1.5, '', 'x'.repeat(200), true]), command: 'server.list' }));
          break;
        case 9:
          frames.push('['.repeat(20_000) + ']'.repeat(20_000));
          break;
        case 10:
          frames.push('{"__proto__":{"polluted":1},"type":"command","id":' + i + ',"command":"server.add","args":{"__proto__":{"x":1}}}');
          break;
        case 11:
          frames.push(JSON.stringify({ type: 'ping', id: pick([i, {}, 'p']), extra: pick([undefined, 1]) }));
          break;
      }
    }
    const c = await connect(s);
    const replies = record(c);
    const t0 = Date.now();
    for (const f of frames) c.sendRaw(f);
    c.sendRaw(JSON.stringify({ type: 'ping', id: 'end' }));
    assert.ok(
      await waitFor(() => replies.some((m) => m.type === 'pong' && m.id === 'end'), { timeoutMs: 30_000 }),
      'the connection still answers after the burst',
    );
    const answered = replies.filter((m) => m.type === 'error' || m.type === 'result' || m.type === 'pong' || m.type === 'subscribed');
    process.stderr.write(`# control-channel: ${N} fuzz frames answered in ${Date.now() - t0} ms\n`);
    assert.equal(answered.length, N + 1, 'every frame got exactly one answer');
    for (const m of replies) {
      if (m.type === 'result') assert.equal(m.ok, false, `unexpected success: ${JSON.stringify(m).slice(0, 200)}`);
      assert.ok(DaemonMessageSchema.safeParse(m).success, `schema of ${JSON.stringify(m).slice(0, 200)}`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);

    // Over maxPayload, or invalid UTF-8 in a text frame: that connection closes (1009 / 1007), nothing else.
    const big = await connect(s);
    big.sendRaw('x'.repeat(maxPayload + 1));
    assert.equal((await big.closed).code, 1009);

    assert.deepEqual(
      ((await c.request('server.list')) as { servers: { name: string }[] }).servers.map((v) => v.name),
      ['keep'],
    );
    const health = await getHealth(s.daemon.url);
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    await c.close();
    assert.equal(await readFile(s.configPath, 'utf8'), s.initialText);
    assert.ok(await waitFor(() => s.daemon.ledger.countFor('control') === 0, { timeoutMs: 3_000 }));
  });

  it('mcp-warden servers: the CLI drives the daemon through the channel', async () => {
    // --data-dir first: after "--" everything belongs to the server's command line.
    const run = (command: string, ...args: string[]) => runCli([command, '--data-dir', s.dir, ...args]);
    const list = await run('servers', 'list', '--json');
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { result: { servers: { name: string }[] } }).result.servers.map((v) => v.name),
      ['keep'],
    );
    const human = await run('servers');
    assert.match(human.stdout, /^NAME +STATE +TOOLS +PID +QUARANTINED +LAST ERROR\nkeep +disabled +0 +- +no +-\n$/);

    const add = await run('servers', 'add', 'cli1', '--env', 'SECRET=from-cli', '--', NODE, DEMO);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /added cli1/);
    assert.ok(!add.stdout.includes('from-cli'));
    // Not --trusted: quarantined until a person approves it.
    assert.ok(await waitFor(() => s.daemon.servers().find((v) => v.name === 'cli1')?.state === 'quarantined', { timeoutMs: 15_000 }));
    assert.equal((await run('servers', 'approve', 'cli1')).code, 0);
    assert.ok(await waitFor(() => s.daemon.servers().find((v) => v.name === 'cli1')?.state === 'running', { timeoutMs: 15_000 }));
    const tools = await run('servers', 'tools', 'cli1');
    assert.equal(tools.code, 0);
    assert.match(tools.stdout, /^cli1 \(running\): 4 tools\n {2}echo - /);
    const exists = await run('servers', 'add', 'cli1', '--json-entry', JSON.stringify(DEMO_ENTRY));
    assert.equal(exists.code, 1);
    assert.match(exists.stderr, /E_SERVER_EXISTS/);
    const invalid = await run('servers', 'add', 'cli2', '--json-entry', '{"command":""}');
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /E_CONFIG_INVALID/);
    assert.equal((await run('servers', 'quarantine', 'cli1')).stdout, 'quarantined cli1: its tools are hidden\n');
    // One step: it shows what it approves (every tool, its fingerprint), then approves exactly that.
    const approved = await run('servers', 'approve', 'cli1');
    assert.match(
      approved.stdout,
      /^cli1 \(quarantined, quarantined\): 4 tools\n {2}echo - [^]*\n {2}fingerprint: [0-9a-f]{64}\napproved cli1: its tools are exposed\n$/,
    );
    const removed = await run('servers', 'remove', 'cli1');
    assert.equal(removed.stdout, 'removed cli1\n');
    const gone = await run('servers', 'remove', 'cli1', '--json');
    assert.equal(gone.code, 1);
    assert.equal((JSON.parse(gone.stdout) as { error: { code: string } }).error.code, 'E_UNKNOWN_SERVER');
    assert.equal((await run('servers', 'frob')).code, 2);
    assert.equal((await run('servers', 'add', 'x')).code, 2);
    const none = await runCli(['servers', 'list', '--data-dir', join(s.dir, 'nothing-here')]);
    assert.equal(none.code, 7);
    assert.match(none.stderr, /no daemon is running/);
    assert.ok(!s.daemon.servers().some((v) => v.name === 'cli1'));
    assert.ok(await waitFor(() => s.daemon.ledger.countFor('server:cli1') === 0, { timeoutMs: 10_000 }));
    assert.equal(await readFile(s.configPath, 'utf8'), s.initialText);
  });

  it('persists atomically: a concurrent reader never sees a partial config file', async () => {
    // The reader is another process, so its reads really interleave with the daemon's writes.
    const reader = spawn(
      NODE,
      [
        '-e',
        `const fs=require('fs');let reads=0,bad=0,stop=false;process.stdin.on('data',()=>{});process.stdin.on('end',()=>{stop=true});
         process.stderr.write('ready\\n');
         (function loop(){for(let i=0;i<50;i++){try{const t=fs.readFileSync(process.argv[1],'utf8');JSON.parse(t);reads++}catch(e){if(e.code!=='ENOENT')bad++}}
         if(stop){process.stdout.write(JSON.stringify({reads,bad}));return}setImmediate(loop)})();`,
        s.configPath,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    reader.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => reader.on('exit', () => r()));
    await new Promise<void>((r) => reader.stderr.once('data', () => r())); // reading in a loop from now on

    const clients = await Promise.all([connect(s), connect(s), connect(s)]);
    const t0 = Date.now();
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 15; i++) {
      const cl = clients[i % 3]!;
      const name = `atom${i}`;
      ops.push(
        (async () => {
          await cl.request('server.add', { name, entry: { ...DEMO_ENTRY, disabled: true, env: { K: 'v'.repeat(2000) } } });
          await cl.request('server.quarantine', { name });
          const { fingerprint } = await cl.request<{ fingerprint: string }>('server.tools', { name });
          await cl.request('server.approve', { name, fingerprint });
          await cl.request('server.remove', { name });
        })(),
      );
    }
    await Promise.all(ops);
    const ms = Date.now() - t0;
    reader.stdin.end();
    await exited;
    const r = JSON.parse(out) as { reads: number; bad: number };
    process.stderr.write(`# control-channel: 60 persisted commands in ${ms} ms; concurrent reader: ${r.reads} reads, ${r.bad} invalid\n`);
    assert.equal(r.bad, 0, 'every read saw complete JSON');
    assert.ok(r.reads >= 500, `the reader ran concurrently (${r.reads} reads)`);
    assert.equal(await readFile(s.configPath, 'utf8'), s.initialText);
    await Promise.all(clients.map((x) => x.close()));
  });
});

describe('control channel: dropping consumers', () => {
  it('drops a client that does not answer pings', async () => {
    const d = await start({ config: { mcpServers: {} }, settings: { controlHeartbeatIntervalMs: 200 } });
    try {
      const silent = new WebSocket(d.daemon.controlUrl, [CONTROL_PROTOCOL], {
        headers: { authorization: `Bearer ${d.token}` },
        autoPong: false,
      });
      silent.on('error', () => undefined);
      const t0 = Date.now();
      const code = await new Promise<number>((r) => silent.on('close', (c) => r(c)));
      assert.equal(code, 1006, 'terminated without a close frame');
      assert.ok(Date.now() - t0 < 2_000, 'within about two heartbeat intervals');
      assert.ok(await waitFor(() => d.daemon.ledger.countFor('control') === 0, { timeoutMs: 2_000 }));
      // A well-behaved client (ws answers pings) outlives many intervals.
      const ok = await connect(d);
      await new Promise((r) => setTimeout(r, 1_000));
      assert.deepEqual(await ok.request('server.list'), { servers: [] });
      await ok.close();
    } finally {
      await finish(d);
    }
  });

  it('drops a client that stops reading instead of buffering for it', async () => {
    const limit = 64 * 1024;
    const d = await start({ config: { mcpServers: {} }, settings: { controlMaxBufferedBytes: limit, controlHeartbeatIntervalMs: 60_000 } });
    try {
      const stalled = new WebSocket(d.daemon.controlUrl, [CONTROL_PROTOCOL], { headers: { authorization: `Bearer ${d.token}` } });
      stalled.on('error', () => undefined);
      await new Promise<void>((r) => stalled.once('open', () => r()));
      // Stop reading at the TCP level; keep sending requests whose answers pile up on the daemon's side.
      (stalled as unknown as { _socket: { pause(): void } })._socket.pause();
      let sent = 0;
      const frame = JSON.stringify({ type: 'command', id: 1, command: 'server.list' });
      const dropped = await waitFor(
        () => {
          for (let i = 0; i < 2_000 && stalled.readyState === WebSocket.OPEN; i++, sent++) stalled.send(frame);
          return d.daemon.ledger.countFor('control') === 0;
        },
        { timeoutMs: 20_000, intervalMs: 5 },
      );
      assert.ok(dropped, `dropped after ${sent} requests`);
      const log = await readFile(join(d.dir, 'daemon.log'), 'utf8');
      assert.match(log, /not reading fast enough/);
      process.stderr.write(`# control-channel: a non-reading client was dropped after ${sent} requests (limit ${limit} B)\n`);
      stalled.terminate();
      const c = await connect(d);
      assert.deepEqual(await c.request('server.list'), { servers: [] });
      await c.close();
    } finally {
      await finish(d);
    }
  });
});

describe('control channel: shutdown and the Stately inspector', () => {
  it('shutdown replies, then closes every connection with 1001 and stops the daemon', async () => {
    const d = await start({ config: { mcpServers: { demo: DEMO_ENTRY } } });
    const c = await connect(d);
    const other = await connect(d);
    const messages = record(c);
    assert.ok(await waitFor(() => d.daemon.servers()[0]?.state === 'running', { timeoutMs: 15_000 }));
    assert.deepEqual(await c.request('shutdown'), { stopping: true });
    assert.equal((await other.closed).code, 1001);
    assert.equal((await c.closed).code, 1001);
    await d.daemon.stopped;
    assert.equal(d.daemon.ledger.size(), 0);
    assert.deepEqual(processesWithMarker(d.daemon.identity.instanceId), []);
    assert.ok(messages.every((m) => m.type !== 'error'));
    await rm(d.dir, { recursive: true, force: true });
  });

  it('streams inspection events of spawned server:* actors to a relay', async () => {
    const port = await freePort();
    const relay = createInspectorServer({ port, autoOpen: false });
    const seen: { type: string; name?: string; sessionId?: string }[] = [];
    const recorder = new WebSocket(`ws://127.0.0.1:${port}`);
    recorder.on('message', (data) => {
      try {
        seen.push(JSON.parse(String(data)) as { type: string; name?: string });
      } catch {
        // ignore
      }
    });
    await new Promise<void>((resolve, reject) => {
      recorder.once('open', () => resolve());
      recorder.once('error', reject);
    });
    const d = await start({ config: { mcpServers: { demo: DEMO_ENTRY } }, inspectUrl: `ws://127.0.0.1:${port}` });
    try {
      assert.ok(await waitFor(() => d.daemon.servers()[0]?.state === 'running', { timeoutMs: 15_000 }));
      assert.ok(
        await waitFor(() => seen.some((e) => e.type === '@xstate.actor' && e.name === 'server:demo'), { timeoutMs: 10_000 }),
        `actor event for server:demo (saw ${seen.length} events)`,
      );
      const serverSession = seen.find((e) => e.type === '@xstate.actor' && e.name === 'server:demo')!.sessionId;
      assert.ok(
        await waitFor(() => seen.some((e) => e.type === '@xstate.snapshot' && e.sessionId === serverSession), { timeoutMs: 10_000 }),
        'snapshots of server:demo',
      );
      assert.ok(
        seen.some((e) => (e.type === '@xstate.actor' && e.name === 'supervisor') || e.name === '(machine)' || e.type === '@xstate.actor'),
      );
      assert.ok(!JSON.stringify(seen).includes(d.token), 'the token never reaches the inspector');
    } finally {
      await d.daemon.stop();
      recorder.close();
      relay.stop();
      await rm(d.dir, { recursive: true, force: true });
    }
  });

  it('an unreachable or invalid inspector URL does not affect the daemon', async () => {
    const port = await freePort(); // nothing listens there
    for (const url of [`ws://127.0.0.1:${port}`, 'not a url', 'http://127.0.0.1:1/x']) {
      const d = await start({ config: { mcpServers: {} }, inspectUrl: url });
      const c = await connect(d);
      assert.deepEqual(await c.request('server.list'), { servers: [] });
      assert.equal((await getHealth(d.daemon.url)).status, 200);
      await c.close();
      const t0 = Date.now();
      await d.daemon.stop();
      assert.ok(Date.now() - t0 < 3_000, 'stop is not held up by the inspector');
      await rm(d.dir, { recursive: true, force: true });
    }
  });
});
