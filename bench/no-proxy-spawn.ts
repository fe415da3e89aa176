/**
 * The no-proxy baseline of the scale benchmark: spawn N stdio MCP servers and initialize them in
 * parallel (SDK Client + StdioClientTransport, then tools/list, the same work mcp-warden does before
 * it calls a server `running`), with no proxy in between, and with the same environment for the servers.
 *
 * Usage: node no-proxy-spawn.js <N> <command> [args…]
 * Prints `READY <ms since this script started>` when all N are initialized, then waits for stdin to
 * end (or a `close` line) and closes every client (their servers exit on stdin EOF).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const started = performance.now();
const [nArg, command, ...args] = process.argv.slice(2);
const n = Number(nArg);
if (!Number.isInteger(n) || n < 1 || !command) {
  process.stderr.write('usage: no-proxy-spawn <N> <command> [args…]\n');
  process.exit(2);
}

// The environment mcp-warden gives a stdio server: the whole environment (minus its own MCP_WARDEN_*
// markers). The SDK's default would be six variables; the difference is not the proxy's to claim —
// e.g. NODE_EXTRA_CA_CERTS alone costs every Node server ~40 ms of CPU at start.
const serverEnv: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('MCP_WARDEN_')) serverEnv[k] = v;

const clients: Client[] = [];
await Promise.all(
  Array.from({ length: n }, async () => {
    const client = new Client({ name: 'no-proxy-spawn', version: '1.0.0' }, { capabilities: {} });
    clients.push(client);
    await client.connect(new StdioClientTransport({ command, args, env: serverEnv, stderr: 'ignore' }), { timeout: 60_000 });
    await client.listTools(undefined, { timeout: 60_000 });
  }),
);
process.stdout.write(`READY ${(performance.now() - started).toFixed(1)}\n`);

let closing = false;
const close = async () => {
  if (closing) return;
  closing = true;
  await Promise.allSettled(clients.map((c) => c.close()));
  process.exit(0);
};
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  if (d.includes('close')) void close();
});
process.stdin.on('end', () => void close());
process.stdin.on('error', () => void close());
