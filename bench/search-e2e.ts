/**
 * retrieve_tools through the real daemon with 5,000 tools: `mcp-warden serve` with 50 upstreams (the
 * file-tools fixture, 100 synthetic tools each), a client on `/mcp?toolMode=search` calling
 * retrieve_tools with the labelled queries. Baseline in the same run: tools/list of all 5,000 tools
 * on `/mcp?toolMode=all`, what a client pays without search. Also the daemon's RSS before the first
 * search-mode session and after its index is built.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { FILE_TOOLS_FIXTURE, REPO } from './lib/paths.js';
import { rssKiB, type Reaper } from './lib/proc.js';
import { percentile, sortNum } from './lib/stats.js';
import { startWarden, stopWarden } from './lib/warden.js';
import { syntheticGroups } from './search-synthetic.js';

export interface SearchE2eResult {
  servers: number;
  tools: number;
  /** First retrieve_tools of the daemon: loads the search code and indexes every tool. */
  firstRetrieveMs: number;
  retrieveP50Ms: number;
  retrieveP95Ms: number;
  retrieves: number;
  /** Baseline: tools/list of every tool in `all` mode. */
  listAllP50Ms: number;
  listAllBytes: number;
  retrieveBytes: number;
  rssBeforeKiB: number | undefined;
  rssAfterKiB: number | undefined;
}

async function connect(url: string): Promise<{ client: Client; close: () => Promise<void> }> {
  const client = new Client({ name: 'mcp-warden-bench', version: '1' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport, { timeout: 30_000 });
  return {
    client,
    close: async () => {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    },
  };
}

export async function runSearchE2e(reaper: Reaper, opts: { servers: number; perServer: number; rounds: number }): Promise<SearchE2eResult> {
  const queries = (JSON.parse(readFileSync(join(REPO, 'bench', 'search-queries.json'), 'utf8')) as { queries: Array<{ q: string }> })
    .queries;
  const dir = reaper.trackDir(mkdtempSync(join(tmpdir(), 'mcp-warden-bench-tools-')));
  const servers: Record<string, { command: string; args: string[]; env: Record<string, string> }> = {};
  for (const g of syntheticGroups(42, opts.servers, opts.perServer)) {
    const file = join(dir, `${g.server}.json`);
    writeFileSync(file, JSON.stringify(g.tools));
    servers[g.server] = { command: process.execPath, args: [FILE_TOOLS_FIXTURE], env: { TOOLS_FILE: file } };
  }
  const w = await startWarden(reaper, servers as never, { initTimeoutMs: 60_000 });
  const open: Array<() => Promise<void>> = [];
  try {
    await w.waitAllRunning(opts.servers, 180_000, 100);
    const all = await connect(`${w.mcpUrl}?toolMode=all`);
    open.push(all.close);
    const list: number[] = [];
    let tools = 0;
    let listAllBytes = 0;
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const r = await all.client.listTools();
      list.push(performance.now() - t);
      tools = r.tools.length;
      listAllBytes = JSON.stringify(r).length;
    }
    const rssBeforeKiB = rssKiB(w.pid);
    const s = await connect(`${w.mcpUrl}?toolMode=search`);
    open.push(s.close);
    const t0 = performance.now();
    await s.client.callTool({ name: 'retrieve_tools', arguments: { query: queries[0]!.q } });
    const firstRetrieveMs = performance.now() - t0;
    const samples: number[] = [];
    let retrieveBytes = 0;
    for (let round = 0; round < opts.rounds; round++) {
      for (const q of queries) {
        const t = performance.now();
        const r = await s.client.callTool({ name: 'retrieve_tools', arguments: { query: q.q } });
        samples.push(performance.now() - t);
        retrieveBytes = Math.max(retrieveBytes, JSON.stringify(r).length);
      }
    }
    const rssAfterKiB = rssKiB(w.pid);
    const sorted = sortNum(samples);
    return {
      servers: opts.servers,
      tools,
      firstRetrieveMs,
      retrieveP50Ms: percentile(sorted, 50),
      retrieveP95Ms: percentile(sorted, 95),
      retrieves: samples.length,
      listAllP50Ms: percentile(sortNum(list), 50),
      listAllBytes,
      retrieveBytes,
      rssBeforeKiB,
      rssAfterKiB,
    };
  } finally {
    for (const c of open) await c();
    await stopWarden(reaper, w);
    rmSync(dir, { recursive: true, force: true });
  }
}
