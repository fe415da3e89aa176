/**
 * The server view stream from actor subscriptions (src/daemon/server-events.ts) against a real
 * supervisor with scripted server effects: events, de-duplication, catalog notifications, and that
 * every subscription it makes is released when a child stops and on stop().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromCallback, fromPromise, SimulatedClock } from 'xstate';
import pino from 'pino';
import {
  createServerMachine,
  releaseWithDeadline,
  type AuditOutput,
  type LaunchOutput,
  type ServerMachineInput,
} from '../../src/machines/server-machine.js';
import { createSupervisorMachine } from '../../src/machines/supervisor-machine.js';
import { SERVER_GROUP_SIZE } from '../../src/machines/server-group-machine.js';
import { ServerEvents } from '../../src/daemon/server-events.js';
import type { DaemonEvent } from '../../src/daemon/server-events.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

function make(opts: { attachAfterStart?: boolean; names?: string[] } = {}) {
  const clock = new SimulatedClock();
  const server = createServerMachine({ now: () => clock.now() }).provide({
    actors: {
      launchUpstream: fromPromise(async (): Promise<LaunchOutput> => ({ pid: 1, tools: [], session: null })),
      watchUpstream: fromCallback(() => () => undefined),
      releaseOwned: releaseWithDeadline(async (): Promise<AuditOutput | void> => undefined),
      auditOwned: fromPromise(async () => ({ remaining: 0 })),
      forceRelease: fromPromise(async (): Promise<void> => undefined),
      handOver: fromPromise(async (): Promise<void> => undefined),
    },
  });
  const entry = (name: string): ServerMachineInput => ({ name, remote: false, quarantined: false, settings: DEFAULT_SETTINGS });
  const root = createActor(createSupervisorMachine(server), {
    clock,
    input: { servers: (opts.names ?? ['a', 'b']).map(entry), shutdownBudgetMs: 5_000 },
  });
  let changes = 0;
  const events = new ServerEvents({ logger: pino({ level: 'silent' }), counts: () => ({}), onChange: () => changes++, now: () => 0 });
  const seen: DaemonEvent[] = [];
  const off = events.subscribe((e) => seen.push(e));
  if (!opts.attachAfterStart) events.attach(root);
  root.start();
  if (opts.attachAfterStart) events.attach(root);
  const views = (name: string) =>
    seen.flatMap((e) => (e.type === 'server' && e.server.name === name ? [{ state: e.server.state, previous: e.previousState }] : []));
  return { root, events, seen, views, entry, off, changes: () => changes };
}

test('every server state change becomes one server event with its previous state; list_changed is asked, coalesced', async () => {
  const s = make();
  await flush();
  assert.deepEqual(s.views('a'), [
    { state: 'starting.launching', previous: null },
    { state: 'running', previous: 'starting.launching' },
  ]);
  assert.deepEqual(s.views('b').at(-1), { state: 'running', previous: 'starting.launching' });
  const changes = s.changes();
  assert.ok(changes >= 1 && changes < s.seen.length + 2, `coalesced catalog checks: ${changes}`);
  // A change that alters no view emits nothing (de-duplicated).
  const before = s.seen.length;
  s.root.send({ type: 'SERVER_COMMAND', name: 'a', command: 'APPROVE' });
  await flush();
  assert.equal(s.seen.length, before);
  s.root.send({ type: 'SERVER_COMMAND', name: 'a', command: 'QUARANTINE' });
  await flush();
  assert.deepEqual(s.views('a').at(-1), { state: 'quarantined', previous: 'running' });
  s.events.stop();
  s.root.stop();
});

test('a removed server reports stopped and its subscription is released; a re-added one is followed again', async () => {
  const s = make();
  await flush();
  assert.equal(s.events.subscriptionCount(), 4, 'the root, its server group and two servers');
  s.root.send({ type: 'SERVER_REMOVE', name: 'a' });
  await flush();
  assert.equal(s.views('a').at(-1)?.state, 'stopped');
  assert.equal(s.events.subscriptionCount(), 3, 'the stopped child is no longer subscribed');
  s.root.send({ type: 'SERVER_ADD', server: s.entry('a') });
  await flush();
  assert.deepEqual(s.views('a').slice(-2), [
    { state: 'starting.launching', previous: null },
    { state: 'running', previous: 'starting.launching' },
  ]);
  assert.equal(s.events.subscriptionCount(), 4);
  s.events.stop();
  s.root.stop();
});

test('attached after start, it reports the current states', async () => {
  const s = make({ attachAfterStart: true });
  await flush();
  assert.equal(s.views('a').at(-1)?.state, 'running');
  assert.equal(s.events.subscriptionCount(), 4);
  s.events.stop();
  s.root.stop();
});

test('stop() releases every subscription: later changes reach nobody', async () => {
  const s = make();
  await flush();
  s.events.stop();
  assert.equal(s.events.subscriptionCount(), 0);
  const before = s.seen.length;
  const changes = s.changes();
  s.root.send({ type: 'SERVER_COMMAND', name: 'b', command: 'QUARANTINE' });
  s.root.send({ type: 'SERVER_REMOVE', name: 'a' });
  await flush();
  assert.equal(s.seen.length, before);
  assert.equal(s.changes(), changes);
  s.off();
  assert.equal(s.events.listenerCount(), 0);
  s.root.stop();
});

test('a whole shutdown ends with every server stopped and nothing subscribed', async () => {
  const s = make();
  await flush();
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  assert.equal(s.views('a').at(-1)?.state, 'stopped');
  assert.equal(s.views('b').at(-1)?.state, 'stopped');
  assert.equal(s.events.subscriptionCount(), 0, 'the root completed: its subscription and the children are gone');
});

test('servers in every server group are followed, also one added in a new group; a shutdown releases groups and servers', async () => {
  const names = Array.from({ length: SERVER_GROUP_SIZE + 3 }, (_, i) => `s${i}`);
  const s = make({ names });
  await flush();
  for (const n of names) assert.equal(s.views(n).at(-1)?.state, 'running', `${n} followed`);
  assert.equal(s.events.subscriptionCount(), 1 + 2 + names.length, 'the root, two groups, every server');
  // Fill the second group up (slots up to 2 * SERVER_GROUP_SIZE - 1), then one more: a third group appears and its server is followed.
  const more = Array.from({ length: SERVER_GROUP_SIZE - 2 }, (_, i) => `m${i}`);
  for (const n of more) s.root.send({ type: 'SERVER_ADD', server: s.entry(n) });
  await flush();
  assert.equal(s.events.subscriptionCount(), 1 + 3 + names.length + more.length, 'a third group for the last add');
  for (const n of more) assert.equal(s.views(n).at(-1)?.state, 'running', `${n} followed`);
  s.root.send({ type: 'SERVER_REMOVE', name: 's1' });
  await flush();
  assert.equal(s.views('s1').at(-1)?.state, 'stopped');
  s.root.send({ type: 'SHUTDOWN' });
  await flush();
  assert.equal(s.root.getSnapshot().status, 'done');
  for (const n of [...names, ...more]) assert.equal(s.views(n).at(-1)?.state, 'stopped', `${n} stopped`);
  assert.equal(s.events.subscriptionCount(), 0);
});
