/**
 * The stdio front's relay (`mcp-warden stdio`, src/cli/stdio-command.ts): JSON-RPC messages from
 * stdin go to the daemon's Streamable HTTP endpoint `/mcp`, and everything the endpoint sends back
 * (answers, progress, `list_changed` on the GET stream) goes to stdout. A thin relay on the SDK's own
 * transports, not an MCP client/server pair: the daemon's session is the client's session, so
 * capabilities, pagination and cancellation pass through untouched.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCodes, RpcCodes } from '../../core/error-codes.js';

export interface StdioRelayOptions {
  mcpUrl: string;
  /** Sent as `Authorization: Bearer …` (a daemon bound to a non-loopback address requires it). */
  bearerToken?: string;
  input?: NodeJS.ReadableStream & { on(event: 'end' | 'close', l: () => void): unknown };
  output?: NodeJS.WritableStream;
  /** Problems worth a line on stderr (never stdout: it is the MCP channel). */
  onWarning: (message: string) => void;
}

export interface StdioRelay {
  /** Resolves when stdin ended (the client is gone) or close() was called. */
  readonly ended: Promise<void>;
  /** Ends the daemon session (DELETE) and both transports. Idempotent. */
  close(): Promise<void>;
}

type Msg = JSONRPCMessage & { id?: string | number; method?: string; result?: { protocolVersion?: unknown } };

export async function startStdioRelay(opts: StdioRelayOptions): Promise<StdioRelay> {
  const input = opts.input ?? process.stdin;
  const stdio = new StdioServerTransport(input as typeof process.stdin, (opts.output ?? process.stdout) as typeof process.stdout);
  const http = new StreamableHTTPClientTransport(new URL(opts.mcpUrl), {
    requestInit: opts.bearerToken ? { headers: { authorization: `Bearer ${opts.bearerToken}` } } : undefined,
  });
  const initializeIds = new Set<string | number>();
  // Messages that follow an initialize wait for its answer: it carries the session id every later
  // POST needs, and stdin may deliver a burst (a client that wrote before this process was ready).
  // Callbacks on one promise run in registration order, so the client's order is kept.
  let gate: Promise<void> = Promise.resolve();
  let openGate: (() => void) | undefined;
  let resolveEnded!: () => void;
  const ended = new Promise<void>((r) => (resolveEnded = r));

  http.onmessage = (message) => {
    const m = message as Msg;
    // The protocol version header on later requests is the client's job in the SDK's Client; here,
    // where no Client exists, the relay sets it from the initialize answer it passes on.
    if (m.id !== undefined && initializeIds.delete(m.id)) {
      if (typeof m.result?.protocolVersion === 'string') http.setProtocolVersion(m.result.protocolVersion);
      openGate?.();
    }
    stdio.send(message).catch((err: unknown) => opts.onWarning(`writing to stdout failed: ${String(err)}`));
  };
  let closing: Promise<void> | undefined;
  // After close() the aborted GET stream reports an AbortError: expected, not worth a line.
  http.onerror = (err) => {
    if (!closing) opts.onWarning(`daemon connection: ${err.message}`);
  };
  stdio.onerror = (err) => opts.onWarning(`stdin: ${err.message}`);
  const forward = (message: JSONRPCMessage) => {
    const m = message as Msg;
    http.send(message).catch((err: unknown) => {
      if (m.method === 'initialize') openGate?.();
      const text = err instanceof Error ? err.message : String(err);
      opts.onWarning(`forwarding ${m.method ?? 'a message'} to the daemon failed: ${text}`);
      // A request must get an answer, or the client waits for it forever.
      if (m.id !== undefined && m.method !== undefined) {
        void stdio
          .send({
            jsonrpc: '2.0',
            id: m.id,
            error: {
              code: RpcCodes.SERVER_UNAVAILABLE,
              message: `mcp-warden stdio: the daemon at ${opts.mcpUrl} did not take the request: ${text}`,
              data: { code: ErrorCodes.DAEMON_UNREACHABLE },
            },
          })
          .catch(() => undefined);
      }
    });
  };
  stdio.onmessage = (message) => {
    const m = message as Msg;
    if (m.method === 'initialize' && m.id !== undefined) {
      initializeIds.add(m.id);
      void gate.then(() => forward(message));
      gate = new Promise<void>((r) => (openGate = r));
      return;
    }
    void gate.then(() => forward(message));
  };

  await http.start();
  await stdio.start();
  // The SDK's stdio server transport does not watch for the end of its input; the relay does.
  input.on('end', resolveEnded);
  input.on('close', resolveEnded);

  const close = (): Promise<void> =>
    (closing ??= (async () => {
      resolveEnded();
      if (http.sessionId) await http.terminateSession().catch(() => undefined);
      await http.close().catch(() => undefined);
      await stdio.close().catch(() => undefined);
    })());
  return { ended, close };
}
