/**
 * When every server of the config the daemon started with has finished its first launch: it is
 * running or quarantined, its launch failed (anything but `starting.launching`), or it was removed.
 * `serve` keeps V8 in its start-up mode until then (src/cli/main.ts): no optimizing compiler and no
 * growth of the young generation while hundreds of servers are launched once, whenever the daemon
 * announces that it listens. Each launch ends within initTimeoutMs (its INIT_TIMEOUT), so this settles;
 * a stop of the daemon settles it at once.
 */
export class FirstLaunches {
  private readonly pending: Set<string>;
  private resolve!: () => void;
  /** Resolves once no server of the initial config is in its first launch any more. */
  readonly settled: Promise<void>;

  /** `launching(name)`: the server is (still) in `starting.launching`; false once it is gone. */
  constructor(
    names: Iterable<string>,
    private readonly launching: (name: string) => boolean,
  ) {
    this.pending = new Set(names);
    this.settled = new Promise<void>((r) => (this.resolve = r));
    if (this.pending.size === 0) this.resolve();
  }

  /** These servers changed (the server event stream's batched changes): O(changed), not O(servers). */
  changed(names: Iterable<string>): void {
    if (this.pending.size === 0) return;
    for (const name of names) if (this.pending.has(name) && !this.launching(name)) this.pending.delete(name);
    if (this.pending.size === 0) this.resolve();
  }

  /** The daemon stops: nothing more to wait for. */
  end(): void {
    this.pending.clear();
    this.resolve();
  }
}
