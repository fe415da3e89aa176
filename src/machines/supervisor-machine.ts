/**
 * The root of the actor system: one child server actor per enabled upstream, spawned with an
 * explicit id and the same systemId `server:<name>` (xstate 5 only stops and unregisters a spawned
 * child by its id, so both are set; `system.get` then finds it). A child that reaches `stopped` stays
 * in `children` as a dead ref until it is stopped, which happens on its done event. Re-adding a name
 * whose previous actor is still draining is queued until it is done (a reused systemId would throw).
 * Statechart only: no I/O.
 *
 *   supervising ── SHUTDOWN ──► shuttingDown.draining ── shutdownBudget ──► shuttingDown.overdue
 *                                   │   (every child: STOP)                   (every child: DEADLINE)
 *                                   └──────────── no children left ─────────────┴──► stopped (final)
 *
 * `stopped` is reached only when every child has reached its own final state. The budget does not
 * cut that short: past it, DEADLINE makes each child hand what it still owns to the daemon's reaper
 * (src/daemon/daemon-reaper.ts) and finish, so the tree ends shortly after the budget with every
 * resource still owned by someone (docs/guarantees.md).
 */
import { enqueueActions, setup, type ActorRefFrom, type AnyActorRef } from 'xstate';
import { nameOfActorId, serverActorId, type ServerMachine, type ServerMachineInput } from './server-machine.js';

interface SupervisorInput {
  servers: ServerMachineInput[];
  shutdownBudgetMs: number;
}

interface SupervisorContext {
  /** Names of live child actors (in any state but final). */
  active: string[];
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
      noChildren: ({ context }) => context.active.length === 0,
    },
    actions: {
      spawnInitial: enqueueActions(({ context, enqueue }) => {
        for (const s of Object.values(context.pending)) {
          const id = serverActorId(s.name);
          enqueue.spawnChild('server', { id, systemId: id, input: s });
        }
        enqueue.assign({
          active: ({ context: c }) => Object.keys(c.pending),
          pending: {},
        });
      }),
      add: enqueueActions(({ context, event, enqueue, self }) => {
        if (event.type !== 'SERVER_ADD') return;
        const s = event.server;
        if (context.active.includes(s.name)) {
          // Replace: drain the old actor first; the new one starts on its done event.
          enqueue.assign({ pending: { ...context.pending, [s.name]: s } });
          const child = childOf(self, s.name);
          if (child) enqueue.sendTo(child, { type: 'STOP' });
          return;
        }
        const id = serverActorId(s.name);
        enqueue.spawnChild('server', { id, systemId: id, input: s });
        enqueue.assign({ active: [...context.active, s.name] });
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
        for (const name of context.active) {
          const child = childOf(self, name);
          if (child) enqueue.sendTo(child, { type: 'STOP' });
        }
        enqueue.assign({ pending: {} });
      }),
      // Past the budget: no child waits any longer for a release that does not come.
      deadlineAll: enqueueActions(({ context, enqueue, self }) => {
        for (const name of context.active) {
          const child = childOf(self, name);
          if (child) enqueue.sendTo(child, { type: 'DEADLINE' });
        }
      }),
      childDone: enqueueActions(({ context, event, enqueue }) => {
        const actorId = 'actorId' in event ? event.actorId : undefined;
        const name = nameOfActorId(actorId);
        if (name === undefined || typeof actorId !== 'string') return;
        enqueue.stopChild(actorId);
        const next = context.pending[name];
        if (next) {
          const { [name]: _started, ...rest } = context.pending;
          enqueue.spawnChild('server', { id: actorId, systemId: actorId, input: next });
          enqueue.assign({ pending: rest });
        } else {
          enqueue.assign({ active: context.active.filter((n) => n !== name) });
        }
      }),
    },
  }).createMachine({
    id: 'supervisor',
    context: ({ input }) => ({
      active: [],
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
          SHUTDOWN: { target: 'shuttingDown' },
          'xstate.done.actor.*': { actions: 'childDone' },
        },
      },
      shuttingDown: {
        entry: 'stopAll',
        always: { guard: 'noChildren', target: 'stopped' },
        on: {
          'xstate.done.actor.*': { actions: 'childDone' },
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

/** The live child actor of a server, if any (never throws): looked up by its systemId. */
function childOf(self: AnyActorRef, name: string): ActorRefFrom<ServerMachine> | undefined {
  try {
    return self.system.get(serverActorId(name)) as ActorRefFrom<ServerMachine> | undefined;
  } catch {
    return undefined;
  }
}

export type SupervisorMachine = ReturnType<typeof createSupervisorMachine>;
