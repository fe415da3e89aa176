/**
 * The lean floor of throughput: a `node:http` server that answers MCP's JSON-RPC over Streamable HTTP
 * itself (initialize with a session id, notifications 202, tools/list, tools/call `echo`), with no
 * SDK, no validation and no upstream, one `end(body)` per answer. Nothing a proxy does can be cheaper
 * than this on the same machine, so the bench reports mcp-warden's throughput as a ratio of it.
 *
 * Prints `PORT <n>` when listening on 127.0.0.1; exits on stdin EOF or SIGTERM.
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';

const TOOLS = [
  {
    name: 'echo',
    description: 'Echoes the message back',
    inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
  },
];

interface Rpc {
  id?: string | number;
  method?: string;
  params?: { name?: string; arguments?: { message?: unknown }; protocolVersion?: string };
}

function answer(rpc: Rpc): unknown {
  switch (rpc.method) {
    case 'initialize':
      return {
        protocolVersion: rpc.params?.protocolVersion ?? '2025-06-18',
        capabilities: { tools: {} },
        serverInfo: { name: 'lean-http', version: '1.0.0' },
      };
    case 'tools/list':
      return { tools: TOOLS };
    case 'tools/call':
      return { content: [{ type: 'text', text: `Echo: ${String(rpc.params?.arguments?.message)}` }] };
    case 'ping':
      return {};
    default:
      return undefined;
  }
}

const server = createServer((req, res) => {
  if (req.method === 'DELETE') return void res.writeHead(200).end();
  if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST, DELETE' }).end();
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let rpc: Rpc;
    try {
      rpc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Rpc;
    } catch {
      return void res.writeHead(400).end();
    }
    if (rpc.id === undefined) return void res.writeHead(202).end();
    const result = answer(rpc);
    const body = JSON.stringify(
      result === undefined
        ? { jsonrpc: '2.0', id: rpc.id, error: { code: -32601, message: 'Method not found' } }
        : { jsonrpc: '2.0', id: rpc.id, result },
    );
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (rpc.method === 'initialize') headers['mcp-session-id'] = randomUUID();
    res.writeHead(200, headers).end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`PORT ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
