/**
 * One scan of the process table with markers (every process's MCP_WARDEN_* variables), shared by every
 * caller that asks while it is pending. The teardown of each server looks for processes of its marker
 * that escaped their group (src/actors/teardown-actors.ts); with a scan per server, stopping 500
 * servers read every process's environment 500 times. Here a request is served by the next scan that
 * starts after it was made (so it sees every process that existed at the request), and all requests
 * made before that scan starts share it.
 *
 * Scans run one at a time, and the next one starts no sooner than MIN_GAP_MS, or GAP_FACTOR times
 * as long as the previous one took, after it ended: at most a fifth of the time is spent scanning
 * however many servers ask, and the requests of servers stopping together gather into one scan. (With
 * a gap of one scan's duration, a few ms, audits of 500 servers arriving one after another got a
 * scan every few ms: half of the stop's time.)
 *
 * A caller that will ask soon (a teardown whose release is under way) can `hold()` the census: while
 * any hold is out, a pending scan waits for them, up to MAX_HOLD_MS after the first request it
 * serves, so the requests of servers stopping one after another gather into few scans; the last hold
 * let go starts it at once.
 *
 * Markers read once are kept by pid and start time: a process's markers come with its environment at
 * its start, and a process that does not descend from the daemon cannot come to (a process that
 * drops them by exec descends from it all the same). So each scan reads the environments only of
 * processes it has not seen; on a machine where others start many processes, every scan of a stop
 * read all of theirs again.
 */
import type { ProcessEntry, ProcessInfo, ProcessTable } from './process-table.js';

const MIN_GAP_MS = 25;
const GAP_FACTOR = 4;
const MAX_HOLD_MS = 100;

interface Pending {
  promise: Promise<ProcessEntry[]>;
  resolve: (v: ProcessEntry[]) => void;
  reject: (e: unknown) => void;
}

export class MarkerCensus {
  private pending: Pending | undefined;
  private running = false;
  private readyAt = 0;
  private holds = 0;
  /** performance.now() when the pending request was made. */
  private pendingSince = 0;
  /** Cancels the scheduled scan, if one is. */
  private cancel: (() => void) | undefined;
  /** Markers (or none) of the processes whose environments were read, by pid, with their start time. */
  private known = new Map<number, { startTime: number; markers: Record<string, string> | undefined }>();
  /** How many scans were made (tests read it). */
  scans = 0;

  /**
   * `candidates`: the processes whose markers matter (the others are listed without them); `skip`:
   * pids not worth listing at all (the table may list them anyway, ListOptions.skip).
   */
  constructor(
    private readonly table: () => ProcessTable,
    private readonly candidates?: (p: ProcessInfo) => boolean,
    private readonly skip?: (pid: number) => boolean,
  ) {}

  /** Every process with its markers, from a scan that started after this call. Rejects with the table's error. */
  snapshot(): Promise<ProcessEntry[]> {
    if (!this.pending) {
      let resolve!: (v: ProcessEntry[]) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<ProcessEntry[]>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.pending = { promise, resolve, reject };
      this.pendingSince = performance.now();
      if (!this.running) this.schedule();
    }
    return this.pending.promise;
  }

  /** "I will ask soon": a pending scan waits (bounded) until every hold is let go. Call the result once. */
  hold(): () => void {
    this.holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.holds--;
      if (this.holds === 0 && this.pending && !this.running) this.schedule();
    };
  }

  private schedule(): void {
    this.cancelTimer();
    const now = performance.now();
    let wait = Math.max(0, this.readyAt - now);
    if (this.holds > 0) wait = Math.max(wait, this.pendingSince + MAX_HOLD_MS - now);
    const go = () => {
      this.cancel = undefined;
      void this.run();
    };
    // setImmediate at the least: everyone asking in this turn of the event loop joins the scan.
    if (wait > 0) {
      const t = setTimeout(go, wait);
      this.cancel = () => clearTimeout(t);
    } else {
      const i = setImmediate(go);
      this.cancel = () => clearImmediate(i);
    }
  }

  private cancelTimer(): void {
    const cancel = this.cancel;
    this.cancel = undefined;
    cancel?.();
  }

  private async run(): Promise<void> {
    const p = this.pending;
    if (!p || this.running) return;
    this.pending = undefined;
    this.running = true;
    const t0 = performance.now();
    try {
      p.resolve(await this.scan());
    } catch (err) {
      p.reject(err);
    } finally {
      const t1 = performance.now();
      this.scans++;
      this.readyAt = t1 + Math.max(MIN_GAP_MS, GAP_FACTOR * (t1 - t0));
      this.running = false;
      if (this.pending) this.schedule();
    }
  }

  private async scan(): Promise<ProcessEntry[]> {
    const known = this.known;
    const candidates = this.candidates;
    const seen = (e: ProcessInfo) => known.get(e.pid)?.startTime === e.startTime;
    // Read: candidates not seen before. (A table that reads every environment anyway may ignore this;
    // then nothing is kept and every scan's markers are its own.)
    const readPids = new Set<number>();
    const read = (e: ProcessInfo) => {
      const r = !seen(e) && (!candidates || candidates(e));
      if (r) readPids.add(e.pid);
      return r;
    };
    const list = await this.table().listAsync({ markers: true, markersOf: read, skip: this.skip });
    const next = new Map<number, { startTime: number; markers: Record<string, string> | undefined }>();
    for (const e of list) {
      const k = known.get(e.pid);
      if (k && k.startTime === e.startTime) {
        if (k.markers) e.markers = k.markers;
        next.set(e.pid, k);
      } else if (readPids.has(e.pid)) {
        next.set(e.pid, { startTime: e.startTime, markers: e.markers });
      }
    }
    // Only processes still listed: the map never outgrows the table.
    this.known = next;
    return list;
  }
}
