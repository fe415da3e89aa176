/**
 * The one client every target is measured with: the MCP SDK `Client` over StdioClientTransport,
 * StreamableHTTPClientTransport or SSEClientTransport, calling the upstream's `echo` tool.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { sleep } from './proc.js';

export interface EchoConn {
  /** The tool name as this target lists it (`echo`, `up__echo`, …). */
  tool: string;
  call(): Promise<void>;
  close(): Promise<void>;
}

const MESSAGE = 'hello from the bench';

async function connectOnce(transport: Transport, what: string): Promise<{ client: Client; tool: string }> {
  const client = new Client({ name: 'mcp-warden-bench', version: '1.0.0' }, { capabilities: {} });
  await client.connect(transport, { timeout: 15_000 });
  try {
    const { tools } = await client.listTools(undefined, { timeout: 15_000 });
    const tool = tools.find((t) => t.name === 'echo') ?? tools.find((t) => /(^|[_:.\-/])echo$/.test(t.name));
    if (!tool) throw new Error(`${what}: no echo tool in ${JSON.stringify(tools.map((t) => t.name))}`);
    const r = await client.callTool({ name: tool.name, arguments: { message: MESSAGE } }, undefined, { timeout: 15_000 });
    const text = JSON.stringify(r.content);
    if (r.isError || !text.includes(MESSAGE)) throw new Error(`${what}: echo answered ${text.slice(0, 200)}`);
    return { client, tool: tool.name };
  } catch (err) {
    await client.close().catch(() => undefined);
    throw err;
  }
}

function wrap(client: Client, tool: string, onClose?: () => Promise<void>): EchoConn {
  const params = { name: tool, arguments: { message: MESSAGE } };
  return {
    tool,
    async call() {
      const r = await client.callTool(params, undefined, { timeout: 30_000 });
      if (r.isError) throw new Error(`echo failed: ${JSON.stringify(r.content).slice(0, 200)}`);
    },
    async close() {
      await onClose?.().catch(() => undefined);
      await client.close().catch(() => undefined);
    },
  };
}

/** Direct stdio: the SDK spawns the upstream itself (in the bench's own process group). */
export async function connectStdio(command: string, args: string[]): Promise<EchoConn> {
  const transport = new StdioClientTransport({ command, args, stderr: 'ignore' });
  const { client, tool } = await connectOnce(transport, 'direct stdio');
  return wrap(client, tool);
}

/**
 * HTTP targets: retries connect + list + one echo until the upstream behind the proxy answers
 * (a proxy may listen before its upstream is connected), up to timeoutMs.
 */
export async function connectHttp(url: string, wire: 'streamable' | 'sse', what: string, timeoutMs = 30_000): Promise<EchoConn> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    const transport = wire === 'streamable' ? new StreamableHTTPClientTransport(new URL(url)) : new SSEClientTransport(new URL(url));
    try {
      const { client, tool } = await connectOnce(transport, what);
      const end = transport instanceof StreamableHTTPClientTransport ? () => transport.terminateSession() : undefined;
      return wrap(client, tool, end);
    } catch (err) {
      lastErr = err;
      await transport.close().catch(() => undefined);
      if (Date.now() > deadline) break;
      await sleep(250);
    }
  }
  throw new Error(`${what}: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}`);
}

/** `n` sequential calls; latency of each in ms. */
export async function sequential(conn: EchoConn, n: number): Promise<number[]> {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await conn.call();
    out[i] = performance.now() - t0;
  }
  return out;
}

/** `n` calls, `concurrency` in flight at any time; latency of each call and the block's wall time. */
export async function concurrent(conn: EchoConn, n: number, concurrency: number): Promise<{ lat: number[]; wallMs: number }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      next++;
      const s = performance.now();
      await conn.call();
      lat.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { lat, wallMs: performance.now() - t0 };
}
