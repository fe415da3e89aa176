/**
 * Every transition of the server machine is exercised at least once: shortest paths to every
 * (capped) state are generated with xstate/graph, replayed against a real actor whose effects never
 * settle on their own (the replay sends their done/error/after events), and the transitions the
 * real interpreter took are collected from `@xstate.microstep` inspection events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createActor,
  fromCallback,
  fromPromise,
  SimulatedClock,
  type AnyEventObject,
  type AnyStateNode,
  type AnyTransitionDefinition,
  type InspectionEvent,
} from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { createServerMachine, releaseWithDeadline, type ServerContext } from '../../src/machines/server-machine.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const never = (): Promise<any> => new Promise(() => undefined);
const machine = createServerMachine({ now: () => 0 }).provide({
  actors: {
    launchUpstream: fromPromise(never),
    watchUpstream: fromCallback(() => () => undefined),
    releaseOwned: releaseWithDeadline(never),
    auditOwned: fromPromise(never),
    forceRelease: fromPromise(never),
    handOver: fromPromise(never),
  },
});

const settings = { ...DEFAULT_SETTINGS, restartIntensityMax: 2, reapMaxAttempts: 2 };
const input = { name: 'p', remote: false, quarantined: false, settings };

function allStateNodes(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap((s) => allStateNodes(s as AnyStateNode))];
}

const nodes = allStateNodes(machine.root);
const allTransitions: AnyTransitionDefinition[] = nodes.flatMap((n) => [...[...n.transitions.values()].flat(), ...(n.always ?? [])]);

const err = new Error('scripted failure');
const AUTH_ERR = new WardenError(ErrorCodes.REMOTE_NEEDS_AUTH, 'login needed');
const CHANGE = { tool: 't', kind: 'changed', fields: ['description'], summary: 'tool "t" changed' };
/** Every event the machine reacts to, with payload variants for guarded done events. */
function eventsFor(): AnyEventObject[] {
  const types = new Set(nodes.flatMap((n) => [...n.transitions.keys()]));
  const out: AnyEventObject[] = [];
  for (const type of types) {
    if (type === 'xstate.done.actor.launch') {
      out.push(
        { type, output: { pid: 7, tools: [] } },
        { type, output: { pid: 7, tools: [], toolChanges: [CHANGE] } },
        { type, output: { pid: 7, tools: [], toolChanges: [CHANGE], withhold: 'tools' } },
      );
    } else if (type === 'RELEASED') {
      // The release audits too (teardown-actors.ts); no output: reaping audits.
      out.push({ type, output: { remaining: 0 } }, { type, output: { remaining: 1 } }, { type });
    } else if (type === 'RELEASE_FAILED') {
      out.push({ type, error: err });
    } else if (type === 'xstate.done.actor.audit') {
      out.push({ type, output: { remaining: 0 } }, { type, output: { remaining: 1 } });
    } else if (type === 'xstate.error.actor.launch') out.push({ type, error: err }, { type, error: AUTH_ERR });
    else if (type.startsWith('xstate.error.actor.')) out.push({ type, error: err });
    else if (type === 'UPSTREAM_EXITED') out.push({ type, code: 1, signal: null }, { type, code: null, signal: null, error: AUTH_ERR });
    else if (type === 'TOOLS_UPDATED') {
      out.push(
        { type, tools: [] },
        { type, tools: [], toolChanges: [CHANGE] },
        { type, tools: [], toolChanges: [CHANGE], withhold: 'tools' },
        { type, tools: [], quarantine: { code: 'E_APPROVAL_MISSING', message: 'record missing' } },
      );
    } else out.push({ type });
  }
  return out;
}
const EVENTS = eventsFor();

test('generated paths cover every transition of the server machine on a real actor', () => {
  const taken = new Set<AnyTransitionDefinition>();
  let replays = 0;
  const inputs = [input, { ...input, quarantined: true }, { ...input, remote: true }];
  for (const inp of inputs) {
    const paths = getShortestPaths(machine, {
      input: inp,
      // Only events the state handles: an unhandled error event would put the actor itself in error.
      events: ((snapshot: { status: string; can(e: AnyEventObject): boolean }) =>
        snapshot.status === 'done' ? [] : EVENTS.filter((e) => snapshot.can(e))) as never,
      serializeState: (snapshot) => {
        const c = snapshot.context as ServerContext;
        return JSON.stringify({
          v: snapshot.value,
          s: snapshot.status,
          q: c.quarantined,
          i: c.intent,
          r: Math.min(c.reap.attempt, settings.reapMaxAttempts + 1),
          t: Math.min(c.restartTimes.length, settings.restartIntensityMax + 1),
          d: c.deadline,
        });
      },
    });
    assert.ok(paths.length > 10, `expected many paths, got ${paths.length}`);
    // Each reachable state, then each event it handles: so every transition out of it is taken.
    for (const path of paths) {
      const steps = path.steps.map((s) => s.event as AnyEventObject).filter((e) => e.type !== 'xstate.init');
      const handled = path.state.status === 'done' ? [] : EVENTS.filter((e) => path.state.can(e as never));
      for (const extra of [undefined, ...handled]) {
        replays++;
        const actor = createActor(machine, {
          input: inp,
          clock: new SimulatedClock(),
          inspect: (ev: InspectionEvent) => {
            if (ev.type === '@xstate.microstep') for (const t of ev._transitions) taken.add(t);
          },
        });
        actor.start();
        for (const event of steps) actor.send(event as never);
        if (extra === undefined) {
          assert.deepEqual(
            actor.getSnapshot().value,
            path.state.value,
            `the real actor follows the generated path: ${steps.map((e) => e.type).join(' > ')}`,
          );
        } else {
          actor.send(extra as never);
          assert.notEqual(actor.getSnapshot().status, 'error', `${extra.type} after ${steps.map((e) => e.type).join(' > ')}`);
        }
        actor.stop();
      }
    }
  }

  const missed = allTransitions.filter((t) => !taken.has(t));
  assert.deepEqual(
    missed.map((t) => `${t.source.id} --${t.eventType}--> ${(t.target ?? []).map((x: AnyStateNode) => x.id).join(',') || '(internal)'}`),
    [],
    'every transition definition is taken at least once',
  );
  assert.ok(allTransitions.length > 40, `the machine has ${allTransitions.length} transitions`);
  assert.ok(replays > allTransitions.length);
});

test('the remote branch is covered too', () => {
  const actor = createActor(machine, { input: { ...input, remote: true }, clock: new SimulatedClock() });
  actor.start();
  assert.deepEqual(actor.getSnapshot().value, { starting: 'launching' }, 'a remote server launches like any other');
  actor.send({ type: 'xstate.error.actor.launch', error: AUTH_ERR } as never);
  assert.equal(actor.getSnapshot().value, 'stopping');
  assert.equal(actor.getSnapshot().context.intent, 'auth');
  actor.send({ type: 'STOP' });
  assert.equal(actor.getSnapshot().value, 'stopping');
  actor.stop();
});
