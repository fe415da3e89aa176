/**
 * The resource ledger: every process group, container, MCP client, socket, timer, listener and
 * subscription the daemon acquires is registered here under exactly one owner (an actor id such
 * as `server:memory`, or `daemon`, `front`, `reaper`). It lives outside XState on purpose: an
 * errored actor tree does not stop its children (docs/building-blocks.md), so the ledger is what the daemon
 * sweeps when the root stops or errors, and what a server actor must empty before it may finish.
 *
 * Nothing here throws into callers' transitions: release and audit collect failures and return them.
 *
 * Entries are indexed by owner and their counts per owner and kind are kept as entries come and go,
 * so what one owner holds (its view's `resources`, its audit, a transfer) costs what it holds, not a
 * walk over the whole ledger: with 500 servers every state change asks.
 */

export type ResourceKind =
  'process-group' | 'container' | 'mcp-client' | 'mcp-session' | 'socket' | 'timer' | 'listener' | 'subscription' | 'file';

export interface ResourceSpec {
  kind: ResourceKind;
  /** Human-readable, secret-free description (e.g. `pgid 1234: node server.js`). */
  description: string;
  /** Polite, bounded release (e.g. the stop escalation). Idempotent. Resolves once the resource is gone. */
  release(): Promise<void>;
  /** Last-resort release used by reaping retries (e.g. SIGKILL the group, force-remove). Defaults to release. */
  forceRelease?(): Promise<void>;
  /** Verification that the resource no longer exists. Without it, a settled entry is trusted. */
  isGone?(): Promise<boolean> | boolean;
  /** Serialisable facts for UIs (pid, container id); no secrets. */
  facts?: Record<string, string | number>;
}

export interface ResourceEntry extends ResourceSpec {
  id: string;
  owner: string;
  acquiredAt: number;
}

/** What an adapter holds to say its resource is gone. */
export interface LedgerHandle {
  readonly id: string;
  /** Deregister: the resource is verifiably released. Idempotent. */
  settle(): void;
}

export interface ReleaseFailure {
  id: string;
  kind: ResourceKind;
  description: string;
  message: string;
}

export type LedgerChange =
  | { type: 'acquired'; entry: ResourceEntry }
  | { type: 'settled'; entry: ResourceEntry }
  | { type: 'transferred'; entry: ResourceEntry; from: string };

export class ResourceLedger {
  private readonly entries = new Map<string, ResourceEntry>();
  private readonly byOwner = new Map<string, Map<string, ResourceEntry>>();
  private readonly kindCounts = new Map<string, Partial<Record<ResourceKind, number>>>();
  private readonly listeners = new Set<(change: LedgerChange) => void>();
  private seq = 0;

  constructor(private readonly now: () => number = Date.now) {}

  acquire(owner: string, spec: ResourceSpec): LedgerHandle {
    const id = `${spec.kind}#${++this.seq}`;
    const entry: ResourceEntry = { ...spec, id, owner, acquiredAt: this.now() };
    this.entries.set(id, entry);
    this.index(entry);
    this.emit({ type: 'acquired', entry });
    return { id, settle: () => this.settle(id) };
  }

  settle(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.unindex(entry);
    this.emit({ type: 'settled', entry });
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  owned(owner: string): ResourceEntry[] {
    const mine = this.byOwner.get(owner);
    return mine ? [...mine.values()] : [];
  }

  all(): ResourceEntry[] {
    return [...this.entries.values()];
  }

  size(): number {
    return this.entries.size;
  }

  /** Counts per owner and kind, for /healthz, the control channel and tests. */
  counts(): Record<string, Partial<Record<ResourceKind, number>>> {
    const out: Record<string, Partial<Record<ResourceKind, number>>> = {};
    for (const [owner, byKind] of this.kindCounts) out[owner] = { ...byKind };
    return out;
  }

  /** What `owner` holds, per kind (a copy; {} when nothing). */
  countsOf(owner: string): Partial<Record<ResourceKind, number>> {
    return { ...this.kindCounts.get(owner) };
  }

  countFor(owner: string): number {
    return this.byOwner.get(owner)?.size ?? 0;
  }

  /** Hand resources to another owner (e.g. to the daemon-level reaper when an actor gives up). */
  transfer(fromOwner: string, toOwner: string): number {
    if (fromOwner === toOwner) return this.countFor(fromOwner);
    const moving = this.owned(fromOwner);
    for (const e of moving) {
      this.unindex(e);
      e.owner = toOwner;
      this.index(e);
      this.emit({ type: 'transferred', entry: e, from: fromOwner });
    }
    return moving.length;
  }

  /**
   * Release everything `owner` holds, concurrently. Each success settles its entry; failures are
   * returned (and the entries stay, visibly, for the next attempt). Never rejects.
   */
  async releaseOwned(owner: string, mode: 'polite' | 'force' = 'polite'): Promise<ReleaseFailure[]> {
    return this.releaseEntries(this.owned(owner), mode);
  }

  /** Release everything in the ledger (root stopped or errored). Never rejects. */
  async sweep(mode: 'polite' | 'force' = 'force'): Promise<ReleaseFailure[]> {
    return this.releaseEntries(this.all(), mode);
  }

  /** Settle every entry of `owner` whose resource verifiably no longer exists; return what remains. */
  async audit(owner: string): Promise<ResourceEntry[]> {
    const remaining: ResourceEntry[] = [];
    for (const e of this.owned(owner)) {
      let gone = false;
      try {
        gone = e.isGone ? await e.isGone() : false;
      } catch {
        gone = false;
      }
      if (gone) this.settle(e.id);
      else if (this.entries.has(e.id)) remaining.push(e);
    }
    return remaining;
  }

  subscribe(listener: (change: LedgerChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Every release at once; settles once each has succeeded (and is verified gone) or failed. Without an
   * async function per entry, Promise.allSettled and an await of a synchronous isGone(): a stop of 500
   * released 1,000 entries in one burst, and those promises and microtask hops were ~10 ms of it.
   */
  private releaseEntries(entries: ResourceEntry[], mode: 'polite' | 'force'): Promise<ReleaseFailure[]> {
    if (entries.length === 0) return Promise.resolve([]);
    return new Promise<ReleaseFailure[]>((resolve) => {
      const failed: Array<ReleaseFailure | undefined> = [];
      let left = entries.length;
      const settleOne = (i: number, failure: unknown, isFailure: boolean) => {
        if (isFailure) {
          const e = entries[i]!;
          failed[i] = {
            id: e.id,
            kind: e.kind,
            description: e.description,
            message: failure instanceof Error ? failure.message : String(failure),
          };
        }
        if (--left === 0) resolve(failed.filter((f): f is ReleaseFailure => f !== undefined));
      };
      const verify = (i: number) => {
        const e = entries[i]!;
        if (!e.isGone) {
          this.settle(e.id);
          return settleOne(i, undefined, false);
        }
        let gone: Promise<boolean> | boolean;
        try {
          gone = e.isGone();
        } catch (err) {
          return settleOne(i, err, true);
        }
        const judge = (g: boolean) => {
          if (g) this.settle(e.id);
          settleOne(i, g ? undefined : new Error('still present after release'), !g);
        };
        // A thenable is awaited; anything else is taken for its truth, as `await` would.
        if (typeof (gone as Partial<Promise<boolean>> | null)?.then === 'function') {
          (gone as Promise<boolean>).then(
            (g) => judge(Boolean(g)),
            (err: unknown) => settleOne(i, err, true),
          );
        } else judge(Boolean(gone));
      };
      entries.forEach((e, i) => {
        const fn = mode === 'force' && e.forceRelease ? e.forceRelease : e.release;
        let released: Promise<void>;
        try {
          released = fn.call(e);
        } catch (err) {
          return settleOne(i, err, true);
        }
        Promise.resolve(released).then(
          () => verify(i),
          (err: unknown) => settleOne(i, err, true),
        );
      });
    });
  }

  private index(e: ResourceEntry): void {
    let mine = this.byOwner.get(e.owner);
    if (!mine) this.byOwner.set(e.owner, (mine = new Map()));
    mine.set(e.id, e);
    let byKind = this.kindCounts.get(e.owner);
    if (!byKind) this.kindCounts.set(e.owner, (byKind = {}));
    byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
  }

  private unindex(e: ResourceEntry): void {
    const mine = this.byOwner.get(e.owner);
    if (!mine?.delete(e.id)) return;
    if (mine.size === 0) {
      this.byOwner.delete(e.owner);
      this.kindCounts.delete(e.owner);
      return;
    }
    const byKind = this.kindCounts.get(e.owner)!;
    const n = (byKind[e.kind] ?? 1) - 1;
    if (n > 0) byKind[e.kind] = n;
    else delete byKind[e.kind];
  }

  private emit(change: LedgerChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch {
        // A failing observer must not break acquisition or release.
      }
    }
  }
}
