/**
 * Teardown effects of `stopping` and `reaping`, all over the resource ledger: release what the
 * owner holds (polite escalation), audit what is verifiably gone, force what is not, and as the
 * last resort hand ownership to the daemon-level reaper. Failures are thrown as coded errors for the
 * statechart to turn into its retry/backoff states; nothing here decides the next state.
 */
import { fromPromise } from 'xstate';
import type { ResourceLedger, ReleaseFailure } from '../core/resource-ledger.js';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import type { AuditOutput } from '../machines/server-machine.js';
import { findByEnv, readProc, type ProcInfo } from '../adapters/process/proc-scan.js';
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

/** Processes carrying this server's marker that escaped its process group (setsid daemons). */
function escapees(deps: TeardownDeps, name: string): ProcInfo[] {
  const key = `${deps.identity.instanceId}/${name}`;
  return findByEnv(ENV_SERVER, (v) => v === key);
}

export function createTeardownActors(deps: TeardownDeps) {
  return {
    releaseOwned: fromPromise<void, OwnerInput>(async ({ input }) => {
      const failures = await deps.ledger.releaseOwned(input.owner, 'polite');
      if (failures.length > 0) throw failureError(ErrorCodes.STOP_FAILED, failures);
    }),
    auditOwned: fromPromise<AuditOutput, OwnerInput>(async ({ input }) => {
      const remaining = await deps.ledger.audit(input.owner);
      return { remaining: remaining.length + escapees(deps, input.name).length };
    }),
    forceRelease: fromPromise<void, OwnerInput & { attempt: number }>(async ({ input }) => {
      const ownGroup = readProc(process.pid)?.pgid;
      for (const p of escapees(deps, input.name)) {
        // Never signal the daemon's own group, whatever an escapee did with its pgid.
        for (const target of p.pgid !== ownGroup && p.pgid > 1 ? [-p.pgid, p.pid] : [p.pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // already gone, or not ours to signal: the next audit tells
          }
        }
      }
      const failures = await deps.ledger.releaseOwned(input.owner, 'force');
      if (failures.length > 0) throw failureError(ErrorCodes.REAP_FAILED, failures);
    }),
    handOver: fromPromise<void, OwnerInput>(async ({ input }) => {
      deps.ledger.transfer(input.owner, 'reaper');
      deps.onHandOver(input.owner);
    }),
  };
}
