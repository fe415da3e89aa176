/**
 * The daemon-level reaper: owner `reaper` in the ledger. A server actor whose reaping attempts are
 * exhausted hands its leftovers here, so the actor may finish without anything becoming unowned;
 * the reaper keeps force-releasing them on a capped backoff until they are verifiably gone.
 */
import type { Logger } from 'pino';
import type { ResourceLedger } from '../core/resource-ledger.js';
import { backoffDelay } from '../core/settings.js';

export const REAPER_OWNER = 'reaper';

export class DaemonReaper {
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private running = false;
  private closed = false;

  constructor(
    private readonly ledger: ResourceLedger,
    private readonly logger: Logger,
    private readonly backoff: { initialMs: number; maxMs: number },
  ) {}

  /** Something was handed over: work on it now. */
  kick(fromOwner: string): void {
    this.logger.warn({ from: fromOwner, held: this.ledger.countFor(REAPER_OWNER) }, 'reaper took over leftovers');
    this.attempt = 0;
    this.schedule(0);
  }

  /** Runs one pass; resolves with what is still held. */
  async pass(): Promise<number> {
    const failures = await this.ledger.releaseOwned(REAPER_OWNER, 'force');
    for (const f of failures) this.logger.warn({ resource: f.description, err: f.message }, 'reaper attempt failed');
    const remaining = await this.ledger.audit(REAPER_OWNER);
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
