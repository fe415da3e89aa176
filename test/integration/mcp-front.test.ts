/**
 * The MCP front over a real node:http server, driven by the SDK's real Client +
 * StreamableHTTPClientTransport (and raw HTTP where the wire itself is under test).
 * The ToolCatalog is an in-test fake: the catalog is the front's unit boundary.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { pino } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCodes, WardenError, type ErrorCode } from '../../src/core/error-codes.js';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { sleep } from '../../src/core/clock.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';
import type { CatalogCallOptions, CatalogCallResult, CatalogTool, ToolCatalog } from '../../src/core/tool-catalog.js';
import { startHttpServer, type HttpServerHandle } from '../../src/adapters/http/http-server.js';
import { createMcpFront, type McpFront } from '../../src/adapters/mcp/mcp-front.js';
import { checkBearer, checkHostHeader, checkOrigin, isLoopbackHost, loopbackAllowedHosts } from '../../src/adapters/http/request-guards.js';

const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

// ---- fake catalog ---------------------------------------------------------------------------------

/** Deliberately unusual key order and every JSON Schema feature a rewrite would likely disturb. */
const COMPLEX_SCHEMA: Record<string, unknown> = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $defs: {
    point: {
      type: 'object',
      properties: { x: { type: 'number' }, y: { type: 'number' } },
      required: ['x', 'y'],
      additionalProperties: false,
    },
  },
  type: 'object',
  properties: {
    target: { oneOf: [{ $ref: '#/$defs/point' }, { type: 'string', pattern: '^[a-z]+$' }] },
    mode: { enum: ['a', 'b'], default: 'a', description: 'ünïcödé ✓' },
    limit: { anyOf: [{ type: 'null' }, { type: 'integer', minimum: 0, maximum: 10 }] },
  },
  required: ['target'],
  additionalProperties: false,
  'x-vendor-extension': { keep: [1, 2.5, null, true] },
};

const TOOLS: CatalogTool[] = [
  { name: 'demo__complex', description: 'complex schema', inputSchema: COMPLEX_SCHEMA, annotations: { readOnlyHint: true } },
  { name: 'demo__echo', description: 'echoes', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
  { name: 'demo__progress', inputSchema: { type: 'object' } },
  { name: 'demo__slow', inputSchema: { type: 'object' } },
];

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

class FakeCatalog implements ToolCatalog {
  readonly listeners = new Set<() => void>();
  readonly calls: { name: string; args: Record<string, unknown> | undefined; opts: CatalogCallOptions }[] = [];
  slowStarted = deferred<AbortSignal>();

  listTools(): CatalogTool[] {
    return TOOLS;
  }

  // Tools only: the rest of the contract is exercised through a real daemon (mcp-full.test.ts).
  hasServer(): boolean {
    return false;
  }
  capabilities() {
    return {};
  }
  instructions(): undefined {
    return undefined;
  }
  async listResources() {
    return [];
  }
  async listResourceTemplates() {
    return [];
  }
  async listPrompts() {
    return [];
  }
  async route(): Promise<Record<string, unknown>> {
    throw new Error('not routed in this test');
  }
  async setLoggingLevel(): Promise<void> {}
  rootsChanged(): void {}
  onEvent(): () => void {
    return () => undefined;
  }

  /** Aborts seen by demo__listen's listener after its call had ended. */
  lateAborts = 0;

  async callTool(name: string, args: Record<string, unknown> | undefined, opts: CatalogCallOptions): Promise<CatalogCallResult> {
    this.calls.push({ name, args, opts });
    if (name.startsWith('fail__')) {
      const code = name.slice('fail__'.length) as ErrorCode;
      const upstream = { code: -32050, message: `failing with ${code}` };
      throw new WardenError(code, `failing with ${code}`, code === ErrorCodes.UPSTREAM_ERROR ? { upstream } : undefined);
    }
    switch (name) {
      case 'demo__echo':
      case 'demo__complex':
        return { content: [{ type: 'text', text: JSON.stringify(args ?? {}) }], extraField: 'kept' };
      case 'demo__progress':
        for (let i = 1; i <= 3; i++) {
          opts.onprogress?.({ progress: i, total: 3, message: `step ${i}` });
          await new Promise((r) => setTimeout(r, 5));
        }
        return { content: [{ type: 'text', text: 'done' }] };
      case 'demo__slow':
        this.slowStarted.resolve(opts.signal);
        return await new Promise((_, reject) => {
          const onAbort = () => reject(new WardenError(ErrorCodes.SHUTTING_DOWN, 'aborted'));
          if (opts.signal.aborted) onAbort();
          else opts.signal.addEventListener('abort', onAbort, { once: true });
        });
      case 'demo__listen':
        // As the SDK's request() does: an abort listener that is never removed.
        opts.signal.addEventListener('abort', () => this.lateAborts++, { once: true });
        return { content: [{ type: 'text', text: 'listening' }] };
      case 'demo__sleep':
        await new Promise((r) => setTimeout(r, Number(args?.['ms'] ?? 0)));
        return { content: [{ type: 'text', text: 'slept' }] };
      case 'demo__plain_error':
        throw new Error('secret internal detail');
      case 'demo__unserializable':
        // JSON.stringify throws on a BigInt (as it does beyond the string limit or the stack).
        return { content: [{ type: 'text', text: 'x' }], big: BigInt(1) } as unknown as CatalogCallResult;
      default:
        throw new WardenError(ErrorCodes.UNKNOWN_TOOL, `no tool ${name}`);
    }
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(): void {
    for (const l of this.listeners) l();
  }
}

// ---- fixture --------------------------------------------------------------------------------------

interface Fixture {
  http: HttpServerHandle;
  front: McpFront;
  ledger: ResourceLedger;
  catalog: FakeCatalog;
  url: string;
  close(): Promise<void>;
}

async function setup(
  opts: {
    ttl?: number;
    maxSessions?: number;
    token?: string;
    host?: string;
    keepAliveTimeoutMs?: number;
    allowedHosts?: string[];
    keepAliveMs?: number;
  } = {},
): Promise<Fixture> {
  const ledger = new ResourceLedger();
  const catalog = new FakeCatalog();
  const http = await startHttpServer({
    host: opts.host ?? '127.0.0.1',
    port: 0,
    logger,
    ledger,
    maxBodyBytes: 1024 * 1024,
    closeGraceMs: 300,
    ...(opts.keepAliveTimeoutMs ? { keepAliveTimeoutMs: opts.keepAliveTimeoutMs } : {}),
  });
  const front = createMcpFront({
    catalog,
    settings: {
      sessionIdleTtlMs: opts.ttl ?? 60_000,
      maxSessions: opts.maxSessions ?? 64,
      toolCallTimeoutMs: 30_000,
      mcpKeepAliveMs: opts.keepAliveMs ?? DEFAULT_SETTINGS.mcpKeepAliveMs,
    },
    logger,
    ledger,
    serverInfo: { name: 'mcp-warden-test', version: '0.0.0' },
    allowedHosts: opts.allowedHosts ?? loopbackAllowedHosts(http.port),
    maxBodyBytes: 64 * 1024,
    ...(opts.token ? { auth: { bearerToken: opts.token } } : {}),
  });
  for (const m of ['GET', 'POST', 'DELETE']) http.route(m, '/mcp', front.handle);
  let closed = false;
  return {
    http,
    front,
    ledger,
    catalog,
    url: `${http.url}/mcp`,
    async close() {
      if (closed) return;
      closed = true;
      await front.close();
      await http.close();
    },
  };
}

interface Connected {
  client: Client;
  transport: StreamableHTTPClientTransport;
  /** Resolves when the client's standalone GET SSE stream is open (server notifications can arrive). */
  getStreamOpen: Promise<void>;
}

async function connect(url: string, headers?: Record<string, string>): Promise<Connected> {
  const getOpen = deferred();
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    ...(headers ? { requestInit: { headers } } : {}),
    fetch: async (input, init) => {
      const r = await fetch(input, init);
      if ((init?.method ?? 'GET') === 'GET' && r.ok) getOpen.resolve();
      return r;
    },
  });
  const client = new Client({ name: 'test-client', version: '1.0.0' });
  client.onerror = () => {};
  await client.connect(transport);
  return { client, transport, getStreamOpen: getOpen.promise };
}

async function disconnect(c: Connected, terminate = true): Promise<void> {
  if (terminate) await c.transport.terminateSession().catch(() => {});
  await c.client.close();
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** node:http without keep-alive, so the raw requests leave no pooled sockets behind. */
function raw(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? 'POST', headers: init.headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function sseMessages(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice('data: '.length)) as Record<string, unknown>);
}

/** The JSON-RPC messages of a POST's answer, whichever way it came: one JSON body or an SSE stream. */
function rpcMessages(res: RawResponse): Record<string, unknown>[] {
  const type = String(res.headers['content-type']);
  if (type.startsWith('text/event-stream')) return sseMessages(res.text);
  assert.match(type, /^application\/json/, `unexpected content-type ${type}`);
  const body = JSON.parse(res.text) as Record<string, unknown> | Record<string, unknown>[];
  return Array.isArray(body) ? body : [body];
}

/** Initialize a session by hand (no GET stream is opened). Returns the session id. */
/** A session negotiated at `protocolVersion` (batches need 2025-03-26: later versions have none). */
async function rawSession(
  url: string,
  extraHeaders: Record<string, string> = {},
  protocolVersion: string = LATEST_PROTOCOL_VERSION,
): Promise<string> {
  const init = await raw(url, {
    headers: { ...MCP_HEADERS, ...extraHeaders },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    }),
  });
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  assert.equal(typeof sid, 'string');
  const note = await raw(url, {
    headers: { ...MCP_HEADERS, ...extraHeaders, 'mcp-session-id': sid as string, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  assert.equal(note.status, 202, note.text);
  return sid as string;
}

function rawRpc(url: string, sid: string, id: number, method: string, params: Record<string, unknown>): Promise<RawResponse> {
  return raw(url, {
    headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
  });
}

async function pollUntil(cond: () => boolean, timeoutMs: number, what: string, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

function resourceCounts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

function withinBaseline(baseline: Map<string, number>): boolean {
  for (const [k, n] of resourceCounts()) if (n > (baseline.get(k) ?? 0)) return false;
  return true;
}

async function rejectsWithMcp(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof McpError, `expected McpError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

// ---- tests ----------------------------------------------------------------------------------------

describe('mcp front: tools', () => {
  let fx: Fixture;
  let c: Connected;
  before(async () => {
    fx = await setup();
    c = await connect(fx.url);
  });
  after(async () => {
    await disconnect(c);
    await fx.close();
  });

  it('lists tools with upstream schemas unchanged (client view and wire bytes)', async () => {
    const listed = await c.client.listTools();
    assert.deepEqual(
      listed.tools.map((t) => t.name),
      TOOLS.map((t) => t.name),
    );
    assert.deepStrictEqual(listed.tools[0]!.inputSchema, COMPLEX_SCHEMA);

    // The SDK client re-parses (and reorders keys); the wire must carry the catalog's bytes.
    const sid = await rawSession(fx.url);
    const res = await rawRpc(fx.url, sid, 2, 'tools/list', {});
    assert.equal(res.status, 200);
    const msg = rpcMessages(res).find((m) => m['id'] === 2)!;
    const wireTools = (msg['result'] as { tools: unknown[] }).tools;
    assert.equal(JSON.stringify(wireTools), JSON.stringify(TOOLS));
  });

  it('calls a tool and passes the result through', async () => {
    const r = await c.client.callTool({ name: 'demo__echo', arguments: { text: 'hi' } });
    assert.deepEqual(r.content, [{ type: 'text', text: '{"text":"hi"}' }]);
    const last = fx.catalog.calls.at(-1)!;
    assert.equal(last.name, 'demo__echo');
    assert.deepEqual(last.args, { text: 'hi' });
    assert.equal(last.opts.onprogress, undefined, 'no progressToken → no onprogress');
    assert.ok(last.opts.signal instanceof AbortSignal);
  });

  it('relays progress with the client progressToken', async () => {
    const seen: { progress: number; total?: number; message?: string }[] = [];
    const r = await c.client.callTool({ name: 'demo__progress', arguments: {} }, undefined, { onprogress: (p) => seen.push(p) });
    assert.deepEqual(r.content, [{ type: 'text', text: 'done' }]);
    assert.deepEqual(
      seen.map((p) => [p.progress, p.total, p.message]),
      [
        [1, 3, 'step 1'],
        [2, 3, 'step 2'],
        [3, 3, 'step 3'],
      ],
    );

    // On the wire, with a string token of the client's choosing.
    const sid = await rawSession(fx.url);
    const res = await rawRpc(fx.url, sid, 7, 'tools/call', { name: 'demo__progress', arguments: {}, _meta: { progressToken: 'tok-abc' } });
    const msgs = rpcMessages(res);
    const progress = msgs.filter((m) => m['method'] === 'notifications/progress');
    assert.equal(progress.length, 3);
    for (const p of progress) assert.equal((p['params'] as { progressToken: unknown }).progressToken, 'tok-abc');
    assert.ok(msgs.some((m) => m['id'] === 7 && m['result']));
  });

  it('passes the tools/call result through without SDK re-validation', async () => {
    const sid = await rawSession(fx.url);
    const res = await rawRpc(fx.url, sid, 3, 'tools/call', { name: 'demo__echo', arguments: {} });
    const msg = rpcMessages(res).find((m) => m['id'] === 3)!;
    assert.equal((msg['result'] as Record<string, unknown>)['extraField'], 'kept');
  });

  it('aborts the catalog signal when the client cancels', async () => {
    fx.catalog.slowStarted = deferred<AbortSignal>();
    const ac = new AbortController();
    const call = c.client.callTool({ name: 'demo__slow', arguments: {} }, undefined, { signal: ac.signal });
    const signal = await fx.catalog.slowStarted.promise;
    assert.equal(signal.aborted, false);
    ac.abort(new Error('user cancelled'));
    await assert.rejects(call);
    await pollUntil(() => signal.aborted, 2000, 'catalog signal aborted after cancel');
    // The session is still usable.
    const r = await c.client.callTool({ name: 'demo__echo', arguments: { text: 'after' } });
    assert.ok(Array.isArray(r.content));
  });

  it('reuses the abort controller of a finished call only when nothing listens to it any more', async () => {
    const sid = await rawSession(fx.url);
    const from = fx.catalog.calls.length;
    await rawRpc(fx.url, sid, 31, 'tools/call', { name: 'demo__echo', arguments: {} });
    await rawRpc(fx.url, sid, 32, 'tools/call', { name: 'demo__echo', arguments: {} });
    await rawRpc(fx.url, sid, 33, 'tools/call', { name: 'demo__listen', arguments: {} });
    fx.catalog.slowStarted = deferred<AbortSignal>();
    const slow = rawRpc(fx.url, sid, 34, 'tools/call', { name: 'demo__slow', arguments: {} });
    const slowSignal = await fx.catalog.slowStarted.promise;
    await raw(fx.url, {
      headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 34, reason: 'test' } }),
    });
    await pollUntil(() => slowSignal.aborted, 2000, 'slow call aborted');
    await rawRpc(fx.url, sid, 35, 'tools/call', { name: 'demo__echo', arguments: {} });
    void slow.catch(() => undefined);
    const signals = fx.catalog.calls.slice(from).map((c) => c.opts.signal);
    assert.equal(signals[1], signals[0], 'an ended call without listeners lends its controller to the next');
    assert.equal(signals[2], signals[0], 'demo__listen got it too');
    assert.notEqual(signals[3], signals[2], 'a controller something still listens to is not reused');
    assert.notEqual(signals[4], slowSignal, 'an aborted controller is not reused');
    assert.equal(signals[4]!.aborted, false);
    assert.equal(fx.catalog.lateAborts, 0, "the cancellation did not reach an ended call's listener");
  });

  it('maps every WardenError code to a distinct MCP error with data.code', async () => {
    const cases: [string, number, string][] = [
      ['nope__missing', -32602, ErrorCodes.UNKNOWN_TOOL],
      [`fail__${ErrorCodes.SERVER_UNAVAILABLE}`, -32003, ErrorCodes.SERVER_UNAVAILABLE],
      [`fail__${ErrorCodes.QUARANTINED}`, -32004, ErrorCodes.QUARANTINED],
      [`fail__${ErrorCodes.UPSTREAM_TIMEOUT}`, -32001, ErrorCodes.UPSTREAM_TIMEOUT],
      [`fail__${ErrorCodes.UPSTREAM_ERROR}`, -32050, ErrorCodes.UPSTREAM_ERROR],
      [`fail__${ErrorCodes.SHUTTING_DOWN}`, -32005, ErrorCodes.SHUTTING_DOWN],
      [`fail__${ErrorCodes.SPAWN_FAILED}`, -32603, ErrorCodes.SPAWN_FAILED],
      ['demo__plain_error', -32603, ErrorCodes.INTERNAL],
    ];
    for (const [name, code, dataCode] of cases) {
      const err = await rejectsWithMcp(c.client.callTool({ name, arguments: {} }));
      assert.equal(err.code, code, name);
      assert.deepEqual(err.data, { code: dataCode }, name);
    }
    const unknown = await rejectsWithMcp(c.client.callTool({ name: 'nope__missing', arguments: {} }));
    assert.match(unknown.message, /Unknown tool: nope__missing$/);
    assert.doesNotMatch(unknown.message, /MCP error -32602: MCP error/);
    const upstream = await rejectsWithMcp(c.client.callTool({ name: `fail__${ErrorCodes.UPSTREAM_ERROR}`, arguments: {} }));
    assert.match(upstream.message, /failing with E_UPSTREAM_ERROR/);
    const internal = await rejectsWithMcp(c.client.callTool({ name: 'demo__plain_error', arguments: {} }));
    assert.doesNotMatch(internal.message, /secret/);
  });

  it('rejects malformed tools/call params with InvalidParams', async () => {
    const sid = await rawSession(fx.url);
    const res = await rawRpc(fx.url, sid, 4, 'tools/call', { name: 42 });
    const msg = rpcMessages(res).find((m) => m['id'] === 4)!;
    assert.equal((msg['error'] as { code: number }).code, -32602);
  });

  it('delivers notifications/tools/list_changed when the catalog changes', async () => {
    const got = deferred();
    c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => got.resolve());
    await c.getStreamOpen;
    fx.catalog.emit();
    await Promise.race([
      got.promise,
      new Promise((_, rej) => setTimeout(() => rej(new Error('no list_changed within 3 s')), 3000).unref()),
    ]);
  });
});

describe('mcp front: request guards and body handling', () => {
  let fx: Fixture;
  before(async () => {
    fx = await setup();
  });
  after(() => fx.close());

  it('refuses a foreign Host with 403 E_FORBIDDEN_HOST', async () => {
    const res = await raw(fx.url, { headers: { ...MCP_HEADERS, host: `evil.example:${fx.http.port}` }, body: '{}' });
    assert.equal(res.status, 403);
    const body = JSON.parse(res.text) as { error: { data: { code: string } } };
    assert.equal(body.error.data.code, ErrorCodes.FORBIDDEN_HOST);
  });

  it('accepts localhost and [::1] Host values', async () => {
    for (const host of [`localhost:${fx.http.port}`, `[::1]:${fx.http.port}`, `127.0.0.1:${fx.http.port}`]) {
      const sid = await rawSession(fx.url, { host });
      assert.ok(sid);
    }
  });

  it('refuses a foreign Origin with 403 E_FORBIDDEN_ORIGIN, allows loopback origins', async () => {
    const res = await raw(fx.url, { headers: { ...MCP_HEADERS, origin: 'https://evil.example' }, body: '{}' });
    assert.equal(res.status, 403);
    assert.equal((JSON.parse(res.text) as { error: { data: { code: string } } }).error.data.code, ErrorCodes.FORBIDDEN_ORIGIN);
    const nul = await raw(fx.url, { headers: { ...MCP_HEADERS, origin: 'null' }, body: '{}' });
    assert.equal(nul.status, 403);
    const sid = await rawSession(fx.url, { origin: 'http://localhost:5173' });
    assert.ok(sid);
  });

  it('answers malformed JSON with 400 -32700 and keeps serving', async () => {
    const res = await raw(fx.url, { headers: MCP_HEADERS, body: '{"jsonrpc": "2.0", "id": 1, "method": ' });
    assert.equal(res.status, 400);
    const body = JSON.parse(res.text) as { error: { code: number } };
    assert.equal(body.error.code, -32700);
    const c = await connect(fx.url);
    assert.equal((await c.client.listTools()).tools.length, TOOLS.length);
    await disconnect(c);
  });

  it('refuses bodies over the limit with 413', async () => {
    const res = await raw(fx.url, { headers: MCP_HEADERS, body: JSON.stringify({ pad: 'x'.repeat(100 * 1024) }) });
    assert.equal(res.status, 413);
  });

  it('answers an unknown session id with 404 and a missing one with 400', async () => {
    const res = await rawRpc(fx.url, '00000000-0000-0000-0000-000000000000', 1, 'tools/list', {});
    assert.equal(res.status, 404);
    const none = await raw(fx.url, { headers: MCP_HEADERS, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    assert.equal(none.status, 400);
    const get = await raw(fx.url, { method: 'GET', headers: { accept: 'text/event-stream' } });
    assert.equal(get.status, 400);
  });

  it('answers unknown paths with 404 JSON', async () => {
    const res = await raw(`${fx.http.url}/nope`, { method: 'GET' });
    assert.equal(res.status, 404);
    assert.ok((JSON.parse(res.text) as { error: { code: string } }).error.code);
  });
});

describe('mcp front: bearer token', () => {
  let fx: Fixture;
  before(async () => {
    fx = await setup({ token: 'sekrit-token-123' });
  });
  after(() => fx.close());

  it('requires the bearer token (401 E_UNAUTHORIZED) and accepts the right one', async () => {
    const missing = await raw(fx.url, { headers: MCP_HEADERS, body: '{}' });
    assert.equal(missing.status, 401);
    assert.equal((JSON.parse(missing.text) as { error: { data: { code: string } } }).error.data.code, ErrorCodes.UNAUTHORIZED);
    assert.match(String(missing.headers['www-authenticate']), /^Bearer/);
    const wrong = await raw(fx.url, { headers: { ...MCP_HEADERS, authorization: 'Bearer sekrit-token-124' }, body: '{}' });
    assert.equal(wrong.status, 401);
    const c = await connect(fx.url, { Authorization: 'Bearer sekrit-token-123' });
    assert.equal((await c.client.listTools()).tools.length, TOOLS.length);
    await disconnect(c);
    await assert.rejects(connect(fx.url));
    assert.equal(fx.front.sessionCount(), 0);
  });
});

describe('mcp front: non-loopback style binds', () => {
  it('an empty allowedHosts with a bearer token accepts any Host but still needs the token', async () => {
    const fx = await setup({ token: 'remote-token', allowedHosts: [] });
    try {
      const host = `warden.example.lan:${fx.http.port}`;
      const noToken = await raw(fx.url, { headers: { ...MCP_HEADERS, host }, body: '{}' });
      assert.equal(noToken.status, 401);
      const sid = await rawSession(fx.url, { host, authorization: 'Bearer remote-token' });
      assert.ok(sid);
    } finally {
      await fx.close();
    }
  });

  it('an empty allowedHosts without a token refuses everything', async () => {
    const fx = await setup({ allowedHosts: [] });
    try {
      const res = await raw(fx.url, { headers: MCP_HEADERS, body: '{}' });
      assert.equal(res.status, 403);
      assert.equal((JSON.parse(res.text) as { error: { data: { code: string } } }).error.data.code, ErrorCodes.FORBIDDEN_HOST);
    } finally {
      await fx.close();
    }
  });
});

describe('mcp front: session lifecycle', () => {
  const initBody = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'x', version: '0' } },
  });

  it('at the cap, a new initialize evicts the least recently used idle session; busy sessions are never evicted', async () => {
    const fx = await setup({ maxSessions: 3 });
    try {
      const clients = [await connect(fx.url), await connect(fx.url), await connect(fx.url)];
      assert.equal(fx.front.sessionCount(), 3);
      // clients[1] and [2] are used again: clients[0] is now the least recently used.
      await clients[1]!.client.listTools();
      await clients[2]!.client.listTools();
      const res = await raw(fx.url, { headers: MCP_HEADERS, body: initBody });
      assert.equal(res.status, 200, res.text);
      assert.equal(fx.front.sessionCount(), 3);
      await assert.rejects(clients[0]!.client.listTools(), 'the evicted session is gone');
      for (const c of clients.slice(1)) assert.equal((await c.client.listTools()).tools.length, TOOLS.length);
      for (const c of clients) await disconnect(c);
    } finally {
      await fx.close();
    }
  });

  it('caps sessions: when every session has a request in flight, initialize gets 503 E_TOO_MANY_SESSIONS', async () => {
    const fx = await setup({ maxSessions: 2 });
    try {
      const clients = [await connect(fx.url), await connect(fx.url)];
      const running: Promise<unknown>[] = [];
      for (const c of clients) {
        fx.catalog.slowStarted = deferred<AbortSignal>();
        running.push(c.client.callTool({ name: 'demo__slow', arguments: {} }).catch((e: unknown) => e));
        await fx.catalog.slowStarted.promise;
      }
      const res = await raw(fx.url, { headers: MCP_HEADERS, body: initBody });
      assert.equal(res.status, 503);
      assert.equal((JSON.parse(res.text) as { error: { data: { code: string } } }).error.data.code, ErrorCodes.TOO_MANY_SESSIONS);
      assert.equal(fx.front.sessionCount(), 2);
      for (const c of clients) await disconnect(c);
      await Promise.all(running);
      assert.equal(fx.front.sessionCount(), 0);
      assert.equal(fx.ledger.countFor('front'), 0);
    } finally {
      await fx.close();
    }
  });

  it('expires idle sessions after the TTL and settles their ledger entries', async () => {
    const fx = await setup({ ttl: 150 });
    try {
      const sid = await rawSession(fx.url);
      assert.equal(fx.front.sessionCount(), 1);
      assert.equal(fx.ledger.owned('front').length, 1);
      assert.equal(fx.ledger.owned('front')[0]!.kind, 'mcp-session');
      await pollUntil(() => fx.front.sessionCount() === 0, 2000, 'idle session expired');
      assert.equal(fx.ledger.countFor('front'), 0);
      const res = await rawRpc(fx.url, sid, 2, 'tools/list', {});
      assert.equal(res.status, 404);

      // A client that vanished without DELETE: its GET stream closes, then the TTL reaps the session.
      const gone = await connect(fx.url);
      await gone.getStreamOpen;
      await gone.client.close();
      await pollUntil(() => fx.front.sessionCount() === 0, 2000, 'vanished client session expired');
      assert.equal(fx.ledger.countFor('front'), 0);

      // A connected client holding its GET stream is in use and is not expired.
      const live = await connect(fx.url);
      await live.getStreamOpen;
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(fx.front.sessionCount(), 1);
      assert.equal((await live.client.listTools()).tools.length, TOOLS.length);
      await disconnect(live);
      assert.equal(fx.front.sessionCount(), 0);
    } finally {
      await fx.close();
    }
  });

  it('300 sessions opened and closed leave nothing behind', async () => {
    // Baseline before the server exists; checked after it is closed. While it runs, pooled client
    // keep-alive sockets are legitimately open, so mid-run the check is "no open HTTP exchange".
    // A long keep-alive avoids the reuse race (client and server share this event loop; see
    // keepAliveTimeoutMs in http-server.ts): idle sockets are closed by close() instead.
    await new Promise((r) => setTimeout(r, 100));
    const baseline = resourceCounts();
    const fx = await setup({ keepAliveTimeoutMs: 60_000 });
    try {
      const batch = 25;
      for (let i = 0; i < 300; i += batch) {
        await Promise.all(
          Array.from({ length: batch }, async () => {
            const c = await connect(fx.url);
            await c.client.listTools();
            await disconnect(c);
          }),
        );
      }
      assert.equal(fx.front.sessionCount(), 0);
      assert.equal(fx.ledger.countFor('front'), 0);
      // Every session's GET/POST streams have ended: nothing is held open per session.
      await pollUntil(() => fx.http.activeRequestCount() === 0, 5_000, 'no open HTTP exchanges', 50);
      const httpEntries = fx.ledger.owned('http');
      assert.ok(httpEntries.every((e) => e.kind === 'socket'));
      assert.equal(httpEntries.length, 1 + fx.http.connectionCount(), 'the listener plus open connections, nothing else');
    } finally {
      await fx.close();
    }
    assert.equal(fx.ledger.size(), 0);
    assert.equal(fx.http.connectionCount(), 0);
    await pollUntil(() => withinBaseline(baseline), 5_000, 'active resources back to baseline', 50);
  });

  it('close() with an in-flight call resolves promptly and aborts the call', async () => {
    const fx = await setup();
    const c = await connect(fx.url);
    await c.getStreamOpen;
    const call = c.client.callTool({ name: 'demo__slow', arguments: {} });
    call.catch(() => {});
    const signal = await fx.catalog.slowStarted.promise;
    const t0 = Date.now();
    await fx.front.close();
    assert.equal(signal.aborted, true, 'the catalog signal aborted on close');
    assert.equal(fx.front.sessionCount(), 0);
    assert.equal(fx.ledger.countFor('front'), 0);
    await fx.http.close();
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 1500, `close took ${elapsed} ms`);
    assert.equal(fx.ledger.size(), 0);
    await c.client.close();
    await assert.rejects(call);
  });

  it('DELETE closes a session and settles it', async () => {
    const fx = await setup();
    try {
      const c = await connect(fx.url);
      assert.equal(fx.front.sessionCount(), 1);
      await c.transport.terminateSession();
      assert.equal(fx.front.sessionCount(), 0);
      assert.equal(fx.ledger.countFor('front'), 0);
      await c.client.close();
    } finally {
      await fx.close();
    }
  });
});

describe('mcp front: Streamable HTTP wire', () => {
  const post = (url: string, sid: string, body: unknown, headers: Record<string, string> = {}) =>
    raw(url, {
      headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION, ...headers },
      body: JSON.stringify(body),
    });
  const call = (id: number | string, name: string, args: Record<string, unknown> = {}, meta?: Record<string, unknown>) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
  });

  it('answers a quick call as one application/json body carrying the session id', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url);
      const res = await post(fx.url, sid, call(11, 'demo__echo', { text: 'json' }));
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(res.headers['mcp-session-id'], sid);
      const body = JSON.parse(res.text) as { id: number; result: { content: unknown } };
      assert.equal(body.id, 11);
      assert.deepEqual(body.result.content, [{ type: 'text', text: '{"text":"json"}' }]);
    } finally {
      await fx.close();
    }
  });

  it('answers a batch as a JSON array in request order (protocol 2025-03-26)', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url, {}, '2025-03-26');
      const res = await post(fx.url, sid, [call('b', 'demo__sleep', { ms: 30 }), call('a', 'demo__echo', { text: 'x' })]);
      assert.equal(res.status, 200);
      const body = JSON.parse(res.text) as { id: string }[];
      assert.deepEqual(
        body.map((m) => m.id),
        ['b', 'a'],
      );
    } finally {
      await fx.close();
    }
  });

  it('ends the response with E_SERIALIZATION_FAILED for an answer that cannot be serialized (JSON and SSE), never hangs', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url, {}, '2025-03-26');
      const res = await post(fx.url, sid, [call(31, 'demo__unserializable'), call(32, 'demo__echo', { text: 'fine' })]);
      assert.equal(res.status, 200);
      const body = JSON.parse(res.text) as Array<{ id: number; result?: unknown; error?: { code: number; data: { code: string } } }>;
      assert.deepEqual(
        body.map((m) => m.id),
        [31, 32],
      );
      assert.equal(body[0]!.error?.code, -32603);
      assert.equal(body[0]!.error?.data.code, 'E_SERIALIZATION_FAILED');
      assert.ok(body[1]!.result, 'the batch goes on after the failed answer');
      const sse = await post(fx.url, sid, call(33, 'demo__unserializable', {}, { progressToken: 't' }));
      assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
      assert.match(sse.text, /E_SERIALIZATION_FAILED/);
    } finally {
      await fx.close();
    }
  });

  /** A raw POST that also records when the status line and headers arrived (ms after sending). */
  const timedPost = (url: string, sid: string, body: unknown) =>
    new Promise<RawResponse & { headersAfterMs: number; totalMs: number }>((resolve, reject) => {
      const t0 = performance.now();
      const req = httpRequest(
        url,
        {
          method: 'POST',
          agent: false,
          headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
        },
        (res) => {
          const headersAfterMs = performance.now() - t0;
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, headersAfterMs, totalMs: performance.now() - t0 }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });

  it('sends the headers at once and keeps a slow JSON answer alive with leading newlines', async () => {
    const baseline = resourceCounts();
    const fx = await setup({ keepAliveMs: 25 });
    try {
      const sid = await rawSession(fx.url);
      const res = await timedPost(fx.url, sid, call(12, 'demo__sleep', { ms: 300 }));
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.ok(res.headersAfterMs < 200 && res.totalMs >= 290, `headers after ${res.headersAfterMs} ms, answer after ${res.totalMs} ms`);
      assert.match(res.text, /^\n{3,}\{/, 'keep-alive newlines ahead of the value');
      const body = JSON.parse(res.text) as { id: number; result: unknown };
      assert.equal(body.id, 12);
      assert.ok(body.result);
    } finally {
      await fx.close();
    }
    // The keep-alive timers went with their exchanges.
    await pollUntil(() => withinBaseline(baseline), 5_000, 'timers and sockets back to baseline', 50);
  });

  it('sends the headers with the answer while other calls of the session are in flight (one write, a content-length)', async () => {
    const baseline = resourceCounts();
    const fx = await setup({ keepAliveMs: 10_000 });
    try {
      const sid = await rawSession(fx.url);
      const first = timedPost(fx.url, sid, call(21, 'demo__sleep', { ms: 400 }));
      await sleep(100); // the first exchange is in flight: its headers went at once
      const second = await timedPost(fx.url, sid, call(22, 'demo__sleep', { ms: 150 }));
      assert.equal(second.status, 200);
      assert.match(String(second.headers['content-type']), /^application\/json/);
      assert.equal(second.headers['mcp-session-id'], sid);
      assert.ok(second.headersAfterMs >= 140, `headers of the second after ${second.headersAfterMs} ms: they wait for its answer`);
      assert.equal(Number(second.headers['content-length']), Buffer.byteLength(second.text), 'one body with its length, not chunked');
      assert.deepEqual((JSON.parse(second.text) as { id: number }).id, 22);
      const one = await first;
      assert.ok(one.headersAfterMs < 100, `headers of the first (alone) after ${one.headersAfterMs} ms`);
      assert.equal(one.headers['transfer-encoding'], 'chunked');
      assert.equal((JSON.parse(one.text) as { id: number; result: unknown }).id, 21);
    } finally {
      await fx.close();
    }
    await pollUntil(() => withinBaseline(baseline), 5_000, 'timers and sockets back to baseline', 50);
  });

  it('streams a request that carries a progressToken (SSE with keep-alive comments), even without progress', async () => {
    const baseline = resourceCounts();
    const fx = await setup({ keepAliveMs: 25 });
    try {
      const sid = await rawSession(fx.url);
      const res = await timedPost(fx.url, sid, call(14, 'demo__sleep', { ms: 200 }, { progressToken: 99 }));
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      assert.ok(res.headersAfterMs < 150, `headers after ${res.headersAfterMs} ms`);
      assert.match(res.text, /^: keepalive$/m);
      const msgs = rpcMessages(res);
      assert.equal(msgs.length, 1);
      assert.equal(msgs[0]!['id'], 14);
      // The next call without a token, same session: plain JSON again.
      const quick = await post(fx.url, sid, call(15, 'demo__echo'));
      assert.match(String(quick.headers['content-type']), /^application\/json/);
      // A GET stream with its keep-alive, open when the session closes.
      const get = raw(fx.url, {
        method: 'GET',
        headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
      });
      await new Promise((r) => setTimeout(r, 80));
      await fx.close();
      assert.match((await get).text, /^: keepalive$/m);
    } finally {
      await fx.close();
    }
    await pollUntil(() => withinBaseline(baseline), 5_000, 'timers and sockets back to baseline', 50);
  });

  it('refuses what the transport cannot take, and the session keeps working', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url);
      const callsBefore = fx.catalog.calls.length;
      const cases: [string, Promise<RawResponse>, number, number][] = [
        ['no text/event-stream in Accept', post(fx.url, sid, call(20, 'demo__echo'), { accept: 'application/json' }), 406, -32000],
        ['wrong content type', post(fx.url, sid, call(21, 'demo__echo'), { 'content-type': 'text/plain' }), 415, -32000],
        ['not JSON-RPC', post(fx.url, sid, { hello: 'world' }), 400, -32700],
        ['empty batch', post(fx.url, sid, []), 400, -32600],
        [
          'batch over 100',
          post(
            fx.url,
            sid,
            Array.from({ length: 101 }, (_, i) => call(100 + i, 'demo__echo')),
          ),
          400,
          -32600,
        ],
        ['unsupported protocol version', post(fx.url, sid, call(22, 'demo__echo'), { 'mcp-protocol-version': '1999-01-01' }), 400, -32000],
        ['second initialize', post(fx.url, sid, { jsonrpc: '2.0', id: 23, method: 'initialize', params: {} }), 400, -32600],
        ['duplicate ids in one batch', post(fx.url, sid, [call(24, 'demo__echo'), call(24, 'demo__echo')]), 400, -32600],
      ];
      for (const [what, p, status, code] of cases) {
        const res = await p;
        assert.equal(res.status, status, what);
        assert.equal((JSON.parse(res.text) as { error: { code: number } }).error.code, code, what);
      }
      assert.equal(fx.catalog.calls.length, callsBefore, 'nothing refused reached the catalog');
      const ok = await post(fx.url, sid, call(25, 'demo__echo'));
      assert.equal(ok.status, 200);
    } finally {
      await fx.close();
    }
  });

  it('refuses a request id that is still in flight', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url);
      const first = post(fx.url, sid, call(30, 'demo__sleep', { ms: 200 }));
      await pollUntil(() => fx.catalog.calls.some((c) => c.name === 'demo__sleep'), 2000, 'first call started');
      const dup = await post(fx.url, sid, call(30, 'demo__echo'));
      assert.equal(dup.status, 400);
      assert.match(dup.text, /already in use/);
      const res = await first;
      assert.equal(rpcMessages(res)[0]!['id'], 30);
      assert.ok((rpcMessages(res)[0]!['result'] as Record<string, unknown>)['content']);
    } finally {
      await fx.close();
    }
  });

  it('answers notifications with 202 and allows one GET stream per session (409 for a second)', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url);
      const note = await post(fx.url, sid, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 999 } });
      assert.equal(note.status, 202);
      const c = await connect(fx.url);
      await c.getStreamOpen;
      const second = await raw(fx.url, {
        method: 'GET',
        headers: { accept: 'text/event-stream', 'mcp-session-id': c.transport.sessionId!, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
      });
      assert.equal(second.status, 409);
      const noAccept = await raw(fx.url, { method: 'GET', headers: { accept: 'application/json', 'mcp-session-id': sid } });
      assert.equal(noAccept.status, 406);
      await disconnect(c);
    } finally {
      await fx.close();
    }
  });

  it('answers a call still open when its session closes with -32000 instead of leaving the POST hanging', async () => {
    const fx = await setup();
    const sid = await rawSession(fx.url);
    fx.catalog.slowStarted = deferred<AbortSignal>();
    const pending = post(fx.url, sid, call(40, 'demo__slow'));
    const signal = await fx.catalog.slowStarted.promise;
    const del = await raw(fx.url, {
      method: 'DELETE',
      headers: { 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    });
    assert.equal(del.status, 200);
    const res = await pending;
    assert.equal(res.status, 200);
    const msg = rpcMessages(res)[0]!;
    assert.equal(msg['id'], 40);
    assert.equal((msg['error'] as { code: number }).code, -32000);
    assert.equal(signal.aborted, true);
    assert.equal(fx.front.sessionCount(), 0);
    await fx.close();
    assert.equal(fx.ledger.size(), 0);
  });

  it('a client that drops its POST does not cancel the call; the late answer is dropped quietly', async () => {
    const fx = await setup();
    try {
      const sid = await rawSession(fx.url);
      const before = fx.catalog.calls.length;
      const ac = new AbortController();
      const req = httpRequest(fx.url, {
        method: 'POST',
        agent: false,
        signal: ac.signal,
        headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
      });
      req.on('error', () => {});
      req.end(JSON.stringify(call(50, 'demo__sleep', { ms: 150 })));
      await pollUntil(() => fx.catalog.calls.length > before, 2000, 'call started');
      ac.abort();
      const signal = fx.catalog.calls.at(-1)!.opts.signal;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(signal.aborted, false, 'disconnection is not cancellation');
      const again = await post(fx.url, sid, call(50, 'demo__echo'));
      assert.equal(again.status, 200, 'id 50 is free again once its late answer came');
    } finally {
      await fx.close();
    }
  });
});

describe('http server', () => {
  it('reports EADDRINUSE as E_LISTEN_FAILED', async () => {
    const ledger = new ResourceLedger();
    const a = await startHttpServer({ host: '127.0.0.1', port: 0, logger, ledger, maxBodyBytes: 1024 });
    try {
      await assert.rejects(startHttpServer({ host: '127.0.0.1', port: a.port, logger, ledger, maxBodyBytes: 1024 }), (err: unknown) => {
        assert.ok(err instanceof WardenError);
        assert.equal(err.code, ErrorCodes.LISTEN_FAILED);
        assert.equal(err.message, `cannot listen on 127.0.0.1:${a.port}: address already in use`);
        return true;
      });
    } finally {
      await a.close();
    }
    assert.equal(ledger.size(), 0);
  });

  it('listens on ::1 and localhost; handler errors become 500 without stack', async () => {
    const ledger = new ResourceLedger();
    for (const host of ['::1', 'localhost']) {
      const s = await startHttpServer({ host, port: 0, logger, ledger, maxBodyBytes: 1024 });
      s.route('GET', '/boom', () => {
        throw new Error('kaboom at /secret/path');
      });
      s.route('GET', '/ok', (_req, res) => {
        res.end('ok');
      });
      assert.equal(s.url, host === '::1' ? `http://[::1]:${s.port}` : `http://localhost:${s.port}`);
      const ok = await raw(`${s.url}/ok`, { method: 'GET' });
      assert.equal(ok.text, 'ok');
      const boom = await raw(`${s.url}/boom`, { method: 'GET' });
      assert.equal(boom.status, 500);
      assert.doesNotMatch(boom.text, /kaboom|secret|at /);
      const wrongMethod = await raw(`${s.url}/ok`, { method: 'POST' });
      assert.equal(wrongMethod.status, 405);
      await s.close();
    }
    assert.equal(ledger.size(), 0);
  });

  it('close() ends a never-finishing response after the grace period', async () => {
    const ledger = new ResourceLedger();
    const s = await startHttpServer({ host: '127.0.0.1', port: 0, logger, ledger, maxBodyBytes: 1024, closeGraceMs: 200 });
    const started = deferred();
    s.route('GET', '/hang', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      started.resolve();
    });
    const pending = raw(`${s.url}/hang`, { method: 'GET' }).catch((e: unknown) => e);
    await started.promise;
    assert.equal(ledger.countFor('http'), 2);
    const t0 = Date.now();
    await s.close();
    assert.ok(Date.now() - t0 < 1000);
    await pending;
    assert.equal(ledger.size(), 0);
  });
});

describe('request guards', () => {
  it('recognises loopback hosts', () => {
    for (const h of [
      'localhost',
      'LOCALHOST',
      'localhost.',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
    ]) {
      assert.equal(isLoopbackHost(h), true, h);
    }
    for (const h of ['evil.localhost', '128.0.0.1', '0.0.0.0', '::', '10.0.0.1', 'example.com', '', '[::2]', '::ffff:10.0.0.1']) {
      assert.equal(isLoopbackHost(h), false, h);
    }
  });

  it('checks Host headers exactly', () => {
    const allowed = loopbackAllowedHosts(8080);
    // Twice: the second pass answers from the per-allow-list verdict cache.
    for (let pass = 1; pass <= 2; pass++) {
      for (const h of ['127.0.0.1:8080', 'localhost:8080', 'LocalHost:8080', '[::1]:8080', '127.0.0.1', 'localhost', '[::1]']) {
        assert.equal(checkHostHeader(h, allowed), true, `${h} (pass ${pass})`);
      }
      for (const h of ['127.0.0.1:8081', 'evil.com:8080', 'evil.com', '::1', 'localhost:8080@evil', 'user@localhost:8080', '', undefined]) {
        assert.equal(checkHostHeader(h, allowed), false, `${String(h)} (pass ${pass})`);
      }
    }
    // Verdicts belong to their allow-list: another list decides afresh.
    assert.equal(checkHostHeader('127.0.0.1:8081', loopbackAllowedHosts(8081)), true);
    // More distinct hosts than the cache holds still get the right answers.
    for (let i = 0; i < 200; i++) assert.equal(checkHostHeader(`h${i}.example:8080`, allowed), false);
    assert.equal(checkHostHeader('localhost:8080', allowed), true);
    assert.equal(checkHostHeader('anything:1', ['*']), true);
    assert.equal(checkHostHeader('localhost:8080', []), false);
  });

  it('checks Origin', () => {
    assert.equal(checkOrigin(undefined, []), true);
    for (const o of ['http://localhost:3000', 'https://127.0.0.1', 'http://[::1]:9999']) assert.equal(checkOrigin(o, []), true, o);
    for (const o of ['null', 'https://evil.example', 'http://localhost.evil.example', 'file://', 'chrome-extension://abc', 'garbage']) {
      assert.equal(checkOrigin(o, []), false, o);
    }
    assert.equal(checkOrigin('https://app.example', ['https://app.example/']), true);
    assert.equal(checkOrigin('https://app.example:8443', ['https://app.example']), false);
  });

  it('checks bearer tokens', () => {
    assert.equal(checkBearer('Bearer abc', 'abc'), true);
    assert.equal(checkBearer('bearer abc', 'abc'), true);
    for (const h of ['Bearer abd', 'Bearer abcd', 'Bearer', 'Basic abc', 'abc', 'Bearer abc extra', undefined]) {
      assert.equal(checkBearer(h, 'abc'), false, String(h));
    }
    assert.equal(checkBearer('Bearer ', ''), false);
  });
});
