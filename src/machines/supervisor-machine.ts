/**
 * The root of the actor system: one server actor per enabled upstream, with the systemId
 * `server:<name>` (`system.get` finds it anywhere in the tree), each in a slot (0, 1, ...; the lowest
 * free one, reused). The servers are not the root's own children but grandchildren: slot `s` belongs
 * to the server group `floor(s / SERVER_GROUP_SIZE)` (src/machines/server-group-machine.ts), a child
 * of the root that spawns the servers of its slots when asked and stops a finished one on its done
 * event. The bookkeeping stays here: slots, re-adds waiting for a draining actor of the same name (a
 * reused systemId would throw; a group reports each finished server with SERVER_DONE), the shutdown
 * and its budget. Commands and a removal's STOP go straight to the server actor (by its systemId).
 * Statechart only: no I/O.
 *
 * Why the groups: xstate copies a parent's whole `children` object on every spawn and every stop of a
 * child, and a machine that finishes stops each remaining child with one more such copy. With all N
 * servers as the root's children, a start or a shutdown of N copied O(N²) entries (a stop of 500:
 * ~125k, tens of ms of the daemon's CPU); now no `children` object holds more than SERVER_GROUP_SIZE
 * servers, the root holds one child per group (16 for 500 servers, at most 32 up to 1,024; past that
 * the root's own copies grow again, as (N / SERVER_GROUP_SIZE)²), and a shutdown sends the root one
 * event per group instead of one per server (docs/building-blocks.md).
 *
 *   supervising ── SHUTDOWN ──► shuttingDown.draining ── shutdownBudget ──► shuttingDown.overdue
 *                                   │   (every group: SHUTDOWN)               (every group: DEADLINE)
 *                                   └──────────── last group done ──────────────┴──► stopped (final)
 *
 * `stopped` is reached only when every group has reached its final state, and a group reaches it only
 * when every server actor of the group has reached its own. While shutting down, a group's slots are
 * freed when the group is done (activeServers() lists them until then). The budget does not cut that
 * short: past it, DEADLINE (through the groups) makes each server hand what it still owns to the
 * daemon's reaper (src/daemon/daemon-reaper.ts) and finish, so the tree ends shortly after the budget
 * with every resource still owned by someone (docs/guarantees.md).
 *
 * The STOPs go out in one pass. Sending them 25 or 100 per event-loop turn (so the first upstreams'
 * exits overlap the later ones' STOPs) was tried and measured: 13-17% more daemon CPU for a stop of
 * 500 (exits then handled a few per turn), and no wall time gained on a busy 2-core machine.
 */
import { enqueueActions, setup, type ActorRefFrom, type AnyActorRef } from 'xstate';
import { serverActorId, type ServerMachine, type ServerMachineInput } from './server-machine.js';
import {
  createServerGroupMachine,
  groupOfSlot,
  indexOfId,
  SERVER_GROUP_SIZE,
  type ServerDoneEvent,
  type ServerGroupInput,
} from './server-group-machine.js';

interface SupervisorInput {
  servers: ServerMachineInput[];
  shutdownBudgetMs: number;
}

interface SupervisorContext {
  /** `slots[i]` names the server whose live actor (in any state but final) is in slot i; null: free. */
  slots: Array<string | null>;
  /** How many slots are not null. */
  live: number;
  /** Groups spawned so far (ids "0" .. String(groups - 1)); a group stays until the root finishes. */
  groups: number;
  /** Shutting down: groups not yet finished. */
  draining: number;
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
  /** From a group: the server actor of this slot reached `stopped` and is gone from the group. */
  | ServerDoneEvent
  /** Sent by XState when a group reaches its final state (shutting down). */
  | { type: `xstate.done.actor.${string}`; actorId: string; output?: unknown };

export function createSupervisorMachine(serverMachine: ServerMachine) {
  return setup({
    types: {
      context: {} as SupervisorContext,
      events: {} as SupervisorEvent,
      input: {} as SupervisorInput,
    },
    actors: { group: createServerGroupMachine(serverMachine) },
    delays: {
      shutdownBudget: ({ context }) => context.shutdownBudgetMs,
    },
    guards: {
      noServers: ({ context }) => context.live === 0,
      // The finished group is the last one not finished.
      lastGroup: ({ context, event }) => context.draining === 1 && indexOfId('actorId' in event ? event.actorId : undefined) !== undefined,
    },
    actions: {
      spawnInitial: enqueueActions(({ context, enqueue }) => {
        const servers = Object.values(context.pending);
        const groups = Math.ceil(servers.length / SERVER_GROUP_SIZE);
        for (let g = 0; g < groups; g++) {
          const members: ServerGroupInput['servers'] = [];
          for (let slot = g * SERVER_GROUP_SIZE; slot < Math.min(servers.length, (g + 1) * SERVER_GROUP_SIZE); slot++) {
            members.push({ slot, server: servers[slot]! });
          }
          enqueue.spawnChild('group', { id: String(g), input: { index: g, servers: members } });
        }
        enqueue.assign({ slots: servers.map((s) => s.name), live: servers.length, groups, pending: {} });
      }),
      add: enqueueActions(({ context, event, enqueue, self }) => {
        if (event.type !== 'SERVER_ADD') return;
        const s = event.server;
        if (context.slots.includes(s.name)) {
          // Replace: drain the old actor first; the new one starts on its SERVER_DONE.
          enqueue.assign({ pending: { ...context.pending, [s.name]: s } });
          const child = childOf(self, s.name);
          if (child) enqueue.sendTo(child, { type: 'STOP' });
          return;
        }
        const free = context.slots.indexOf(null);
        const slot = free === -1 ? context.slots.length : free;
        const slots = [...context.slots];
        slots[slot] = s.name;
        const g = groupOfSlot(slot);
        if (g < context.groups) {
          enqueue.sendTo(String(g), { type: 'SPAWN', slot, server: s });
          enqueue.assign({ slots, live: context.live + 1 });
        } else {
          // Slots are filled lowest-first, so the next group is always the one after the last.
          enqueue.spawnChild('group', { id: String(g), input: { index: g, servers: [{ slot, server: s }] } });
          enqueue.assign({ slots, live: context.live + 1, groups: g + 1 });
        }
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
      // Each group stops its own servers (a group without any finishes at once).
      stopAll: enqueueActions(({ context, enqueue }) => {
        for (let g = 0; g < context.groups; g++) enqueue.sendTo(String(g), { type: 'SHUTDOWN' });
        enqueue.assign({ pending: {}, draining: context.groups });
      }),
      // Past the budget: no server waits any longer for a release that does not come.
      deadlineAll: enqueueActions(({ context, enqueue, self }) => {
        const children = self.getSnapshot().children as Record<string, AnyActorRef | undefined>;
        for (let g = 0; g < context.groups; g++) {
          const group = children[String(g)];
          if (group?.getSnapshot().status === 'active') enqueue.sendTo(group, { type: 'DEADLINE' });
        }
      }),
      // A group finished: so did every server of its slots. It stays a dead ref until the root
      // finishes (one copy of the root's few children each, then).
      groupDone: enqueueActions(({ context, event, enqueue }) => {
        const g = indexOfId('actorId' in event ? event.actorId : undefined);
        if (g === undefined) return;
        const slots = context.slots.slice();
        let live = context.live;
        for (let s = g * SERVER_GROUP_SIZE; s < Math.min(slots.length, (g + 1) * SERVER_GROUP_SIZE); s++) {
          if (slots[s] !== null) live--;
          slots[s] = null;
        }
        enqueue.assign({ slots, live, draining: context.draining - 1 });
      }),
      serverDone: enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'SERVER_DONE') return;
        const name = context.slots[event.slot];
        if (typeof name !== 'string') return;
        const next = context.pending[name];
        if (next) {
          // The replacement takes the slot (and systemId) the finished actor has just released.
          const { [name]: _started, ...rest } = context.pending;
          enqueue.sendTo(String(groupOfSlot(event.slot)), { type: 'SPAWN', slot: event.slot, server: next });
          enqueue.assign({ pending: rest });
        } else {
          // slice(), not a spread: a spread of 500 slots went element by element (~20 us each, 500 times).
          const slots = context.slots.slice();
          slots[event.slot] = null;
          enqueue.assign({ slots, live: context.live - 1 });
        }
      }),
    },
  }).createMachine({
    id: 'supervisor',
    context: ({ input }) => ({
      slots: [],
      live: 0,
      groups: 0,
      draining: 0,
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
          // With no servers there is nothing to wait for (empty groups are stopped with the root);
          // otherwise the last group's done event ends it.
          SHUTDOWN: [{ guard: 'noServers', target: 'stopped' }, { target: 'shuttingDown' }],
          SERVER_DONE: { actions: 'serverDone' },
        },
      },
      shuttingDown: {
        entry: 'stopAll',
        on: {
          // No eventless check after each group (a step selection each): the last one's done event is the way out.
          'xstate.done.actor.*': [{ guard: 'lastGroup', target: 'stopped', actions: 'groupDone' }, { actions: 'groupDone' }],
          // A server that finished just before the SHUTDOWN reached its group.
          SERVER_DONE: { actions: 'serverDone' },
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

/**
 * Names of the servers whose actors are live (in any state but final), in slot order. Shutting down,
 * the servers of a group are listed until the whole group has finished.
 */
export function activeServers(context: Pick<SupervisorContext, 'slots'>): string[] {
  return context.slots.filter((n): n is string => n !== null);
}

/** The live server actor of a name, if any (never throws): looked up by its systemId. */
function childOf(self: AnyActorRef, name: string): ActorRefFrom<ServerMachine> | undefined {
  try {
    return self.system.get(serverActorId(name)) as ActorRefFrom<ServerMachine> | undefined;
  } catch {
    return undefined;
  }
}

export type SupervisorMachine = ReturnType<typeof createSupervisorMachine>;
