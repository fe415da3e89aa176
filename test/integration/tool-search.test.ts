/**
 * Tool search and per-tool control through the real daemon (docs/mcp-endpoint.md#tool-search,
 * docs/config.md#tool-filters): search mode lists only retrieve_tools and call_tool; retrieve_tools
 * finds a tool from a paraphrase; quarantined and denied tools are never returned nor callable through
 * call_tool; a tool that arrives by tools/list_changed is found without a restart (once approved);
 * call_tool relays progress; `/mcp?toolMode=…` per client; allow/deny filters in `all` mode.
 * Upstreams are real child processes (test/fixtures/file-tools-server.ts with real servers' tool
 * definitions from bench/search-tools.fixture.json, and the fixture server with `slow`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { fixture, NODE, startTestDaemon } from '../helpers/test-daemon.js';

interface FixtureFile {
  servers: Array<{ server: string; tools: Array<{ name: string; description?: string; inputSchema: unknown }> }>;
}
const realTools = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../../bench/search-tools.fixture.json', import.meta.url)), 'utf8'),
) as FixtureFile;
const toolsOf = (server: string) => realTools.servers.find((s) => s.server === server)!.tools;

function toolsServer(dir: string, name: string, tools: unknown[], extra: Record<string, unknown> = {}) {
  const file = join(dir, `${name}-tools.json`);
  writeFileSync(file, JSON.stringify(tools));
  return { file, entry: { command: NODE, args: [fixture('file-tools-server')], env: { TOOLS_FILE: file }, ...extra } };
}

const CLI = fileURLToPath(new URL('../../bundle/cli.js', import.meta.url)); // what users run

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const codeOf = (e: unknown) => (e instanceof McpError ? (e.data as { code?: string } | undefined)?.code : undefined);

type Retrieved = { name: string; description: string; score: number; inputSchema: Record<string, unknown> };

async function retrieve(client: Client, query: string, limit?: number): Promise<Retrieved[]> {
  const r = await client.callTool({ name: 'retrieve_tools', arguments: limit === undefined ? { query } : { query, limit } });
  const tools = (r.structuredContent as { tools: Retrieved[] }).tools;
  const text = (r.content as Array<{ type: string; text: string }>)[0]!.text;
  assert.deepEqual(JSON.parse(text), { tools }, 'the text content is the same JSON as structuredContent');
  return tools;
}

async function connectAt(url: string): Promise<{ client: Client; close: () => Promise<void> }> {
  const client = new Client({ name: 'tool-search-test', version: '1' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return {
    client,
    close: async () => {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    },
  };
}

test('search mode: two meta-tools; paraphrase found; denied and quarantined tools never returned nor callable; list_changed tools found', async () => {
  const t = await startTestDaemon({}, { toolMode: 'search' });
  try {
    const chat = toolsServer(t.dataDir, 'chat', toolsOf('slack'), { tools: { deny: ['slack_add_reaction'] } });
    const vault = toolsServer(t.dataDir, 'vault', [
      {
        name: 'post_secret_message',
        description: 'Post a message to the team chat with the vault secret',
        inputSchema: { type: 'object' },
      },
    ]);
    const config = JSON.parse(readFileSync(t.configPath, 'utf8'));
    config.mcpServers = {
      chat: chat.entry,
      vault: { ...vault.entry, quarantined: true },
      fx: { command: NODE, args: [fixture('echo-server')] },
    };
    writeFileSync(t.configPath, JSON.stringify(config));
    await t.waitForState('chat', 'running');
    await t.waitForState('vault', 'quarantined');
    await t.waitForState('fx', 'running');

    const { client } = await t.connect();
    assert.deepEqual((await client.listTools()).tools.map((x) => x.name).sort(), ['call_tool', 'retrieve_tools']);

    // A paraphrase: no word in common with "Post a new message to a Slack channel".
    const hits = await retrieve(client, 'ping a colleague in our team chat');
    assert.ok(hits.length > 0 && hits.length <= 5, 'default limit 5');
    assert.ok(
      hits.some((h) => h.name === 'chat__slack_post_message'),
      `post_message in the top 5: ${hits.map((h) => h.name).join(', ')}`,
    );
    const post = hits.find((h) => h.name === 'chat__slack_post_message')!;
    assert.equal(post.description, 'Post a new message to a Slack channel');
    assert.deepEqual(post.inputSchema, toolsOf('slack').find((x) => x.name === 'slack_post_message')!.inputSchema);
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score, 'best first');

    // Denied by the filter and quarantined: never among the results, whatever the query.
    for (const q of ['add an emoji reaction to a message', 'post a secret message to the vault', 'slack reaction emoji vault secret']) {
      const names = (await retrieve(client, q, 50)).map((h) => h.name);
      assert.ok(!names.includes('chat__slack_add_reaction'), `denied tool returned for "${q}"`);
      assert.ok(!names.some((n) => n.startsWith('vault__')), `quarantined tool returned for "${q}"`);
    }

    // call_tool: the ordinary call path, with its checks.
    const ok = await client.callTool({
      name: 'call_tool',
      arguments: { name: 'chat__slack_post_message', arguments: { channel_id: 'C1', text: 'hi' } },
    });
    assert.deepEqual(ok.content, [{ type: 'text', text: 'called slack_post_message' }]);
    await assert.rejects(client.callTool({ name: 'call_tool', arguments: { name: 'chat__slack_add_reaction', arguments: {} } }), (e) => {
      assert.equal(codeOf(e), 'E_TOOL_FILTERED');
      assert.match((e as Error).message, /slack_add_reaction.*"tools" filter/);
      return true;
    });
    await assert.rejects(client.callTool({ name: 'call_tool', arguments: { name: 'vault__post_secret_message' } }), (e) => {
      assert.equal(codeOf(e), 'E_QUARANTINED');
      return true;
    });
    await assert.rejects(client.callTool({ name: 'call_tool', arguments: { name: 'chat__no_such_tool' } }), (e) => {
      assert.equal(codeOf(e), 'E_UNKNOWN_TOOL');
      return true;
    });
    await assert.rejects(client.callTool({ name: 'retrieve_tools', arguments: { query: 'x', limit: 0 } }), /limit must be an integer/);

    // Progress through call_tool, with the client's own token.
    const progress: number[] = [];
    const slow = await client.callTool(
      { name: 'call_tool', arguments: { name: 'fx__slow', arguments: { steps: 3, intervalMs: 20 } } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.equal(slow.isError, undefined);
    assert.ok(progress.length >= 1, 'progress notifications relayed through call_tool');

    // A tool added upstream (tools/list_changed): the server is re-quarantined (a new tool), so the
    // search shows none of it; once approved, the new tool is found, without a restart.
    writeFileSync(
      chat.file,
      JSON.stringify([
        ...toolsOf('slack'),
        {
          name: 'slack_schedule_reminder',
          description: 'Schedule a reminder for a user at a given time',
          inputSchema: { type: 'object', properties: { when: { type: 'string' } } },
        },
      ]),
    );
    await client.callTool({ name: 'call_tool', arguments: { name: 'chat__reload_tools' } });
    await t.waitForState('chat', 'quarantined');
    assert.deepEqual(
      (await retrieve(client, 'schedule a reminder', 50)).filter((h) => h.name.startsWith('chat__')),
      [],
      'a quarantined server has nothing in the index',
    );
    const pid = t.view('chat')!.pid;
    await t.daemon.registry.approve('chat', t.daemon.registry.toolView('chat').fingerprint);
    await t.waitForState('chat', 'running');
    assert.equal(t.view('chat')!.pid, pid, 'not restarted');
    const found = await retrieve(client, 'remind me tomorrow at nine');
    assert.equal(found[0]?.name, 'chat__slack_schedule_reminder', JSON.stringify(found.map((h) => h.name)));
  } finally {
    await t.close();
  }
});

test('toolMode per client: /mcp?toolMode=search beside all-mode sessions; a bad value is refused with E_BAD_TOOL_MODE', async () => {
  const t = await startTestDaemon({ fx: { command: NODE, args: [fixture('echo-server')], tools: { pinned: ['echo'] } } });
  const opened: Array<() => Promise<void>> = [];
  try {
    await t.waitForState('fx', 'running');
    const all = await t.connect();
    assert.ok(
      (await all.client.listTools()).tools.some((x) => x.name === 'fx__slow'),
      'all mode by default',
    );

    const s = await connectAt(`${t.daemon.mcpUrl}?toolMode=search`);
    opened.push(s.close);
    assert.deepEqual(
      (await s.client.listTools()).tools.map((x) => x.name).sort(),
      ['call_tool', 'fx__echo', 'retrieve_tools'],
      'the meta-tools and the pinned tool',
    );
    const echoed = await s.client.callTool({ name: 'fx__echo', arguments: { message: 'pinned' } });
    assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: pinned' }]);

    for (const [url, pattern] of [
      [`${t.daemon.mcpUrl}?toolMode=everything`, /toolMode must be "all" or "search"/],
      [`${t.daemon.mcpUrl}/fx?toolMode=search`, /applies to \/mcp only/],
    ] as const) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
        }),
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { message: string; data: { code: string } } };
      assert.equal(body.error.data.code, 'E_BAD_TOOL_MODE');
      assert.match(body.error.message, pattern);
    }
    assert.equal(t.daemon.servers().length, 1, 'the daemon keeps serving');
  } finally {
    for (const c of opened) await c();
    await t.close();
  }
});

test('allow/deny filters in all mode: hidden tools are neither listed (on /mcp and /mcp/<server>) nor callable', async () => {
  const t = await startTestDaemon({});
  const opened: Array<() => Promise<void>> = [];
  try {
    const files = toolsServer(t.dataDir, 'files', toolsOf('filesystem'), {
      tools: { allow: ['read_*', 'list_*', 'move_file'], deny: ['*media*', 'move_*'] },
    });
    const config = JSON.parse(readFileSync(t.configPath, 'utf8'));
    config.mcpServers = { files: files.entry };
    writeFileSync(t.configPath, JSON.stringify(config));
    await t.waitForState('files', 'running');
    const expected = [
      'list_allowed_directories',
      'list_directory',
      'list_directory_with_sizes',
      'read_file',
      'read_multiple_files',
      'read_text_file',
    ];

    const { client } = await t.connect();
    assert.deepEqual(
      (await client.listTools()).tools.map((x) => x.name).sort(),
      expected.map((n) => `files__${n}`),
    );
    const scoped = await connectAt(`${t.daemon.mcpUrl}/files`);
    opened.push(scoped.close);
    assert.deepEqual((await scoped.client.listTools()).tools.map((x) => x.name).sort(), expected);

    for (const name of ['files__write_file', 'files__read_media_file', 'files__move_file', 'files__reload_tools']) {
      await assert.rejects(client.callTool({ name, arguments: {} }), (e) => {
        assert.equal(codeOf(e), 'E_TOOL_FILTERED', name);
        return true;
      });
    }
    await assert.rejects(scoped.client.callTool({ name: 'write_file', arguments: {} }), (e) => codeOf(e) === 'E_TOOL_FILTERED');
    const r = await client.callTool({ name: 'files__read_text_file', arguments: { path: '/x' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'called read_text_file' }]);
    // The server still lists everything to a person inspecting it (approval covers every tool); the
    // filter and what it hides are shown by `servers tools` (the control channel's server.tools).
    assert.equal(t.daemon.registry.toolView('files').tools.length, toolsOf('filesystem').length + 1);
    const json = await runCli(['servers', 'tools', 'files', '--data-dir', t.dataDir, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const result = (JSON.parse(json.stdout) as { result: { filter: unknown; hidden: string[]; tools: unknown[] } }).result;
    assert.deepEqual(result.filter, { allow: ['read_*', 'list_*', 'move_file'], deny: ['*media*', 'move_*'] });
    assert.equal(result.tools.length, toolsOf('filesystem').length + 1);
    assert.deepEqual([...result.hidden].sort(), [
      'create_directory',
      'directory_tree',
      'edit_file',
      'get_file_info',
      'move_file',
      'read_media_file',
      'reload_tools',
      'search_files',
      'write_file',
    ]);
    const human = await runCli(['servers', 'tools', 'files', '--data-dir', t.dataDir]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /tools filter: allow \["read_\*","list_\*","move_file"\], deny \["\*media\*","move_\*"\]; 9 of 15 hidden from clients/,
    );
    assert.match(human.stdout, /\n {2}write_file \[filtered: not exposed\] - /);
    assert.match(human.stdout, /\n {2}read_text_file - /);
  } finally {
    for (const c of opened) await c();
    await t.close();
  }
});
