/**
 * A Docker engine proxy on a unix socket in front of the real engine, for tests that need one kind
 * of engine call to fail or stall without disturbing the engine itself (other suites share it).
 * Everything is forwarded (including the hijacked attach connection and long-lived wait requests)
 * except the calls `rule` picks: those are answered 500 ('fail') or held unanswered until the proxy
 * closes ('stall', so the caller's own deadline fires). Every request is recorded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type ProxyAction = 'pass' | 'fail' | 'stall';

export interface EngineProxy {
  /** `unix://…` for DOCKER_HOST or createDockerClient({ socketPath }). */
  readonly address: string;
  readonly socketPath: string;
  /** Every request seen: method and path (without the API version prefix and query). */
  readonly seen: Array<{ method: string; path: string; action: ProxyAction }>;
  /** Decides per request; default: pass everything. */
  rule: (method: string, path: string) => ProxyAction;
  close(): Promise<void>;
}

export const FAIL_MESSAGE = 'engine proxy: refused by the test';

export async function startEngineProxy(engineSocketPath: string): Promise<EngineProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-engine-proxy-'));
  const socketPath = join(dir, 'docker.sock');
  const held = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const pathOf = (url: string | undefined) => (url ?? '').split('?')[0]!.replace(/^\/v[0-9.]+/, '');

  const proxy: EngineProxy = {
    address: `unix://${socketPath}`,
    socketPath,
    seen: [],
    rule: () => 'pass',
    async close() {
      for (const res of held) res.destroy();
      held.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const decide = (req: IncomingMessage): ProxyAction => {
    const path = pathOf(req.url);
    const action = proxy.rule(req.method ?? '', path);
    proxy.seen.push({ method: req.method ?? '', path, action });
    return action;
  };

  const server = createServer((req, res) => {
    const action = decide(req);
    if (action === 'fail') {
      req.resume();
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: FAIL_MESSAGE }));
      return;
    }
    if (action === 'stall') {
      req.resume();
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    const up = request({ socketPath: engineSocketPath, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      res.flushHeaders(); // a wait request's headers mean "the engine is waiting": pass them on at once
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  });
  // attach with hijack: forward the raw connection both ways.
  server.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => {
    decide(req);
    sockets.add(client);
    const up = connect(engineSocketPath);
    sockets.add(up);
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length > 0) up.write(head);
    up.pipe(client);
    client.pipe(up);
    const end = () => {
      up.destroy();
      client.destroy();
      sockets.delete(up);
      sockets.delete(client);
    };
    up.on('error', end);
    client.on('error', end);
    up.on('close', end);
    client.on('close', end);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return proxy;
}
