#!/usr/bin/env node
/**
 * mcp-warden's demo MCP server (stdio). The embedded default config starts it so that a newcomer's
 * first `mcp-warden serve` shows working tools without installing anything, and the integration
 * tests use it as a well-behaved upstream.
 *
 * Tools: echo {text}, add {a, b} (with structured output), countdown {seconds} (progress
 * notifications + cancellation), time. It exits promptly on stdin EOF and on SIGTERM/SIGINT,
 * as every upstream should.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'mcp-warden-demo', version: '0.1.0' });

server.registerTool('echo', { description: 'Returns the given text unchanged.', inputSchema: { text: z.string() } }, async ({ text }) => ({
  content: [{ type: 'text', text }],
}));

server.registerTool(
  'add',
  {
    description: 'Adds two numbers.',
    inputSchema: { a: z.number(), b: z.number() },
    outputSchema: { sum: z.number() },
  },
  async ({ a, b }) => {
    const sum = a + b;
    return { content: [{ type: 'text', text: String(sum) }], structuredContent: { sum } };
  },
);

server.registerTool(
  'countdown',
  {
    description: 'Counts down one step per second, reporting progress, then returns "liftoff". Cancellable.',
    inputSchema: { seconds: z.number().int().min(1).max(60) },
  },
  async ({ seconds }, extra) => {
    const token = extra._meta?.progressToken;
    for (let done = 0; done < seconds;) {
      await sleep(1000, extra.signal);
      done++;
      if (token !== undefined) {
        await extra
          .sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: done, total: seconds, message: `${seconds - done} left` },
          })
          .catch(() => {});
      }
    }
    return { content: [{ type: 'text', text: 'liftoff' }] };
  },
);

server.registerTool('time', { description: 'Returns the current time (ISO 8601, UTC).' }, async () => ({
  content: [{ type: 'text', text: new Date().toISOString() }],
}));

/** Resolves after ms, rejects as soon as the request is cancelled. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason ?? new Error('cancelled'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason ?? new Error('cancelled'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

let exiting = false;
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  // Do not wait for in-flight tool calls: the client is gone or asked us to stop.
  server.close().catch(() => {});
  process.exit(code);
}

process.stdin.on('end', () => exit(0));
process.stdin.on('close', () => exit(0));
process.on('SIGTERM', () => exit(0));
process.on('SIGINT', () => exit(0));

await server.connect(new StdioServerTransport());
