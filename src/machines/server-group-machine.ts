/**
 * A server group: the parent of at most SERVER_GROUP_SIZE server actors, itself a child of the
 * supervisor (src/machines/supervisor-machine.ts), which keeps the bookkeeping (slots, re-adds waiting
 * for a draining actor, the shutdown budget). While supervising, a group spawns the servers of its
 * slots when asked and stops a finished one on its done event, then tells the supervisor (SERVER_DONE
 * with the slot). On SHUTDOWN it stops its servers and finishes when the last of them has: its own
 * final state is reached only after every server actor of the group has reached its own.
 * Statechart only: no I/O.
 *
 *   supervising ── SHUTDOWN ──► draining (every server: STOP; DEADLINE passed on) ── last server done ──► stopped (final)
 *        └──────── SHUTDOWN with no server ─────────────────────────────────────────────────────────────────┘
 *
 * Why groups exist: xstate copies a parent's whole `children` object on every spawn and every stop of
 * a child, and a machine that finishes stops each remaining child with one more such copy. With every
 * server a child of the root, a start or a stop of N servers copied O(N²) entries (a stop of 500:
 * ~125k); in a group each copy has at most SERVER_GROUP_SIZE entries (docs/building-blocks.md). And in
 * a shutdown the supervisor hears one done event per group, not one event per server.
 *
 * Slot `s` of the supervisor lives in group `floor(s / SERVER_GROUP_SIZE)` under the id
 * `String(s % SERVER_GROUP_SIZE)` (small dense integer keys: V8 copies them as an array). The systemId
 * stays `server:<name>`, so everything finds a server through the actor system as before.
 */
import { enqueueActions, setup } from 'xstate';
import { serverActorId, type ServerMachine, type ServerMachineInput } from './server-machine.js';

/**
 * Server actors per group. Measured with the supervisor and 500 or 1,500 server actors (stub effects,
 * --no-opt as the daemon stops): 16 and 32 cost about the same, 64 and 128 more (docs/benchmarks.md);
 * 32 also keeps the supervisor's own children (the groups) at 32 or fewer up to 1,024 servers.
 */
export const SERVER_GROUP_SIZE = 32;

/** The group of a supervisor slot, and the server's id inside it. */
export const groupOfSlot = (slot: number): number => Math.floor(slot / SERVER_GROUP_SIZE);
export const idInGroup = (slot: number): string => String(slot % SERVER_GROUP_SIZE);

export interface ServerGroupInput {
  /** The group's number (its id under the supervisor); its slots are index * SERVER_GROUP_SIZE + 0..size-1. */
  index: number;
  /** Servers to spawn at once, by supervisor slot. */
  servers: Array<{ slot: number; server: ServerMachineInput }>;
}

interface ServerGroupContext {
  index: number;
  /** Server actors of the group not yet finished. */
  live: number;
  /** Spawned on entry, then dropped (the inputs live on in the server actors). */
  initial: Array<{ slot: number; server: ServerMachineInput }>;
}

/** Sent to its parent (the supervisor) when a server actor of the group reached `stopped` and was stopped. */
export interface ServerDoneEvent {
  type: 'SERVER_DONE';
  slot: number;
}

type ServerGroupEvent =
  /** From the supervisor: start a server actor in this slot (free in this group by then). */
  | { type: 'SPAWN'; slot: number; server: ServerMachineInput }
  /** From the supervisor: stop every server of the group, then finish. */
  | { type: 'SHUTDOWN' }
  /** From the supervisor: its shutdown budget is spent (passed on to every server still stopping). */
  | { type: 'DEADLINE' }
  /** Sent by XState when a server actor of the group reaches `stopped`. */
  | { type: `xstate.done.actor.${string}`; actorId: string; output?: unknown };

export function createServerGroupMachine(serverMachine: ServerMachine) {
  return setup({
    types: {
      context: {} as ServerGroupContext,
      events: {} as ServerGroupEvent,
      input: {} as ServerGroupInput,
    },
    actors: { server: serverMachine },
    guards: {
      empty: ({ context }) => context.live === 0,
      // The finished server is the group's last live one.
      lastServer: ({ context }) => context.live === 1,
    },
    actions: {
      spawnInitial: enqueueActions(({ context, enqueue }) => {
        for (const { slot, server } of context.initial) {
          enqueue.spawnChild('server', { id: idInGroup(slot), systemId: serverActorId(server.name), input: server });
        }
        enqueue.assign({ initial: [], live: context.initial.length });
      }),
      spawn: enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'SPAWN') return;
        enqueue.spawnChild('server', { id: idInGroup(event.slot), systemId: serverActorId(event.server.name), input: event.server });
        enqueue.assign({ live: context.live + 1 });
      }),
      // Every child is a server actor not yet finished (or finished with its done event still queued here,
      // which a STOP or DEADLINE leaves as it is).
      stopAll: enqueueActions(({ enqueue, self }) => {
        for (const child of Object.values(self.getSnapshot().children)) if (child) enqueue.sendTo(child, { type: 'STOP' });
      }),
      deadlineAll: enqueueActions(({ enqueue, self }) => {
        for (const child of Object.values(self.getSnapshot().children)) if (child) enqueue.sendTo(child, { type: 'DEADLINE' });
      }),
      // Draining: nothing to report per server (the supervisor waits for the group's own done event).
      childFinished: enqueueActions(({ context, event, enqueue }) => {
        const actorId = 'actorId' in event ? event.actorId : undefined;
        if (localOf(actorId) === undefined || typeof actorId !== 'string') return;
        enqueue.stopChild(actorId);
        enqueue.assign({ live: context.live - 1 });
      }),
      // The finished actor leaves `children` (a copy of at most SERVER_GROUP_SIZE entries) and releases
      // its systemId before the supervisor hears of it, so a re-add of its name can start at once.
      childDone: enqueueActions(({ context, event, enqueue }) => {
        const actorId = 'actorId' in event ? event.actorId : undefined;
        const local = localOf(actorId);
        if (local === undefined || typeof actorId !== 'string') return;
        enqueue.stopChild(actorId);
        enqueue.assign({ live: context.live - 1 });
        enqueue.sendParent({ type: 'SERVER_DONE', slot: context.index * SERVER_GROUP_SIZE + local } satisfies ServerDoneEvent);
      }),
    },
  }).createMachine({
    id: 'serverGroup',
    context: ({ input }) => ({ index: input.index, live: 0, initial: input.servers }),
    initial: 'supervising',
    states: {
      supervising: {
        entry: 'spawnInitial',
        on: {
          SPAWN: { actions: 'spawn' },
          'xstate.done.actor.*': { actions: 'childDone' },
          SHUTDOWN: [{ guard: 'empty', target: 'stopped' }, { target: 'draining' }],
        },
      },
      draining: {
        entry: 'stopAll',
        on: {
          DEADLINE: { actions: 'deadlineAll' },
          'xstate.done.actor.*': [{ guard: 'lastServer', target: 'stopped', actions: 'childFinished' }, { actions: 'childFinished' }],
        },
      },
      stopped: { type: 'final' },
    },
  });
}

/** The number of a child's actor id ("0", "1", ...: groups under the supervisor, servers in a group); undefined for anything else. */
export function indexOfId(actorId: unknown): number | undefined {
  if (typeof actorId !== 'string' || !/^(0|[1-9]\d*)$/.test(actorId)) return undefined;
  return Number(actorId);
}

/** The position of a server actor's id inside its group ("0" .. String(SERVER_GROUP_SIZE - 1)); undefined for anything else. */
function localOf(actorId: unknown): number | undefined {
  const n = indexOfId(actorId);
  return n !== undefined && n < SERVER_GROUP_SIZE ? n : undefined;
}

export type ServerGroupMachine = ReturnType<typeof createServerGroupMachine>;
