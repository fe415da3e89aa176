/**
 * Metrics, the call log and `mcp-warden calls` against a real daemon with real upstreams (the fixture
 * server, the demo server, a server that crashes): every outcome of a tools/call is provoked for real
 * (ok, tool_error from an `isError` result, error, timeout, cancelled), then:
 *
 * - GET /metrics is parsed as a whole exposition (every sample of a declared family) and each counter,
 *   the histogram, the server states, restarts (requested and after crashes), sessions, ledger entries
 *   and the process metrics are read from it; names no server listed stay out of the labels;
 * - /metrics is behind the same guards as /healthz (a foreign Origin, a foreign Host);
 * - the control channel's `calls.list` and `calls` events, and `mcp-warden calls --json` (from the
 *   daemon, then from the files after it stopped) list the calls with their durations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startDaemon } from '../../src/daemon/daemon.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { NODE, cliMain, demoServer, fixture, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';
import { find, parseExposition, value, type Exposition } from '../helpers/prom-text.js';
import { connectControl, controlUrlOf } from '../../src/control/control-client.js';
import type { CallEntry } from '../../src/adapters/observability/call-record.js';

const run = promisify(execFile);

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Exposition> {
  const res = await fetch(`${url}/metrics`, { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

const calls = (e: Exposition, server: string, tool: string, outcome: string) =>
  value(e, 'mcp_warden_tool_calls_total', { server, tool, outcome });

describe('observability: metrics, call log, calls command', () => {
  let td: TestDaemon;
  let client: Client;
  let sessionId: string | undefined;
  let closeClient: () => Promise<void>;
  let dataDir = '';

  before(async () => {
    td = await startTestDaemon(
      {
        fx: { command: NODE, args: [fixture('echo-server')], env: { FIXTURE_FAIL_TOOL: '1' } },
        demo: { command: NODE, args: [demoServer] },
        crashy: { command: NODE, args: [fixture('crash-after-server')], env: { CRASH_AFTER_MS: '400' } },
      },
      { toolCallTimeoutMs: 600, callLogFlushMs: 50, restartIntensityMax: 2 },
    );
    dataDir = td.dataDir;
    await td.waitForState('fx', 'running');
    await td.waitForState('demo', 'running');
    const c = await td.connect();
    client = c.client;
    closeClient = c.close;
    sessionId = (client as unknown as { transport?: { sessionId?: string } }).transport?.sessionId;
  });

  after(async () => {
    await td?.close();
  });

  it('counts every outcome, by server and upstream tool, and times them', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await client.callTool({ name: 'fx__echo', arguments: { message: `hi ${i}` } });
      assert.ok(!r.isError);
    }
    // The demo server (McpServer) answers invalid arguments with an isError result, not a JSON-RPC error.
    const bad = await client.callTool({ name: 'demo__countdown', arguments: { seconds: 0 } });
    assert.equal(bad.isError, true, `expected an isError result: ${JSON.stringify(bad)}`);
    await assert.rejects(client.callTool({ name: 'fx__fail', arguments: {} }));
    await assert.rejects(
      client.callTool({ name: 'fx__slow', arguments: { steps: 20, intervalMs: 100 } }),
      /did not complete|timed out|timeout/i,
    );
    const ctl = new AbortController();
    const cancelled = client.callTool({ name: 'fx__slow', arguments: { steps: 20, intervalMs: 100 } }, undefined, { signal: ctl.signal });
    setTimeout(() => ctl.abort('test cancels'), 200);
    await assert.rejects(cancelled);
    await assert.rejects(client.callTool({ name: 'fx__no_such_tool', arguments: {} }));
    await assert.rejects(client.callTool({ name: 'nobody__random_1', arguments: {} }));
    await assert.rejects(client.callTool({ name: 'nobody__random_2', arguments: {} }));

    let e!: Exposition;
    const settled = await waitFor(
      async () => {
        e = await scrape(td.daemon.url);
        return calls(e, 'fx', 'slow', 'cancelled') === 1;
      },
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    assert.ok(settled, 'the cancelled call was not counted');
    assert.equal(e.types.get('mcp_warden_tool_calls_total'), 'counter');
    assert.equal(e.types.get('mcp_warden_tool_call_duration_seconds'), 'histogram');
    assert.equal(calls(e, 'fx', 'echo', 'ok'), 3);
    assert.equal(calls(e, 'fx', 'echo', 'error'), 0);
    assert.equal(calls(e, 'demo', 'countdown', 'tool_error'), 1);
    assert.equal(calls(e, 'fx', 'fail', 'error'), 1);
    assert.equal(calls(e, 'fx', 'slow', 'timeout'), 1);
    // Names nobody listed are not labels: one "(unknown)" tool per known server, one "(unknown)" server.
    assert.equal(calls(e, 'fx', '(unknown)', 'error'), 1);
    assert.equal(calls(e, '(unknown)', '(unknown)', 'error'), 2);
    const toolLabels = new Set(find(e, 'mcp_warden_tool_calls_total').map((s) => s.labels.tool));
    assert.deepEqual([...toolLabels].sort(), ['(unknown)', 'countdown', 'echo', 'fail', 'slow']);
    for (const s of find(e, 'mcp_warden_tool_calls_total')) {
      assert.deepEqual(Object.keys(s.labels).sort(), ['outcome', 'server', 'tool']);
      assert.ok(['ok', 'tool_error', 'error', 'timeout', 'cancelled'].includes(s.labels.outcome!));
    }

    // The histogram: counts match the counters, buckets are cumulative and end at +Inf.
    const h = { server: 'fx', tool: 'echo' };
    assert.equal(value(e, 'mcp_warden_tool_call_duration_seconds_count', h), 3);
    const buckets = find(e, 'mcp_warden_tool_call_duration_seconds_bucket', h);
    assert.ok(buckets.length > 5);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    assert.equal(buckets.at(-1)!.labels.le, '+Inf');
    assert.equal(buckets.at(-1)!.value, 3);
    const slow = { server: 'fx', tool: 'slow' };
    assert.equal(value(e, 'mcp_warden_tool_call_duration_seconds_count', slow), 2);
    // The timed-out call took at least toolCallTimeoutMs.
    assert.ok(value(e, 'mcp_warden_tool_call_duration_seconds_sum', slow) >= 0.6 + 0.15, 'slow calls were timed');
    assert.ok(value(e, 'mcp_warden_tool_call_duration_seconds_sum', h) > 0);
  });

  it('shows server states, sessions, ledger entries and the process metrics', async () => {
    const e = await scrape(td.daemon.url);
    assert.equal(e.types.get('mcp_warden_server_state'), 'gauge');
    assert.equal(value(e, 'mcp_warden_server_state', { server: 'fx', state: 'running' }), 1);
    const fxStates = find(e, 'mcp_warden_server_state', { server: 'fx' });
    assert.ok(fxStates.length >= 6);
    assert.equal(fxStates.filter((s) => s.value === 1).length, 1, 'exactly one state is current');
    assert.ok(value(e, 'mcp_warden_sessions') >= 1);
    assert.ok(value(e, 'mcp_warden_ledger_entries', { kind: 'process-group' }) >= 2);
    assert.ok(value(e, 'mcp_warden_ledger_entries', { kind: 'mcp-session' }) >= 1);
    assert.ok(e.types.has('mcp_warden_reap_attempts_total'));
    assert.ok(e.types.has('mcp_warden_server_restarts_total'));
    // prom-client's default process metrics.
    assert.ok(value(e, 'process_resident_memory_bytes') > 0);
    assert.ok(find(e, 'nodejs_heap_size_total_bytes').length === 1);
    assert.ok(e.types.has('nodejs_eventloop_lag_seconds'));
  });

  it('counts restarts: requested, and after crashes', async () => {
    const before = await scrape(td.daemon.url);
    assert.equal(value(before, 'mcp_warden_server_restarts_total', { server: 'fx' }), 0);
    await td.daemon.registry.restart('fx');
    await td.waitForState('fx', (v) => v.state === 'running' && v.pid !== null, 10_000);
    // The crashing server is restarted until its restart intensity (2) halts it.
    await td.waitForState('crashy', 'starting.halted', 15_000);
    const e = await scrape(td.daemon.url);
    assert.equal(value(e, 'mcp_warden_server_restarts_total', { server: 'fx' }), 1);
    assert.ok(value(e, 'mcp_warden_server_restarts_total', { server: 'crashy' }) >= 2);
    assert.equal(value(e, 'mcp_warden_server_state', { server: 'crashy', state: 'starting' }), 1);
  });

  it('/metrics is behind the same guards as the other routes', async () => {
    const foreign = await fetch(`${td.daemon.url}/metrics`, { headers: { origin: 'http://evil.example' } });
    assert.equal(foreign.status, 403);
    // fetch cannot set Host: node:http can.
    const badHost = await new Promise<number>((resolve, reject) => {
      const req = request(`${td.daemon.url}/metrics`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(badHost, 403);
    assert.equal((await fetch(`${td.daemon.url}/metrics`, { method: 'POST' })).status, 405);
  });

  it('lists calls over the control channel, live as `calls` events, and with `mcp-warden calls --json`', async () => {
    const token = (await readFile(join(dataDir, 'token'), 'utf8')).trim();
    const control = await connectControl({ url: controlUrlOf(td.daemon.url), token });
    try {
      const live: CallEntry[] = [];
      control.onMessage((m) => {
        if (m.type === 'event' && m.event.type === 'calls') live.push(...m.event.calls);
      });
      await client.callTool({ name: 'fx__echo', arguments: { message: 'live' } });
      assert.ok(await waitFor(() => live.some((c) => c.tool === 'echo'), { timeoutMs: 3_000, intervalMs: 20 }), 'no calls event');
      const { calls: listed } = await control.request<{ calls: CallEntry[] }>('calls.list', { server: 'fx' });
      assert.ok(listed.length >= 7);
      assert.ok(listed.every((c) => c.server === 'fx'));
      const last = listed.at(-1)!;
      assert.equal(last.tool, 'echo');
      assert.equal(last.outcome, 'ok');
      assert.equal(last.session, sessionId ?? last.session);
      assert.ok(last.durationMs > 0);
      const limited = await control.request<{ calls: CallEntry[] }>('calls.list', { limit: 2 });
      assert.equal(limited.calls.length, 2);
      await assert.rejects(control.request('calls.list', { limit: 0 }), /E_BAD_ARGS|limit/);
    } finally {
      await control.close();
    }

    const { stdout } = await run(NODE, [cliMain, 'calls', '--json', '--data-dir', dataDir, '--limit', '100']);
    const listed = JSON.parse(stdout) as CallEntry[];
    assertCallsShape(listed);
    const outcomes = new Set(listed.map((c) => c.outcome));
    for (const o of ['ok', 'tool_error', 'error', 'timeout', 'cancelled'])
      assert.ok(outcomes.has(o as CallEntry['outcome']), `no ${o} call listed`);
    const timeout = listed.find((c) => c.outcome === 'timeout')!;
    assert.equal(timeout.errorCode, 'E_UPSTREAM_TIMEOUT');
    assert.ok(timeout.durationMs >= 600);
    assert.equal(listed.find((c) => c.tool === 'fail')!.errorCode, 'E_UPSTREAM_ERROR');
    // Newest last.
    for (let i = 1; i < listed.length; i++) assert.ok(listed[i]!.time >= listed[i - 1]!.time);
    const human = await run(NODE, [cliMain, 'calls', '--server', 'demo', '--data-dir', dataDir]);
    assert.match(human.stdout, /demo {2}countdown {2}[\d.]+ ms {2}tool_error/);
    assert.doesNotMatch(human.stdout, /fx/);
    const help = await run(NODE, [cliMain, 'calls', '--help']);
    assert.match(help.stdout, /--follow/);
    await assert.rejects(run(NODE, [cliMain, 'calls', '--limit', 'x', '--data-dir', dataDir]), (err: { code?: number }) => err.code === 2);
  });

  it('`calls --follow` prints calls as they arrive', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(NODE, [cliMain, 'calls', '--follow', '--json', '--limit', '1', '--server', 'fx', '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      assert.ok(await waitFor(() => out.split('\n').filter(Boolean).length >= 1, { timeoutMs: 5_000, intervalMs: 20 }), 'no history line');
      await client.callTool({ name: 'fx__echo', arguments: { message: 'followed' } });
      await client.callTool({ name: 'demo__time', arguments: {} });
      assert.ok(
        await waitFor(() => out.split('\n').filter(Boolean).length >= 2, { timeoutMs: 5_000, intervalMs: 20 }),
        `no live line: ${out}`,
      );
      const lines = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as CallEntry);
      assert.ok(lines.every((c) => c.server === 'fx'));
      assert.equal(lines.at(-1)!.tool, 'echo');
    } finally {
      child.kill('SIGINT');
      assert.equal(await exited, 0);
    }
  });

  it('after the daemon stopped, `calls --json` reads the call log files', async () => {
    await closeClient();
    const { stdout: before } = await run(NODE, [cliMain, 'calls', '--json', '--data-dir', dataDir, '--limit', '1000']);
    const n = (JSON.parse(before) as CallEntry[]).length;
    await td.daemon.stop('test: read the files');
    const { stdout } = await run(NODE, [cliMain, 'calls', '--json', '--data-dir', dataDir, '--limit', '1000']);
    const fromFiles = JSON.parse(stdout) as CallEntry[];
    assertCallsShape(fromFiles);
    assert.equal(fromFiles.length, n);
    const lines = (await readFile(join(dataDir, 'calls.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, n);
    // No payloads unless settings.callLogPayloads asks.
    assert.ok(lines.every((l) => !('arguments' in JSON.parse(l))));
    await assert.rejects(run(NODE, [cliMain, 'calls', '--follow', '--data-dir', dataDir]), (err: { code?: number }) => err.code === 7);
  });
});

describe('call log file in the data dir', () => {
  it('a symlink at calls.jsonl stops the start (E_DATA_FILE_SYMLINK), its target untouched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-calls-link-'));
    try {
      const target = join(dir, 'precious');
      writeFileSync(target, 'keep\n');
      symlinkSync(target, join(dir, 'calls.jsonl'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ mcpServers: {} }));
      await assert.rejects(
        startDaemon({
          dataDir: dir,
          configPath: join(dir, 'config.json'),
          listen: { host: '127.0.0.1', port: 0 },
          logLevel: 'silent',
          console: false,
        }),
        (err: unknown) => err instanceof WardenError && err.code === ErrorCodes.DATA_FILE_SYMLINK,
      );
      assert.equal(readFileSync(target, 'utf8'), 'keep\n');
      // The lock was released: a daemon starts once the link is gone.
      rmSync(join(dir, 'calls.jsonl'));
      const d = await startDaemon({
        dataDir: dir,
        configPath: join(dir, 'config.json'),
        listen: { host: '127.0.0.1', port: 0 },
        logLevel: 'silent',
        console: false,
      });
      await d.stop('test done');
      assert.equal(d.ledger.size(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function assertCallsShape(list: CallEntry[]): void {
  assert.ok(Array.isArray(list) && list.length > 0);
  for (const c of list) {
    assert.deepEqual(Object.keys(c).sort(), ['durationMs', 'errorCode', 'outcome', 'server', 'session', 'time', 'tool']);
    assert.ok(!Number.isNaN(Date.parse(c.time)));
    assert.equal(typeof c.durationMs, 'number');
    assert.ok(c.durationMs >= 0);
  }
}
