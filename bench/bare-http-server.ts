/**
 * The HTTP half of the floor: a bare MCP SDK Streamable HTTP server (stateful, one low-level
 * `Server` per session, plain node:http) that answers `echo` itself, in its own process. Whatever an
 * SDK-built proxy does, it pays at least this plus a stdio round trip to its upstream.
 *
 * Prints `PORT <n>` when listening on 127.0.0.1; exits on stdin EOF or SIGTERM.
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

const ECHO_TOOL = {
  name: 'echo',
  description: 'Echoes the message back',
  inputSchema: { type: 'object' as const, properties: { message: { type: 'string' } }, required: ['message'] },
};

const sessions = new Map<string, StreamableHTTPServerTransport>();

function newSession(): StreamableHTTPServerTransport {
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      sessions.set(id, transport);
    },
  });
  transport.onclose = () => {
    if (transport.sessionId) sessions.delete(transport.sessionId);
  };
  const server = new Server({ name: 'bare-http', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [ECHO_TOOL] }));
  server.setRequestHandler(CallToolRequestSchema, async (req) => ({
    content: [{ type: 'text', text: `Echo: ${String(req.params.arguments?.['message'])}` }],
  }));
  void server.connect(transport);
  return transport;
}

const http = createServer((req, res) => {
  if (req.url !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: unknown;
    if (req.method === 'POST') {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
    }
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (!transport) {
      if (sid !== undefined || req.method !== 'POST' || !isInitializeRequest(body)) {
        res.writeHead(sid !== undefined ? 404 : 400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'no session' }, id: null }));
        return;
      }
      transport = newSession();
    }
    void transport.handleRequest(req, res, body);
  });
});

// `--port N`: listen there (the remote bench restarts the server on the same port).
const portArg = process.argv.indexOf('--port');
const listenPort = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
http.listen(listenPort, '127.0.0.1', () => {
  const addr = http.address();
  process.stdout.write(`PORT ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
const quit = () => process.exit(0);
process.stdin.on('end', quit);
process.stdin.on('error', quit);
process.stdin.resume();
process.on('SIGTERM', quit);
