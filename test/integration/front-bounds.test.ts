/**
 * Bounded under abuse, the MCP side, against real daemons and real upstream processes:
 * the amplifying batch gets a bounded answer, batches follow the negotiated protocol version, an
 * `initialize` inside a batch is refused, a 50 MB upstream reply fails its call with a clear code
 * (the server and others keep serving), sustained stdout garbage fails that server with a clear code, 5,000-deep arguments get a clear error, and a
 * single 8 MB answer is still served. The amplification's time and peak RSS are measured by
 * bench/amplify-batch.ts (docs/benchmarks.md), not asserted here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startTestDaemon, fixture, NODE, type TestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';

interface Reply {
  status: number;
  sessionId: string | undefined;
  text: string;
  bytes: number;
  ms: number;
}

function post(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<Reply> {
  const t0 = Date.now();
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const buf = Buffer.concat(parts);
          const sid = res.headers['mcp-session-id'];
          resolve({
            status: res.statusCode ?? 0,
            sessionId: typeof sid === 'string' ? sid : undefined,
            text: buf.toString('utf8'),
            bytes: buf.length,
            ms: Date.now() - t0,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)));
    req.end(raw);
  });
}

/** A session on `url` negotiated at `protocolVersion`; returns the headers its requests carry. */
async function session(url: string, protocolVersion: string): Promise<Record<string, string>> {
  const init = await post(url, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 'front-bounds', version: '1' } },
  });
  assert.equal(init.status, 200, init.text);
  assert.equal(JSON.parse(init.text).result.protocolVersion, protocolVersion);
  const headers = { 'mcp-session-id': init.sessionId!, 'mcp-protocol-version': protocolVersion };
  const ack = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  assert.equal(ack.status, 202);
  return headers;
}

function call(id: number, name: string, args: unknown): unknown {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
}

describe('MCP front bounds', () => {
  let td: TestDaemon;
  let url: string;

  before(async () => {
    td = await startTestDaemon({
      big: { command: NODE, args: [fixture('big-payload-server')], env: { BIG_TOOLS_BYTES: '4000000' } },
      other: { command: NODE, args: [fixture('echo-server')] },
    });
    url = td.daemon.mcpUrl;
    await td.waitForState('big', 'running', 20_000);
    await td.waitForState('other', 'running', 20_000);
  });
  after(async () => {
    await td?.close();
  });

  it('answers a batch of 100 tools/list of a 4 MB list within mcpMaxResponseBytes, in order, the rest as E_RESPONSE_TOO_LARGE', async () => {
    const headers = await session(url, '2025-03-26');
    const one = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, headers);
    assert.ok(one.bytes > 4_000_000, `one tools/list is ${one.bytes} bytes`);
    const batch = Array.from({ length: 100 }, (_, k) => ({ jsonrpc: '2.0', id: 100 + k, method: 'tools/list' }));
    const reply = await post(url, batch, headers, 30_000);
    console.log(`# amplifying batch: ${reply.bytes} bytes in ${reply.ms} ms (one tools/list: ${one.bytes} bytes)`);
    assert.equal(reply.status, 200);
    assert.ok(reply.bytes <= 32 * 1024 * 1024 + 64 * 1024, `reply of ${reply.bytes} bytes (mcpMaxResponseBytes: 32 MiB)`);
    const answers = JSON.parse(reply.text) as Array<{
      id: number;
      result?: { tools: unknown[] };
      error?: { code: number; data: { code: string } };
    }>;
    assert.deepEqual(
      answers.map((a) => a.id),
      batch.map((m) => m.id),
    );
    const served = answers.filter((a) => a.result).length;
    assert.ok(served >= 1, 'at least the first answers are served');
    for (const a of answers.slice(served)) {
      assert.equal(a.error?.data.code, 'E_RESPONSE_TOO_LARGE', JSON.stringify(a).slice(0, 300));
      assert.equal(a.error?.code, -32603);
    }
    // The session goes on serving.
    const again = await post(url, { jsonrpc: '2.0', id: 500, method: 'tools/list' }, headers);
    assert.equal(again.status, 200);
    assert.ok(Math.abs(again.bytes - one.bytes) < 16, `${again.bytes} vs ${one.bytes} bytes`);
  });

  it('serves a single answer of 8 MB', async () => {
    const headers = await session(url, '2025-06-18');
    const reply = await post(url, call(1, 'big__big_reply', { bytes: 8_000_000 }), headers);
    assert.equal(reply.status, 200);
    const text = (JSON.parse(reply.text) as { result: { content: Array<{ text: string }> } }).result.content[0]!.text;
    assert.equal(text.length, 8_000_000);
  });

  it('refuses a batch on a session negotiated at 2025-06-18 (no batching there), serves single messages', async () => {
    const headers = await session(url, '2025-06-18');
    const batch = [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, call(2, 'other__echo', { message: 'x' })];
    const refused = await post(url, batch, headers);
    assert.equal(refused.status, 400, refused.text);
    const body = JSON.parse(refused.text) as { error: { code: number; message: string; data: { code: string } } };
    assert.equal(body.error.code, -32600);
    assert.equal(body.error.data.code, 'E_BATCH_REFUSED');
    assert.match(body.error.message, /2025-06-18/);
    const single = await post(url, call(3, 'other__echo', { message: 'still here' }), headers);
    assert.match(single.text, /Echo: still here/);
    // 2025-03-26 still has batches.
    const older = await session(url, '2025-03-26');
    const ok = await post(url, batch, older);
    assert.equal(ok.status, 200, ok.text);
    assert.equal((JSON.parse(ok.text) as unknown[]).length, 2);
  });

  it('refuses a one-element [initialize] batch (E_BATCH_REFUSED) and opens no session', async () => {
    const sessions = () => (td.daemon.health() as { sessions: number }).sessions;
    const open = sessions();
    const reply = await post(url, [
      {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      },
    ]);
    assert.equal(reply.status, 400, reply.text);
    const body = JSON.parse(reply.text) as { error: { code: number; data: { code: string } } };
    assert.equal(body.error.code, -32600);
    assert.equal(body.error.data.code, 'E_BATCH_REFUSED');
    assert.equal(reply.sessionId, undefined);
    assert.ok(await waitFor(() => sessions() === open, { timeoutMs: 2_000, intervalMs: 20 }), `sessions: ${sessions()}, before ${open}`);
  });

  it('refuses arguments nested 5,000 deep with E_NESTING_TOO_DEEP (-32600) and keeps serving', async () => {
    const headers = await session(url, '2025-06-18');
    const deep = `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`;
    const raw = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"other__echo","arguments":{"message":"x","deep":${deep}}}}`;
    const reply = await post(url, raw, headers);
    assert.equal(reply.status, 400, reply.text);
    const body = JSON.parse(reply.text) as { error: { code: number; message: string; data: { code: string } } };
    assert.equal(body.error.code, -32600);
    assert.equal(body.error.data.code, 'E_NESTING_TOO_DEEP');
    assert.doesNotMatch(body.error.message, /call stack/);
    const fine = await post(url, call(8, 'other__echo', { message: 'after deep' }), headers);
    assert.match(fine.text, /Echo: after deep/);
  });

  it('a 50 MB upstream reply fails that call with E_UPSTREAM_MESSAGE_TOO_LARGE; the server and the others serve on', async () => {
    const pid = td.view('big')!.pid;
    const headers = await session(url, '2025-06-18');
    const reply = await post(url, call(1, 'big__big_reply', { bytes: 50_000_000 }), headers, 60_000);
    assert.equal(reply.status, 200);
    const body = JSON.parse(reply.text) as { error?: { code: number; message: string; data: { code: string } } };
    assert.equal(body.error?.data.code, 'E_UPSTREAM_MESSAGE_TOO_LARGE', reply.text.slice(0, 500));
    assert.equal(body.error?.code, -32603);
    assert.match(body.error!.message, /upstreamMaxMessageBytes/);
    assert.doesNotMatch(body.error!.message, /Connection closed/);
    const other = await post(url, call(2, 'other__echo', { message: 'unaffected' }), headers);
    assert.match(other.text, /Echo: unaffected/);
    // Only that answer was dropped: the same server process answers the next call.
    const same = await post(url, call(3, 'big__echo', { message: 'still up' }), headers);
    assert.match(same.text, /Echo: still up/);
    const v = td.view('big')!;
    assert.equal(v.state, 'running');
    assert.equal(v.pid, pid, 'not restarted');
  });
});

/** Sends a POST and returns its response stream paused: nothing is read until `read()` is called. */
function pausedPost(url: string, body: unknown, headers: Record<string, string>): Promise<{ read(): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      },
      (res) => {
        res.pause();
        resolve({
          read: () =>
            new Promise<string>((done, fail) => {
              const parts: Buffer[] = [];
              res.on('data', (c: Buffer) => parts.push(c));
              res.on('end', () => done(Buffer.concat(parts).toString('utf8')));
              res.on('error', fail);
              res.resume();
            }),
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('bytes in flight per session (mcpMaxBufferedBytes)', () => {
  let td: TestDaemon;
  let url: string;

  before(async () => {
    td = await startTestDaemon(
      { big: { command: NODE, args: [fixture('big-payload-server')], env: { BIG_TOOLS_BYTES: '8000000' } } },
      { mcpMaxBufferedBytes: 1024 },
    );
    url = td.daemon.mcpUrl;
    await td.waitForState('big', 'running', 20_000);
  });
  after(async () => {
    await td?.close();
  });

  it('holds answers back while the client does not read, and delivers every one once it does (back-pressure, no refusal)', async () => {
    const headers = await session(url, '2025-06-18');
    const pending = await Promise.all(
      Array.from({ length: 4 }, (_, k) => pausedPost(url, { jsonrpc: '2.0', id: 10 + k, method: 'tools/list' }, headers)),
    );
    await new Promise((r) => setTimeout(r, 300));
    const texts = await Promise.all(pending.map((p) => p.read()));
    for (const [k, text] of texts.entries()) {
      const body = JSON.parse(text) as { id: number; result: { tools: unknown[] } };
      assert.equal(body.id, 10 + k);
      assert.ok(body.result.tools.length > 40, `answer ${k}: ${text.slice(0, 200)}`);
    }
  });

  it('is not a running total: a long session keeps being served', async () => {
    const headers = await session(url, '2025-06-18');
    for (let i = 0; i < 200; i++) {
      const r = await post(url, call(1_000 + i, 'big__echo', { message: `n${i}` }), headers);
      assert.match(r.text, new RegExp(`Echo: n${i}"`));
    }
  });
});

describe('an upstream spewing garbage on stdout', () => {
  it('is failed as a protocol failure (E_UPSTREAM_PROTOCOL) beyond upstreamGarbageLinesMax', async () => {
    const td = await startTestDaemon(
      { spew: { command: NODE, args: [fixture('stdout-garbage-server')] }, other: { command: NODE, args: [fixture('echo-server')] } },
      { upstreamGarbageLinesMax: 200, upstreamGarbageWindowMs: 10_000, restartBackoffInitialMs: 5_000, restartBackoffMaxMs: 5_000 },
    );
    try {
      const v = await td.waitForState('spew', (s) => s.lastError?.code === 'E_UPSTREAM_PROTOCOL', 15_000);
      assert.match(v.lastError!.message, /upstreamGarbageLinesMax/);
      assert.notEqual(v.state, 'running');
      await td.waitForState('other', 'running', 10_000);
    } finally {
      await td.close();
    }
  });
});
