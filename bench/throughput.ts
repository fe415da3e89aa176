/**
 * Throughput: `tools/call` of `echo` with autocannon at 16 and 64 connections on one MCP session,
 * mcp-warden (one upstream, the C echo fixture when available) against the lean floor
 * (bench/lean-http-server.ts: node:http answering the JSON-RPC itself) and the bare SDK HTTP server,
 * alternating which target goes first each repetition. Every answer must be a 200 whose body holds a
 * `result` (no shedding): anything else is counted and fails the goal.
 *
 * And tools/list latency (sequential, one session) with 500 upstreams against 1.
 */
import autocannon from 'autocannon';
import { BARE_HTTP_SERVER, LEAN_HTTP_SERVER } from './lib/paths.js';
import { RUN_ARG, waitForLine, type Reaper } from './lib/proc.js';
import { startWarden, stopWarden, type WardenProcess } from './lib/warden.js';
import { median, percentile, sortNum } from './lib/stats.js';

export interface ThroughputConfig {
  connections: number[];
  durationSec: number;
  reps: number;
  listCounts: number[];
  listCalls: number;
  upstream: { command: string; args: string[]; label: string };
}

export interface LoadSample {
  reqPerSec: number;
  p50: number;
  p99: number;
  ok: number;
  bad: number;
  /** The first answer that was not good (status and the start of its body). */
  firstBad?: string;
}

export interface ThroughputResult {
  config: ThroughputConfig;
  /** target → connections → samples (one per repetition). */
  load: Record<string, Record<number, LoadSample[]>>;
  /** upstream count → tools/list latencies (ms). */
  list: Record<number, number[]>;
  errors: string[];
  wallMs: number;
}

const ACCEPT = 'application/json, text/event-stream';
const PROTOCOL = '2025-06-18';

async function post(url: string, body: unknown, session?: string): Promise<{ status: number; session: string | null; text: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': PROTOCOL };
  if (session) headers['mcp-session-id'] = session;
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
  return { status: r.status, session: r.headers.get('mcp-session-id'), text: await r.text() };
}

/** initialize + notifications/initialized; the session id and the echo tool's name. */
async function openSession(url: string): Promise<{ session: string; tool: string }> {
  const init = await post(url, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
  });
  if (init.status !== 200 || !init.session) throw new Error(`${url}: initialize answered ${init.status} ${init.text.slice(0, 200)}`);
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
  const list = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, init.session);
  const names = [...list.text.matchAll(/"name":"([^"]+)"/g)].map((m) => m[1]!);
  const tool = names.find((n) => n === 'echo' || n.endsWith('__echo'));
  if (!tool) throw new Error(`${url}: no echo tool in ${list.text.slice(0, 200)}`);
  return { session: init.session, tool };
}

async function load(url: string, connections: number, durationSec: number): Promise<LoadSample> {
  const { session, tool } = await openSession(url);
  let ok = 0;
  let bad = 0;
  let firstBad: string | undefined;
  // Ids in flight must be unique within a session (mcp-warden refuses a duplicate): one per request.
  let id = 0;
  const params = JSON.stringify({ name: tool, arguments: { message: 'hello' } });
  const body = () => `{"jsonrpc":"2.0","id":${++id},"method":"tools/call","params":${params}}`;
  const result = await autocannon({
    url,
    connections,
    duration: durationSec,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': session, 'mcp-protocol-version': PROTOCOL },
    body: body(),
    requests: [
      {
        setupRequest: (req) => ({ ...req, body: body() }),
        onResponse: (status: number, text: string) => {
          if (status === 200 && text.includes('"result"') && text.includes('Echo: hello')) ok++;
          else {
            bad++;
            firstBad ??= `${status} ${text.slice(0, 160)}`;
          }
        },
      },
    ],
  });
  return {
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    // onResponse saw every answer (non-2xx included); errors and timeouts got none.
    bad: bad + result.errors + result.timeouts,
    ...(firstBad !== undefined ? { firstBad } : {}),
  };
}

async function listLatencies(w: WardenProcess, calls: number): Promise<number[]> {
  const { session } = await openSession(w.mcpUrl);
  const out: number[] = [];
  for (let i = 0; i < calls + 20; i++) {
    const t0 = performance.now();
    const r = await post(w.mcpUrl, { jsonrpc: '2.0', id: 100 + i, method: 'tools/list' }, session);
    const dt = performance.now() - t0;
    if (r.status !== 200 || !r.text.includes('"tools"')) throw new Error(`tools/list answered ${r.status}`);
    if (i >= 20) out.push(dt); // the first 20 warm up
  }
  return out;
}

export async function runThroughput(reaper: Reaper, cfg: ThroughputConfig, log: (s: string) => void): Promise<ThroughputResult> {
  const t0 = performance.now();
  const res: ThroughputResult = { config: cfg, load: {}, list: {}, errors: [], wallMs: 0 };
  const upArgs = [...cfg.upstream.args, RUN_ARG];
  const fail = (what: string, err: unknown) => {
    const msg = `${what}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300);
    res.errors.push(msg);
    log(`  ⚠ ${msg}`);
  };

  const startServer = async (file: string, what: string) => {
    const child = reaper.spawn(process.execPath, [file]);
    const m = await waitForLine(child, /PORT (\d+)/, 15_000, what);
    return { url: `http://127.0.0.1:${m[1]}/mcp`, stop: () => reaper.killTree(child.pid!, 1_000) };
  };
  const targets: Array<{ id: string; start: () => Promise<{ url: string; stop: () => Promise<unknown> }> }> = [
    { id: 'lean node:http', start: () => startServer(LEAN_HTTP_SERVER, 'lean http server') },
    { id: 'bare SDK HTTP', start: () => startServer(BARE_HTTP_SERVER, 'bare http server') },
    {
      id: 'mcp-warden',
      start: async () => {
        const w = await startWarden(reaper, { up: { command: cfg.upstream.command, args: upArgs } });
        await w.waitAllRunning(1, 30_000);
        return { url: w.mcpUrl, stop: () => stopWarden(reaper, w, 15_000) };
      },
    },
  ];
  const running: Array<{ id: string; url: string; stop: () => Promise<unknown> }> = [];
  try {
    for (const t of targets) {
      try {
        running.push({ id: t.id, ...(await t.start()) });
      } catch (err) {
        fail(t.id, err);
      }
    }
    // Warm-up: every target, every connection count, once.
    for (const t of running) for (const c of cfg.connections) await load(t.url, c, 1).catch((err: unknown) => fail(`${t.id} warm-up`, err));
    for (let rep = 0; rep < cfg.reps; rep++) {
      const order = rep % 2 === 0 ? running : [...running].reverse();
      for (const c of cfg.connections) {
        for (const t of order) {
          try {
            const s = await load(t.url, c, cfg.durationSec);
            ((res.load[t.id] ??= {})[c] ??= []).push(s);
            log(
              `  rep ${rep + 1} ${t.id} c=${c}: ${s.reqPerSec.toFixed(0)} req/s, p50 ${s.p50} ms, ${s.bad} bad${s.firstBad ? ` (${s.firstBad})` : ''}`,
            );
          } catch (err) {
            fail(`${t.id} c=${c}`, err);
          }
        }
      }
    }
  } finally {
    for (const t of running) await t.stop();
  }

  for (const n of cfg.listCounts) {
    const servers: Record<string, { command: string; args: string[] }> = {};
    for (let i = 0; i < n; i++) servers[`s${i}`] = { command: cfg.upstream.command, args: upArgs };
    let w: WardenProcess | undefined;
    try {
      w = await startWarden(reaper, servers);
      await w.waitAllRunning(n, 120_000, 25);
      res.list[n] = await listLatencies(w, cfg.listCalls);
      log(`  tools/list with ${n} upstream(s): p50 ${median(res.list[n]).toFixed(2)} ms`);
    } catch (err) {
      fail(`tools/list N=${n}`, err);
    } finally {
      if (w) {
        await stopWarden(reaper, w, 60_000);
        reaper.removeDir(w.dataDir);
      }
    }
  }
  res.wallMs = performance.now() - t0;
  return res;
}

/** Median req/s of a target at `c` connections. */
export function medianRate(r: ThroughputResult, id: string, c: number): number {
  return median((r.load[id]?.[c] ?? []).map((s) => s.reqPerSec));
}

export function listP(r: ThroughputResult, n: number, p: number): number {
  return percentile(sortNum(r.list[n] ?? []), p);
}
