/**
 * The upstream MCP client (and the process stdio transport under it) against real servers:
 * server-everything, server-memory and the fixtures (pagination, malformed tools, progress,
 * cancellation, timeouts, crashes, a hanging initialize, a stderr flood).
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import type { Logger } from 'pino';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import { spawnProcessGroup, type ProcessGroupHandle, type ProcessGroupSettings } from '../../src/adapters/process/process-group.js';
import { ProcessStdioTransport } from '../../src/adapters/process/process-stdio-transport.js';
import { connectUpstream, type UpstreamConnection, type UpstreamProgress } from '../../src/adapters/mcp/upstream-client.js';
import { BROKEN_OUTPUT_TOOL, COMPLEX_TOOL, ECHO_TOOL, MALFORMED_TOOLS } from '../fixtures/fixture-server.js';
import {
  assertNoProcessesWithMarker,
  killProcessesWithMarker,
  markedEnv,
  memoryLogger,
  newInstanceId,
  runLeakChecked,
  waitFor,
  type CapturedLog,
} from '../helpers/leak-check.js';
import { NODE, PROCESS_GROUP_SETTINGS as SETTINGS, fixture } from '../helpers/process-fixtures.js';

const require = createRequire(import.meta.url);
const EVERYTHING = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
const MEMORY = join(dirname(require.resolve('@modelcontextprotocol/server-memory/package.json')), 'dist/index.js');

const REQUEST_TIMEOUT_MS = 10_000;

interface Rig {
  ledger: ResourceLedger;
  instanceId: string;
  logger: Logger;
  lines: CapturedLog[];
  spawn(args: string[], extraEnv?: Record<string, string>, settings?: Partial<ProcessGroupSettings>): Promise<ProcessGroupHandle>;
  connect(h: ProcessGroupHandle, opts?: { requestTimeoutMs?: number; signal?: AbortSignal }): Promise<UpstreamConnection>;
  stderrLines(): string[];
  warnings(): string[];
}

/** Fresh ledger + marker per test; ends by asserting an empty ledger and no marked process. */
async function withRig(name: string, body: (rig: Rig) => Promise<void>): Promise<void> {
  const ledger = new ResourceLedger();
  const instanceId = newInstanceId(name);
  const { logger, lines } = memoryLogger();
  const owner = `server:${name}`;
  const rig: Rig = {
    ledger,
    instanceId,
    logger,
    lines,
    async spawn(args, extraEnv = {}, settings = {}) {
      const h = spawnProcessGroup(
        { command: NODE, args, env: markedEnv(instanceId, extraEnv), label: name },
        { ledger, owner, logger, settings: { ...SETTINGS, ...settings } },
      );
      await h.spawned;
      return h;
    },
    connect: (h, opts = {}) =>
      connectUpstream(h, { name, logger, requestTimeoutMs: opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS, signal: opts.signal }),
    stderrLines: () => lines.filter((l) => l.stream === 'stderr' && l.level === 30).map((l) => l.msg),
    warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg),
  };
  await runLeakChecked(() => body(rig), {
    verify: async () => {
      // Whatever the test did, stopping everything it owns must leave nothing behind.
      assert.deepEqual(await ledger.releaseOwned(owner), []);
      assert.equal(ledger.size(), 0);
      await assertNoProcessesWithMarker(instanceId, 1_000);
    },
    cleanup: async () => {
      await ledger.sweep('force');
      killProcessesWithMarker(instanceId);
    },
  });
}

function text(result: Record<string, unknown>): string {
  const content = result.content as Array<{ type: string; text?: string }>;
  assert.ok(Array.isArray(content), 'result has no content array');
  return content.map((c) => c.text ?? '').join('');
}

function isWardenError(code: string, check?: (err: WardenError) => void) {
  return (err: unknown): true => {
    assert.ok(err instanceof WardenError, `expected WardenError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    check?.(err);
    return true;
  };
}

describe('upstream client against server-everything', () => {
  it('lists, calls echo, reports progress and cancels a long-running call', () =>
    withRig('everything', async (rig) => {
      const h = await rig.spawn([EVERYTHING, 'stdio']);
      const conn = await rig.connect(h);
      assert.equal(typeof conn.serverInfo?.name, 'string');

      const tools = await conn.listTools();
      const names = tools.map((t) => t.name);
      for (const n of ['echo', 'trigger-long-running-operation', 'get-sum']) assert.ok(names.includes(n), `${n} missing from ${names}`);
      for (const t of tools) assert.equal(typeof t.inputSchema, 'object');

      assert.equal(text(await conn.callTool('echo', { message: 'hello warden' }, { timeoutMs: 5_000 })), 'Echo: hello warden');

      // Progress: 4 steps over 0.8 s; the per-request timeout (500 ms) only holds because progress resets it.
      const progress: UpstreamProgress[] = [];
      const done = await conn.callTool(
        'trigger-long-running-operation',
        { duration: 0.8, steps: 4 },
        { timeoutMs: 500, onprogress: (p) => progress.push(p) },
      );
      assert.match(text(done), /Long running operation completed/);
      assert.deepEqual(
        progress.map((p) => [p.progress, p.total]),
        [
          [1, 4],
          [2, 4],
          [3, 4],
          [4, 4],
        ],
      );

      // Cancellation: a 30 s operation, aborted after 300 ms, rejects promptly with our reason.
      const controller = new AbortController();
      const reason = new Error('cancelled by the downstream client');
      const call = conn.callTool(
        'trigger-long-running-operation',
        { duration: 30, steps: 30 },
        { timeoutMs: 60_000, signal: controller.signal },
      );
      await new Promise((r) => setTimeout(r, 300));
      const abortedAt = Date.now();
      controller.abort(reason);
      await assert.rejects(call, (err) => err === reason);
      const latency = Date.now() - abortedAt;
      assert.ok(latency < 100, `cancellation took ${latency} ms`);
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'abort listener leaked');
      // The upstream keeps serving.
      assert.equal(text(await conn.callTool('echo', { message: 'still here' }, { timeoutMs: 5_000 })), 'Echo: still here');

      const closed = new Promise<void>((r) => conn.onClose(r));
      await conn.close();
      await closed;
      const report = await h.stop();
      console.log(`[measure] server-everything: cancel latency ${latency} ms; stop ${report.escalation} in ${report.durationMs} ms`);
    }));
});

describe('upstream client against server-memory', () => {
  it('creates and reads back an entity (tools with outputSchemas)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-memory-'));
    try {
      await withRig('memory', async (rig) => {
        const h = await rig.spawn([MEMORY], { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') });
        const conn = await rig.connect(h);
        const tools = await conn.listTools();
        const create = tools.find((t) => t.name === 'create_entities');
        assert.ok(create && tools.some((t) => t.name === 'read_graph'));
        assert.equal(typeof create.outputSchema, 'object');
        const entity = { name: 'warden', entityType: 'daemon', observations: ['never leaks'] };
        await conn.callTool('create_entities', { entities: [entity] }, { timeoutMs: 5_000 });
        const graph = await conn.callTool('read_graph', {}, { timeoutMs: 5_000 });
        assert.deepEqual((graph.structuredContent as { entities: unknown[] }).entities, [entity]);
        await conn.close();
        const report = await h.stop();
        console.log(`[measure] server-memory stop: ${report.escalation} in ${report.durationMs} ms`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('upstream client against fixtures', () => {
  it('follows nextCursor across pages, drops malformed tools, passes schemas through byte-identical', () =>
    withRig('pages', async (rig) => {
      const h = await rig.spawn([fixture('echo-server')], { FIXTURE_PAGE_SIZE: '2', FIXTURE_EXTRA_TOOLS: '1' });
      const conn = await rig.connect(h);
      assert.equal(conn.instructions, 'test fixture');
      const tools = await conn.listTools();
      assert.deepEqual(
        tools.map((t) => t.name),
        ['echo', 'slow', 'notify_tools_changed', 'complex_schema', 'broken_output_schema'],
      );
      // 3 + 2 + 6 = 11 tools in pages of 2: pages 0..5 (stderr may lag behind stdout).
      const pages = () => rig.stderrLines().filter((l) => l.startsWith('tools/list page'));
      await waitFor(() => pages().length >= 6, { timeoutMs: 1_000 });
      assert.deepEqual(
        pages(),
        [0, 1, 2, 3, 4, 5].map((i) => `tools/list page ${i}`),
      );
      assert.equal(rig.warnings().filter((w) => w.startsWith('dropping malformed upstream tool')).length, MALFORMED_TOOLS.length);
      assert.equal(JSON.stringify(tools.find((t) => t.name === 'complex_schema')), JSON.stringify(COMPLEX_TOOL));
      assert.equal(JSON.stringify(tools.find((t) => t.name === 'broken_output_schema')), JSON.stringify(BROKEN_OUTPUT_TOOL));
      assert.equal(JSON.stringify(tools[0]), JSON.stringify(ECHO_TOOL));
      await conn.close();
      assert.equal((await h.stop()).escalation, 'eof');
    }));

  it('stops paginating on a repeating cursor', () =>
    withRig('loop', async (rig) => {
      const h = await rig.spawn([fixture('echo-server')], { FIXTURE_PAGE_SIZE: '1', FIXTURE_REPEAT_CURSOR: '1' });
      const conn = await rig.connect(h);
      const tools = await conn.listTools();
      assert.deepEqual(
        tools.map((t) => t.name),
        ['echo', 'slow'],
      );
      assert.ok(rig.warnings().includes('tools/list: repeating cursor, stopping pagination'));
      await conn.close();
    }));

  it('resets the timeout on progress, times out without it, and cancels upstream', () =>
    withRig('slow', async (rig) => {
      const h = await rig.spawn([fixture('echo-server')]);
      const conn = await rig.connect(h);
      // 6 × 100 ms with a 250 ms timeout: only progress keeps it alive.
      const progress: UpstreamProgress[] = [];
      const ok = await conn.callTool('slow', { steps: 6, intervalMs: 100 }, { timeoutMs: 250, onprogress: (p) => progress.push(p) });
      assert.equal(text(ok), 'slow done after 6 steps');
      assert.deepEqual(
        progress.map((p) => p.progress),
        [1, 2, 3, 4, 5, 6],
      );
      assert.deepEqual(progress[5], { progress: 6, total: 6, message: 'step 6' });

      // Without progress the same deadline expires: E_UPSTREAM_TIMEOUT, and the SDK cancels upstream.
      const t0 = Date.now();
      await assert.rejects(
        conn.callTool('slow', { steps: 6, intervalMs: 100 }, { timeoutMs: 250 }),
        isWardenError(ErrorCodes.UPSTREAM_TIMEOUT),
      );
      const took = Date.now() - t0;
      assert.ok(took >= 240 && took < 600, `timeout after ${took} ms`);
      assert.ok(await waitFor(() => rig.stderrLines().filter((l) => l.startsWith('slow cancelled')).length === 1, { timeoutMs: 1_000 }));

      // Abort: rejects with the signal's reason; the upstream sees notifications/cancelled.
      const controller = new AbortController();
      const call = conn.callTool('slow', { steps: 50, intervalMs: 100 }, { timeoutMs: 10_000, signal: controller.signal });
      setTimeout(() => controller.abort(new Error('stop it')), 150);
      await assert.rejects(call, /stop it/);
      assert.ok(await waitFor(() => rig.stderrLines().filter((l) => l.startsWith('slow cancelled')).length === 2, { timeoutMs: 1_000 }));

      // An already-aborted signal never reaches the server.
      const pre = AbortSignal.abort(new Error('too late'));
      await assert.rejects(conn.callTool('slow', { steps: 1 }, { timeoutMs: 1_000, signal: pre }), /too late/);

      // A long-lived signal shared by many calls keeps no listeners (the SDK never removes its own).
      const shared = new AbortController();
      for (let i = 0; i < 20; i++) await conn.callTool('echo', { message: String(i) }, { timeoutMs: 5_000, signal: shared.signal });
      assert.equal(getEventListeners(shared.signal, 'abort').length, 0);
      assert.equal(text(await conn.callTool('echo', { message: 'alive' }, { timeoutMs: 5_000 })), 'Echo: alive');
      await conn.close();
      assert.equal((await h.stop()).escalation, 'eof');
    }));

  it('maps upstream JSON-RPC errors and forwards tools/list_changed', () =>
    withRig('errors', async (rig) => {
      const h = await rig.spawn([fixture('echo-server')]);
      const conn = await rig.connect(h);
      await assert.rejects(
        conn.callTool('no_such_tool', {}, { timeoutMs: 5_000 }),
        isWardenError(ErrorCodes.UPSTREAM_ERROR, (err) => {
          assert.equal(err.detail?.upstream?.code, -32602);
          assert.match(err.message, /unknown tool no_such_tool/);
        }),
      );
      let changes = 0;
      const unsubscribe = conn.onToolsChanged(() => changes++);
      await conn.callTool('notify_tools_changed', {}, { timeoutMs: 5_000 });
      assert.ok(await waitFor(() => changes === 1, { timeoutMs: 1_000 }));
      unsubscribe();
      await conn.callTool('notify_tools_changed', {}, { timeoutMs: 5_000 });
      await conn.callTool('echo', { message: 'flush' }, { timeoutMs: 5_000 });
      assert.equal(changes, 1);
      await conn.close();
      await assert.rejects(conn.callTool('echo', { message: 'x' }, { timeoutMs: 1_000 }), isWardenError(ErrorCodes.UPSTREAM_ERROR));
    }));

  it('gives up on a server that never answers initialize (E_INIT_TIMEOUT) and on abort', () =>
    withRig('hang', async (rig) => {
      const h = await rig.spawn([fixture('hang-initialize-server')]);
      const t0 = Date.now();
      await assert.rejects(rig.connect(h, { requestTimeoutMs: 300 }), isWardenError(ErrorCodes.INIT_TIMEOUT));
      const took = Date.now() - t0;
      assert.ok(took < 1_000, `init timeout took ${took} ms`);
      // connect closed the transport (stdin EOF), so the group empties on its own.
      const report = await h.stop();
      assert.equal(report.escalation, 'eof');

      const h2 = await rig.spawn([fixture('hang-initialize-server')]);
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('shutting down')), 100);
      await assert.rejects(rig.connect(h2, { signal: controller.signal }), /shutting down/);
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
      await h2.stop();
    }));

  it('reports a crashing upstream: onClose fires, the pending call fails, the group settles', () =>
    withRig('crash', async (rig) => {
      const h = await rig.spawn([fixture('crash-after-server')], { CRASH_AFTER_MS: '700' });
      const conn = await rig.connect(h);
      const closed = new Promise<void>((r) => conn.onClose(r));
      const pending = conn.callTool('slow', { steps: 100, intervalMs: 100 }, { timeoutMs: 10_000 });
      await assert.rejects(
        pending,
        isWardenError(ErrorCodes.UPSTREAM_ERROR, (err) => {
          assert.equal(err.detail?.upstream?.code, -32000);
          assert.equal(err.detail?.connectionClosed, true);
        }),
      );
      await closed;
      assert.deepEqual(await h.exited, { code: 3, signal: null });
      assert.ok(await waitFor(() => rig.ledger.size() === 0, { timeoutMs: 1_000 }), 'crashed group not settled');
      let lateClose = false;
      conn.onClose(() => (lateClose = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(lateClose, true);
      await conn.close();
    }));

  it('keeps answering calls during a stderr flood while dropping lines', () =>
    withRig('flood', async (rig) => {
      const h = await rig.spawn([fixture('stderr-flood-server')], {}, { stderrLinesPerSecond: 100 });
      const conn = await rig.connect(h);
      const t0 = Date.now();
      let calls = 0;
      let maxLatency = 0;
      const dropped: number[] = [];
      while (Date.now() - t0 < 2_000) {
        const c0 = Date.now();
        assert.equal(text(await conn.callTool('echo', { message: `m${calls}` }, { timeoutMs: 2_000 })), `Echo: m${calls}`);
        maxLatency = Math.max(maxLatency, Date.now() - c0);
        calls++;
        if (calls % 20 === 0) dropped.push(h.stderrDropped());
        await new Promise((r) => setTimeout(r, 5));
      }
      const elapsedS = (Date.now() - t0) / 1000;
      assert.ok(calls >= 50, `only ${calls} calls in 2 s`);
      assert.ok(dropped.length >= 2 && dropped.at(-1)! > dropped[0]!, `dropped counter not increasing: ${dropped}`);
      const ticks = rig.stderrLines().filter((l) => l.startsWith('tick ')).length;
      const logged = rig.stderrLines().length;
      assert.ok(logged <= 100 * (elapsedS + 2), `${logged} stderr lines logged in ${elapsedS} s`);
      assert.ok(
        rig.warnings().some((w) => /^\d+ stderr lines dropped$/.test(w)),
        'no drop summary',
      );
      for (const l of rig.stderrLines()) assert.ok(Buffer.byteLength(l) <= SETTINGS.stderrMaxLineBytes, 'untruncated line');
      await conn.close();
      const report = await h.stop();
      console.log(
        `[measure] stderr flood: ${calls} calls in ${elapsedS.toFixed(1)} s, max latency ${maxLatency} ms, ` +
          `${h.stderrDropped()} lines dropped, ${logged} logged (${ticks} tick lines); stop ${report.escalation} in ${report.durationMs} ms`,
      );
    }));
});

describe('process stdio transport', () => {
  it('reports unparsable lines and keeps going; close detaches and reports once', () =>
    withRig('transport', async (rig) => {
      const script =
        'process.stdout.write(\'not json\\n{"jsonrpc":"2.0","method":"notifications/hello"}\\n{"half":\');' +
        "process.stdin.on('data', (d) => process.stdout.write(d));";
      const h = await rig.spawn(['-e', script]);
      const transport = new ProcessStdioTransport(h);
      const messages: JSONRPCMessage[] = [];
      const errors: Error[] = [];
      let closes = 0;
      transport.onmessage = (m) => messages.push(m);
      transport.onerror = (e) => errors.push(e);
      transport.onclose = () => closes++;
      await transport.start();
      assert.ok(await waitFor(() => messages.length === 1, { timeoutMs: 3_000 }));
      assert.equal(errors.length, 1);
      assert.deepEqual(messages[0], { jsonrpc: '2.0', method: 'notifications/hello' });
      // The echoing child appends our next message to the half line: one more unparsable line (sent
      // big, to go through backpressure); the message after that arrives intact.
      await transport.send({ jsonrpc: '2.0', method: 'x', params: { pad: 'p'.repeat(1_000_000) } } as JSONRPCMessage);
      await transport.send({ jsonrpc: '2.0', method: 'y' } as JSONRPCMessage);
      assert.ok(await waitFor(() => messages.length === 2, { timeoutMs: 3_000 }));
      assert.equal(errors.length, 2);
      assert.equal((messages[1] as { method?: string }).method, 'y');
      await transport.close();
      await transport.close();
      assert.equal(closes, 1);
      assert.equal(h.stdout.listenerCount('data'), 0);
      await assert.rejects(transport.send({ jsonrpc: '2.0', method: 'z' }), /Not connected/);
      // close() ended stdin: the echoing child exits on EOF.
      assert.equal((await h.stop()).escalation, 'eof');
    }));
});
