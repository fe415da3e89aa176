/**
 * `<data-dir>/approvals.json`: the source of truth for approved tool fingerprints, per server.
 * A missing file means nothing is approved yet. A corrupted file is reported by `load` and never
 * read as "everything approved"; the daemon refuses to start on it (E_APPROVALS_CORRUPT,
 * src/daemon/daemon.ts). A store used on anyway moves it aside to `approvals.json.corrupt-<time>`
 * on the next write instead of destroying the evidence.
 *
 * Beside it, `<data-dir>/approved-once.json` remembers which servers have ever had a record (name →
 * time of the first one). It is what makes a lost record fail closed (docs/quarantine.md): a server
 * named there whose record is gone — removed from an otherwise valid approvals.json, or the file
 * deleted — was approved before, so it is quarantined rather than trusted on first use again. It
 * only grows before a record is written and only shrinks after one was deleted (a removed server),
 * so no moment exists on disk where a record stands without its mark. Records present without a
 * mark (files from before the mark existed) are marked at load.
 */
import { closeSync, fsyncSync, openSync, promises as fs, renameSync, writeSync } from 'node:fs';
import { readFileNoFollowSync } from './no-follow.js';
import { WardenError } from '../../core/error-codes.js';
import { join } from 'node:path';
import type { ApprovedTool } from '../../core/tool-fingerprint.js';

export interface ServerApproval {
  approvedAt: string;
  /** `trust-on-first-use` for a config server's first tool list, `person` for an explicit approval. */
  by: 'trust-on-first-use' | 'person';
  tools: Record<string, ApprovedTool>;
  /**
   * quarantineScope "tool": tools seen changed (or new) since this record, withheld alone until a
   * person approves again — also after they flip back to the approved text.
   */
  withheld?: string[];
  /**
   * Prompts by name and resource templates by uriTemplate (src/core/offer-fingerprint.ts). Absent in
   * records from before they were fingerprinted: see ServerRegistry.checkOffered for the migration.
   */
  prompts?: Record<string, ApprovedTool>;
  resourceTemplates?: Record<string, ApprovedTool>;
}

interface ApprovalsFile {
  version: 1;
  servers: Record<string, ServerApproval>;
}

/** `approved-once.json`: server name → when its first approval record was written. */
interface MarksFile {
  version: 1;
  approvedOnce: Record<string, string>;
}

/** A failed load names the file at fault (approvals.json or approved-once.json). */
export type ApprovalsLoad = { ok: true } | { ok: false; reason: string; file: string };

export class ApprovalsStore {
  private data: ApprovalsFile = { version: 1, servers: {} };
  private corrupt = false;
  /** Servers that have had a record, as this store knows it, and as the marks file holds it. */
  private marks: Record<string, string> = {};
  private marksOnDisk: Record<string, string> = {};
  private marksCorrupt = false;
  private queue: Promise<void> = Promise.resolve();
  /** The write that has been queued but has not started yet, if any. */
  private queued: Promise<void> | undefined;
  readonly file: string;
  readonly marksFile: string;
  /** Told when a mark could not be written after its record (the record stands; the mark follows later). */
  onMarksWriteError?: (err: unknown) => void;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'approvals.json');
    this.marksFile = join(dataDir, 'approved-once.json');
  }

  /** When the server's first approval record was written, if it ever had one (even if the record is gone now). */
  approvedBefore(server: string): string | undefined {
    return Object.hasOwn(this.marks, server) ? this.marks[server] : undefined;
  }

  /** Synchronous so the store is ready before any server starts. Never throws. */
  load(): ApprovalsLoad {
    const records = this.loadRecords();
    if (!records.ok) return records;
    const marks = this.loadMarks();
    if (!marks.ok) return marks;
    // Records from before the marks file existed (or whose mark was lost): mark them now, on disk.
    let seeded = false;
    for (const [name, record] of Object.entries(this.data.servers)) {
      if (Object.hasOwn(this.marks, name)) continue;
      this.marks[name] = typeof record.approvedAt === 'string' ? record.approvedAt : new Date().toISOString();
      seeded = true;
    }
    if (seeded) {
      try {
        writeAtomicSync(this.marksFile, marksText(this.marks));
        this.marksOnDisk = { ...this.marks };
      } catch {
        // The next write of the store writes the marks first.
      }
    }
    return { ok: true };
  }

  private loadMarks(): ApprovalsLoad {
    let text: string;
    try {
      text = readFileNoFollowSync(this.marksFile, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true };
      this.marksCorrupt = true;
      if (err instanceof WardenError) return { ok: false, file: this.marksFile, reason: err.message };
      return {
        ok: false,
        file: this.marksFile,
        reason: `cannot read ${this.marksFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      };
    }
    try {
      const v = JSON.parse(text) as Partial<MarksFile>;
      const marks = v?.approvedOnce;
      if (v?.version !== 1 || typeof marks !== 'object' || marks === null || Array.isArray(marks)) {
        throw new Error('expected {"version":1,"approvedOnce":{…}}');
      }
      for (const [name, at] of Object.entries(marks)) {
        if (typeof at !== 'string') throw new Error(`approvedOnce.${name} is not a string`);
      }
      this.marks = { ...marks };
      this.marksOnDisk = { ...marks };
      return { ok: true };
    } catch (err) {
      this.marksCorrupt = true;
      return { ok: false, file: this.marksFile, reason: `${this.marksFile} is corrupted (${(err as Error).message})` };
    }
  }

  private loadRecords(): ApprovalsLoad {
    let text: string;
    try {
      // Not through a symlink (no-follow.ts); the next save's rename replaces the link, not its target.
      text = readFileNoFollowSync(this.file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true };
      this.corrupt = true;
      if (err instanceof WardenError) return { ok: false, file: this.file, reason: err.message };
      return { ok: false, file: this.file, reason: `cannot read ${this.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    }
    try {
      const v = JSON.parse(text) as Partial<ApprovalsFile>;
      if (v?.version !== 1 || typeof v.servers !== 'object' || v.servers === null || Array.isArray(v.servers)) {
        throw new Error('expected {"version":1,"servers":{…}}');
      }
      for (const [name, s] of Object.entries(v.servers)) {
        if (typeof s?.tools !== 'object' || s.tools === null) throw new Error(`servers.${name}.tools is not an object`);
        for (const [tool, a] of Object.entries(s.tools)) {
          if (typeof (a as ApprovedTool)?.fingerprint !== 'string') throw new Error(`servers.${name}.tools.${tool}.fingerprint missing`);
        }
        for (const kind of ['prompts', 'resourceTemplates'] as const) {
          const items = s[kind];
          if (items === undefined) continue;
          if (typeof items !== 'object' || items === null || Array.isArray(items))
            throw new Error(`servers.${name}.${kind} is not an object`);
          for (const [key, a] of Object.entries(items)) {
            if (typeof a?.fingerprint !== 'string') throw new Error(`servers.${name}.${kind}.${key}.fingerprint missing`);
          }
        }
        if (s.withheld !== undefined && (!Array.isArray(s.withheld) || !s.withheld.every((t) => typeof t === 'string'))) {
          throw new Error(`servers.${name}.withheld is not a list of tool names`);
        }
      }
      this.data = v as ApprovalsFile;
      return { ok: true };
    } catch (err) {
      this.corrupt = true;
      this.data = { version: 1, servers: {} };
      return {
        ok: false,
        file: this.file,
        reason: `${this.file} is corrupted (${(err as Error).message}); treating it as nothing approved`,
      };
    }
  }

  get(server: string): ServerApproval | undefined {
    return this.data.servers[server];
  }

  /** Record (replace) a server's approved tools; persisted atomically, writes serialised. */
  set(server: string, approval: ServerApproval): Promise<void> {
    const previous = this.data.servers[server];
    this.data.servers[server] = approval;
    if (!Object.hasOwn(this.marks, server)) this.marks[server] = approval.approvedAt;
    return this.persistOrUndo(server, approval, previous);
  }

  /** Forget a server (it was removed): its record and its mark. */
  delete(server: string): Promise<void> {
    const previous = this.data.servers[server];
    const marked = Object.hasOwn(this.marks, server);
    if (!previous && !marked) return Promise.resolve();
    delete this.data.servers[server];
    delete this.marks[server];
    return this.persistOrUndo(server, undefined, previous);
  }

  /** quarantineScope "tool": remember the tools withheld since the record (ServerApproval.withheld). */
  setWithheld(server: string, tools: string[]): Promise<void> {
    const previous = this.data.servers[server];
    if (!previous) return Promise.resolve();
    const sorted = [...new Set(tools)].sort();
    if (canonicalList(previous.withheld) === canonicalList(sorted)) return Promise.resolve();
    const next: ServerApproval = { ...previous, withheld: sorted };
    if (sorted.length === 0) delete next.withheld;
    this.data.servers[server] = next;
    return this.persistOrUndo(server, next, previous);
  }

  /** A change whose write failed is taken back in memory (unless a later change replaced it): what
   *  `get` answers is never more than what the file holds. */
  private async persistOrUndo(server: string, now: ServerApproval | undefined, previous: ServerApproval | undefined): Promise<void> {
    try {
      await this.persist();
    } catch (err) {
      if (this.data.servers[server] === now) {
        if (previous) this.data.servers[server] = previous;
        else delete this.data.servers[server];
        // The mark follows what the marks file holds.
        if (Object.hasOwn(this.marksOnDisk, server)) this.marks[server] = this.marksOnDisk[server]!;
        else delete this.marks[server];
      }
      throw err;
    }
  }

  /**
   * Writes are serialised, and coalesced: a change made while a write is still waiting to start rides
   * on that write (it snapshots the data when it starts), so 50 servers approved at start-up cost a
   * few writes, not 50 fsynced rewrites of a growing file.
   */
  private persist(): Promise<void> {
    if (this.queued) return this.queued;
    const run = async () => {
      this.queued = undefined; // from here on, a change needs a write of its own
      const snapshot = JSON.stringify(this.data, null, 2) + '\n';
      const marks = { ...this.marks };
      if (this.corrupt) {
        await fs.rename(this.file, `${this.file}.corrupt-${Date.now()}`).catch(() => undefined);
        this.corrupt = false;
      }
      if (this.marksCorrupt) {
        await fs.rename(this.marksFile, `${this.marksFile}.corrupt-${Date.now()}`).catch(() => undefined);
        this.marksCorrupt = false;
      }
      // The record first, then its mark: a daemon killed between the two writes leaves a record
      // without a mark, which the next load marks; the other order left a mark without a record,
      // and the server quarantined (E_APPROVAL_MISSING) after a mere crash. A failed record write
      // leaves the marks untouched.
      await writeAtomic(this.file, snapshot);
      if (marksText(marks) !== marksText(this.marksOnDisk)) {
        try {
          await writeAtomic(this.marksFile, marksText(marks));
          this.marksOnDisk = marks;
        } catch (err) {
          // The record stands; the mark is written by the next write of the store or the next load.
          this.onMarksWriteError?.(err);
        }
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    this.queued = next;
    return next;
  }
}

function marksText(marks: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(marks).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify({ version: 1, approvedOnce: sorted } satisfies MarksFile, null, 2) + '\n';
}

const canonicalList = (l: string[] | undefined) => JSON.stringify([...(l ?? [])].sort());

/** Write a private file whole: a temp file, fsynced, renamed over the old one (which replaces a link, not its target). */
async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await fs.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
}

function writeAtomicSync(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
