/**
 * The daemon-level reaper: owner `reaper` in the ledger. A server actor whose reaping attempts are
 * exhausted hands its leftovers here, so the actor may finish without anything becoming unowned;
 * the reaper keeps force-releasing them on a capped backoff until they are verifiably gone.
 *
 * With a data dir, the containers it owns are also written to `<data dir>/pending-reap.json`
 * (daemon/pending-reap.ts) and removed from it once verifiably gone; `resumePending()` takes over a
 * previous run's entries at start. Every failed attempt is logged (error) with its cause.
 */
import type { Logger } from 'pino';
import type { ResourceLedger } from '../core/resource-ledger.js';
import { backoffDelay } from '../core/settings.js';
import { PendingReapStore, type PendingContainer, type PendingReapOptions } from './pending-reap.js';

const REAPER_OWNER = 'reaper';

export class DaemonReaper {
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private running = false;
  private closed = false;
  private readonly pending: PendingReapStore | undefined;

  constructor(
    private readonly ledger: ResourceLedger,
    private readonly logger: Logger,
    private readonly backoff: { initialMs: number; maxMs: number },
    persistence?: PendingReapOptions,
  ) {
    this.pending = persistence ? new PendingReapStore(ledger, REAPER_OWNER, logger, persistence) : undefined;
  }

  /** The containers recorded in pending-reap.json right now. */
  pendingContainers(): PendingContainer[] {
    return this.pending?.list() ?? [];
  }

  /**
   * At start: retry what a previous run left in pending-reap.json (forced removal by id; 404 = done).
   * What is gone leaves the file; what is not stays, owned by this reaper, retried on its backoff.
   * Resolves with how many are still held.
   */
  async resumePending(): Promise<number> {
    const n = this.pending?.takeOverPrevious() ?? 0;
    if (n === 0) return 0;
    this.running = true;
    let remaining = n;
    try {
      remaining = await this.pass();
    } finally {
      this.running = false;
    }
    if (remaining > 0) {
      this.attempt = 1;
      this.schedule(backoffDelay(this.attempt, this.backoff.initialMs, this.backoff.maxMs));
    } else {
      this.logger.info({ taken: n }, 'every container of pending-reap.json is gone');
    }
    return remaining;
  }

  /** Something was handed over: work on it now. */
  kick(fromOwner: string): void {
    this.logger.warn({ from: fromOwner, held: this.ledger.countFor(REAPER_OWNER) }, 'reaper took over leftovers');
    this.attempt = 0;
    this.schedule(0);
  }

  /** Runs one pass; resolves with what is still held. */
  async pass(): Promise<number> {
    const failures = await this.ledger.releaseOwned(REAPER_OWNER, 'force');
    for (const f of failures) {
      this.logger.error(
        { resource: f.description, kind: f.kind, attempt: this.attempt + 1, err: f.message },
        `reaper attempt failed: ${f.description}: ${f.message}`,
      );
    }
    const remaining = await this.ledger.audit(REAPER_OWNER);
    this.pending?.recordPass(failures);
    return remaining.length;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.closed || this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = true;
      void this.pass()
        .then((remaining) => {
          this.running = false;
          if (remaining > 0) {
            this.attempt++;
            this.schedule(backoffDelay(this.attempt, this.backoff.initialMs, this.backoff.maxMs));
          } else {
            this.logger.info('reaper holds nothing');
          }
        })
        .catch(() => {
          this.running = false;
        });
    }, ms);
  }
}
