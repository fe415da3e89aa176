/**
 * The controller of one tools/call, and a cheaper way to hear of its abort than an 'abort' listener.
 *
 * The front's call path (runToolCall) and the direct upstream request each need to act when a call is
 * aborted, and each used to add and remove an EventTarget listener on the call's signal: in Node 20
 * that is one of the costlier steps of a call (docs/benchmarks.md, "Throughput"). A CallController
 * runs plain callbacks from abort(), after the signal's own listeners; everything that aborts a call
 * (cancellation, the session's close, the deadlines) calls abort() on the controller, so the callbacks
 * see every abort. A signal that does not belong to a CallController gets a listener as before.
 */

const controllers = new WeakMap<AbortSignal, CallController>();

export class CallController extends AbortController {
  /** Callbacks for the next abort(), in the order they were added. */
  readonly hooks = new Set<() => void>();

  constructor() {
    super();
    controllers.set(this.signal, this);
  }

  override abort(reason?: unknown): void {
    super.abort(reason);
    if (this.hooks.size === 0) return;
    const hooks = [...this.hooks];
    this.hooks.clear();
    for (const hook of hooks) hook();
  }
}

/**
 * Runs `fn` once when `signal` aborts (not when it already has: callers check `aborted` first).
 * Returns what stops it; call it when the work settles.
 */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  const ctl = controllers.get(signal);
  if (ctl !== undefined) {
    ctl.hooks.add(fn);
    return () => void ctl.hooks.delete(fn);
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}
