import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const DEMO = fileURLToPath(new URL('../../src/demo/demo-server.js', import.meta.url));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

async function waitGone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !isAlive(pid);
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => (c.type === 'text' ? (c.text ?? '') : '')).join('');
}

let client: Client;
let transport: StdioClientTransport;
let pid: number;

before(async () => {
  transport = new StdioClientTransport({ command: process.execPath, args: [DEMO], stderr: 'inherit' });
  client = new Client({ name: 'demo-server-test', version: '0.0.0' });
  await client.connect(transport);
  assert.ok(transport.pid, 'transport reports the child pid');
  pid = transport.pid;
});

after(async () => {
  await client?.close().catch(() => {});
  if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
});

test('lists the four demo tools', async () => {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ['add', 'countdown', 'echo', 'time']);
  const add = tools.find((t) => t.name === 'add')!;
  assert.equal(add.outputSchema?.type, 'object');
  assert.ok(add.outputSchema?.properties && 'sum' in add.outputSchema.properties);
  const countdown = tools.find((t) => t.name === 'countdown')!;
  assert.deepEqual((countdown.inputSchema.properties as Record<string, { type?: string }>).seconds?.type, 'integer');
});

test('echo and add', async () => {
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello, warden' } });
  assert.equal(textOf(echo), 'hello, warden');
  const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 40.5 } });
  assert.equal(textOf(add), '42.5');
  assert.deepEqual(add.structuredContent, { sum: 42.5 });
});

test('time returns an ISO timestamp close to now', async () => {
  const res = await client.callTool({ name: 'time', arguments: {} });
  const t = Date.parse(textOf(res));
  assert.ok(Math.abs(t - Date.now()) < 5000, textOf(res));
});

test('invalid countdown arguments are reported as a tool error', async () => {
  const res = await client.callTool({ name: 'countdown', arguments: { seconds: 0 } });
  assert.equal(res.isError, true);
});

test('countdown sends progress notifications and returns liftoff', async () => {
  const progress: { progress: number; total?: number }[] = [];
  const res = await client.callTool({ name: 'countdown', arguments: { seconds: 2 } }, undefined, {
    onprogress: (p) => progress.push(p),
  });
  assert.equal(textOf(res), 'liftoff');
  assert.ok(progress.length >= 1, 'at least one progress notification');
  // The SDK's StdioClientTransport may drop the last progress notification when it arrives in the
  // same chunk as the result (it dispatches responses before notifications); our own transport does
  // not (test/integration/daemon-federation.test.ts checks the exact sequence through the daemon).
  assert.ok(
    progress.every((p, i) => p.progress === i + 1),
    JSON.stringify(progress),
  );
  assert.equal(progress[0]!.total, 2);
});

test('a countdown of 30 is cancelled promptly via AbortSignal, and the server keeps serving', async () => {
  const ac = new AbortController();
  const started = Date.now();
  const call = client.callTool({ name: 'countdown', arguments: { seconds: 30 } }, undefined, { signal: ac.signal });
  setTimeout(() => ac.abort(new Error('user cancelled')), 300);
  await assert.rejects(call);
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 2000, `rejected after ${elapsed} ms`);
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
  assert.equal(textOf(echo), 'still here');
});

test('closing the client ends the server process', async () => {
  const t0 = Date.now();
  await client.close();
  assert.ok(await waitGone(pid, 3000), `demo server ${pid} still alive 3 s after close`);
  // The server exits on stdin EOF, so the transport never needed its 2 s SIGTERM escalation.
  assert.ok(Date.now() - t0 < 1900, `close took ${Date.now() - t0} ms`);
});

test('raw JSON-RPC: notifications/cancelled stops the countdown server-side; SIGTERM exits promptly', async () => {
  const child = spawn(process.execPath, [DEMO], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | number | null>((r) => child.on('exit', (c, s) => r(s ?? c)));
  const msgs: { id?: number; method?: string; result?: unknown; params?: { progress?: number } }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => msgs.push(JSON.parse(l)));
  const send = (m: object) => child.stdin!.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\n');
  const waitFor = async (pred: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return pred();
  };
  try {
    send({
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    });
    assert.ok(await waitFor(() => msgs.some((m) => m.id === 1), 5000), 'initialize answered');
    send({ method: 'notifications/initialized' });
    send({ id: 2, method: 'tools/call', params: { name: 'countdown', arguments: { seconds: 30 }, _meta: { progressToken: 'p1' } } });
    const progress = () => msgs.filter((m) => m.method === 'notifications/progress').length;
    assert.ok(await waitFor(() => progress() >= 1, 3000), 'first progress notification');
    send({ method: 'notifications/cancelled', params: { requestId: 2, reason: 'test' } });
    const seen = progress();
    await new Promise((r) => setTimeout(r, 2300));
    assert.ok(progress() <= seen + 1, `progress kept coming after cancel (${seen} -> ${progress()})`);
    assert.ok(!msgs.some((m) => m.id === 2), 'a cancelled request gets no response');
    const t0 = Date.now();
    child.kill('SIGTERM');
    await exited;
    assert.ok(Date.now() - t0 < 1000, `SIGTERM exit took ${Date.now() - t0} ms`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
