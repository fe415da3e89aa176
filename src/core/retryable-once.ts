/**
 * An operation that runs at most once at a time and, once it succeeded, never again: callers during a
 * run share it, later callers get the remembered result, and a failure lets the next call try again
 * (a stop that failed is retried by the reaping statechart, one attempt per call).
 */
export class RetryableOnce<T> {
  private running: Promise<T> | undefined;
  private done: { value: T } | undefined;

  constructor(private readonly run: () => Promise<T>) {}

  /** True while a run is under way. */
  get pending(): boolean {
    return this.running !== undefined;
  }

  call(): Promise<T> {
    if (this.done) return Promise.resolve(this.done.value);
    this.running ??= this.run().then(
      (value) => {
        this.done = { value };
        this.running = undefined;
        return value;
      },
      (err: unknown) => {
        this.running = undefined;
        throw err;
      },
    );
    return this.running;
  }
}
