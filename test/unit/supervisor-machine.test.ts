import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromCallback, fromPromise, SimulatedClock, type AnyActorRef } from 'xstate';
import { createServerMachine, type LaunchOutput, type ServerMachineInput } from '../../src/machines/server-machine.js';
import { createSupervisorMachine } from '../../src/machines/supervisor-machine.js';
import { serverActorId, serverActorOf } from '../../src/daemon/server-actors.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

interface Teardown {
  release?: (owner: string) => Promise<void>;
  audit?: (owner: string) => Promise<{ remaining: number }>;
  handOver?: (owner: string) => Promise<void>;
}

function make(opts: { releaseGate?: Promise<void>; teardown?: Teardown; settings?: Partial<typeof DEFAULT_SETTINGS> } = {}) {
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
      releaseOwned: fromPromise<void, { name: string; owner: string }>(async ({ input }) => {
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
  const root = createActor(createSupervisorMachine(server), {
    clock,
    input: { servers: [entry('a'), entry('b')], shutdownBudgetMs: 5_000 },
  });
  // Every child ever seen, and whether the root ever finished while one of them had not.
  const seen = new Set<AnyActorRef>();
  const finalWithLiveChild: string[] = [];
  const observe = (snap: { status: string; children: Record<string, AnyActorRef | undefined> }) => {
    for (const c of Object.values(snap.children)) if (c) seen.add(c);
    if (snap.status === 'done') {
      for (const c of seen) if (c.getSnapshot().status !== 'done') finalWithLiveChild.push(c.id);
    }
  };
  root.subscribe({ next: observe, error: () => undefined });
  root.start();
  observe(root.getSnapshot());
  const child = (name: string) => root.getSnapshot().children[serverActorId(name)] as AnyActorRef | undefined;
  return { root, clock, entry, child, watchers: () => watchers, finalWithLiveChild };
}

test('spawns one child per server with explicit id and systemId', async () => {
  const s = make();
  await flush();
  assert.deepEqual(Object.keys(s.root.getSnapshot().children).sort(), ['server:a', 'server:b']);
  assert.equal(s.root.system.get('server:a'), s.child('a'));
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
  assert.deepEqual(s.root.getSnapshot().context.active, ['b']);
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
  assert.deepEqual(Object.keys(s.root.getSnapshot().children), []);
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
  assert.deepEqual(s.root.getSnapshot().context.active, ['b'], 'a finished on its own');
  assert.equal(s.child('b')!.getSnapshot().value, 'stopping');
  s.clock.increment(5_000 - 1);
  await flush();
  assert.notEqual(s.root.getSnapshot().status, 'done', 'the budget is a limit on waiting, not a shortcut');
  s.clock.increment(1);
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done', 'finished at the budget (no further simulated time needed)');
  assert.deepEqual(Object.keys(s.root.getSnapshot().children), []);
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
  assert.deepEqual(s.root.getSnapshot().context.active, ['a']);
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
  assert.deepEqual(s.root.getSnapshot().context.active, ['b']);
  assert.notEqual(s.child('b')!.getSnapshot().status, 'done');
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
