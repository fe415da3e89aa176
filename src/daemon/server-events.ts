/**
 * The change stream of server views for UIs, the control channel and `list_changed`, fed by actor
 * subscriptions (not by the inspection hook, which stays for the Stately inspector only).
 *
 * It subscribes to the root actor and to each of its server groups (src/machines/server-group-machine.ts):
 * a root snapshot's `children` says which groups exist, a group snapshot's `children` which server
 * actors, and each server actor gets its own subscription. Every server snapshot becomes a `server`
 * event when its view changed (de-duplicated by JSON), a state change is logged, and the catalog is
 * asked to re-check the servers that changed (coalesced to one check per microtask). Nothing here looks
 * at every server per event: a group's change is checked against that group's few servers only, so a
 * change costs the same with 500 servers as with one. A server's subscription is released when it
 * reaches `stopped`, when it leaves its group's `children`, and all of them on `stop()`.
 * Observing never disturbs the system: nothing here throws into an actor.
 */
import type { Logger } from 'pino';
import type { AnyActorRef } from 'xstate';
import type { ResourceKind } from '../core/resource-ledger.js';
import type { CallEntry } from '../adapters/observability/call-record.js';
import { stateString, viewOfSnapshot, type ServerView } from './server-view.js';
import {
  serverActorOf,
  serverActorId,
  serverNameOf,
  type ServerActorRef,
  type ServerSnapshot,
  type SupervisorActorRef,
} from './server-actors.js';

/** The state of the config file as the daemon last read it (hot reload, src/daemon/config-reload.ts). */
export type ConfigStatus =
  { ok: true; path: string; loadedAt: number } | { ok: false; path: string; error: { code: string; message: string }; at: number };

/** What UIs and the control channel receive: a server's view changed, or a server was removed. */
export type DaemonEvent =
  | { type: 'server'; server: ServerView; previousState: string | null; at: number }
  | { type: 'server-removed'; name: string; at: number }
  /** The config file became unusable, or usable again (src/daemon/config-reload.ts). */
  | { type: 'config'; config: ConfigStatus; at: number }
  /** Tool calls answered since the last such event (src/adapters/observability/call-log.ts). */
  | { type: 'calls'; calls: CallEntry[]; at: number };

export interface ServerEventsDeps {
  logger: Logger;
  /** Ledger counts of one owner, for the view's `resources`. */
  counts: (owner: string) => Partial<Record<ResourceKind, number>>;
  /** These servers changed (the catalog's `notify`, for `list_changed`). */
  onChange: (names: ReadonlySet<string>) => void;
  now?: () => number;
}

interface Watched {
  ref: ServerActorRef;
  /** Its group, and its id among the group's children (server-group-machine.ts). */
  group: WatchedGroup;
  id: string;
  unsubscribe: () => void;
}

interface WatchedGroup {
  ref: AnyActorRef;
  /** Its id among the root's children. */
  id: string;
  /** The group's `children` as last looked at. */
  lastChildren: unknown;
  /** The servers watched in this group. */
  names: Set<string>;
  unsubscribe: () => void;
}

export class ServerEvents {
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  private readonly watched = new Map<string, Watched>();
  private readonly groups = new Map<AnyActorRef, WatchedGroup>();
  private readonly lastState = new Map<string, string>();
  private readonly lastView = new Map<string, string>();
  private rootSubscription: { unsubscribe(): void } | undefined;
  private changed = new Set<string>();
  private lastChildren: unknown;
  private stopped = false;
  /** Children are no longer watched (quietStateLogs with nobody listening). */
  private detached = false;
  private stateLogLevel: 'info' | 'debug' = 'info';
  private readonly now: () => number;

  constructor(private readonly deps: ServerEventsDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Start following `root` (and the server actors it has now). Call once, before or after root.start(). */
  attach(root: SupervisorActorRef): void {
    if (this.stopped || this.rootSubscription) return;
    const sync = () => this.syncGroups(root);
    let ended = false;
    // The root's own failure is handled by its owner (daemon.ts); here it only ends the stream.
    const end = () => {
      ended = true;
      this.rootSubscription = undefined;
      this.releaseChildren();
    };
    const sub = root.subscribe({ next: sync, error: end, complete: end });
    if (!ended) this.rootSubscription = sub;
    sync();
  }

  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  /** Actor subscriptions held right now (the root's and each group's count as one): 0 after `stop()`. */
  subscriptionCount(): number {
    return this.watched.size + this.groups.size + (this.rootSubscription ? 1 : 0);
  }

  /** Tell every listener (also used by the daemon for `server-removed`). Never throws. */
  emit(e: DaemonEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.deps.logger.warn({ err }, 'daemon event listener failed');
      }
    }
  }

  /**
   * From now on state changes are logged at debug: during a shutdown every server walks the same
   * states, and the daemon logs one line for all of them instead (500 servers made 2,000 lines).
   */
  quietStateLogs(): void {
    this.stateLogLevel = 'debug';
    // Nobody to tell and nothing to log (the shutdown has closed the control channel and the metrics):
    // the server actors' subscriptions go now, not one per server as each finishes, and the ~3
    // snapshots each server still makes are observed by nobody. A listener that subscribes later
    // hears no more server changes, only the root's end (see syncGroups).
    if (this.listeners.size === 0 && !this.deps.logger.isLevelEnabled('debug')) {
      this.detached = true;
      this.releaseChildren();
    }
  }

  /** Release every actor subscription; listeners stay registered but hear nothing more. Idempotent. */
  stop(): void {
    this.stopped = true;
    const root = this.rootSubscription;
    this.rootSubscription = undefined;
    try {
      root?.unsubscribe();
    } catch {
      // already gone
    }
    this.releaseChildren();
  }

  /** The root's snapshot: a group appeared or went. */
  private syncGroups(root: SupervisorActorRef): void {
    if (this.stopped || this.detached) return;
    try {
      // Most root snapshots only change its context: the same `children` object has the same groups.
      const snap = root.getSnapshot();
      const children = snap.children as Record<string, AnyActorRef | undefined>;
      if (children === this.lastChildren) return;
      this.lastChildren = children;
      // Shutting down, the root spawns nothing; its groups go only when it completes (releaseChildren).
      if (snap.matches('shuttingDown')) return;
      for (const g of [...this.groups.values()]) if (children[g.id] !== g.ref) this.releaseGroup(g);
      for (const id in children) {
        const ref = children[id];
        if (ref && !this.groups.has(ref)) this.watchGroup(root, ref, id);
      }
    } catch {
      // observing must never disturb the system
    }
  }

  private watchGroup(root: SupervisorActorRef, ref: AnyActorRef, id: string): void {
    if (ref.getSnapshot().status !== 'active') return;
    const g: WatchedGroup = { ref, id, lastChildren: undefined, names: new Set(), unsubscribe: () => undefined };
    this.groups.set(ref, g);
    const end = () => this.releaseGroup(g);
    const sub = ref.subscribe({ next: () => this.syncServers(root, g), error: end, complete: end });
    g.unsubscribe = () => sub.unsubscribe();
    this.syncServers(root, g);
  }

  /** A group's snapshot: one of its (at most SERVER_GROUP_SIZE) server actors appeared or went. */
  private syncServers(root: SupervisorActorRef, g: WatchedGroup): void {
    if (this.stopped || this.detached || this.groups.get(g.ref) !== g) return;
    try {
      const children = (g.ref.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children;
      if (children === g.lastChildren) return;
      g.lastChildren = children;
      // Shutting down, a group spawns nothing and stops a server only on its done event, whose done
      // snapshot has released it here already: nothing to look for.
      if (root.getSnapshot().matches('shuttingDown')) return;
      for (const name of [...g.names]) {
        const w = this.watched.get(name);
        // Gone from the group, or replaced by a new actor of the same name.
        if (w && children[w.id] !== w.ref) {
          this.release(name);
          this.queueChange(name);
        }
      }
      for (const id in children) {
        const child = children[id];
        const name = serverNameOf(child);
        if (name === undefined || !child || this.watched.get(name)?.ref === child) continue;
        const ref = serverActorOf(root, name);
        // The registered actor is the child itself; anything else is not ours to show.
        if (ref && ref === child && !this.watched.has(name)) this.watch(name, ref, g, id);
      }
    } catch {
      // observing must never disturb the system
    }
  }

  private watch(name: string, ref: ServerActorRef, group: WatchedGroup, id: string): void {
    const snap = ref.getSnapshot();
    // A dead ref waiting for its stop has said everything already.
    if (snap.status !== 'active') return;
    const sub = ref.subscribe({
      next: (s) => this.onSnapshot(name, ref, s),
      // With an error observer xstate reports nothing globally; the root hears of it as well.
      error: (err) => {
        this.deps.logger.error({ err, server: name }, 'server actor failed');
        this.release(name, ref);
      },
      complete: () => this.release(name, ref),
    });
    this.watched.set(name, { ref, group, id, unsubscribe: () => sub.unsubscribe() });
    group.names.add(name);
    // A subscription hears only what comes next: report where it is now.
    this.onSnapshot(name, ref, snap);
  }

  private release(name: string, ref?: ServerActorRef): void {
    const w = this.watched.get(name);
    if (!w || (ref && w.ref !== ref)) return;
    this.watched.delete(name);
    w.group.names.delete(name);
    try {
      w.unsubscribe();
    } catch {
      // already gone
    }
  }

  private releaseGroup(g: WatchedGroup): void {
    if (this.groups.get(g.ref) !== g) return;
    this.groups.delete(g.ref);
    for (const name of [...g.names]) this.release(name);
    try {
      g.unsubscribe();
    } catch {
      // already gone
    }
  }

  private releaseChildren(): void {
    for (const g of [...this.groups.values()]) this.releaseGroup(g);
    for (const name of [...this.watched.keys()]) this.release(name);
  }

  private onSnapshot(name: string, ref: ServerActorRef, snap: ServerSnapshot): void {
    try {
      if (this.stopped || this.watched.get(name)?.ref !== ref) return;
      const previousState = this.lastState.get(name) ?? null;
      let state: string;
      if (this.listeners.size > 0) {
        const view = viewOfSnapshot(snap, this.deps.counts(serverActorId(name)));
        if (!view) return;
        state = view.state;
        const serialized = JSON.stringify(view);
        if (this.lastView.get(name) !== serialized) {
          this.lastView.set(name, serialized);
          this.emit({ type: 'server', server: view, previousState, at: this.now() });
        }
      } else {
        // Nobody listens (a shutdown closes the control channel and the metrics first): no view to
        // build and compare; a listener that subscribes later hears the next change in full.
        this.lastView.delete(name);
        state = snap.status === 'done' ? 'stopped' : stateString(snap.value);
      }
      if (state === 'stopped') this.lastView.delete(name);
      if (previousState !== state) {
        this.lastState.set(name, state);
        const c = snap.context;
        // A first launch is announced by `→ running` (or its failure) a moment later: at debug, one info
        // line fewer per server (writing three per server was ~6% of the daemon's CPU starting 500).
        const level = previousState === null && state === 'starting.launching' ? 'debug' : this.stateLogLevel;
        this.deps.logger[level]({ server: name, state, attempt: c.attempt, error: c.lastError?.code }, `server ${name} → ${state}`);
        if (state === 'stopped') this.lastState.delete(name);
      }
      if (snap.status !== 'active') this.release(name, ref);
    } catch {
      // observing must never disturb the system
    }
    this.queueChange(name);
  }

  private queueChange(name: string): void {
    if (this.stopped) return;
    const first = this.changed.size === 0;
    this.changed.add(name);
    if (!first) return;
    queueMicrotask(() => {
      const names = this.changed;
      this.changed = new Set();
      try {
        this.deps.onChange(names);
      } catch {
        // the catalog's failure is its own
      }
    });
  }
}
