import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromCallback, fromPromise, SimulatedClock, type AnyActorRef, type InspectionEvent } from 'xstate';
import {
  createServerMachine,
  releaseWithDeadline,
  type AuditOutput,
  type LaunchOutput,
  type ServerMachineInput,
} from '../../src/machines/server-machine.js';
import { activeServers, createSupervisorMachine } from '../../src/machines/supervisor-machine.js';
import { SERVER_GROUP_SIZE } from '../../src/machines/server-group-machine.js';
import { serverActorOf, serverActorsOf, serverGroupsOf } from '../../src/daemon/server-actors.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

interface Teardown {
  release?: (owner: string) => Promise<void>;
  audit?: (owner: string) => Promise<{ remaining: number }>;
  handOver?: (owner: string) => Promise<void>;
}

function make(
  opts: { releaseGate?: Promise<void>; teardown?: Teardown; settings?: Partial<typeof DEFAULT_SETTINGS>; names?: string[] } = {},
) {
  const clock = new SimulatedClock();
  let watchers = 0;
  const t = opts.teardown ?? {};
  const server = createServerMachine({ now: () => clock.now() }).provide({
    actors: {
      launchUpstream: fromPromise(async (): Promise<LaunchOutput> => ({ pid: 1, tools: [], session: null })),
      watchUpstream: fromCallback(() => {
        watchers++;
        return () => {
          watchers--;
        };
      }),
      releaseOwned: releaseWithDeadline(async (input): Promise<AuditOutput | void> => {
        await opts.releaseGate;
        await t.release?.(input.owner);
      }),
      auditOwned: fromPromise<{ remaining: number }, { name: string; owner: string }>(
        async ({ input }) => t.audit?.(input.owner) ?? { remaining: 0 },
      ),
      forceRelease: fromPromise(async (): Promise<void> => undefined),
      handOver: fromPromise<void, { name: string; owner: string }>(async ({ input }) => t.handOver?.(input.owner)),
    },
  });
  const entry = (name: string): ServerMachineInput => ({
    name,
    remote: false,
    quarantined: false,
    settings: { ...DEFAULT_SETTINGS, ...opts.settings },
  });
  // Every actor of the system as it is created (the inspection hook sees the whole tree), and every
  // time the root or a group finished while a server actor below it had not.
  const seen = new Set<AnyActorRef>();
  const finalWithLiveChild: string[] = [];
  const parentOf = (a: AnyActorRef) => (a as { _parent?: AnyActorRef })._parent;
  const isServer = (a: AnyActorRef) => String((a as { systemId?: string }).systemId).startsWith('server:');
  const inspect = (ev: InspectionEvent) => {
    const ref = ev.actorRef as AnyActorRef;
    if (ev.type === '@xstate.actor') seen.add(ref);
    if (ev.type !== '@xstate.snapshot' || (ev.snapshot as { status?: string }).status !== 'done' || isServer(ref)) return;
    // The root or a group is done: every server actor of that group (of the whole tree, for the root) is too.
    const isRoot = parentOf(ref) === undefined;
    for (const c of seen) {
      const below = isServer(c) && (isRoot || parentOf(c) === ref);
      if (below && c.getSnapshot().status !== 'done') finalWithLiveChild.push(`${c.id} (${isRoot ? 'root' : `group ${ref.id}`})`);
    }
  };
  const root = createActor(createSupervisorMachine(server), {
    clock,
    inspect,
    input: { servers: (opts.names ?? ['a', 'b']).map(entry), shutdownBudgetMs: 5_000 },
  });
  root.start();
  // The live (or finished, not yet stopped) actor of `name` in the root's groups.
  const child = (name: string) => serverActorsOf(root).find((c) => c.name === name)?.ref as AnyActorRef | undefined;
  return { root, clock, entry, child, watchers: () => watchers, finalWithLiveChild };
}

/** The `children` of an actor of the tree (a group or the root). */
const childrenOf = (a: AnyActorRef) => (a.getSnapshot() as { children: Record<string, AnyActorRef> }).children;

/**
 * After the root's shutdown: every group finished (each server of it is stopped on its done event),
 * and no server systemId is registered any more.
 */
function assertChildrenFinished(root: AnyActorRef, names: string[]): void {
  for (const [id, g] of Object.entries(childrenOf(root))) {
    assert.equal(g.getSnapshot().status, 'done', `group ${id} finished`);
    assert.deepEqual(Object.keys(childrenOf(g)), [], `group ${id} holds no server any more`);
  }
  for (const n of names) assert.equal(root.system.get(`server:${n}`), undefined, `systemId of ${n} released`);
}

/** The slot of a server's live actor: its group's number and its id in the group. */
function slotOfServer(root: AnyActorRef, ref: AnyActorRef | undefined): number | undefined {
  for (const [g, group] of Object.entries(childrenOf(root))) {
    for (const [id, c] of Object.entries(childrenOf(group))) if (c === ref) return Number(g) * SERVER_GROUP_SIZE + Number(id);
  }
  return undefined;
}

test('spawns one server actor per server in a group, with explicit id and systemId', async () => {
  const s = make();
  await flush();
  assert.deepEqual(Object.keys(s.root.getSnapshot().children), ['0'], 'one group');
  assert.deepEqual(Object.keys(childrenOf(serverGroupsOf(s.root)[0]!)), ['0', '1'], 'ids are slot numbers in the group');
  assert.deepEqual(s.root.getSnapshot().context.slots, ['a', 'b']);
  assert.equal(s.root.system.get('server:a'), s.child('a'), 'found by systemId');
  assert.equal(s.child('a')!.getSnapshot().value, 'running');
  s.root.stop();
});

test('remove stops the child and drops it from children once stopped', async () => {
  const s = make();
  await flush();
  s.root.send({ type: 'SERVER_REMOVE', name: 'a' });
  await flush();
  assert.equal(s.child('a'), undefined);
  assert.equal(s.root.system.get('server:a'), undefined, 'systemId released');
  assert.deepEqual(activeServers(s.root.getSnapshot().context), ['b']);
  assert.equal(s.watchers(), 1);
  s.root.stop();
});

test('re-adding a name while its old actor drains is queued, not a systemId clash', async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const s = make({ releaseGate: gate });
  await flush();
  s.root.send({ type: 'SERVER_REMOVE', name: 'a' });
  await flush();
  assert.equal(s.child('a')!.getSnapshot().value, 'stopping');
  s.root.send({ type: 'SERVER_ADD', server: s.entry('a') });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'active', 'no error from a reused systemId');
  assert.ok(s.root.getSnapshot().context.pending.a);
  open();
  await flush();
  assert.equal(s.child('a')!.getSnapshot().value, 'running', 'the new actor started after the old one finished');
  assert.deepEqual(s.root.getSnapshot().context.pending, {});
  s.root.stop();
});

test('commands reach the named child only; unknown names are ignored without error', async () => {
  const s = make();
  await flush();
  s.root.send({ type: 'SERVER_COMMAND', name: 'a', command: 'QUARANTINE' });
  s.root.send({ type: 'SERVER_COMMAND', name: 'nope', command: 'RESTART' });
  s.root.send({ type: 'SERVER_REMOVE', name: 'nope' });
  await flush();
  assert.equal(s.child('a')!.getSnapshot().value, 'quarantined');
  assert.equal(s.child('b')!.getSnapshot().value, 'running');
  assert.equal(s.root.getSnapshot().status, 'active');
  s.root.stop();
});

test('shutdown stops every child and reaches final only when all are stopped', async () => {
  const s = make();
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.equal(s.watchers(), 0);
  assertChildrenFinished(s.root, ['a', 'b']);
});

/** A ledger in miniature: what each owner holds; the hand-over moves it to the reaper. */
function fakeLedger(owners: string[]) {
  const held = new Map<string, number>(owners.map((o) => [o, 1]));
  return {
    held,
    teardown: {
      audit: async (owner: string) => ({ remaining: held.get(owner) ?? 0 }),
      handOver: async (owner: string) => {
        held.set('reaper', (held.get('reaper') ?? 0) + (held.get(owner) ?? 0));
        held.set(owner, 0);
      },
    } satisfies Teardown,
  };
}

test('shutdown budget: a child whose release never completes hands over to the reaper, finishes, and then the root does', async () => {
  const ledger = fakeLedger(['server:a', 'server:b']);
  // `a` stops politely; `b`'s release never completes.
  const s = make({
    teardown: {
      ...ledger.teardown,
      release: async (owner) => {
        if (owner === 'server:b') return new Promise(() => undefined);
        ledger.held.set(owner, 0);
      },
    },
    settings: { stopEofGraceMs: 100_000 }, // the child's own stop deadline is far past the budget
  });
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.deepEqual(s.root.getSnapshot().value, { shuttingDown: 'draining' });
  assert.equal(s.child('a'), undefined, 'a finished on its own and left its group');
  assert.equal(s.root.system.get('server:a'), undefined);
  assert.deepEqual(activeServers(s.root.getSnapshot().context), ['a', 'b'], "a group's slots are freed when the whole group is done");
  assert.equal(s.child('b')!.getSnapshot().value, 'stopping');
  s.clock.increment(5_000 - 1);
  await flush();
  assert.notEqual(s.root.getSnapshot().status, 'done', 'the budget is a limit on waiting, not a shortcut');
  s.clock.increment(1);
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done', 'finished at the budget (no further simulated time needed)');
  assertChildrenFinished(s.root, ['a', 'b']);
  assert.equal(ledger.held.get('server:b'), 0, 'b owns nothing');
  assert.equal(ledger.held.get('reaper'), 1, 'what b held is owned by the reaper, not dropped');
  assert.deepEqual(s.finalWithLiveChild, []);
  assert.equal(s.watchers(), 0);
});

test('shutdown budget: something that turns up after the hand-over costs at most one reap backoff more', async () => {
  const ledger = fakeLedger(['server:a', 'server:b']);
  let handOvers = 0;
  const s = make({
    releaseGate: new Promise(() => undefined),
    teardown: {
      ...ledger.teardown,
      handOver: async (owner) => {
        await ledger.teardown.handOver(owner);
        // The first hand-over of `a` leaves something new behind (an escaped process, say).
        if (owner === 'server:a' && handOvers++ === 0) ledger.held.set(owner, 1);
      },
    },
    settings: { stopEofGraceMs: 100_000 },
  });
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  s.clock.increment(5_000);
  await flush();
  assert.deepEqual(s.root.getSnapshot().value, { shuttingDown: 'overdue' });
  assert.equal(s.child('b'), undefined, 'b is done');
  assert.deepEqual(s.child('a')!.getSnapshot().value, { reaping: 'backoff' });
  s.clock.increment(DEFAULT_SETTINGS.reapBackoffMaxMs);
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.equal(ledger.held.get('server:a'), 0);
  assert.equal(ledger.held.get('reaper'), 3);
  assert.deepEqual(s.finalWithLiveChild, []);
});

test('the supervisor never reaches final while a child is not final, however long it waits', async () => {
  // A child whose audit always finds something, and whose hand-over fails: it can never finish.
  const s = make({
    releaseGate: new Promise(() => undefined),
    teardown: {
      audit: async (owner) => ({ remaining: owner === 'server:b' ? 1 : 0 }),
      handOver: async (owner) => {
        if (owner === 'server:b') throw new Error('reaper unavailable');
      },
    },
    settings: { stopEofGraceMs: 100_000 },
  });
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  for (let i = 0; i < 50; i++) {
    s.clock.increment(1_000);
    await flush();
  }
  assert.deepEqual(s.root.getSnapshot().value, { shuttingDown: 'overdue' });
  assert.equal(s.child('a'), undefined, 'a is done');
  assert.notEqual(s.child('b')!.getSnapshot().status, 'done');
  assert.equal(serverGroupsOf(s.root)[0]!.getSnapshot().status, 'active', 'so is not its group');
  assert.deepEqual(s.finalWithLiveChild, []);
  s.root.stop();
});

test('serverActorOf finds a child by systemId with the server machine types; unknown names give undefined', async () => {
  const s = make();
  await flush();
  const a = serverActorOf(s.root, 'a');
  assert.ok(a);
  assert.equal(a, s.child('a'));
  assert.equal(a.getSnapshot().context.name, 'a');
  assert.equal(serverActorOf(s.root, 'nope'), undefined);
  assert.equal(serverActorOf(undefined, 'a'), undefined);
  s.root.stop();
});

test('shutdown of many children: the root reaches final only after the last one, in whatever order they finish', async () => {
  const names = Array.from({ length: 300 }, (_, i) => `s${i}`);
  const opened = new Map<string, () => void>();
  const gates = new Map(names.map((n) => [`server:${n}`, new Promise<void>((r) => opened.set(`server:${n}`, r))]));
  const s = make({ names, teardown: { release: (owner) => gates.get(owner)! } });
  await flush();
  const groups = Math.ceil(names.length / SERVER_GROUP_SIZE);
  assert.deepEqual(
    Object.keys(s.root.getSnapshot().children),
    Array.from({ length: groups }, (_, g) => String(g)),
    'one group per SERVER_GROUP_SIZE slots',
  );
  for (const [g, group] of serverGroupsOf(s.root).entries()) {
    const size = Math.min(SERVER_GROUP_SIZE, names.length - g * SERVER_GROUP_SIZE);
    assert.deepEqual(
      Object.keys(childrenOf(group)),
      Array.from({ length: size }, (_, i) => String(i)),
      `group ${g}: one dense id per slot`,
    );
  }
  assert.deepEqual(
    names.map((n) => slotOfServer(s.root, s.child(n))),
    names.map((_, i) => i),
    'server i in slot i',
  );
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  // Finish them in an order unrelated to their slots: odd slots backwards, then even ones forwards.
  const order = [...names.filter((_, i) => i % 2 === 1).reverse(), ...names.filter((_, i) => i % 2 === 0)];
  for (const [k, n] of order.entries()) {
    opened.get(`server:${n}`)!();
    if (k % 37 === 0 || k >= order.length - 2) await flush();
    if (k < order.length - 1) assert.notEqual(s.root.getSnapshot().status, 'done', `not final with ${order.length - 1 - k} left`);
  }
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.deepEqual(activeServers(s.root.getSnapshot().context), []);
  assert.deepEqual(s.finalWithLiveChild, [], 'no child was live when the root finished');
  assert.equal(s.watchers(), 0);
  assertChildrenFinished(s.root, names);
});

test('slots: a removed server frees its slot for the next add; a replaced one keeps its slot; shutdown after that still ends every child', async () => {
  let open!: () => void;
  let gate: Promise<void> | undefined = new Promise<void>((r) => (open = r));
  const s = make({
    names: ['a', 'b', 'c'],
    teardown: {
      release: async (owner) => {
        if (owner === 'server:b') await gate;
      },
    },
  });
  await flush();
  s.root.send({ type: 'SERVER_REMOVE', name: 'a' });
  await flush();
  assert.deepEqual(s.root.getSnapshot().context.slots, [null, 'b', 'c']);
  assert.equal(s.child('a'), undefined);
  s.root.send({ type: 'SERVER_ADD', server: s.entry('d') });
  await flush();
  assert.deepEqual(s.root.getSnapshot().context.slots, ['d', 'b', 'c'], 'the lowest free slot is reused');
  assert.equal(slotOfServer(s.root, s.child('d')), 0);
  // Replace b while its old actor drains: the new one takes the same slot once the old one is done.
  const oldB = s.child('b');
  s.root.send({ type: 'SERVER_ADD', server: s.entry('b') });
  await flush();
  assert.equal(s.child('b'), oldB, 'the old actor drains first');
  open();
  gate = undefined;
  await flush();
  const newB = s.child('b');
  assert.ok(newB && newB !== oldB, 'a new actor of b');
  assert.equal(slotOfServer(s.root, newB), 1);
  assert.equal(newB.getSnapshot().value, 'running');
  assert.deepEqual(s.root.getSnapshot().context.slots, ['d', 'b', 'c']);
  s.root.send({ type: 'SERVER_ADD', server: s.entry('e') });
  await flush();
  assert.deepEqual(s.root.getSnapshot().context.slots, ['d', 'b', 'c', 'e'], 'no free slot: a new one at the end');
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.deepEqual(s.finalWithLiveChild, []);
  assert.equal(s.watchers(), 0);
  assertChildrenFinished(s.root, ['a', 'b', 'c', 'd', 'e']);
});

test('groups: an add past the last group starts a new one, later adds reuse it; an emptied group finishes at once on shutdown', async () => {
  const names = Array.from({ length: SERVER_GROUP_SIZE }, (_, i) => `s${i}`);
  const s = make({ names });
  await flush();
  assert.equal(serverGroupsOf(s.root).length, 1);
  s.root.send({ type: 'SERVER_ADD', server: s.entry('x') });
  await flush();
  assert.equal(serverGroupsOf(s.root).length, 2, 'a second group for slot SERVER_GROUP_SIZE');
  assert.equal(slotOfServer(s.root, s.child('x')), SERVER_GROUP_SIZE);
  assert.equal(s.child('x')!.getSnapshot().value, 'running');
  s.root.send({ type: 'SERVER_REMOVE', name: 'x' });
  await flush();
  assert.equal(s.child('x'), undefined);
  s.root.send({ type: 'SERVER_ADD', server: s.entry('y') });
  await flush();
  assert.equal(serverGroupsOf(s.root).length, 2, 'the freed slot is reused in the same group');
  assert.equal(slotOfServer(s.root, s.child('y')), SERVER_GROUP_SIZE);
  s.root.send({ type: 'SERVER_REMOVE', name: 'y' });
  await flush();
  assert.deepEqual(Object.keys(childrenOf(serverGroupsOf(s.root)[1]!)), [], 'the second group is empty');
  for (const g of serverGroupsOf(s.root)) assert.ok(Object.keys(childrenOf(g)).length <= SERVER_GROUP_SIZE);
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.deepEqual(s.finalWithLiveChild, []);
  assert.equal(s.watchers(), 0);
  assertChildrenFinished(s.root, [...names, 'x', 'y']);
});

test('shutdown with every server removed: the root finishes at once and stops its empty groups', async () => {
  const s = make();
  await flush();
  s.root.send({ type: 'SERVER_REMOVE', name: 'a' });
  s.root.send({ type: 'SERVER_REMOVE', name: 'b' });
  await flush();
  const [group] = serverGroupsOf(s.root);
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.equal(group!.getSnapshot().status, 'stopped', 'the empty group was stopped with the root');
  assert.deepEqual(s.finalWithLiveChild, []);
  assert.equal(s.watchers(), 0);
});

test('shutdown across groups: a group finishes with its last server; DEADLINE reaches a server of a later group through it', async () => {
  const names = Array.from({ length: SERVER_GROUP_SIZE + 8 }, (_, i) => `s${i}`);
  const stuck = `s${SERVER_GROUP_SIZE + 3}`;
  const ledger = fakeLedger(names.map((n) => `server:${n}`));
  const s = make({
    names,
    teardown: {
      ...ledger.teardown,
      release: async (owner) => {
        if (owner === `server:${stuck}`) return new Promise(() => undefined);
        ledger.held.set(owner, 0);
      },
    },
    settings: { stopEofGraceMs: 100_000 },
  });
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  const [first, second] = serverGroupsOf(s.root);
  assert.equal(first!.getSnapshot().status, 'done', 'the first group finished with its last server');
  assert.equal(second!.getSnapshot().status, 'active', 'the second waits for its stuck server');
  assert.deepEqual(Object.keys(childrenOf(second!)), [String(3)], 'only the stuck server is left in it');
  assert.deepEqual(activeServers(s.root.getSnapshot().context), names.slice(SERVER_GROUP_SIZE), "the second group's slots");
  s.clock.increment(5_000);
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.equal(ledger.held.get('reaper'), 1, 'what the stuck server held went to the reaper');
  assert.deepEqual(s.finalWithLiveChild, []);
  assert.equal(s.watchers(), 0);
  assertChildrenFinished(s.root, names);
});
