/**
 * An in-process daemon for integration tests: temp data dir, a config file written from the given
 * servers, port 0, quiet logs. `close()` stops it and asserts nothing of ours is left: no process
 * carrying its instance marker, an empty ledger.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import type { Settings } from '../../src/core/settings.js';
import type { ServerView } from '../../src/daemon/server-view.js';
import { processesWithMarker, waitFor } from './leak-check.js';

export const NODE = process.execPath;
const distRoot = fileURLToPath(new URL('../../', import.meta.url)); // dist/
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const fixture = (name: string) => join(distRoot, 'test', 'fixtures', `${name}.js`);
export const demoServer = join(distRoot, 'src', 'demo', 'demo-server.js');
export const everythingServer = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
export const memoryServer = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-memory', 'dist', 'index.js');
/** The bundled CLI users run (package.json `bin`; scripts/bundle.mjs). */
export const cliMain = join(distRoot, 'bundle', 'cli.js');

/** Small budgets so hostile upstreams cost little test time. */
export const FAST_SETTINGS: Partial<Settings> = {
  initTimeoutMs: 5_000,
  restartBackoffInitialMs: 100,
  restartBackoffMaxMs: 1_000,
  stopEofGraceMs: 300,
  stopTermGraceMs: 500,
  stopKillGraceMs: 1_000,
  reapBackoffInitialMs: 50,
  reapBackoffMaxMs: 500,
  shutdownBudgetMs: 8_000,
};

export interface TestDaemon {
  /** Replaceable: a test that restarts the daemon assigns the new one here, and close() stops it. */
  daemon: Daemon;
  dataDir: string;
  configPath: string;
  connect(): Promise<{ client: Client; listChanged: () => number; close: () => Promise<void> }>;
  view(name: string): ServerView | undefined;
  waitForState(name: string, state: string | ((v: ServerView) => boolean), timeoutMs?: number): Promise<ServerView>;
  close(): Promise<void>;
}

export async function startTestDaemon(mcpServers: Record<string, unknown>, settings: Partial<Settings> = {}): Promise<TestDaemon> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mcp-warden-test-'));
  const configPath = join(dataDir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ mcpServers, settings: { ...FAST_SETTINGS, ...settings } }, null, 2));
  const daemon = await startDaemon({
    dataDir,
    configPath,
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: process.env.MCP_WARDEN_TEST_LOG ?? 'warn',
    console: Boolean(process.env.MCP_WARDEN_TEST_LOG),
  });
  const clients: Array<() => Promise<void>> = [];
  const view = (name: string) => td.daemon.servers().find((s) => s.name === name);
  const td: TestDaemon = {
    daemon,
    dataDir,
    configPath,
    view,
    async connect() {
      const client = new Client({ name: 'mcp-warden-test', version: '1.0.0' });
      let changes = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
        changes++;
      });
      const transport = new StreamableHTTPClientTransport(new URL(td.daemon.mcpUrl));
      await client.connect(transport);
      const close = async () => {
        await transport.terminateSession().catch(() => undefined);
        await client.close().catch(() => undefined);
      };
      clients.push(close);
      return { client, listChanged: () => changes, close };
    },
    async waitForState(name, state, timeoutMs = 10_000) {
      const match = typeof state === 'string' ? (v: ServerView) => v.state === state : state;
      let last: ServerView | undefined;
      const ok = await waitFor(
        () => {
          last = view(name);
          return last !== undefined && match(last);
        },
        { timeoutMs, intervalMs: 20 },
      );
      assert.ok(ok, `server ${name} did not reach ${String(state)} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
      return last!;
    },
    async close() {
      for (const c of clients) await c();
      const d = td.daemon;
      await d.stop('test done');
      try {
        assert.equal(d.ledger.size(), 0, `ledger not empty: ${JSON.stringify(d.ledger.counts())}`);
        const gone = await waitFor(() => processesWithMarker(d.identity.instanceId).length === 0, {
          timeoutMs: 2_000,
          intervalMs: 20,
        });
        assert.ok(gone, `processes left: ${JSON.stringify(processesWithMarker(d.identity.instanceId))}`);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
  return td;
}
