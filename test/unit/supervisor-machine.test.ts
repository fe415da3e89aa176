import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromCallback, fromPromise, SimulatedClock, type AnyActorRef } from 'xstate';
import { createServerMachine, type LaunchOutput, type ServerMachineInput } from '../../src/machines/server-machine.js';
import { createSupervisorMachine, serverActorId } from '../../src/machines/supervisor-machine.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

function make(opts: { releaseGate?: Promise<void> } = {}) {
  const clock = new SimulatedClock();
  let watchers = 0;
  const server = createServerMachine({ now: () => clock.now() }).provide({
    actors: {
      launchUpstream: fromPromise(async (): Promise<LaunchOutput> => ({ pid: 1, tools: [] })),
      watchUpstream: fromCallback(() => {
        watchers++;
        return () => {
          watchers--;
        };
      }),
      releaseOwned: fromPromise(async () => {
        await opts.releaseGate;
      }),
      auditOwned: fromPromise(async () => ({ remaining: 0 })),
      forceRelease: fromPromise(async (): Promise<void> => undefined),
      handOver: fromPromise(async (): Promise<void> => undefined),
    },
  });
  const entry = (name: string): ServerMachineInput => ({ name, remote: false, quarantined: false, settings: DEFAULT_SETTINGS });
  const root = createActor(createSupervisorMachine(server), {
    clock,
    input: { servers: [entry('a'), entry('b')], shutdownBudgetMs: 5_000 },
  });
  root.start();
  const child = (name: string) => root.getSnapshot().children[serverActorId(name)] as AnyActorRef | undefined;
  return { root, clock, entry, child, watchers: () => watchers };
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

test('shutdown budget: a child that cannot finish does not hold the root forever', async () => {
  const s = make({ releaseGate: new Promise(() => undefined) });
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().value, 'shuttingDown');
  s.clock.increment(5_000);
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
});
