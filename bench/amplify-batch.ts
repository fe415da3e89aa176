/**
 * The amplifying batch (a small request whose answers multiply), measured against a real `mcp-warden serve` child process: an
 * upstream lists ~4 MB of tools (test/fixtures/big-payload-server.ts); one 5 KB POST of a JSON-RPC
 * batch of 100 `tools/list` asks /mcp for 100 copies. Prints the reply's size and shape, the time to
 * the end of the reply, and the daemon's peak RSS (VmHWM of /proc/<pid>/status, Linux only).
 *
 *   npm run build && node dist/bench/amplify-batch.js [--count 100] [--tools-bytes 4000000] [--protocol 2025-03-26]
 *
 * docs/benchmarks.md ("Amplifying batch") has the figures before and after the response bounds.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const distRoot = fileURLToPath(new URL('../', import.meta.url));
const cliMain = join(distRoot, 'bundle', 'cli.js');
const fixture = join(distRoot, 'test', 'fixtures', 'big-payload-server.js');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const count = Number(arg('count', '100'));
const toolsBytes = arg('tools-bytes', '4000000');
const protocolVersion = arg('protocol', '2025-03-26');
const deadlineMs = Number(arg('deadline-ms', '120000'));

function vmHwmMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  /** The body, kept only up to `keep` bytes. */
  head: string;
  /** How often E_RESPONSE_TOO_LARGE occurs in the whole body. */
  refused: number;
  ms: number;
  ended: boolean;
}

function post(url: string, body: string, headers: Record<string, string>, keep: number, timeoutMs: number): Promise<Reply> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      },
      (res) => {
        let bytes = 0;
        const parts: Buffer[] = [];
        let kept = 0;
        let refused = 0;
        let carry = '';
        const timer = setTimeout(() => {
          res.destroy();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            bytes,
            head: Buffer.concat(parts).toString('utf8'),
            refused,
            ms: Date.now() - t0,
            ended: false,
          });
        }, timeoutMs);
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          const text = carry + c.toString('latin1');
          refused += (text.match(/E_RESPONSE_TOO_LARGE/g) ?? []).length;
          carry = text.slice(-19); // shorter than the code: never counted twice
          if (kept < keep) {
            parts.push(c.subarray(0, keep - kept));
            kept += Math.min(c.length, keep - kept);
          }
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            bytes,
            head: Buffer.concat(parts).toString('utf8'),
            refused,
            ms: Date.now() - t0,
            ended: true,
          });
        });
        res.on('error', () => undefined);
      },
    );
    req.on('error', (err) =>
      resolve({ status: -1, headers: {}, bytes: 0, head: String(err), refused: 0, ms: Date.now() - t0, ended: false }),
    );
    req.end(body);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-amplify-'));
const config = join(dir, 'config.json');
writeFileSync(
  config,
  JSON.stringify({
    mcpServers: { big: { command: process.execPath, args: [fixture], env: { BIG_TOOLS_BYTES: toolsBytes } } },
    settings: {},
  }),
);
const child = spawn(process.execPath, [cliMain, 'serve', '--data-dir', dir, '--listen', '127.0.0.1:0', '--config', config], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, NODE_OPTIONS: '' },
});
let out = '';
child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
let err = '';
child.stderr.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-4000)));
const exited = new Promise((r) => child.once('exit', r));
try {
  const started = Date.now();
  while (!/listening on (http:\/\/\S+)/.test(out)) {
    if (Date.now() - started > 30_000 || child.exitCode !== null) throw new Error(`serve did not start: ${out} ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const base = new URL(/listening on (http:\/\/\S+)/.exec(out)![1]!).origin;
  const mcp = `${base}/mcp`;
  let tools = 0;
  for (let i = 0; i < 300 && tools === 0; i++) {
    const init = await post(
      mcp,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion, capabilities: {}, clientInfo: { name: 'amplify', version: '1' } },
      }),
      {},
      10_000,
      10_000,
    );
    const sid = String(init.headers['mcp-session-id'] ?? '');
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': protocolVersion };
    await post(mcp, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), h, 0, 10_000);
    const one = await post(mcp, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), h, 300, 30_000);
    if (one.bytes > 1_000_000) {
      tools = one.bytes;
      const before = vmHwmMiB(child.pid!);
      const batch = JSON.stringify(Array.from({ length: count }, (_, k) => ({ jsonrpc: '2.0', id: 100 + k, method: 'tools/list' })));
      const reply = await post(mcp, batch, h, 4096, deadlineMs);
      const tail = reply.ended ? '' : ' (NOT finished)';
      console.log(
        JSON.stringify({
          protocolVersion,
          batchRequestBytes: batch.length,
          toolsListBytes: tools,
          status: reply.status,
          replyBytes: reply.bytes,
          replyMs: reply.ms,
          ended: reply.ended,
          refusedAnswers: reply.refused,
          peakRssBeforeMiB: Math.round(before),
          peakRssAfterMiB: Math.round(vmHwmMiB(child.pid!)),
          head: reply.head.slice(0, 300),
        }),
      );
      if (!reply.ended) console.log(`reply did not finish within ${deadlineMs} ms${tail}`);
      // Still serving?
      const again = await post(mcp, JSON.stringify({ jsonrpc: '2.0', id: 9999, method: 'tools/list' }), h, 0, 30_000);
      console.log(`afterwards: tools/list ${again.status}, ${again.bytes} bytes in ${again.ms} ms`);
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (tools === 0) throw new Error('the upstream never listed its tools');
} finally {
  child.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
}
