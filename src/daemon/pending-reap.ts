/**
 * `<data dir>/pending-reap.json`: the containers the daemon-level reaper (owner `reaper` in the
 * ledger) is responsible for, written the moment ownership passes to it and rewritten after every
 * attempt, so that a container the engine refused to remove is not forgotten when the daemon itself
 * goes away. An entry leaves the file only when its container is verifiably gone (its ledger entry
 * settled: inspect answered 404). At the next start on the same data dir the entries are taken over
 * again: force-removed by id (404 = done) and the file emptied; what still cannot be removed stays,
 * owned by the new daemon's reaper and written back.
 *
 * The file holds no secrets (ids, names, server names, times, error messages). Written synchronously
 * (temp file + rename): it must be on disk even if the daemon is SIGKILLed right after a hand-over.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { readFileNoFollowSync } from '../adapters/store/no-follow.js';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { LedgerChange, ReleaseFailure, ResourceLedger } from '../core/resource-ledger.js';
import { DockerCallError, dockerCall, engineAddress } from '../adapters/docker/docker-engine.js';
import { removeContainers } from '../adapters/docker/managed-containers.js';

export const PENDING_REAP_FILE = 'pending-reap.json';

export interface PendingContainer {
  /** Full container id ('' if a create timed out before the engine told us: then `name` is used). */
  containerId: string;
  name: string;
  /** The server whose actor handed the container over. */
  server: string;
  /** When ownership passed to the reaper (ISO 8601). */
  since: string;
  /** Failed removal attempts by reapers so far (across daemon runs). */
  attempts: number;
  /** The last attempt's failure, with its cause; null before the first failure. */
  lastError: string | null;
}

export interface PendingReapFile {
  /** The daemon instance that last wrote the file. */
  instanceId?: string;
  updatedAt: string;
  containers: PendingContainer[];
}

export interface PendingReapOptions {
  dataDir: string;
  /** The engine client (the daemon's own). */
  docker: () => Docker;
  /** Deadline of each Engine API call. */
  dockerCallTimeoutMs: number;
  /** The writing daemon's instance id (recorded in the file). */
  instanceId?: string;
}

function isPending(v: unknown): v is PendingContainer {
  const o = v as Partial<PendingContainer> | null;
  return (
    !!o &&
    typeof o === 'object' &&
    typeof o.containerId === 'string' &&
    typeof o.name === 'string' &&
    (o.containerId !== '' || o.name !== '') &&
    /^[A-Za-z0-9_.-]*$/.test(o.containerId) &&
    /^[A-Za-z0-9_.-]*$/.test(o.name)
  );
}

/** Reads `<dataDir>/pending-reap.json`: its entries, or why it could not be used. A missing file is empty. */
function readPendingReap(dataDir: string): { containers: PendingContainer[]; error?: string; corrupt?: boolean } {
  const file = join(dataDir, PENDING_REAP_FILE);
  let text: string;
  try {
    // Not through a symlink (no-follow.ts); the next write's rename replaces the link, not its target.
    text = readFileNoFollowSync(file, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { containers: [] };
    return { containers: [], error: `cannot read ${file}: ${(err as Error).message}` };
  }
  try {
    const parsed = JSON.parse(text) as Partial<PendingReapFile>;
    if (!parsed || !Array.isArray(parsed.containers)) return { containers: [], error: `${file}: no "containers" array`, corrupt: true };
    const containers = parsed.containers.filter(isPending).map((c) => ({
      containerId: c.containerId,
      name: c.name,
      server: typeof c.server === 'string' ? c.server : '',
      since: typeof c.since === 'string' ? c.since : new Date().toISOString(),
      attempts: typeof c.attempts === 'number' && Number.isFinite(c.attempts) ? c.attempts : 0,
      lastError: typeof c.lastError === 'string' ? c.lastError : null,
    }));
    const dropped = parsed.containers.length - containers.length;
    return dropped > 0
      ? { containers, error: `${file}: ${dropped} malformed entr${dropped === 1 ? 'y' : 'ies'} ignored`, corrupt: true }
      : { containers };
  } catch (err) {
    return { containers: [], error: `${file} is not valid JSON: ${(err as Error).message}`, corrupt: true };
  }
}

/** Writes the file atomically (temp + rename), synchronously. Throws on I/O errors. */
function writePendingReap(dataDir: string, content: PendingReapFile): void {
  const file = join(dataDir, PENDING_REAP_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(content, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Keeps pending-reap.json in step with the containers `owner` (the reaper) holds in the ledger.
 */
export class PendingReapStore {
  /** Ledger entry id → its record. */
  private readonly records = new Map<string, PendingContainer>();
  private readonly unsubscribe: () => void;
  /** True once the file may hold something (so an empty state is written back). */
  private dirty = false;

  constructor(
    private readonly ledger: ResourceLedger,
    private readonly owner: string,
    private readonly logger: Logger,
    private readonly opts: PendingReapOptions,
  ) {
    this.unsubscribe = ledger.subscribe((c) => this.onChange(c));
  }

  get file(): string {
    return join(this.opts.dataDir, PENDING_REAP_FILE);
  }

  /** What is recorded right now (copies). */
  list(): PendingContainer[] {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  close(): void {
    this.unsubscribe();
  }

  /** After a reaper pass: count the attempt and remember the cause for every container still held. */
  recordPass(failures: ReleaseFailure[]): void {
    if (this.records.size === 0) return;
    const byId = new Map(failures.map((f) => [f.id, f.message]));
    for (const [id, r] of this.records) {
      if (!this.ledger.has(id)) continue;
      r.attempts++;
      r.lastError = byId.get(id) ?? 'still present after the removal attempt';
    }
    this.save();
  }

  /**
   * Takes over a previous run's entries: each becomes a ledger entry of `owner` whose release is a
   * forced removal by id (404 = done). Returns how many were taken over; the caller runs the pass.
   */
  takeOverPrevious(): number {
    const { containers, error, corrupt } = readPendingReap(this.opts.dataDir);
    if (error) {
      let keptAs: string | undefined;
      if (corrupt) {
        keptAs = `${this.file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        try {
          renameSync(this.file, keptAs);
        } catch {
          keptAs = undefined;
        }
      }
      this.logger.error({ file: this.file, err: error, keptAs }, 'pending-reap.json could not be read completely; it will be rewritten');
      this.dirty = true;
    }
    if (containers.length === 0) {
      if (error) this.save();
      return 0;
    }
    this.dirty = true;
    this.logger.warn(
      {
        file: this.file,
        containers: containers.map((c) => ({
          id: c.containerId.slice(0, 12),
          name: c.name,
          server: c.server,
          since: c.since,
          attempts: c.attempts,
        })),
      },
      `taking over ${containers.length} container(s) a previous run could not remove (pending-reap.json)`,
    );
    for (const c of containers) {
      const ref = c.containerId || c.name;
      const handle = this.ledger.acquire(this.owner, {
        kind: 'container',
        description: `container ${c.name || ref.slice(0, 12)} (left by a previous run, server ${c.server || '?'})`,
        facts: { containerId: c.containerId, name: c.name, server: c.server },
        release: () => this.forceRemove(ref),
        forceRelease: () => this.forceRemove(ref),
        isGone: () => this.isGone(ref),
      });
      this.records.set(handle.id, { ...c });
    }
    this.save();
    return containers.length;
  }

  private async forceRemove(ref: string): Promise<void> {
    const [r] = await removeContainers([ref], {
      docker: this.opts.docker(),
      logger: this.logger,
      timeoutMs: this.opts.dockerCallTimeoutMs,
    });
    if (!r?.removed)
      throw new Error(`removing container ${ref.slice(0, 12)} failed (engine ${this.engine()}): ${r?.error ?? 'unknown error'}`);
  }

  /** inspect → 404 means gone; any other answer (or none) means not verifiably gone. */
  private async isGone(ref: string): Promise<boolean> {
    const docker = this.opts.docker();
    try {
      await dockerCall('inspect', this.opts.dockerCallTimeoutMs, (abortSignal) => docker.getContainer(ref).inspect({ abortSignal }));
      return false;
    } catch (err) {
      return err instanceof DockerCallError && err.info.statusCode === 404;
    }
  }

  private engine(): string {
    try {
      return engineAddress(this.opts.docker());
    } catch {
      return 'unknown';
    }
  }

  private onChange(change: LedgerChange): void {
    const e = change.entry;
    if (change.type === 'transferred' && e.owner === this.owner && e.kind === 'container' && !this.records.has(e.id)) {
      const facts = e.facts ?? {};
      const record: PendingContainer = {
        containerId: typeof facts.containerId === 'string' ? facts.containerId : '',
        name: typeof facts.name === 'string' ? facts.name : '',
        server: change.from.replace(/^server:/, ''),
        since: new Date().toISOString(),
        attempts: 0,
        lastError: null,
      };
      this.records.set(e.id, record);
      this.logger.warn(
        { file: this.file, containerId: record.containerId.slice(0, 12), name: record.name, server: record.server, from: change.from },
        `the reaper now owns container ${record.name || record.containerId.slice(0, 12)}; recorded in pending-reap.json`,
      );
      this.save();
    } else if (change.type === 'settled' && this.records.has(e.id)) {
      const record = this.records.get(e.id)!;
      this.records.delete(e.id);
      this.logger.info(
        {
          file: this.file,
          containerId: record.containerId.slice(0, 12),
          name: record.name,
          server: record.server,
          attempts: record.attempts,
        },
        `container ${record.name || record.containerId.slice(0, 12)} is verifiably gone; removed from pending-reap.json`,
      );
      this.save();
    } else if (change.type === 'transferred' && change.from === this.owner && this.records.has(e.id)) {
      this.records.delete(e.id);
      this.save();
    }
  }

  private save(): void {
    if (this.records.size > 0) this.dirty = true;
    if (!this.dirty) return;
    try {
      writePendingReap(this.opts.dataDir, {
        ...(this.opts.instanceId ? { instanceId: this.opts.instanceId } : {}),
        updatedAt: new Date().toISOString(),
        containers: this.list(),
      });
    } catch (err) {
      this.logger.error({ file: this.file, err: (err as Error).message }, 'could not write pending-reap.json');
    }
  }
}
