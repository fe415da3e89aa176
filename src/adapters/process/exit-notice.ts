/**
 * The one-shot "it has exited" signal of a process group or container handle: the `exited` promise,
 * listeners (called once; a listener added after the exit is called asynchronously), and sleepers
 * that poll for something (an empty group, an exit) and want to be woken early. Shared by both
 * handles so their listener bookkeeping cannot drift apart; `clear()` drops everything it holds.
 */
import { DeadlineQueue } from '../mcp/deadline-queue.js';
import { systemClock } from '../../core/clock.js';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export class ExitNotice {
  readonly exited: Promise<ExitInfo>;
  private info: ExitInfo | undefined;
  private resolve!: (info: ExitInfo) => void;
  private readonly listeners = new Set<(info: ExitInfo) => void>();
  private readonly wakers = new Set<() => void>();

  constructor() {
    this.exited = new Promise<ExitInfo>((res) => {
      this.resolve = res;
    });
  }

  get value(): ExitInfo | undefined {
    return this.info;
  }

  /** Record the exit and tell every listener; false if it was recorded before (first call wins). */
  fire(info: ExitInfo): boolean {
    if (this.info) return false;
    this.info = info;
    this.resolve(info);
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) safeCall(l, info);
    this.wakeAll();
    return true;
  }

  onExit(listener: (info: ExitInfo) => void): () => void {
    const info = this.info;
    if (info) {
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) safeCall(listener, info);
      });
      return () => {
        cancelled = true;
      };
    }
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Sleep up to `ms`, woken early by fire() or wakeAll(), on a timer shared by every notice napping
   * for that same length (napQueue): a stop of 500 napped 500 times for its EOF grace, and each own
   * Node timer, made and cleared again on the exit, was ~15 us of the daemon's thread. Leaves nothing
   * behind once woken. Only for lengths of a small fixed set (the stop's grace settings).
   */
  napShared(ms: number): Promise<void> {
    const queue = napQueue(ms);
    return new Promise<void>((resolve) => {
      const wake = () => {
        queue.cancel(deadline);
        this.wakers.delete(wake);
        resolve();
      };
      const deadline = queue.add(wake);
      this.wakers.add(wake);
    });
  }

  /** Sleep up to `ms`, woken early by fire() or wakeAll(); leaves no timer behind. */
  nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      this.wakers.add(wake);
    });
  }

  wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }

  /** Forget the listeners (the handle is finalized); sleepers are woken. */
  clear(): void {
    this.listeners.clear();
    this.wakeAll();
  }
}

/** One queue per nap length; kept (a few small objects: one per grace setting's value). */
const napQueues = new Map<number, DeadlineQueue>();

function napQueue(ms: number): DeadlineQueue {
  let queue = napQueues.get(ms);
  // Ref'd, like the timer of a plain nap: a stop's wait must keep the daemon alive.
  if (!queue) napQueues.set(ms, (queue = new DeadlineQueue(Math.max(0, ms), systemClock, () => performance.now(), false)));
  return queue;
}

function safeCall<T>(fn: (arg: T) => void, arg: T): void {
  try {
    fn(arg);
  } catch {
    // A throwing observer must not break process or container bookkeeping.
  }
}
