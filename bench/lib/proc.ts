/**
 * Processes the bench starts, and how it gets rid of them.
 *
 * Every child the harness spawns is `detached` (its own process group) and carries
 * WARDEN_BENCH_RUN=<runId> in its environment; every upstream command line the harness writes carries
 * `--bench-run=<runId>` as an argument (SDK-based peers pass only a minimal environment to their
 * children, and supergateway puts its child in a group of its own). `Reaper.killAll()` stops each
 * tracked group and every process in the tracked processes' trees, then sweeps /proc for anything
 * still carrying the run id (environment or command line) and SIGKILLs it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export const RUN_ID = `wb${process.pid}-${randomBytes(4).toString('hex')}`;
const RUN_ENV = 'WARDEN_BENCH_RUN';
export const RUN_ARG = `--bench-run=${RUN_ID}`;

interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
}

function readStat(pid: number): ProcEntry | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const rest = text.slice(close + 2).split(' ');
  return { pid, state: rest[0] ?? '?', ppid: Number(rest[1]), pgid: Number(rest[2]) };
}

function allPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    const n = Number(d);
    if (Number.isInteger(n) && n > 0) out.push(n);
  }
  return out;
}

function alive(e: ProcEntry | undefined): e is ProcEntry {
  return e !== undefined && e.state !== 'Z' && e.state !== 'X';
}

/** Live descendants of `root` (not including it), by walking the ppid links of a /proc snapshot. */
function descendants(root: number): ProcEntry[] {
  const table = allPids().map(readStat).filter(alive);
  const byParent = new Map<number, ProcEntry[]>();
  for (const e of table) {
    const list = byParent.get(e.ppid) ?? [];
    list.push(e);
    byParent.set(e.ppid, list);
  }
  const out: ProcEntry[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop()!;
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/** Live processes whose environment holds `key=value` exactly (value undefined: any value containing `contains`). */
export function processesWithEnv(key: string, match: (v: string) => boolean): number[] {
  const out: number[] = [];
  const prefix = `${key}=`;
  for (const pid of allPids()) {
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    for (const kv of env.split('\0')) {
      if (kv.startsWith(prefix) && match(kv.slice(prefix.length))) {
        if (alive(readStat(pid))) out.push(pid);
        break;
      }
    }
  }
  return out;
}

/** Live processes whose command line contains `needle`. */
function processesWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (cmd.includes(needle) && alive(readStat(pid))) out.push(pid);
  }
  return out;
}

/** `comm`-like short description: the command line, shortened. */
function describe(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
    return cmd.replace(/\/[^ ]*\/(node_modules|dist)\//g, '…/$1/').slice(0, 160);
  } catch {
    return '(gone)';
  }
}

/** Live watchdog processes of a daemon instance (MCP_WARDEN_WATCHDOG=<pid>:<start>:<instanceId>). */
export function watchdogsOf(instanceId: string): number[] {
  return processesWithEnv('MCP_WARDEN_WATCHDOG', (v) => v.endsWith(`:${instanceId}`));
}

/** Polls every `intervalMs` until none of `pids` is alive; ms waited, or Infinity after `limitMs`. */
export async function waitGone(pids: number[], t0: number, limitMs: number, intervalMs = 10): Promise<number> {
  for (;;) {
    if (!pids.some(isAlive)) return performance.now() - t0;
    if (performance.now() - t0 > limitMs) return Number.POSITIVE_INFINITY;
    await sleep(intervalMs);
  }
}

export function rssKiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  return alive(readStat(pid));
}

export { sleep };
import { sleep } from '../../src/core/clock.js';

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // gone already
  }
}

/** Everything the harness started and must remove before it exits. */
export class Reaper {
  private readonly pids = new Set<number>();
  private readonly dirs = new Set<string>();
  /** Instance ids of daemons started by the bench: their upstreams and watchdogs are swept too. */
  readonly instances = new Set<string>();

  /** Set once killAll() starts: nothing new is spawned after that. */
  private closed = false;

  /** Spawns detached (own process group) with the run marker in the environment. */
  spawn(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.closed) throw new Error('the bench is stopping: not starting anything new');
    const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env), [RUN_ENV]: RUN_ID };
    delete env['NODE_OPTIONS'];
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts, env, detached: true });
    // Tracked until killTree: its group or its descendants may outlive it.
    if (child.pid !== undefined) this.pids.add(child.pid);
    child.on('error', () => undefined);
    // Keep pipes flowing whoever listens: a child blocked on a full stdout/stderr pipe would skew timings.
    child.stdout?.on('data', () => undefined);
    child.stderr?.on('data', () => undefined);
    return child;
  }

  isClosed(): boolean {
    return this.closed;
  }

  trackDir(dir: string): string {
    this.dirs.add(dir);
    return dir;
  }

  removeDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    this.dirs.delete(dir);
  }

  /**
   * SIGTERM the group of `pid` and every descendant's group, wait up to `graceMs`, SIGKILL what is left.
   * Resolves when nothing of that tree is alive (or after the SIGKILL and a short wait).
   */
  async killTree(pid: number, graceMs = 2_000): Promise<void> {
    const tree = [readStat(pid), ...descendants(pid)].filter(alive);
    const groups = new Set<number>([pid, ...tree.map((e) => e.pgid)]);
    const pids = new Set<number>([pid, ...tree.map((e) => e.pid)]);
    for (const g of groups) if (g > 1 && g !== process.pid) signal(-g, 'SIGTERM');
    for (const p of pids) signal(p, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...pids].some(isAlive)) await sleep(20);
    for (const g of groups) if (g > 1 && g !== process.pid) signal(-g, 'SIGKILL');
    for (const p of pids) if (isAlive(p)) signal(p, 'SIGKILL');
    const hard = Date.now() + 1_000;
    while (Date.now() < hard && [...pids].some(isAlive)) await sleep(10);
    this.pids.delete(pid);
  }

  /** Processes of this run still alive: tracked ones, and anything carrying the run id or a bench daemon's marker. */
  leftovers(): number[] {
    const found = new Set<number>();
    for (const p of this.pids) if (isAlive(p)) found.add(p);
    for (const p of processesWithEnv(RUN_ENV, (v) => v === RUN_ID)) found.add(p);
    for (const p of processesWithArg(RUN_ID)) found.add(p);
    if (this.instances.size > 0) {
      for (const p of processesWithEnv('MCP_WARDEN_INSTANCE', (v) => this.instances.has(v))) found.add(p);
      for (const p of processesWithEnv('MCP_WARDEN_WATCHDOG', (v) => [...this.instances].some((i) => v.endsWith(`:${i}`)))) found.add(p);
    }
    found.delete(process.pid);
    return [...found];
  }

  /** Stops everything; returns what the final sweep had to kill (`pid command line`). */
  async killAll(): Promise<string[]> {
    this.closed = true;
    for (const p of [...this.pids]) await this.killTree(p, 1_000);
    const swept: string[] = [];
    for (let i = 0; i < 3; i++) {
      const left = this.leftovers();
      if (left.length === 0) break;
      for (const p of left) swept.push(`${p} ${describe(p)}`);
      for (const p of left) {
        const e = readStat(p);
        if (e && e.pgid > 1 && e.pgid !== readStat(process.pid)?.pgid) signal(-e.pgid, 'SIGKILL');
        signal(p, 'SIGKILL');
      }
      await sleep(100);
    }
    for (const d of [...this.dirs]) {
      try {
        this.removeDir(d);
      } catch {
        // best effort
      }
    }
    return swept;
  }
}

/** Resolves with the first stdout line matching `re` (its match), or rejects on exit / timeout. */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let errBuf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const m = re.exec(buf);
      if (m) {
        finish();
        resolve(m);
      }
      if (buf.length > 1 << 20) buf = buf.slice(-4096);
    };
    const onErr = (d: Buffer) => {
      errBuf = (errBuf + d.toString('utf8')).slice(-2000);
    };
    const onExit = (code: number | null, sig: string | null) => {
      finish();
      reject(new Error(`${what} exited (code ${code}, signal ${sig}) before it was ready: ${tail(errBuf || buf)}`));
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${what} not ready within ${timeoutMs} ms: ${tail(errBuf || buf)}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

function tail(s: string): string {
  const t = s.trim().split('\n').slice(-4).join(' | ');
  return t.length > 400 ? t.slice(-400) : t || '(no output)';
}

/** Keeps a child's output drained (a full pipe would block it), remembering the last few KiB. */
export function drain(child: ChildProcess): () => string {
  let last = '';
  const keep = (d: Buffer) => {
    last = (last + d.toString('utf8')).slice(-4096);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => last;
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}
