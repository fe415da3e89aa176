/**
 * Ending processes found by their environment markers, group-wise, with escalation and verification.
 * Shared by the watchdog (kills its own instance after the daemon died) and the startup reaper
 * (kills what dead daemons left behind).
 *
 * Rules:
 * - A process group is signalled as a whole (`kill(-pgid)`) only if it is safe to say the group is
 *   ours: its leader (pid = pgid) is gone, a zombie, or itself matched. Upstreams are spawned with
 *   setsid, so a group whose leader is gone can only hold that leader's descendants. Otherwise only
 *   the matched pids are signalled one by one. Our own pid, our own group and our ancestors are never
 *   signalled.
 * - Once a group was signalled as a whole, all its live members count as "remaining" too, so members
 *   that dropped the marker (`env -i`) are still waited for and SIGKILLed.
 * - SIGTERM, poll until `termGraceMs`, then SIGKILL (repeated for late forks) until nothing remains or
 *   `deadlineMs` passed. Never throws; failures are reported.
 */
import { sleep } from '../../core/clock.js';
import { processTable } from './current-table.js';
import { applyGroupMarks, readGroupMarks } from './group-marks.js';
import { isDead, type ProcessEntry, type ProcessInfo, type ProcessTable } from './process-table.js';

export interface MarkerKillOptions {
  /**
   * The processes to end, chosen from one snapshot of the process table (zombies already removed;
   * `markers` filled in, from the group marks of `marksDir` where an environment was unreadable).
   * Called on every poll, so processes forked meanwhile by a matched process are matched too.
   */
  match: (table: ProcessEntry[]) => ProcessEntry[];
  /** The process table (default: this process's). */
  table?: ProcessTable;
  /** A data dir's `process-groups` dir (adapters/process/group-marks.ts): markers for unreadable environments. */
  marksDir?: string;
  /** How long to wait after SIGTERM before SIGKILL. */
  termGraceMs: number;
  /** Give up (reporting survivors) this long after the start. */
  deadlineMs: number;
  pollMs?: number;
}

export interface MarkerKillResult {
  /** The last step that was needed: nothing matched, SIGTERM was enough, or SIGKILL was sent. */
  escalation: 'none' | 'sigterm' | 'sigkill';
  /** What was signalled: whole groups and single pids. */
  groups: number[];
  pids: number[];
  /** Every pid that was seen as remaining at some point (matched or member of a signalled group), with its command line. */
  seen: Array<ProcessInfo & { argv: string[] }>;
  /** Still alive at the deadline (empty on success). */
  survivors: ProcessInfo[];
  /** kill() failures other than ESRCH (e.g. EPERM), and a process table that could not be read. */
  errors: string[];
  /** The process table could not be read (E_PROCESS_TABLE_UNAVAILABLE): nothing is verified, whatever `survivors` says. */
  scanFailed?: boolean;
  durationMs: number;
}

const DEFAULT_POLL_MS = 25;

/** This process and its ancestors: never signalled by a reaper, whatever their markers say. */
export function protectedPids(snapshot: ProcessInfo[] = processTable().list()): Set<number> {
  const byPid = new Map(snapshot.map((p) => [p.pid, p] as const));
  const out = new Set<number>();
  let pid = process.pid;
  for (let i = 0; i < 64 && pid > 1 && !out.has(pid); i++) {
    out.add(pid);
    const info = byPid.get(pid);
    if (!info) break;
    pid = info.ppid;
  }
  out.add(1);
  return out;
}

/** One snapshot with markers (from the group marks where an environment was unreadable). */
export function markedSnapshot(table: ProcessTable, marksDir: string | undefined): ProcessEntry[] {
  const all = table.list({ markers: true });
  applyGroupMarks(all, readGroupMarks(marksDir), table);
  return all;
}

/** `markedSnapshot` without blocking the event loop while ps runs. */
export async function markedSnapshotAsync(table: ProcessTable, marksDir: string | undefined): Promise<ProcessEntry[]> {
  const all = await table.listAsync({ markers: true });
  applyGroupMarks(all, readGroupMarks(marksDir), table);
  return all;
}

const SECRET_ARG = /^(-{0,2}[^=\s]*(?:token|key|secret|passw|pwd|auth|credential|cookie)[^=\s]*=).+$/i;

/** A command line for logs and reports: secret-looking `name=value` arguments and URL credentials redacted, length capped. */
export function describeCommand(argv: string[], comm: string, maxChars = 300): string {
  if (argv.length === 0) return `[${comm}]`;
  const parts = argv.map((a) => {
    let s = a.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/i, '$1');
    s = s.replace(SECRET_ARG, '$1[redacted]');
    return /[\s'"]/.test(s) ? JSON.stringify(s) : s;
  });
  const text = parts.join(' ');
  return text.length > maxChars ? text.slice(0, maxChars) + '…' : text;
}

export async function killMarked(opts: MarkerKillOptions): Promise<MarkerKillResult> {
  const started = Date.now();
  try {
    return await killMarkedOrThrow(opts, started);
  } catch (err) {
    // Only the table throws (a portable table without ps): report it; never pretend the kill worked.
    const message = `process table unreadable: ${(err as Error)?.message ?? String(err)}`;
    return {
      escalation: 'none',
      groups: [],
      pids: [],
      seen: [],
      survivors: [],
      errors: [message],
      durationMs: Date.now() - started,
      scanFailed: true,
    };
  }
}

async function killMarkedOrThrow(opts: MarkerKillOptions, started: number): Promise<MarkerKillResult> {
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const ptable = opts.table ?? processTable();
  const first = ptable.list();
  const guard = protectedPids(first);
  const selfPgid = first.find((p) => p.pid === process.pid)?.pgid;
  const groups = new Set<number>();
  const singles = new Set<number>();
  const seen = new Map<number, ProcessInfo & { argv: string[] }>();
  const errors: string[] = [];

  const remaining = (): { procs: ProcessInfo[]; matched: Set<number>; table: Map<number, ProcessInfo> } => {
    const all = markedSnapshot(ptable, opts.marksDir);
    const table = new Map(all.map((p) => [p.pid, p] as const));
    const live = all.filter((p) => !isDead(p) && !guard.has(p.pid));
    let matched: ProcessInfo[] = [];
    try {
      matched = opts.match(live);
    } catch (err) {
      errors.push(`match failed: ${(err as Error).message}`);
    }
    const matchedPids = new Set(matched.map((p) => p.pid));
    const procs = live.filter((p) => matchedPids.has(p.pid) || groups.has(p.pgid));
    for (const p of procs) {
      if (!seen.has(p.pid))
        seen.set(p.pid, {
          pid: p.pid,
          ppid: p.ppid,
          pgid: p.pgid,
          state: p.state,
          startTime: p.startTime,
          comm: p.comm,
          argv: ptable.commandOf(p.pid),
        });
    }
    return { procs, matched: matchedPids, table };
  };

  const groupAllowed = (pgid: number, matched: Set<number>, table: Map<number, ProcessInfo>): boolean => {
    if (!(pgid > 1) || pgid === selfPgid || guard.has(pgid)) return false;
    const leader = table.get(pgid);
    return !leader || isDead(leader) || matched.has(pgid);
  };

  const kill = (target: number, signal: NodeJS.Signals): void => {
    try {
      process.kill(target, signal);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH') errors.push(`kill(${target}, ${signal}): ${code ?? (err as Error).message}`);
    }
  };

  const signalAll = (signal: NodeJS.Signals, snap: ReturnType<typeof remaining>): void => {
    const done = new Set<number>();
    for (const p of snap.procs) {
      if (groups.has(p.pgid) || groupAllowed(p.pgid, snap.matched, snap.table)) {
        groups.add(p.pgid);
        if (!done.has(-p.pgid)) {
          done.add(-p.pgid);
          kill(-p.pgid, signal);
        }
      } else {
        singles.add(p.pid);
        if (!done.has(p.pid)) {
          done.add(p.pid);
          kill(p.pid, signal);
        }
      }
    }
  };

  const result = (escalation: MarkerKillResult['escalation'], survivors: ProcessInfo[]): MarkerKillResult => ({
    escalation,
    groups: [...groups],
    pids: [...singles],
    seen: [...seen.values()],
    survivors,
    errors,
    durationMs: Date.now() - started,
  });

  let snap = remaining();
  if (snap.procs.length === 0) return result('none', []);
  signalAll('SIGTERM', snap);
  // Stopped processes (SIGSTOP) never act on SIGTERM; SIGCONT lets them, SIGKILL follows anyway.
  signalAll('SIGCONT', snap);
  const termUntil = started + Math.max(0, opts.termGraceMs);
  const deadline = started + Math.max(opts.termGraceMs, opts.deadlineMs);
  while (Date.now() < termUntil) {
    await sleep(Math.min(pollMs, Math.max(1, termUntil - Date.now())));
    snap = remaining();
    if (snap.procs.length === 0) return result('sigterm', []);
  }
  for (;;) {
    snap = remaining();
    if (snap.procs.length === 0) return result('sigkill', []);
    if (Date.now() >= deadline) return result('sigkill', snap.procs);
    signalAll('SIGKILL', snap);
    await sleep(pollMs);
  }
}
