/**
 * Peers: installed by the bench into .bench/peers (never the project's node_modules), started in their
 * own process groups on 127.0.0.1, each fronting the same upstream command.
 *
 * mcp-hub and supergateway have no bind-address option: they run with `node --import
 * loopback-preload.js`, which turns their wildcard `listen` into 127.0.0.1. mcp-proxy gets `--host`.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { drain, exited, sleep, type Reaper } from './proc.js';
import { LOOPBACK_PRELOAD, PEERS_DIR } from './paths.js';
import type { ChildProcess } from 'node:child_process';

const PEER_PACKAGES = ['mcp-hub', 'supergateway', 'mcp-proxy'] as const;
type PeerName = (typeof PEER_PACKAGES)[number];

export interface PeerInstall {
  ok: boolean;
  /** Why peers are unavailable (when !ok). */
  reason?: string;
  versions: Partial<Record<PeerName, string>>;
  installedNow: boolean;
}

function pkgJson(name: string): { version: string; bin?: string | Record<string, string> } | undefined {
  const file = join(PEERS_DIR, 'node_modules', name, 'package.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as { version: string; bin?: string | Record<string, string> };
}

function peerBin(name: PeerName): string {
  const pj = pkgJson(name);
  if (!pj?.bin) throw new Error(`${name} has no bin`);
  const rel = typeof pj.bin === 'string' ? pj.bin : (pj.bin[name] ?? Object.values(pj.bin)[0]!);
  return resolve(PEERS_DIR, 'node_modules', name, rel);
}

/** Installs the peers unless all three are present already (BENCH_REINSTALL_PEERS=1 forces it). */
export function installPeers(log: (s: string) => void): PeerInstall {
  const present = () => PEER_PACKAGES.every((p) => pkgJson(p) !== undefined);
  let installedNow = false;
  if (!present() || process.env['BENCH_REINSTALL_PEERS'] === '1') {
    log(`installing peers into ${PEERS_DIR} (npm install ${PEER_PACKAGES.join(' ')}) …`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['install', '--prefix', PEERS_DIR, '--no-audit', '--no-fund', '--loglevel=error', ...PEER_PACKAGES], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    installedNow = true;
    if (r.status !== 0 || !present()) {
      const why = r.error
        ? r.error.message
        : `npm exited ${r.status}: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ')}`;
      return { ok: false, reason: `npm install failed (${why.slice(0, 300)})`, versions: {}, installedNow };
    }
  }
  const versions: Partial<Record<PeerName, string>> = {};
  for (const p of PEER_PACKAGES) versions[p] = pkgJson(p)?.version;
  return { ok: true, versions, installedNow };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number, what: string, out: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${what} exited (code ${child.exitCode}, signal ${child.signalCode}): ${out().trim().split('\n').slice(-3).join(' | ').slice(-300)}`,
      );
    }
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms: ${out().slice(-300)}`);
    await sleep(50);
  }
}

export interface PeerVariant {
  /** Row label, e.g. `supergateway (SSE)`. */
  id: string;
  peer: PeerName;
  wire: 'streamable' | 'sse';
  transportNote: string;
}

export const PEER_VARIANTS: PeerVariant[] = [
  { id: 'mcp-hub (SSE)', peer: 'mcp-hub', wire: 'sse', transportNote: 'SSE on /mcp (its only downstream transport)' },
  {
    id: 'supergateway (SSE)',
    peer: 'supergateway',
    wire: 'sse',
    transportNote: '`--outputTransport sse`',
  },
  {
    id: 'supergateway (Streamable HTTP)',
    peer: 'supergateway',
    wire: 'streamable',
    transportNote: '`--outputTransport streamableHttp --stateful` (stateless spawns a child per request)',
  },
  { id: 'mcp-proxy (SSE)', peer: 'mcp-proxy', wire: 'sse', transportNote: '`--server sse`' },
  { id: 'mcp-proxy (Streamable HTTP)', peer: 'mcp-proxy', wire: 'streamable', transportNote: '`--server stream`' },
];

export interface RunningPeer {
  child: ChildProcess;
  url: string;
  lastOutput: () => string;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Starts one peer variant fronting `command args`; resolves once its port accepts connections. */
export async function startPeer(reaper: Reaper, v: PeerVariant, command: string, args: string[]): Promise<RunningPeer> {
  const port = await freePort();
  const home = reaper.trackDir(mkdtempSync(join(tmpdir(), `mcp-warden-bench-${v.peer}-`)));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_STATE_HOME: join(home, 'state'),
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CACHE_HOME: join(home, 'cache'),
  };
  const preload = ['--import', LOOPBACK_PRELOAD];
  let argv: string[];
  let url: string;
  switch (v.peer) {
    case 'mcp-hub': {
      const cfg = join(home, 'mcp-hub.json');
      writeFileSync(cfg, JSON.stringify({ mcpServers: { up: { command, args } } }, null, 2));
      argv = [...preload, peerBin('mcp-hub'), '--port', String(port), '--config', cfg];
      url = `http://127.0.0.1:${port}/mcp`;
      break;
    }
    case 'supergateway': {
      const stdio = [command, ...args].map(shellQuote).join(' ');
      argv = [...preload, peerBin('supergateway'), '--stdio', stdio, '--port', String(port), '--logLevel', 'none'];
      if (v.wire === 'sse') {
        argv.push('--outputTransport', 'sse');
        url = `http://127.0.0.1:${port}/sse`;
      } else {
        argv.push('--outputTransport', 'streamableHttp', '--stateful');
        url = `http://127.0.0.1:${port}/mcp`;
      }
      break;
    }
    case 'mcp-proxy': {
      argv = [...preload, peerBin('mcp-proxy'), '--port', String(port), '--host', '127.0.0.1'];
      if (v.wire === 'sse') {
        argv.push('--server', 'sse');
        url = `http://127.0.0.1:${port}/sse`;
      } else {
        argv.push('--server', 'stream');
        url = `http://127.0.0.1:${port}/mcp`;
      }
      argv.push('--', command, ...args);
      break;
    }
  }
  const child = reaper.spawn(process.execPath, argv, { env, cwd: home });
  const lastOutput = drain(child);
  try {
    await waitForPort(port, child, 30_000, v.id, lastOutput);
  } catch (err) {
    await reaper.killTree(child.pid!, 500);
    throw err;
  }
  return { child, url, lastOutput };
}

export async function stopPeer(reaper: Reaper, p: RunningPeer): Promise<void> {
  await reaper.killTree(p.child.pid!, 3_000);
  await Promise.race([exited(p.child), sleep(1_000)]);
}
