/**
 * All of MCP through the federated /mcp (and /mcp/<server>), with the real server-everything and
 * server-memory as upstreams: resources (paging, templates, read, subscribe → updated), prompts,
 * completion, logging, instructions, resource_links, and the server-to-client requests (sampling,
 * elicitation, roots) answered by this client's handlers. Ends with the leak checks of
 * test/helpers/test-daemon.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  LATEST_PROTOCOL_VERSION,
  type LoggingMessageNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { everythingServer, memoryServer, NODE, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';

const ROOT = { uri: 'file:///tmp/mcp-warden-test-root', name: 'warden-test-root' };

interface FullClient {
  client: Client;
  logs: LoggingMessageNotification['params'][];
  updated: string[];
  sampled: number;
  close(): Promise<void>;
}

async function connectFull(url: string, capabilities: Record<string, unknown>): Promise<FullClient> {
  const client = new Client({ name: 'mcp-full-test', version: '1.0.0' }, { capabilities });
  const fc: FullClient = {
    client,
    logs: [],
    updated: [],
    sampled: 0,
    async close() {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    },
  };
  if (capabilities['sampling']) {
    client.setRequestHandler(CreateMessageRequestSchema, async (r) => {
      fc.sampled++;
      const first = r.params.messages[0]?.content;
      const text = first && 'text' in first ? String(first.text) : '';
      return { model: 'warden-test-model', role: 'assistant', content: { type: 'text', text: `sampled(${text})` } };
    });
  }
  if (capabilities['elicitation']) {
    client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'Ada Lovelace' } }));
  }
  if (capabilities['roots']) client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [ROOT] }));
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
    fc.logs.push(n.params);
  });
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
    fc.updated.push(n.params.uri);
  });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return fc;
}

function text(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

describe('full MCP through the federated /mcp (server-everything + server-memory)', () => {
  let t: TestDaemon;
  let full: FullClient;
  let bare: FullClient;

  before(async () => {
    t = await startTestDaemon(
      {
        everything: { command: NODE, args: [everythingServer, 'stdio'] },
        memory: { command: NODE, args: [memoryServer], env: { MEMORY_FILE_PATH: '/dev/null/nowhere.json' } },
      },
      { mcpListPageSize: 3 },
    );
    await t.waitForState('everything', 'running', 20_000);
    await t.waitForState('memory', 'running', 20_000);
    full = await connectFull(t.daemon.mcpUrl, { sampling: {}, elicitation: {}, roots: { listChanged: true } });
    bare = await connectFull(t.daemon.mcpUrl, {});
  });

  after(async () => {
    await full?.close();
    await bare?.close();
    await t?.close();
  });

  it('advertises the union of capabilities and every upstream instructions under its name', () => {
    const caps = full.client.getServerCapabilities()!;
    assert.ok(caps.tools, 'tools');
    assert.ok(caps.resources?.subscribe, 'resources with subscribe');
    assert.ok(caps.prompts, 'prompts');
    assert.ok(caps.completions, 'completions');
    assert.ok(caps.logging, 'logging');
    const instructions = full.client.getInstructions() ?? '';
    assert.match(instructions, /^## everything\n/m);
  });

  it('lists the sampling/elicitation/roots tools because upstreams are initialized with those capabilities', async () => {
    const names = (await full.client.listTools()).tools.map((x) => x.name);
    for (const n of ['everything__trigger-sampling-request', 'everything__trigger-elicitation-request', 'everything__get-roots-list']) {
      assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
    }
    assert.ok(names.some((n) => n.startsWith('memory__')));
  });

  it('lists resources in pages, with federated URIs that read back through the proxy', async () => {
    const all: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await full.client.listResources(cursor ? { cursor } : {});
      all.push(...page.resources.map((r) => r.uri));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    assert.ok(all.length > 0, 'some resources');
    for (const uri of all) assert.match(uri, /^mcp-warden:\/\/(everything\/demo|memory\/memory):\/\//);
    assert.ok(all.some((u) => u.startsWith('mcp-warden://everything/')) && all.some((u) => u.startsWith('mcp-warden://memory/')));
    assert.ok(pages > 1, `paged (mcpListPageSize 3): ${pages} page(s) for ${all.length}`);
    assert.equal(new Set(all).size, all.length, 'no duplicates across pages');
    const read = await full.client.readResource({ uri: all[0]! });
    assert.equal(read.contents[0]?.uri, all[0]);
    await assert.rejects(full.client.listResources({ cursor: 'not-a-cursor' }), /Invalid cursor/);
    await assert.rejects(full.client.readResource({ uri: 'demo://resource/static/document/x' }), (e: Error & { code?: number }) => {
      assert.equal(e.code, -32002);
      return true;
    });
  });

  it('lists resource templates, and a URI made from one reads through the proxy', async () => {
    const { resourceTemplates } = await full.client.listResourceTemplates();
    const tpl = resourceTemplates.find((x) => x.uriTemplate.includes('demo://resource/dynamic/text/{resourceId}'));
    assert.ok(tpl, JSON.stringify(resourceTemplates));
    assert.equal(tpl.uriTemplate, 'mcp-warden://everything/demo://resource/dynamic/text/{resourceId}');
    const uri = tpl.uriTemplate.replace('{resourceId}', '3');
    const read = await full.client.readResource({ uri });
    assert.equal(read.contents[0]?.uri, uri);
    const completion = await full.client.complete({
      ref: { type: 'ref/resource', uri: tpl.uriTemplate },
      argument: { name: 'resourceId', value: '7' },
    });
    assert.deepEqual(completion.completion.values, ['7']);
  });

  it('resource_links in tool results are readable through the proxy', async () => {
    const result = await full.client.callTool({ name: 'everything__get-resource-links', arguments: { count: 2 } });
    const links = (result.content as Array<{ type: string; uri?: string }>).filter((c) => c.type === 'resource_link');
    assert.equal(links.length, 2);
    for (const l of links) {
      assert.match(l.uri!, /^mcp-warden:\/\/everything\/demo:\/\//);
      const read = await full.client.readResource({ uri: l.uri! });
      assert.ok(read.contents.length > 0);
    }
  });

  it('prompts are namespaced like tools; get and completion are routed by the name', async () => {
    const { prompts } = await full.client.listPrompts();
    const names = prompts.map((p) => p.name);
    for (const n of ['everything__simple-prompt', 'everything__args-prompt', 'everything__completable-prompt'])
      assert.ok(names.includes(n), n);
    const got = await full.client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Paris', state: 'Texas' } });
    assert.match(JSON.stringify(got.messages), /Paris/);
    const c = await full.client.complete({
      ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
      argument: { name: 'department', value: 'Eng' },
    });
    assert.deepEqual(c.completion.values, ['Engineering']);
    await assert.rejects(full.client.getPrompt({ name: 'nowhere__x' }));
  });

  it('sampling: the upstream request is answered by the calling client handler', async () => {
    const before = full.sampled;
    const result = await full.client.callTool({
      name: 'everything__trigger-sampling-request',
      arguments: { prompt: 'hello warden', maxTokens: 10 },
    });
    assert.equal(full.sampled, before + 1);
    assert.match(text(result), /sampled\(.*hello warden.*\)/);
  });

  it('elicitation: the client answer reaches the upstream', async () => {
    const result = await full.client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
    assert.match(text(result), /Ada Lovelace/);
  });

  it('roots: get-roots-list returns the client roots', async () => {
    const result = await full.client.callTool({ name: 'everything__get-roots-list', arguments: {} });
    assert.match(text(result), /mcp-warden-test-root/);
  });

  it('a client without sampling gets the upstream error result promptly, not a hang', async () => {
    const started = Date.now();
    const outcome = await bare.client
      .callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'x', maxTokens: 5 } })
      .then(
        (r) => ({ ok: true as const, r }),
        (e: Error) => ({ ok: false as const, e }),
      );
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    if (outcome.ok) {
      assert.equal(outcome.r.isError, true, JSON.stringify(outcome.r));
      assert.match(text(outcome.r), /sampling/i);
    } else {
      assert.match(outcome.e.message, /sampling/i);
    }
    assert.equal(full.sampled > 0, true);
  });

  it('logging: setLevel is fanned out and notifications/message come back with the server named', async () => {
    await full.client.setLoggingLevel('debug');
    await full.client.callTool({ name: 'everything__toggle-simulated-logging', arguments: {} });
    const ok = await waitFor(() => full.logs.some((l) => l.logger === 'everything' || l.logger?.startsWith('everything/')), {
      timeoutMs: 8_000,
      intervalMs: 50,
    });
    assert.ok(ok, `no log message named everything: ${JSON.stringify(full.logs.slice(0, 3))}`);
    await full.client.callTool({ name: 'everything__toggle-simulated-logging', arguments: {} });
  });

  it('resources/updated reaches the subscribed session only', async () => {
    const uri = 'mcp-warden://everything/demo://resource/static/document/architecture.md';
    await full.client.subscribeResource({ uri });
    await full.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
    const ok = await waitFor(() => full.updated.includes(uri), { timeoutMs: 8_000, intervalMs: 50 });
    assert.ok(ok, `no resources/updated for ${uri}: ${JSON.stringify(full.updated)}`);
    assert.deepEqual(bare.updated, [], 'a session that did not subscribe hears nothing');
    await full.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
    await full.client.unsubscribeResource({ uri });
  });

  it('/mcp/<server> shows one upstream as if direct: names and URIs unprefixed', async () => {
    const direct = await connectFull(`${t.daemon.mcpUrl}/everything`, { sampling: {} });
    try {
      const tools = (await direct.client.listTools()).tools.map((x) => x.name);
      assert.ok(tools.includes('echo'), tools.join(', '));
      assert.ok(!tools.some((n) => n.includes('__')));
      const { resources } = await direct.client.listResources();
      assert.match(resources[0]!.uri, /^demo:\/\//);
      const read = await direct.client.readResource({ uri: resources[0]!.uri });
      assert.equal(read.contents[0]?.uri, resources[0]!.uri);
      const echo = await direct.client.callTool({ name: 'echo', arguments: { message: 'hi' } });
      assert.match(text(echo), /hi/);
      const sampled = await direct.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'direct', maxTokens: 5 } });
      assert.match(text(sampled), /sampled\(.*direct.*\)/);
    } finally {
      await direct.close();
    }
    const res = await fetch(`${t.daemon.mcpUrl}/nosuchserver`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'x', version: '0' } },
      }),
    });
    assert.equal(res.status, 404);
  });
});

describe('sessions never lock clients out', () => {
  it('100 sessions opened and abandoned (no DELETE, GET streams left open), then a new client still initializes', async () => {
    const t = await startTestDaemon({}, { maxSessions: 16 });
    const abandoned: Client[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        // The SDK client never sends DELETE on close; its GET stream stays open, as with real clients that just go away.
        const c = new Client({ name: `abandoned-${i}`, version: '1.0.0' });
        await c.connect(new StreamableHTTPClientTransport(new URL(t.daemon.mcpUrl)));
        abandoned.push(c);
      }
      assert.ok(t.daemon.ledger.countFor('front') <= 16, `sessions bounded: ${t.daemon.ledger.countFor('front')}`);
      const fresh = await t.connect();
      assert.ok(Array.isArray((await fresh.client.listTools()).tools));
    } finally {
      for (const c of abandoned) await c.close().catch(() => undefined);
      await t.close();
    }
  });
});
