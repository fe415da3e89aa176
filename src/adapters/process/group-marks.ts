/**
 * The second marker of every supervised process group: a file `<data dir>/process-groups/<pgid>.json`
 * holding the group's MCP_WARDEN_* markers, written right after the spawn and removed once the
 * group is verifiably empty. Where a process's environment cannot be read (the portable table on
 * macOS: `ps -E` shows only what the system lets it see), a process whose group has a mark gets the
 * mark's markers instead, so the watchdog and the reapers of that data dir still find it
 * (docs/guarantees.md, "Without /proc").
 *
 * A pgid is only reused once no process is left in the group, so a mark can only mislead after its
 * group emptied while nobody removed the mark (the daemon died) and a new group took the number. The
 * leader's recorded start time rules that out while the new leader lives; marks of dead owners are
 * pruned once their group is empty.
 */
import { mkdir, mkdirSync, readdirSync, readFileSync, unlink, unlinkSync, writeFile, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { isDead, type ProcessEntry, type ProcessTable } from './process-table.js';

export interface GroupMark {
  pgid: number;
  /** Start time of the group leader (pid = pgid) as the daemon's table read it; absent when unknown. */
  leaderStartTime?: number;
  markers: Record<string, string>;
}

/** The daemon's side: one file per live group. Never throws (a mark is a second line of defence, logged by the caller). */
export class GroupMarks {
  /** The last queued write or removal per pgid: a removal never overtakes the write of its mark. */
  private readonly queued = new Map<number, Promise<void>>();
  /** pgids whose marks go in one batch later (deferRemovals), or undefined: at once. */
  private deferred: number[] | undefined;
  /** The directory, made once before the first write (not by each of 500 writes failing first). */
  private made: Promise<void> | undefined;

  /** `dir`, normalised once: a path.join per mark was ~10 us in a stop of 500 (the interpreter runs it, --no-opt). */
  private readonly base: string;

  constructor(readonly dir: string) {
    this.base = join(dir, '.');
  }

  /**
   * `record` off the daemon's thread, for the spawn of a server: creating a file synchronously was
   * ~0.3 ms of the event loop per server (~0.8 ms on a busy disk), most of what the daemon added to
   * each of 500 spawns. The mark lands a moment after the spawn; `forget` and `settled` wait for it.
   */
  recordLater(mark: GroupMark, onError: (message: string) => void, leaderStartTime?: () => Promise<number | undefined>): void {
    const file = join(this.dir, `${mark.pgid}.json`);
    this.enqueue(mark.pgid, async () => {
      try {
        // The leader's start time read here, off the event loop, when the caller can (a /proc read per spawn).
        const startTime = leaderStartTime ? await leaderStartTime().catch(() => undefined) : undefined;
        const text = JSON.stringify(startTime !== undefined ? { ...mark, leaderStartTime: startTime } : mark) + '\n';
        await (this.made ??= makeDir(this.dir).catch((err: unknown) => {
          this.made = undefined; // tried again with the next mark
          throw err;
        }));
        try {
          await writeText(file, text);
        } catch (err) {
          // The directory went away meanwhile: made again.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          await makeDir(this.dir);
          await writeText(file, text);
        }
      } catch (err) {
        onError((err as Error).message);
      }
    });
  }

  record(mark: GroupMark): string | undefined {
    const file = join(this.dir, `${mark.pgid}.json`);
    const text = JSON.stringify(mark) + '\n';
    try {
      try {
        writeFileSync(file, text, { mode: 0o600 });
      } catch (err) {
        // The directory is made on the first mark (or again if it went away), not once per spawn.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        writeFileSync(file, text, { mode: 0o600 });
      }
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /**
   * At once when the mark's write is done (the usual case), else queued behind it (the daemon's exit
   * waits for `settled`). Synchronous on purpose: removing a small file is ~10 us of the event loop,
   * while the queued thread-pool removal (a promise chain per group, a pool thread woken per file)
   * measured ~45 ms more CPU than none for a stop of 500, the synchronous one ~13 ms.
   */
  forget(pgid: number): void {
    if (!this.queued.has(pgid)) {
      if (this.deferred) this.deferred.push(pgid);
      else removeFile(markFile(this.base, pgid));
      return;
    }
    const file = markFile(this.base, pgid);
    this.enqueue(pgid, () => new Promise<void>((resolve) => unlink(file, () => resolve())));
  }

  /**
   * The daemon's shutdown: from here on a mark whose group is verified empty is removed by
   * `removeDeferred()` (or `settled()`), not at once. A stop of 500 spent ~18 ms of its thread on the
   * removals (~35 us each); the daemon makes them while it waits for the watchdog to exit. A mark of an
   * empty group misleads nobody meanwhile: it is only believed for live processes of its group
   * (applyGroupMarks), and one left by a daemon that died before the removal is pruned by the next start.
   */
  deferRemovals(): void {
    this.deferred ??= [];
  }

  /** Removes the marks whose removal was deferred (synchronously; they are gone when this returns). */
  removeDeferred(): void {
    const pgids = this.deferred;
    if (!pgids) return;
    this.deferred = [];
    for (const pgid of pgids) removeFile(markFile(this.base, pgid));
  }

  /** Resolves once every queued write and removal is done (the daemon waits for it before it exits). */
  async settled(): Promise<void> {
    this.removeDeferred();
    this.deferred = undefined;
    while (this.queued.size > 0) await Promise.all(this.queued.values());
  }

  private enqueue(pgid: number, op: () => Promise<void>): void {
    const next = (this.queued.get(pgid) ?? Promise.resolve()).then(op);
    this.queued.set(pgid, next);
    void next.then(() => {
      if (this.queued.get(pgid) === next) this.queued.delete(pgid);
    });
  }
}

function makeDir(dir: string): Promise<void> {
  return new Promise((resolve, reject) => mkdir(dir, { recursive: true, mode: 0o700 }, (err) => (err ? reject(err) : resolve())));
}

function writeText(file: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => writeFile(file, text, { mode: 0o600 }, (err) => (err ? reject(err) : resolve())));
}

/** `<dir>/<pgid>.json` for a normalised `dir`. */
function markFile(dir: string, pgid: number): string {
  return `${dir}${sep}${pgid}.json`;
}

function removeMark(dir: string, pgid: number): void {
  removeFile(join(dir, `${pgid}.json`));
}

function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

/** Every readable mark in `dir` (none when the dir does not exist). */
export function readGroupMarks(dir: string | undefined): GroupMark[] {
  if (!dir) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: GroupMark[] = [];
  for (const name of names) {
    if (!/^\d+\.json$/.test(name)) continue;
    try {
      const v = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Partial<GroupMark>;
      if (typeof v.pgid !== 'number' || typeof v.markers !== 'object' || v.markers === null) continue;
      out.push({
        pgid: v.pgid,
        markers: v.markers,
        ...(typeof v.leaderStartTime === 'number' ? { leaderStartTime: v.leaderStartTime } : {}),
      });
    } catch {
      // half-written or foreign: ignored
    }
  }
  return out;
}

/**
 * Gives every entry whose environment was unreadable (`markers` undefined) the markers of its
 * group's mark, unless the group's leader is alive and is not the process the mark was made for.
 */
export function applyGroupMarks(entries: ProcessEntry[], marks: GroupMark[], table: ProcessTable): void {
  if (marks.length === 0) return;
  const byPgid = new Map(marks.map((m) => [m.pgid, m] as const));
  const byPid = new Map(entries.map((e) => [e.pid, e] as const));
  for (const e of entries) {
    if (e.markers !== undefined) continue;
    const mark = byPgid.get(e.pgid);
    if (!mark) continue;
    const leader = byPid.get(mark.pgid);
    if (leader && !isDead(leader) && mark.leaderStartTime !== undefined && table.startTimeMatches(leader, mark.leaderStartTime) === false) {
      continue;
    }
    e.markers = { ...mark.markers };
  }
}

/**
 * Removes the marks of groups with no live member whose owner `isStale` says is gone. `entries` may
 * be a function: the process table is then read only when there is a mark to judge (a data dir
 * after a clean stop has none, and a full /proc scan is on the daemon's start-up path).
 */
export function pruneGroupMarks(
  dir: string | undefined,
  entries: ProcessEntry[] | (() => ProcessEntry[]),
  isStale: (mark: GroupMark) => boolean,
): void {
  if (!dir) return;
  const marks = readGroupMarks(dir);
  if (marks.length === 0) return;
  const table = typeof entries === 'function' ? entries() : entries;
  const liveGroups = new Set(table.filter((e) => !isDead(e)).map((e) => e.pgid));
  for (const mark of marks) {
    if (!liveGroups.has(mark.pgid) && isStale(mark)) removeMark(dir, mark.pgid);
  }
}
