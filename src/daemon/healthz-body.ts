/**
 * The /healthz answer as the HTTP route sends it: the same fields as the daemon's `health()`, with each
 * server's view serialised once and reused while nothing it shows changed.
 *
 * Whoever waits for a start polls /healthz (the scale bench every 25 ms), and with 500 servers each
 * answer built 500 views and serialised ~130 KB: ~3 ms of the daemon's thread per poll, while the
 * start it waits for needs that thread. A configured server's view is a function of its actor's
 * snapshot (xstate makes a new one on every change), its config entry (replaced on every change) and
 * its ledger counts: the JSON kept with those three is reused as long as all three are the same.
 */
import type { ResourceKind } from '../core/resource-ledger.js';
import type { ServerEntry } from '../config/config-types.js';
import { serverActorId, serverActorOf, type ServerSnapshot, type SupervisorActorRef } from './server-actors.js';
import { configuredView, drainingViews, snapshotOf } from './server-view.js';

type Counts = Partial<Record<ResourceKind, number>>;

interface Kept {
  snap: ServerSnapshot | undefined;
  entry: ServerEntry;
  resources: Counts;
  json: string;
}

/** Stands in for the servers array while the other fields are serialised (nothing before it is user text). */
const SERVERS_SLOT = '\u0000servers\u0000';
const SERVERS_SLOT_JSON = JSON.stringify(SERVERS_SLOT);

export class HealthzBody {
  private readonly kept = new Map<string, Kept>();

  /**
   * `health` without its servers (they go where `servers` is, in that order), the entries in config
   * order, the root actor, the ledger's counts per owner.
   */
  render(
    health: Record<string, unknown>,
    entries: readonly [string, ServerEntry][],
    root: SupervisorActorRef,
    counts: Record<string, Counts>,
  ): string {
    const parts: string[] = [];
    const configured = new Set<string>();
    for (const [name, entry] of entries) {
      configured.add(name);
      const snap = snapshotOf(serverActorOf(root, name));
      const resources = counts[serverActorId(name)] ?? {};
      let k = this.kept.get(name);
      if (!k || k.snap !== snap || k.entry !== entry || !sameCounts(k.resources, resources)) {
        k = { snap, entry, resources, json: JSON.stringify(configuredView(name, entry, snap, resources)) };
        this.kept.set(name, k);
      }
      parts.push(k.json);
    }
    // Removed servers are kept no longer (their draining actors are rare and shown fresh).
    if (this.kept.size > configured.size) for (const name of this.kept.keys()) if (!configured.has(name)) this.kept.delete(name);
    for (const v of drainingViews(configured, root, counts)) parts.push(JSON.stringify(v));
    const text = JSON.stringify({ ...health, servers: SERVERS_SLOT });
    const at = text.indexOf(SERVERS_SLOT_JSON);
    return `${text.slice(0, at)}[${parts.join(',')}]${text.slice(at + SERVERS_SLOT_JSON.length)}`;
  }
}

function sameCounts(a: Counts, b: Counts): boolean {
  const ka = Object.keys(a) as ResourceKind[];
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}
