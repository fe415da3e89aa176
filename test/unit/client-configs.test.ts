/** Other clients' config formats (src/config/client-configs.ts): the fixtures mirror each client's real layout. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientConfigPath, connectEntry, extractServers, sanitizeName } from '../../src/config/client-configs.js';
import { FIXTURES } from '../fixtures/client-configs.js';

test('Claude Desktop: mcpServers, other keys ignored, invalid names made valid with a note', () => {
  const r = extractServers(FIXTURES.claudeDesktop);
  assert.deepEqual(r.layouts, ['mcpServers']);
  assert.deepEqual(
    r.servers.map((s) => [s.name, s.entry]),
    [
      ['memory', { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'] }],
      ['my-files', { command: 'node', args: ['files.js'], env: { ROOT: '/srv' } }],
    ],
  );
  assert.match(r.servers[1]!.notes.join(), /renamed from "my.files"/);
  assert.deepEqual(r.problems, []);
});

test('Cursor: url + headers kept, envFile dropped with a note', () => {
  const r = extractServers(FIXTURES.cursor);
  assert.deepEqual(r.servers[0]!.entry, { url: 'https://mcp.linear.app/mcp', headers: { Authorization: 'Bearer x' } });
  assert.deepEqual(r.servers[1]!.entry, { command: 'node', args: ['a.js'] });
  assert.match(r.servers[1]!.notes.join(), /dropped "envFile".*copy the envFile variables/);
});

test('Windsurf: serverUrl becomes url; disabled kept', () => {
  const r = extractServers(FIXTURES.windsurf);
  assert.deepEqual(r.servers[0]!.entry, { url: 'https://example.com/mcp' });
  assert.deepEqual(r.servers[1]!.entry, { command: 'uvx', args: ['mcp-server-git'], disabled: true });
});

test('VS Code: servers with type; ${input:…} becomes ${env:…}, inputs reported', () => {
  const r = extractServers(FIXTURES.vscode);
  assert.deepEqual(r.layouts, ['servers']);
  assert.deepEqual(r.servers[0]!.entry, { type: 'stdio', command: 'node', args: ['gh.js'], env: { TOKEN: '${env:API_KEY}' } });
  assert.deepEqual(r.servers[1]!.entry, { type: 'http', url: 'https://x.example/mcp' });
  assert.match(r.servers[0]!.notes.join(), /\$\{input:api-key\} became \$\{env:API_KEY\}/);
  assert.match(r.problems.join(), /inputs: 1 VS Code input/);
});

test('Claude Code: top level and every project; a same-name conflict is named, the first kept', () => {
  const r = extractServers(FIXTURES.claudeCode, 'cc-');
  assert.deepEqual(r.layouts, ['mcpServers', 'projects']);
  assert.deepEqual(
    r.servers.map((s) => [s.name, s.source]),
    [
      ['cc-top', 'mcpServers.top'],
      ['cc-db', 'projects["/home/me/app"].mcpServers.db'],
    ],
  );
  assert.equal(r.problems.length, 1);
  assert.match(
    r.problems[0]!,
    /projects\["\/home\/me\/third"\]\.mcpServers\.db: conflicts with projects\["\/home\/me\/app"\]\.mcpServers\.db/,
  );
});

test('names, locations and connect entries', () => {
  assert.equal(sanitizeName('a__b..c_'), 'a_b-c');
  assert.equal(sanitizeName('x'.repeat(40)).length, 32);
  assert.equal(clientConfigPath('claude-desktop', '/h'), '/h/.config/Claude/claude_desktop_config.json');
  assert.equal(clientConfigPath('claude-code', '/h'), '/h/.claude.json');
  assert.equal(clientConfigPath('vscode', '/h', '/x'), '/x/Code/User/mcp.json');
  assert.deepEqual(connectEntry('windsurf', { kind: 'http', url: 'http://l/mcp' }), {
    listKey: 'mcpServers',
    entry: { serverUrl: 'http://l/mcp' },
  });
  assert.deepEqual(connectEntry('vscode', { kind: 'stdio', command: 'n', args: ['m', 'stdio'] }), {
    listKey: 'servers',
    entry: { type: 'stdio', command: 'n', args: ['m', 'stdio'] },
  });
});
