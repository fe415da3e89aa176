/**
 * Regenerates bench/search-tools.fixture.json: the real tool lists of real MCP servers from npm, the
 * corpus of the tool-search benchmark (bench/search.ts). Run by hand, not by the bench:
 *
 *   npm install --no-save --prefix /tmp/mcp-servers <the packages below>
 *   npm run build && node dist/bench/search-dump-tools.js /tmp/mcp-servers
 *
 * Each server is started over stdio with dummy credentials (they list their tools without calling
 * their APIs), asked for tools/list, and stopped. The fixture records package name and version.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { z } from 'zod';
import { REPO } from './lib/paths.js';

const ToolsPage = z.object({ tools: z.array(z.record(z.string(), z.unknown())), nextCursor: z.string().optional() }).passthrough();

interface ServerSpec {
  /** Server name in the federated catalog (`<server>__<tool>`). */
  server: string;
  pkg: string;
  /** The bin to run (package.json `bin` key), when the package has several. */
  bin?: string;
  args?: string[];
  env?: Record<string, string>;
}

const SERVERS: ServerSpec[] = [
  { server: 'github', pkg: '@modelcontextprotocol/server-github', env: { GITHUB_PERSONAL_ACCESS_TOKEN: 'dummy' } },
  { server: 'gitlab', pkg: '@modelcontextprotocol/server-gitlab', env: { GITLAB_PERSONAL_ACCESS_TOKEN: 'dummy' } },
  { server: 'slack', pkg: '@modelcontextprotocol/server-slack', env: { SLACK_BOT_TOKEN: 'xoxb-dummy', SLACK_TEAM_ID: 'T0000' } },
  { server: 'filesystem', pkg: '@modelcontextprotocol/server-filesystem', args: ['/tmp'] },
  { server: 'memory', pkg: '@modelcontextprotocol/server-memory', env: { MEMORY_FILE_PATH: '/tmp/mcp-warden-dump-memory.json' } },
  { server: 'everything', pkg: '@modelcontextprotocol/server-everything', args: ['stdio'] },
  { server: 'maps', pkg: '@modelcontextprotocol/server-google-maps', env: { GOOGLE_MAPS_API_KEY: 'dummy' } },
  { server: 'brave', pkg: '@modelcontextprotocol/server-brave-search', env: { BRAVE_API_KEY: 'dummy' } },
  { server: 'thinking', pkg: '@modelcontextprotocol/server-sequential-thinking' },
  { server: 'puppeteer', pkg: '@modelcontextprotocol/server-puppeteer' },
  { server: 'playwright', pkg: '@playwright/mcp', args: ['--headless'] },
];

function binOf(prefix: string, spec: ServerSpec): { file: string; version: string } {
  const dir = join(prefix, 'node_modules', ...spec.pkg.split('/'));
  const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string; bin?: string | Record<string, string> };
  const bin = typeof pj.bin === 'string' ? pj.bin : pj.bin ? (spec.bin ? pj.bin[spec.bin] : Object.values(pj.bin)[0]) : undefined;
  if (!bin) throw new Error(`${spec.pkg}: no bin in package.json`);
  return { file: join(dir, bin), version: pj.version };
}

async function dump(prefix: string, spec: ServerSpec) {
  const { file, version } = binOf(prefix, spec);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [file, ...(spec.args ?? [])],
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...spec.env },
    stderr: 'ignore',
  });
  const client = new Client({ name: 'mcp-warden-search-dump', version: '1' });
  await client.connect(transport);
  try {
    const tools: unknown[] = [];
    let cursor: string | undefined;
    do {
      const r = (await client.request({ method: 'tools/list', params: cursor ? { cursor } : {} }, ToolsPage)) as z.infer<typeof ToolsPage>;
      for (const t of r.tools) tools.push({ name: t['name'], description: t['description'], inputSchema: t['inputSchema'] });
      cursor = r.nextCursor;
    } while (cursor);
    return { server: spec.server, package: spec.pkg, version, tools };
  } finally {
    await client.close().catch(() => undefined);
  }
}

const prefix = process.argv[2];
if (!prefix) {
  process.stderr.write('usage: node dist/bench/search-dump-tools.js <npm prefix with the servers installed>\n');
  process.exit(2);
}
const servers = [];
for (const spec of SERVERS) {
  try {
    const s = await dump(prefix, spec);
    process.stderr.write(`${spec.server}: ${s.tools.length} tools (${spec.pkg}@${s.version})\n`);
    servers.push(s);
  } catch (err) {
    process.stderr.write(`${spec.server}: skipped (${String(err)})\n`);
  }
}
const out = join(REPO, 'bench', 'search-tools.fixture.json');
writeFileSync(out, `${JSON.stringify({ generatedBy: 'bench/search-dump-tools.ts', servers }, null, 1)}\n`);
process.stderr.write(`wrote ${out}: ${servers.reduce((n, s) => n + s.tools.length, 0)} tools from ${servers.length} servers\n`);
