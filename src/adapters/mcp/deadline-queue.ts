/**
 * Deadlines of one fixed length on the call path (the front's backstop per tools/call, the keep-alive
 * of a waiting response, an upstream request's timeout), kept in one list with one timer instead of a
 * Node timer per call. All deadlines of a queue have the same length, so they expire in the order they
 * were added: adding is a push, cancelling clears the entry, and the single timer is armed for the
 * oldest live entry. Creating, unref'ing and clearing up to three timers per call was a few percent of
 * a call's CPU under load (docs/benchmarks.md, "Throughput").
 *
 * Time is read from a monotonic source (performance.now() unless given), so a step of the wall clock
 * neither fires deadlines early nor holds them back. The timer is unref'd (as the timers it replaces
 * were; unless asked otherwise) and exists only while a deadline is live: once the last one is
 * cancelled or fired, nothing of the queue is left running.
 */
import { systemClock, unrefHandle, type Clock } from '../../core/clock.js';

/** The longest delay a Node timer takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Deadline {
  readonly at: number;
  /** What runs at the deadline; undefined once it ran or was cancelled. */
  fn: (() => void) | undefined;
}

export class DeadlineQueue {
  private entries: Deadline[] = [];
  /** Index of the oldest entry not yet expired (the ones before it are gone). */
  private head = 0;
  private live = 0;
  private timer: unknown = undefined;
  private firing = false;

  constructor(
    /** Length of every deadline of this queue (ms). */
    readonly ms: number,
    private readonly clock: Clock = systemClock,
    private readonly now: () => number = () => performance.now(),
    /** false: the timer keeps the process alive, as a plain setTimeout does (a wait nothing else may hold up). */
    private readonly unref = true,
  ) {}

  /** `fn` runs `ms` from now unless cancelled first. */
  add(fn: () => void): Deadline {
    const d: Deadline = { at: this.now() + this.ms, fn };
    this.entries.push(d);
    this.live++;
    if (this.timer === undefined && !this.firing) this.arm(this.ms);
    return d;
  }

  /** The deadline will not run (no-op when it already ran or was cancelled). */
  cancel(d: Deadline | undefined): void {
    if (d === undefined || d.fn === undefined) return;
    d.fn = undefined;
    this.live--;
    if (this.firing) return;
    if (this.live === 0) return this.reset();
    // Cancelled entries wait for their turn at the head; drop them once they outnumber the live ones.
    if (this.entries.length - this.head > 2 * this.live + 64) this.compact();
  }

  /** Live deadlines (tests). */
  get size(): number {
    return this.live;
  }

  /** Cancels everything. */
  close(): void {
    for (let i = this.head; i < this.entries.length; i++) this.entries[i]!.fn = undefined;
    this.live = 0;
    this.reset();
  }

  private reset(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.entries = [];
    this.head = 0;
  }

  private compact(): void {
    const kept: Deadline[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const d = this.entries[i]!;
      if (d.fn !== undefined) kept.push(d);
    }
    this.entries = kept;
    this.head = 0;
  }

  private arm(delayMs: number): void {
    // Node's timers take at most 2^31-1 ms; a longer deadline re-arms when the timer fires early.
    const t = this.clock.setTimeout(() => this.fire(), Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(delayMs))));
    if (this.unref) unrefHandle(t);
    this.timer = t;
  }

  private fire(): void {
    this.timer = undefined;
    this.firing = true;
    const now = this.now();
    try {
      while (this.head < this.entries.length) {
        const d = this.entries[this.head]!;
        const fn = d.fn;
        if (fn !== undefined && d.at > now) break;
        this.head++;
        if (fn === undefined) continue;
        d.fn = undefined;
        this.live--;
        try {
          fn();
        } catch (err) {
          // Thrown out of a timer as before, but only after the other deadlines ran and the timer is re-armed.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    } finally {
      this.firing = false;
    }
    if (this.live === 0) return this.reset();
    while (this.entries[this.head]!.fn === undefined) this.head++;
    if (this.head > 1024) this.compact();
    this.arm(this.entries[this.head]!.at - now);
  }
}
