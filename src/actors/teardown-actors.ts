/**
 * Teardown effects of `stopping` and `reaping`, all over the resource ledger: release what the
 * owner holds (polite escalation), audit what is verifiably gone, force what is not, and as the
 * last resort hand ownership to the daemon-level reaper. Failures are thrown as coded errors for the
 * statechart to turn into its retry/backoff states; nothing here decides the next state.
 *
 * Processes that escaped their group (setsid daemons, found by their marker) are not ledger entries
 * of their own; the hand-over gives them to the reaper as one entry, so they stay owned by someone
 * and the actor's audit stops counting them.
 */
import { fromPromise } from 'xstate';
import type { ResourceLedger, ReleaseFailure } from '../core/resource-ledger.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import { releaseWithDeadline, type AuditOutput } from '../machines/server-machine.js';
import { processTable } from '../adapters/process/current-table.js';
import { isDead, type ProcessEntry, type ProcessInfo } from '../adapters/process/process-table.js';
import { MarkerCensus } from '../adapters/process/marker-census.js';
import { isSupervisedGroup } from '../adapters/process/process-group.js';
import { ENV_SERVER, type InstanceIdentity } from '../core/instance-identity.js';

type OwnerInput = { name: string; owner: string };

export interface TeardownDeps {
  ledger: ResourceLedger;
  identity: InstanceIdentity;
  /** Called after a hand-over so the reaper starts working on what it now owns. */
  onHandOver: (fromOwner: string) => void;
}

function failureError(code: typeof ErrorCodes.STOP_FAILED | typeof ErrorCodes.REAP_FAILED, failures: ReleaseFailure[]) {
  const what = failures.map((f) => `${f.description}: ${f.message}`).join('; ');
  return new WardenError(code, `${failures.length} resource(s) not released: ${what}`);
}

/**
 * Processes carrying this server's marker that escaped its process group (setsid daemons). One scan
 * serves every server tearing down at the same time (marker-census.ts), not one scan per server.
 */
async function escapees(deps: TeardownDeps, census: MarkerCensus, name: string): Promise<ProcessInfo[]> {
  return byServer(await census.snapshot()).get(`${deps.identity.instanceId}/${name}`) ?? [];
}

/**
 * A scan's live processes by their server marker, made once per scan: the servers stopping together
 * share a scan, and each filtering all of it (every process on the machine) made 500 audits O(N × P).
 */
const indexes = new WeakMap<readonly ProcessEntry[], Map<string, ProcessInfo[]>>();
function byServer(scan: readonly ProcessEntry[]): Map<string, ProcessInfo[]> {
  let index = indexes.get(scan);
  if (!index) {
    index = new Map();
    for (const p of scan) {
      const key = p.markers?.[ENV_SERVER];
      if (key === undefined || isDead(p)) continue;
      const list = index.get(key);
      if (list) list.push(p);
      else index.set(key, [p]);
    }
    indexes.set(scan, index);
  }
  return index;
}

/** SIGKILL what escaped; never the daemon's own group, whatever an escapee did with its pgid. */
async function killEscapees(deps: TeardownDeps, census: MarkerCensus, name: string): Promise<void> {
  const ownGroup = processTable().get(process.pid)?.pgid;
  for (const p of await escapees(deps, census, name)) {
    for (const target of p.pgid !== ownGroup && p.pgid > 1 ? [-p.pgid, p.pid] : [p.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone, or not ours to signal: the next audit tells
      }
    }
  }
}

export function createTeardownActors(deps: TeardownDeps) {
  /** Escapees handed to the reaper, by server name: the id of the reaper's ledger entry for them. */
  const handedEscapees = new Map<string, string>();
  // Everything carrying a server's marker descends from a process this daemon spawned, so it started
  // no earlier than the daemon: older processes (most of a busy machine) are listed without reading
  // their environments, which was most of the cost of a stop (docs/guarantees.md). Members of a group
  // still supervised are not escapees either: while servers stop one after another, most processes
  // started since the daemon are the upstreams still running, and every audit's scan read them all.
  const started = deps.identity.startTime;
  // The leaders of those groups (pid = pgid) are not even listed: while 500 servers stop, the
  // upstreams still running were most of every scan. A leader that moved to another group leaves
  // its own group empty, and is listed again once that group is verified empty, before its audit.
  const census = new MarkerCensus(
    processTable,
    (p) => (started <= 0 || p.startTime >= started) && !isSupervisedGroup(p.pgid),
    isSupervisedGroup,
  );
  /** Escapees this server's actor still answers for (none while the reaper's entry for them lives). */
  const ownEscapees = async (name: string): Promise<ProcessInfo[]> => {
    const id = handedEscapees.get(name);
    if (id !== undefined && deps.ledger.has(id)) return [];
    handedEscapees.delete(name);
    return escapees(deps, census, name);
  };
  /** What the owner still holds, escapees included (0: verifiably nothing). */
  const audit = async (input: OwnerInput): Promise<AuditOutput> => {
    const remaining = await deps.ledger.audit(input.owner);
    return { remaining: remaining.length + (await ownEscapees(input.name)).length };
  };
  return {
    // Release, then the same audit as auditOwned's: an ordinary stop needs no second actor to verify.
    // The census is held meanwhile: this audit will ask for a scan soon, and so will the others
    // releasing at the same time (marker-census.ts gathers them into few scans).
    // Stopping's deadline is held around it (releaseWithDeadline, server-machine.ts).
    releaseOwned: releaseWithDeadline(async (input) => {
      const letGo = census.hold();
      let failures: ReleaseFailure[];
      try {
        failures = await deps.ledger.releaseOwned(input.owner, 'polite');
      } finally {
        letGo();
      }
      if (failures.length > 0) throw failureError(ErrorCodes.STOP_FAILED, failures);
      return audit(input);
    }),
    auditOwned: fromPromise<AuditOutput, OwnerInput>(async ({ input }) => audit(input)),
    forceRelease: fromPromise<void, OwnerInput & { attempt: number }>(async ({ input }) => {
      await killEscapees(deps, census, input.name);
      const failures = await deps.ledger.releaseOwned(input.owner, 'force');
      if (failures.length > 0) throw failureError(ErrorCodes.REAP_FAILED, failures);
    }),
    handOver: fromPromise<void, OwnerInput>(async ({ input }) => {
      if ((await ownEscapees(input.name)).length > 0) {
        const kill = () => killEscapees(deps, census, input.name);
        const handle = deps.ledger.acquire('reaper', {
          kind: 'process-group',
          description: `processes of ${input.name} that escaped their group`,
          release: kill,
          forceRelease: kill,
          isGone: async () => (await escapees(deps, census, input.name)).length === 0,
        });
        handedEscapees.set(input.name, handle.id);
      }
      deps.ledger.transfer(input.owner, 'reaper');
      deps.onHandOver(input.owner);
    }),
  };
}
