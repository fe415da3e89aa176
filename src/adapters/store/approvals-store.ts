/**
 * `<data-dir>/approvals.json`: the source of truth for approved tool fingerprints, per server.
 * A missing file means nothing is approved yet. A corrupted file is reported by `load` and never
 * read as "everything approved"; the daemon refuses to start on it (E_APPROVALS_CORRUPT,
 * src/daemon/daemon.ts). A store used on anyway moves it aside to `approvals.json.corrupt-<time>`
 * on the next write instead of destroying the evidence.
 */
import { promises as fs } from 'node:fs';
import { readFileNoFollowSync } from './no-follow.js';
import { WardenError } from '../../core/error-codes.js';
import { join } from 'node:path';
import type { ApprovedTool } from '../../core/tool-fingerprint.js';

export interface ServerApproval {
  approvedAt: string;
  /** `trust-on-first-use` for a config server's first tool list, `person` for an explicit approval. */
  by: 'trust-on-first-use' | 'person';
  tools: Record<string, ApprovedTool>;
}

interface ApprovalsFile {
  version: 1;
  servers: Record<string, ServerApproval>;
}

export type ApprovalsLoad = { ok: true } | { ok: false; reason: string };

export class ApprovalsStore {
  private data: ApprovalsFile = { version: 1, servers: {} };
  private corrupt = false;
  private queue: Promise<void> = Promise.resolve();
  /** The write that has been queued but has not started yet, if any. */
  private queued: Promise<void> | undefined;
  readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'approvals.json');
  }

  /** Synchronous so the store is ready before any server starts. Never throws. */
  load(): ApprovalsLoad {
    let text: string;
    try {
      // Not through a symlink (no-follow.ts); the next save's rename replaces the link, not its target.
      text = readFileNoFollowSync(this.file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true };
      this.corrupt = true;
      if (err instanceof WardenError) return { ok: false, reason: err.message };
      return { ok: false, reason: `cannot read ${this.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
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
      }
      this.data = v as ApprovalsFile;
      return { ok: true };
    } catch (err) {
      this.corrupt = true;
      this.data = { version: 1, servers: {} };
      return { ok: false, reason: `${this.file} is corrupted (${(err as Error).message}); treating it as nothing approved` };
    }
  }

  get(server: string): ServerApproval | undefined {
    return this.data.servers[server];
  }

  /** Record (replace) a server's approved tools; persisted atomically, writes serialised. */
  set(server: string, approval: ServerApproval): Promise<void> {
    const previous = this.data.servers[server];
    this.data.servers[server] = approval;
    return this.persistOrUndo(server, approval, previous);
  }

  delete(server: string): Promise<void> {
    const previous = this.data.servers[server];
    if (!previous) return Promise.resolve();
    delete this.data.servers[server];
    return this.persistOrUndo(server, undefined, previous);
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
      if (this.corrupt) {
        await fs.rename(this.file, `${this.file}.corrupt-${Date.now()}`).catch(() => undefined);
        this.corrupt = false;
      }
      const tmp = `${this.file}.${process.pid}.tmp`;
      const fh = await fs.open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(snapshot);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, this.file);
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    this.queued = next;
    return next;
  }
}
