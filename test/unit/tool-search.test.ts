/**
 * Tool search and tool filters, the pure parts: glob filters, config validation of `tools` and
 * `toolMode` (errors name the field), the index's incremental sync, the words it matches on, and
 * that `all` mode never loads the search code (it is reachable only through a dynamic import).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/config-schema.js';
import { compileToolFilter } from '../../src/core/tool-filter.js';
import { ToolSearchIndex } from '../../src/core/tool-search/tool-search-index.js';
import { terms } from '../../src/core/tool-search/tool-terms.js';
import { conceptsOf } from '../../src/core/tool-search/concepts.js';
import { toolModeOf } from '../../src/adapters/mcp/front-tool-mode.js';
import type { CatalogTool } from '../../src/core/tool-catalog.js';

const tool = (name: string, description: string, properties: Record<string, unknown> = {}): CatalogTool => ({
  name,
  description,
  inputSchema: { type: 'object', properties },
});

test('tool filters: globs over whole names, deny wins over allow, pins only exposed tools', () => {
  const f = compileToolFilter({ allow: ['read_*', 'get-?ile'], deny: ['*secret*'], pinned: ['read_file', 'write_file', 'read_secret'] });
  assert.equal(f.exposes('read_file'), true);
  assert.equal(f.exposes('get-file'), true);
  assert.equal(f.exposes('get-files'), false, '? is one character');
  assert.equal(f.exposes('xread_file'), false, 'whole-name match');
  assert.equal(f.exposes('read_secret'), false, 'deny wins');
  assert.equal(f.exposes('write_file'), false, 'not allowed');
  assert.equal(f.pins('read_file'), true);
  assert.equal(f.pins('write_file'), false, 'a pin does not expose a filtered tool');
  assert.equal(f.pins('read_secret'), false);
  assert.equal(compileToolFilter({ deny: ['a.b'] }).exposes('axb'), true, 'regex characters are literal');
  assert.equal(compileToolFilter(undefined).exposes('anything'), true);
});

test('config: tools filters and toolMode are validated with errors naming the field', () => {
  const good = parseConfig(
    {
      mcpServers: { s: { command: 'x', tools: { allow: ['read_*'], deny: [], pinned: ['read_file'] } } },
      settings: { toolMode: 'search' },
    },
    { baseDir: '/tmp' },
  );
  assert.ok(good.ok);
  assert.deepEqual(good.config.mcpServers['s']!.tools, { allow: ['read_*'], deny: [], pinned: ['read_file'] });
  assert.equal(good.config.settings.toolMode, 'search');

  const r = parseConfig(
    {
      mcpServers: {
        a: { command: 'x', tools: ['read_*'] },
        b: { command: 'x', tools: { allow: 'read_*', deny: ['ok', 3, ''], pin: ['x'] } },
      },
      settings: { toolMode: 'some' },
    },
    { baseDir: '/tmp' },
  );
  assert.ok(!r.ok);
  const at = (p: string) => r.issues.find((i) => i.path === p)?.message ?? `(no issue at ${p}: ${JSON.stringify(r.issues)})`;
  assert.match(at('$.mcpServers.a.tools'), /expected an object like \{"allow"/);
  assert.match(at('$.mcpServers.b.tools.allow'), /expected an array of tool-name globs/);
  assert.match(at('$.mcpServers.b.tools.deny[1]'), /expected a tool-name glob as a string, got a number/);
  assert.match(at('$.mcpServers.b.tools.deny[2]'), /non-empty glob/);
  assert.match(at('$.settings.toolMode'), /expected one of "all", "search", got "some"/);
  assert.ok(r.warnings.some((w) => w.path === '$.mcpServers.b.tools.pin' && /unknown key/.test(w.message)));
});

test('toolMode of a session: query parameter, else the setting; search only on /mcp', () => {
  assert.equal(toolModeOf('/mcp', undefined, 'all'), 'all');
  assert.equal(toolModeOf('/mcp', undefined, 'search'), 'search');
  assert.equal(toolModeOf('/mcp?toolMode=search', undefined, 'all'), 'search');
  assert.equal(toolModeOf('/mcp?x=1&toolMode=all', undefined, 'search'), 'all');
  assert.equal(toolModeOf('/mcp/fx', 'fx', 'search'), 'all', 'the setting does not apply to /mcp/<server>');
  assert.throws(() => toolModeOf('/mcp?toolMode=SEARCH', undefined, 'all'), /must be "all" or "search"/);
  assert.throws(() => toolModeOf('/mcp/fx?toolMode=search', 'fx', 'all'), /applies to \/mcp only/);
});

test('words: names split on _ - and camelCase, stop words dropped, light stemming on both sides', () => {
  assert.deepEqual(terms('slack_get_threadReplies'), terms('slack get thread replies'));
  assert.deepEqual(terms('get-annotated-message'), ['annotat', 'messag']);
  assert.deepEqual(terms('Files'), terms('file'));
  assert.deepEqual(terms('creating'), terms('create'));
  assert.ok(conceptsOf('ping a colleague').length >= 2, 'a concept for the action and one for the person');
  assert.deepEqual(
    conceptsOf('pull request'),
    conceptsOf('merge request').filter((c) => conceptsOf('pull request').includes(c)),
  );
});

test('index: incremental per server (same array untouched, changed replaced, gone removed); concepts find a paraphrase', () => {
  const index = new ToolSearchIndex();
  const chat = [tool('post_message', 'Post a new message to a channel', { channel_id: { type: 'string' } })];
  const files = [tool('read_file', 'Read a file'), tool('write_file', 'Write a file')];
  assert.deepEqual(
    index.sync([
      { server: 'slack', tools: chat, pinned: [] },
      { server: 'fs', tools: files, pinned: [] },
    ]),
    { added: 3, removed: 0 },
  );
  assert.deepEqual(
    index.sync([
      { server: 'slack', tools: chat, pinned: [] },
      { server: 'fs', tools: files, pinned: [] },
    ]),
    { added: 0, removed: 0 },
    'same arrays: nothing re-indexed',
  );
  assert.equal(index.search('ping a colleague in our team chat', 5)[0]?.name, 'slack__post_message');
  assert.deepEqual(
    new ToolSearchIndex({ concepts: false }).search('ping a colleague in our team chat', 5),
    [],
    'plain BM25 has nothing to go on',
  );

  const files2 = [tool('read_file', 'Read a file'), tool('delete_file', 'Delete a file from disk')];
  assert.deepEqual(
    index.sync([
      { server: 'slack', tools: chat, pinned: [] },
      { server: 'fs', tools: files2, pinned: [] },
    ]),
    { added: 2, removed: 2 },
  );
  assert.equal(index.search('delete file', 1)[0]?.name, 'fs__delete_file');
  assert.ok(!index.search('write', 10).some((h) => h.name === 'fs__write_file'), 'a removed tool is gone');
  assert.deepEqual(index.sync([{ server: 'fs', tools: files2, pinned: [] }]), { added: 0, removed: 1 });
  assert.deepEqual(index.search('post message', 10), [], 'a gone server is gone');
  assert.equal(index.size, 2);
});

/** The static import graph of a compiled module (relative imports and bare package names). */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const src = readFileSync(file, 'utf8');
    // Static imports and re-exports only; `import('…')` (dynamic) is what keeps a module out.
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec));
      else packages.add(spec);
    }
    for (const m of src.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) if (m[1]!.startsWith('.')) todo.push(resolve(dirname(file), m[1]!));
  }
  return { files, packages };
}

test('all mode pays nothing: the daemon does not import the search code or MiniSearch statically', () => {
  const dist = fileURLToPath(new URL('../../', import.meta.url));
  const g = staticGraph(join(dist, 'src', 'daemon', 'daemon.js'));
  assert.ok(g.files.has(join(dist, 'src', 'adapters', 'mcp', 'mcp-front.js')), 'the walk reaches the front');
  assert.ok(![...g.packages].some((p) => p.startsWith('minisearch')), `minisearch is imported statically: ${[...g.packages].join(', ')}`);
  assert.ok(![...g.files].some((f) => f.includes('tool-search')), 'no tool-search module in the static graph');
  assert.ok(![...g.files].some((f) => f.endsWith('front-search-tools.js')));
  const front = readFileSync(join(dist, 'src', 'adapters', 'mcp', 'mcp-front.js'), 'utf8');
  assert.match(front, /import\('\.\/front-search-tools\.js'\)/, 'loaded by a dynamic import');
});
