/**
 * "Is this process group empty?" for many groups at once, at a cost that does not grow with the
 * number of groups asking (docs/guarantees.md: a group counts as gone only when no live member is left).
 *
 * Neither /proc nor `ps` has an index by process group, so reading the table for one group costs a
 * read of every process on the machine; 500 upstreams polling their groups during a stop made that
 * quadratic. Two steps instead:
 *
 *   1. `kill(-pgid, 0)`, one system call: ESRCH means no process at all (live or zombie) has that
 *      process group any more, so the group is empty. This answers almost every check.
 *   2. Only when something still has the pgid (a live member, or a zombie whose parent has not reaped
 *      it yet, or a member we may not signal: EPERM) is the table read; and that read is one scan
 *      shared by every group that asks within a short window (see `maxAgeMs`), indexed by pgid.
 *
 * A scan answers for a group only if it was taken after that group's direct child had exited
 * (`since`): after that moment the group can only lose members (a new member needs a live one to
 * fork it), so an empty answer from such a scan stays true, and a non-empty one merely delays.
 */
import { constants as osConstants } from 'node:os';
import { errnoOf } from '../../core/errno.js';
import { isDead, type ProcessTable } from './process-table.js';

/** Reuse a scan for at most this long, or for four times as long as the last scan took, whichever is longer. */
const MIN_REUSE_MS = 20;
const REUSE_FACTOR = 4;

/**
 * Node's binding under `process.kill`: it returns the error as a negative errno instead of throwing
 * (process.kill throws what it returns). Undocumented but present in every Node this runs on; when it
 * is missing, process.kill is used.
 */
type RawKill = (pid: number, signal: number) => number;
const rawKill: RawKill | undefined =
  typeof (process as { _kill?: unknown })._kill === 'function'
    ? ((process as unknown as { _kill: RawKill })._kill.bind(process) as RawKill)
    : undefined;
const ESRCH = osConstants.errno.ESRCH;

/** Does any process (zombies included) still have process group `pgid`? true also when we may not signal it. */
export function groupHasProcesses(pgid: number): boolean {
  // Never kill(0, …) or kill(-1, …) (our own group, every process): a bogus pgid is "not ours to judge".
  if (!(Number.isInteger(pgid) && pgid > 1)) return true;
  // ESRCH, the usual answer once a group is gone: the raw call gives it as a number. process.kill makes
  // an exception of it (an ErrnoException with its system error name), ~10 us each in a stop of 500.
  if (rawKill) return rawKill(-pgid, 0) !== -ESRCH;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) !== 'ESRCH';
  } finally {
    Error.stackTraceLimit = limit;
  }
}

interface Scan {
  /** performance.now() when the scan started. */
  at: number;
  live: Map<number, number[]>;
}

export class GroupCensus {
  private last: Scan | undefined;
  private lastDurationMs = 0;
  /** How many table scans this census made (tests and the bench read it). */
  scans = 0;

  constructor(
    private readonly table: ProcessTable,
    private readonly now: () => number = () => performance.now(),
    private readonly probe: (pgid: number) => boolean = groupHasProcesses,
  ) {}

  /**
   * Live members of `pgid` (pids), from a scan taken at or after `since` (a `now()` value); [] when the
   * group has no process at all. Throws what the table throws (E_PROCESS_TABLE_UNAVAILABLE).
   */
  liveMembers(pgid: number, since: number): number[] {
    if (!this.probe(pgid)) return [];
    return this.scan(since).live.get(pgid) ?? [];
  }

  private scan(since: number): Scan {
    const t = this.now();
    const last = this.last;
    if (last && last.at >= since && t - last.at <= Math.max(MIN_REUSE_MS, REUSE_FACTOR * this.lastDurationMs)) return last;
    const live = new Map<number, number[]>();
    for (const p of this.table.list()) {
      if (isDead(p)) continue;
      const pids = live.get(p.pgid);
      if (pids) pids.push(p.pid);
      else live.set(p.pgid, [p.pid]);
    }
    this.scans++;
    this.lastDurationMs = this.now() - t;
    this.last = { at: t, live };
    return this.last;
  }
}

const censuses = new WeakMap<ProcessTable, GroupCensus>();

/** The census shared by every group checked against `table`. */
export function censusOf(table: ProcessTable): GroupCensus {
  let c = censuses.get(table);
  if (!c) censuses.set(table, (c = new GroupCensus(table)));
  return c;
}
