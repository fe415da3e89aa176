/**
 * The SDK's own OAuth example as a real remote upstream for tests (simpleStreamableHttp --oauth: an
 * MCP server plus an in-memory authorization server with metadata discovery, dynamic client
 * registration and PKCE, whose authorization endpoint approves at once and redirects back).
 * Used by test/integration/remote-oauth.test.ts and test/browser/oauth-login.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childEnv } from './cli-daemon.js';
import { NODE } from './test-daemon.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(
  repoRoot,
  'node_modules',
  '@modelcontextprotocol',
  'sdk',
  'dist',
  'esm',
  'examples',
  'server',
  'simpleStreamableHttp.js',
);

/** A TCP port free right now on 127.0.0.1 (the example takes its ports from the environment). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts the example (MCP server on mcpPort, authorization server on authPort); resolves once both listen. */
export async function startOAuthExample(mcpPort: number, authPort: number): Promise<ChildProcess> {
  const child = spawn(NODE, [EXAMPLE, '--oauth'], {
    env: childEnv({ MCP_PORT: String(mcpPort), MCP_AUTH_PORT: String(authPort) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the OAuth example did not start: ${out}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('MCP Streamable HTTP Server listening') && out.includes('Authorization Server listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the OAuth example exited (${code}): ${out}`));
    });
  });
  child.removeAllListeners('exit');
  return child;
}

/** SIGKILL (it holds nothing worth a graceful stop) and wait for the exit. */
export async function stopOAuthExample(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
}
