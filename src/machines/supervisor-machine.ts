/**
 * The root of the actor system: one child server actor per enabled upstream, spawned with an
 * explicit id and the systemId `server:<name>` (xstate 5 only stops and unregisters a spawned child
 * by its id; `system.get` finds it by its systemId). A child that reaches `stopped` stays in
 * `children` as a dead ref until it is stopped: on its done event while supervising, and all of them
 * at once when the root reaches `stopped` after a shutdown (see shuttingDown). Re-adding a name
 * whose previous actor is still draining is queued until it is done (a reused systemId would throw).
 * Statechart only: no I/O.
 *
 * The id is the child's slot number ("0", "1", ...; the lowest free slot, reused), not its name:
 * xstate copies the whole `children` object on every spawn and every stop, and V8 copies an object
 * keyed by small dense integers as an array, where 500 name keys made each copy ~1 ms and a
 * shutdown of 500 servers quadratic (docs/building-blocks.md).
 *
 *   supervising ── SHUTDOWN ──► shuttingDown.draining ── shutdownBudget ──► shuttingDown.overdue
 *                                   │   (every child: STOP)                   (every child: DEADLINE)
 *                                   └──────────── no children left ─────────────┴──► stopped (final)
 *
 * `stopped` is reached only when every child has reached its own final state. The budget does not
 * cut that short: past it, DEADLINE makes each child hand what it still owns to the daemon's reaper
 * (src/daemon/daemon-reaper.ts) and finish, so the tree ends shortly after the budget with every
 * resource still owned by someone (docs/guarantees.md).
 *
 * The STOPs go out in one pass. Sending them 25 or 100 per event-loop turn (so the first upstreams'
 * exits overlap the later ones' STOPs) was tried and measured: 13-17% more daemon CPU for a stop of
 * 500 (exits then handled a few per turn), and no wall time gained on a busy 2-core machine.
 */
import { enqueueActions, setup, type ActorRefFrom, type AnyActorRef } from 'xstate';
import { serverActorId, type ServerMachine, type ServerMachineInput } from './server-machine.js';

interface SupervisorInput {
  servers: ServerMachineInput[];
  shutdownBudgetMs: number;
}

interface SupervisorContext {
  /** `slots[i]` names the server whose live actor (in any state but final) has the id `String(i)`; null: free. */
  slots: Array<string | null>;
  /** Adds waiting for a draining actor of the same name to finish. */
  pending: Record<string, ServerMachineInput>;
  shutdownBudgetMs: number;
}

// Kept for importers of the old location; the accessor module is src/daemon/server-actors.ts.
export {} from './server-machine.js';

type ServerCommand = 'STOP' | 'RESTART' | 'APPROVE' | 'QUARANTINE';

type SupervisorEvent =
  | { type: 'SERVER_ADD'; server: ServerMachineInput }
  | { type: 'SERVER_REMOVE'; name: string }
  | { type: 'SERVER_COMMAND'; name: string; command: Exclude<ServerCommand, 'STOP'> }
  | { type: 'SHUTDOWN' }
  /** Sent by XState when a spawned server actor reaches `stopped`. */
  | { type: `xstate.done.actor.${string}`; actorId: string; output?: unknown };

export function createSupervisorMachine(serverMachine: ServerMachine) {
  return setup({
    types: {
      context: {} as SupervisorContext,
      events: {} as SupervisorEvent,
      input: {} as SupervisorInput,
    },
    actors: { server: serverMachine },
    delays: {
      shutdownBudget: ({ context }) => context.shutdownBudgetMs,
    },
    guards: {
      noChildren: ({ context }) => context.slots.every((n) => n === null),
      // The finished child is the last live one (scanned from the end: children stop in about slot
      // order, so a live one is found at once until the very last).
      lastChild: ({ context, event }) => {
        const slot = slotOf('actorId' in event ? event.actorId : undefined);
        if (slot === undefined || typeof context.slots[slot] !== 'string') return false;
        for (let i = context.slots.length - 1; i >= 0; i--) if (i !== slot && context.slots[i] !== null) return false;
        return true;
      },
    },
    actions: {
      spawnInitial: enqueueActions(({ context, enqueue }) => {
        const servers = Object.values(context.pending);
        servers.forEach((s, slot) => enqueue.spawnChild('server', { id: String(slot), systemId: serverActorId(s.name), input: s }));
        enqueue.assign({ slots: servers.map((s) => s.name), pending: {} });
      }),
      add: enqueueActions(({ context, event, enqueue, self }) => {
        if (event.type !== 'SERVER_ADD') return;
        const s = event.server;
        if (context.slots.includes(s.name)) {
          // Replace: drain the old actor first; the new one starts on its done event.
          enqueue.assign({ pending: { ...context.pending, [s.name]: s } });
          const child = childOf(self, s.name);
          if (child) enqueue.sendTo(child, { type: 'STOP' });
          return;
        }
        const free = context.slots.indexOf(null);
        const slot = free === -1 ? context.slots.length : free;
        const slots = [...context.slots];
        slots[slot] = s.name;
        enqueue.spawnChild('server', { id: String(slot), systemId: serverActorId(s.name), input: s });
        enqueue.assign({ slots });
      }),
      remove: enqueueActions(({ context, event, enqueue, self }) => {
        if (event.type !== 'SERVER_REMOVE') return;
        if (event.name in context.pending) {
          const { [event.name]: _dropped, ...rest } = context.pending;
          enqueue.assign({ pending: rest });
        }
        const child = childOf(self, event.name);
        if (child) enqueue.sendTo(child, { type: 'STOP' });
      }),
      forward: enqueueActions(({ event, enqueue, self }) => {
        if (event.type !== 'SERVER_COMMAND') return;
        const child = childOf(self, event.name);
        if (child) enqueue.sendTo(child, { type: event.command });
      }),
      stopAll: enqueueActions(({ context, enqueue, self }) => {
        for (const name of context.slots) {
          const child = name === null ? undefined : childOf(self, name);
          if (child) enqueue.sendTo(child, { type: 'STOP' });
        }
        enqueue.assign({ pending: {} });
      }),
      // Past the budget: no child waits any longer for a release that does not come.
      deadlineAll: enqueueActions(({ context, enqueue, self }) => {
        for (const name of context.slots) {
          const child = name === null ? undefined : childOf(self, name);
          if (child) enqueue.sendTo(child, { type: 'DEADLINE' });
        }
      }),
      childDone: enqueueActions(({ context, event, enqueue }) => {
        const actorId = 'actorId' in event ? event.actorId : undefined;
        const slot = slotOf(actorId);
        const name = slot === undefined ? undefined : context.slots[slot];
        if (slot === undefined || typeof name !== 'string' || typeof actorId !== 'string') return;
        enqueue.stopChild(actorId);
        const next = context.pending[name];
        if (next) {
          // The replacement takes the slot (and systemId) the finished actor has just released.
          const { [name]: _started, ...rest } = context.pending;
          enqueue.spawnChild('server', { id: actorId, systemId: serverActorId(name), input: next });
          enqueue.assign({ pending: rest });
        } else {
          const slots = [...context.slots];
          slots[slot] = null;
          enqueue.assign({ slots });
        }
      }),
      // Shutting down: nothing is re-added, so the slot is freed and the dead ref waits for the final pass.
      childFinished: enqueueActions(({ context, event, enqueue }) => {
        const slot = slotOf('actorId' in event ? event.actorId : undefined);
        if (slot === undefined || typeof context.slots[slot] !== 'string') return;
        // slice(), not a spread: a spread of 500 slots went element by element (~20 us each, 500 times).
        const slots = context.slots.slice();
        slots[slot] = null;
        enqueue.assign({ slots });
      }),
    },
  }).createMachine({
    id: 'supervisor',
    context: ({ input }) => ({
      slots: [],
      pending: Object.fromEntries(input.servers.map((s) => [s.name, s])),
      shutdownBudgetMs: input.shutdownBudgetMs,
    }),
    initial: 'supervising',
    states: {
      supervising: {
        entry: 'spawnInitial',
        on: {
          SERVER_ADD: { actions: 'add' },
          SERVER_REMOVE: { actions: 'remove' },
          SERVER_COMMAND: { actions: 'forward' },
          // With no children there is nothing to wait for; otherwise the last child's done event ends it.
          SHUTDOWN: [{ guard: 'noChildren', target: 'stopped' }, { target: 'shuttingDown' }],
          'xstate.done.actor.*': { actions: 'childDone' },
        },
      },
      shuttingDown: {
        entry: 'stopAll',
        on: {
          // Only the slot is freed: the dead refs are stopped together when the root reaches `stopped`.
          // xstate copies `children` once per stopped child either way, but the final pass stops them
          // in ascending slot order, where each copy is cheap (V8 copies the integer-keyed object as an
          // array). Stopped on their done events, in the order their upstreams exited, the copies were
          // ~150 ms of a 500-server stop's profile; the final pass measured ~8% less CPU for the stop.
          // No eventless check after each done event (an O(children) guard and a step selection per
          // child): the last one's done event is the way out.
          'xstate.done.actor.*': [{ guard: 'lastChild', target: 'stopped', actions: 'childFinished' }, { actions: 'childFinished' }],
        },
        initial: 'draining',
        states: {
          draining: {
            after: { shutdownBudget: { target: 'overdue' } },
          },
          overdue: {
            entry: 'deadlineAll',
          },
        },
      },
      stopped: { type: 'final' },
    },
  });
}

/** The slot number of a child's actor id ("0", "1", ...); undefined for anything else. */
function slotOf(actorId: unknown): number | undefined {
  if (typeof actorId !== 'string' || !/^(0|[1-9]\d*)$/.test(actorId)) return undefined;
  return Number(actorId);
}

/** Names of the servers whose actors are live (in any state but final), in slot order. */
export function activeServers(context: Pick<SupervisorContext, 'slots'>): string[] {
  return context.slots.filter((n): n is string => n !== null);
}

/** The live child actor of a server, if any (never throws): looked up by its systemId. */
function childOf(self: AnyActorRef, name: string): ActorRefFrom<ServerMachine> | undefined {
  try {
    return self.system.get(serverActorId(name)) as ActorRefFrom<ServerMachine> | undefined;
  } catch {
    return undefined;
  }
}

export type SupervisorMachine = ReturnType<typeof createSupervisorMachine>;
