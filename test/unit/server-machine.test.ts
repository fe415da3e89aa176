/**
 * Unit tests of the server statechart with simulated time. The effects are scripted fakes (fine
 * for a machine unit test); the real effects are proven in the integration suites.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromCallback, fromPromise, SimulatedClock, type StateValue } from 'xstate';
import {
  createServerMachine,
  releaseWithDeadline,
  type AuditOutput,
  type LaunchOutput,
  type ServerEvent,
  type ServerSettings,
  type UpstreamSession,
  type WatchInput,
} from '../../src/machines/server-machine.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';

const settings: ServerSettings = {
  ...DEFAULT_SETTINGS,
  initTimeoutMs: 5_000,
  restartBackoffInitialMs: 1_000,
  restartBackoffMaxMs: 8_000,
  restartBackoffFactor: 2,
  restartIntensityMax: 5,
  restartIntensityWindowMs: 60_000,
  reapMaxAttempts: 3,
  reapBackoffInitialMs: 100,
  reapBackoffMaxMs: 400,
};

const top = (v: StateValue): string => (typeof v === 'string' ? v : Object.keys(v)[0]!);

/** A stand-in for the launch actor's live session: nothing in the machine may call into it. */
function fakeSession(name: string, pid: number): UpstreamSession {
  const fail = () => {
    throw new Error('the statechart must not use the session');
  };
  return {
    name,
    handle: { pid, onExit: fail },
    connection: {
      capabilities: {},
      listTools: fail,
      callTool: fail,
      request: fail,
      notify: fail,
      onNotification: fail,
      setClientRequestHandler: fail,
      onToolsChanged: fail,
      onClose: fail,
      close: fail,
    },
    toJSON: () => ({ name, pid, upstream: 'fake' }),
  };
}

/** Timeouts still pending on the simulated clock (its private map, read for the leak check only). */
const pendingTimers = (clock: SimulatedClock): number => (clock as unknown as { timeouts: Map<unknown, unknown> }).timeouts.size;

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

interface Script {
  launch: () => Promise<LaunchOutput>;
  audit: () => Promise<AuditOutput>;
  release: () => Promise<AuditOutput | void>;
  force: () => Promise<void>;
  handOver: () => Promise<void>;
}

function harness(opts: { quarantined?: boolean; remote?: boolean; script?: Partial<Script> } = {}) {
  const clock = new SimulatedClock();
  const calls = { launch: 0, release: 0, audit: 0, force: 0, handOver: 0 };
  let watchers = 0;
  const watchInputs: WatchInput[] = [];
  let emit: ((e: ServerEvent) => void) | undefined;
  const script: Script = {
    launch: async () => ({ pid: 42, tools: [{ name: 'echo', inputSchema: { type: 'object' } }], session: fakeSession('demo', 42) }),
    audit: async () => ({ remaining: 0 }),
    release: async () => undefined,
    force: async () => undefined,
    handOver: async () => undefined,
    ...opts.script,
  };
  const machine = createServerMachine({ now: () => clock.now() }).provide({
    actors: {
      launchUpstream: fromPromise(async () => {
        calls.launch++;
        return script.launch();
      }),
      watchUpstream: fromCallback<ServerEvent, WatchInput>(({ sendBack, input }) => {
        watchers++;
        watchInputs.push(input);
        emit = (e) => sendBack(e);
        return () => {
          watchers--;
          emit = undefined;
        };
      }),
      releaseOwned: releaseWithDeadline(async (): Promise<AuditOutput | void> => {
        calls.release++;
        return script.release();
      }),
      auditOwned: fromPromise(async () => {
        calls.audit++;
        return script.audit();
      }),
      forceRelease: fromPromise(async () => {
        calls.force++;
        return script.force();
      }),
      handOver: fromPromise(async () => {
        calls.handOver++;
        return script.handOver();
      }),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: { name: 'demo', remote: opts.remote ?? false, quarantined: opts.quarantined ?? false, settings },
  });
  actor.start();
  return {
    actor,
    clock,
    calls,
    watchers: () => watchers,
    watchInputs,
    crash: () => emit?.({ type: 'UPSTREAM_EXITED', code: 1, signal: null }),
    value: () => actor.getSnapshot().value,
    ctx: () => actor.getSnapshot().context,
  };
}

test('starts, launches and runs with the upstream tools in context', async () => {
  const h = harness();
  await flush();
  assert.equal(h.value(), 'running');
  assert.equal(h.ctx().up?.pid, 42);
  assert.equal(h.ctx().tools.length, 1);
  assert.equal(h.watchers(), 1);
  h.actor.stop();
});

test('a quarantined server runs in quarantined; APPROVE moves it to running, QUARANTINE back', async () => {
  const h = harness({ quarantined: true });
  await flush();
  assert.equal(h.value(), 'quarantined');
  assert.equal(h.ctx().tools.length, 1, 'tools are fetched for inspection');
  h.actor.send({ type: 'APPROVE' });
  assert.equal(h.value(), 'running');
  assert.equal(h.ctx().quarantined, false);
  h.actor.send({ type: 'QUARANTINE' });
  assert.equal(h.value(), 'quarantined');
  assert.equal(h.ctx().quarantined, true);
  assert.equal(h.watchers(), 1, 'exactly one watcher across the move');
  h.actor.stop();
});

test('init timeout: a launch that never answers is stopped, reaped and retried after backoff', async () => {
  const h = harness({ script: { launch: () => new Promise(() => undefined) } });
  await flush();
  assert.deepEqual(h.value(), { starting: 'launching' });
  h.clock.increment(settings.initTimeoutMs - 1);
  await flush();
  assert.deepEqual(h.value(), { starting: 'launching' });
  h.clock.increment(1);
  await flush();
  assert.deepEqual(h.value(), { starting: 'backoff' });
  assert.equal(h.ctx().lastError?.code, 'E_INIT_TIMEOUT');
  assert.equal(h.calls.release, 1, 'whatever the launch acquired is released');
  assert.equal(h.ctx().attempt, 1);
  h.actor.stop();
});

test('stop deadline: a polite release that never completes is abandoned for reaping after its budget', async () => {
  const h = harness({ script: { release: () => new Promise(() => undefined) } });
  await flush();
  assert.equal(h.value(), 'running');
  // The init deadline left nothing pending once the launch answered.
  assert.equal(pendingTimers(h.clock), 0);
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(h.value(), 'stopping');
  const budget =
    settings.stopEofGraceMs +
    Math.max(settings.stopTermGraceMs, (settings.dockerStopGraceSeconds ?? 0) * 1_000) +
    settings.stopKillGraceMs +
    1_000;
  h.clock.increment(budget - 1);
  await flush();
  assert.equal(h.value(), 'stopping');
  h.clock.increment(1);
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done', 'reaping found nothing left and the actor finished');
  assert.equal(h.calls.audit, 1);
  assert.equal(pendingTimers(h.clock), 0, 'no deadline outlives its state');
});

test('stop deadline: the release holds it in the same actor; a release that answers after it is ignored, one before it leaves no timer', async () => {
  let finishRelease!: (out: { remaining: number }) => void;
  let finishAudit!: (out: { remaining: number }) => void;
  const h = harness({
    script: {
      release: () => new Promise((r) => (finishRelease = r)),
      audit: () => new Promise((r) => (finishAudit = r)),
    },
  });
  await flush();
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(pendingTimers(h.clock), 1, 'stopping holds one deadline');
  h.clock.increment(600_000);
  await flush();
  assert.deepEqual(h.value(), { reaping: 'auditing' });
  // The abandoned release answers now: reaping's audit still decides.
  finishRelease({ remaining: 0 });
  await flush();
  assert.deepEqual(h.value(), { reaping: 'auditing' });
  finishAudit({ remaining: 0 });
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
  assert.equal(pendingTimers(h.clock), 0);

  const quick = harness({ script: { release: async () => ({ remaining: 0 }) } });
  await flush();
  quick.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(quick.actor.getSnapshot().status, 'done', 'verified empty by the release itself');
  assert.equal(quick.calls.audit, 0);
  assert.equal(pendingTimers(quick.clock), 0, 'the deadline went with the release');
});

test('the context keeps few top-level keys (xstate copies it with Object.assign on every assign; ~20 keys go dictionary-mode)', async () => {
  const h = harness();
  await flush();
  assert.ok(Object.keys(h.ctx()).length <= 16, `${Object.keys(h.ctx()).length} top-level keys`);
  h.actor.stop();
});

test('crash restarts follow exponential backoff, capped', async () => {
  const h = harness();
  await flush();
  const expected = [1_000, 2_000, 4_000, 8_000, 8_000];
  for (const delay of expected) {
    assert.equal(h.value(), 'running');
    h.crash();
    await flush();
    assert.deepEqual(h.value(), { starting: 'backoff' });
    assert.equal(h.ctx().lastError?.code, 'E_UPSTREAM_EXITED');
    h.clock.increment(delay - 1);
    await flush();
    assert.deepEqual(h.value(), { starting: 'backoff' }, `still waiting 1 ms before ${delay}`);
    h.clock.increment(1);
    await flush();
  }
  assert.equal(h.value(), 'running');
  h.actor.stop();
});

test('intensity limit: more than 5 restarts inside the window halts; RESTART resumes; STOP finishes', async () => {
  const h = harness({ script: { launch: async () => Promise.reject(new Error('boom')) } });
  await flush();
  let restarts = 0;
  for (;;) {
    const v = h.value() as { starting?: string };
    if (v.starting === 'halted') break;
    assert.deepEqual(v, { starting: 'backoff' });
    restarts++;
    h.clock.increment(8_000);
    await flush();
    assert.ok(restarts <= 10, 'halts eventually');
  }
  assert.equal(restarts, 5, 'five restarts are allowed, the sixth failure halts');
  assert.equal(h.ctx().lastError?.code, 'E_CRASH_LOOP');
  const launches = h.calls.launch;
  h.clock.increment(600_000);
  await flush();
  assert.equal(h.calls.launch, launches, 'halted waits for an explicit restart');
  h.actor.send({ type: 'RESTART' });
  await flush();
  assert.equal(h.calls.launch, launches + 1);
  assert.equal(h.ctx().lastError?.code, 'E_INIT_FAILED');
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
});

test('restarts spread over more than the window never trip the intensity limit', async () => {
  const h = harness();
  await flush();
  for (let i = 0; i < 12; i++) {
    h.clock.increment(61_000); // stable for longer than the window
    h.crash();
    await flush();
    h.clock.increment(1_000); // first-step backoff: the attempt count decays with the window
    await flush();
    assert.equal(h.value(), 'running', `restart ${i + 1}`);
  }
  h.actor.stop();
});

test('a remote server that needs a login waits in starting.needsAuth without retrying, until RESTART', async () => {
  let needsAuth = true;
  const h = harness({
    remote: true,
    script: {
      launch: async () => {
        if (needsAuth) throw new WardenError(ErrorCodes.REMOTE_NEEDS_AUTH, 'r: the server requires an OAuth login');
        return { pid: -1, tools: [], session: fakeSession('demo', -1) };
      },
    },
  });
  await flush();
  assert.deepEqual(h.value(), { starting: 'needsAuth' });
  assert.equal(h.ctx().lastError?.code, 'E_REMOTE_NEEDS_AUTH');
  assert.equal(h.calls.release, 1, 'what the attempt opened was released first');
  h.clock.increment(10 * 60_000);
  await flush();
  assert.equal(h.calls.launch, 1, 'no retry storm: one attempt, then it waits');
  needsAuth = false;
  h.actor.send({ type: 'RESTART' });
  await flush();
  assert.equal(h.value(), 'running');
  // Credentials refused while running: back to needsAuth.
  h.actor.send({
    type: 'UPSTREAM_EXITED',
    code: null,
    signal: null,
    error: new WardenError(ErrorCodes.REMOTE_NEEDS_AUTH, 'refresh failed'),
  });
  await flush();
  assert.deepEqual(h.value(), { starting: 'needsAuth' });
  assert.equal(h.ctx().lastError?.message, 'refresh failed');
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
});

test("a launch error's Retry-After lengthens the next restart delay", async () => {
  const h = harness({
    remote: true,
    script: {
      launch: async () => {
        throw new WardenError(ErrorCodes.REMOTE_HTTP_STATUS, 'HTTP 503', { statusCode: 503, retryAfterMs: 5_000 });
      },
    },
  });
  await flush();
  assert.deepEqual(h.value(), { starting: 'backoff' });
  assert.equal(h.calls.launch, 1);
  h.clock.increment(4_900); // the ordinary backoff (1 s) has long passed
  await flush();
  assert.equal(h.calls.launch, 1, 'not before Retry-After');
  h.clock.increment(200);
  await flush();
  assert.equal(h.calls.launch, 2);
  h.actor.stop();
});

test('reaping retries with visible attempts and backoff, hands over at the limit, finishes only when nothing remains', async () => {
  let remaining = 2;
  const h = harness({
    script: {
      audit: async () => ({ remaining }),
      force: async () => Promise.reject(new Error('engine stalled')),
      handOver: async () => {
        remaining = 0;
      },
    },
  });
  await flush();
  h.actor.send({ type: 'STOP' });
  await flush();
  // first forced attempt happens at once
  assert.deepEqual(h.value(), { reaping: 'backoff' });
  assert.equal(h.ctx().reap.attempt, 1);
  assert.equal(h.ctx().reap.remaining, 2);
  assert.equal(h.ctx().lastError?.code, 'E_REAP_FAILED');
  h.clock.increment(100);
  await flush();
  assert.equal(h.ctx().reap.attempt, 2);
  assert.deepEqual(h.value(), { reaping: 'backoff' });
  h.clock.increment(200);
  await flush();
  assert.equal(h.ctx().reap.attempt, 4, 'three forced attempts, then the hand-over');
  assert.equal(h.calls.handOver, 1, 'ownership passed on at the attempt limit');
  assert.equal(h.actor.getSnapshot().status, 'done');
  assert.equal(h.calls.force, 3);
});

test('stopped is never reached while the audit reports resources', async () => {
  const h = harness({
    script: {
      audit: async () => ({ remaining: 1 }),
      force: async () => undefined,
      handOver: async () => Promise.reject(new Error('reaper unavailable')),
    },
  });
  await flush();
  h.actor.send({ type: 'STOP' });
  for (let i = 0; i < 30; i++) {
    h.clock.increment(400);
    await flush();
  }
  assert.notEqual(h.actor.getSnapshot().status, 'done');
  assert.equal(top(h.value()), 'reaping');
  assert.ok(h.ctx().reap.attempt > settings.reapMaxAttempts, 'keeps trying past the limit');
  h.actor.stop();
});

test("the release's own audit: empty finishes without a separate audit; anything left goes to reaping's audit", async () => {
  // Verified empty by the release actor: stopped, and auditOwned never ran.
  const h = harness({ script: { release: async () => ({ remaining: 0 }) } });
  await flush();
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
  assert.deepEqual([h.calls.release, h.calls.audit], [1, 0]);
  // Something remains after the release: reaping audits (and forces) before anything finishes.
  let left = 1;
  const r = harness({
    script: {
      release: async () => ({ remaining: 1 }),
      audit: async () => ({ remaining: left }),
      force: async () => {
        left = 0;
      },
    },
  });
  await flush();
  r.actor.send({ type: 'STOP' });
  for (let i = 0; i < 5 && r.actor.getSnapshot().status !== 'done'; i++) {
    r.clock.increment(400);
    await flush();
  }
  assert.equal(r.actor.getSnapshot().status, 'done');
  // Not finished on the release's word: reaping audited (found 1), forced, and audited again (found 0).
  assert.deepEqual([r.calls.release, r.calls.audit, r.calls.force], [1, 2, 1]);
});

test('STOP from every state ends in stopped with the watcher gone', async () => {
  const scenarios: Array<[string, () => Promise<ReturnType<typeof harness>>]> = [
    ['starting.launching', async () => harness({ script: { launch: () => new Promise(() => undefined) } })],
    [
      'starting.backoff',
      async () => {
        const h = harness({ script: { launch: async () => Promise.reject(new Error('x')) } });
        await flush();
        return h;
      },
    ],
    [
      'starting.needsAuth',
      async () => {
        const h = harness({
          remote: true,
          script: { launch: async () => Promise.reject(new WardenError(ErrorCodes.REMOTE_NEEDS_AUTH, 'login needed')) },
        });
        await flush();
        return h;
      },
    ],
    ['running', async () => harness()],
    ['quarantined', async () => harness({ quarantined: true })],
    ['stopping', async () => harness({ script: { release: () => new Promise(() => undefined) } })],
    ['reaping', async () => harness({ script: { audit: () => new Promise(() => undefined) } })],
  ];
  for (const [name, make] of scenarios) {
    const h = await make();
    await flush();
    if (name === 'stopping' || name === 'reaping') {
      h.actor.send({ type: 'RESTART' });
      await flush();
      assert.equal(top(h.value()), name);
    }
    h.actor.send({ type: 'STOP' });
    await flush();
    if (name === 'stopping') h.clock.increment(10_000); // the stop deadline moves on to reaping
    if (name === 'reaping') {
      assert.notEqual(h.actor.getSnapshot().status, 'done', 'reaping cannot finish without an audit');
      h.actor.stop();
      continue;
    }
    await flush();
    assert.equal(h.actor.getSnapshot().status, 'done', `STOP from ${name}`);
    assert.equal(h.watchers(), 0, `no watcher left after ${name}`);
  }
});

test('APPROVE before launch completes still counts; QUARANTINE during stopping is remembered', async () => {
  const h = harness({ quarantined: true, script: { launch: () => new Promise(() => undefined) } });
  await flush();
  h.actor.send({ type: 'APPROVE' });
  assert.equal(h.ctx().quarantined, false);
  h.actor.stop();
});

/** The change the integrity tests' second launch reports. */
const change = {
  tool: 'echo',
  kind: 'changed' as const,
  fields: ['description'],
  summary: 'tool "echo" changed: description: "a" → "b"',
};

test('integrity: changed tools at launch or on list_changed send the server to quarantined with the diff', async () => {
  let launches = 0;
  const h = harness({
    script: {
      launch: async () => {
        launches++;
        return {
          pid: 1,
          tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
          toolChanges: launches === 1 ? [] : [change],
          session: fakeSession('demo', 1),
        };
      },
    },
  });
  await flush();
  assert.equal(h.value(), 'running');
  // a rug pull announced through tools/list_changed
  h.actor.send({ type: 'TOOLS_UPDATED', tools: [], toolChanges: [change] });
  assert.equal(h.value(), 'quarantined');
  assert.equal(h.ctx().lastError?.code, 'E_TOOLS_CHANGED');
  assert.deepEqual(h.ctx().toolChanges, [change]);
  h.actor.send({ type: 'APPROVE' });
  assert.equal(h.value(), 'running');
  assert.deepEqual(h.ctx().toolChanges, []);
  // an unchanged refresh keeps it running
  h.actor.send({ type: 'TOOLS_UPDATED', tools: [], toolChanges: [] });
  assert.equal(h.value(), 'running');
  // a restart whose fresh tool list differs comes back quarantined
  h.actor.send({ type: 'RESTART' });
  await flush();
  assert.equal(h.value(), 'quarantined');
  assert.equal(h.ctx().quarantined, true);
  h.actor.stop();
});

test('integrity, tool scope: changed tools are withheld while the server keeps running; a lost record quarantines it whole', async () => {
  let launches = 0;
  const h = harness({
    script: {
      launch: async () => {
        launches++;
        return {
          pid: 1,
          tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
          toolChanges: launches === 1 ? [] : [change],
          withhold: 'tools' as const,
          session: fakeSession('demo', 1),
        };
      },
    },
  });
  await flush();
  assert.equal(h.value(), 'running');
  h.actor.send({ type: 'TOOLS_UPDATED', tools: [], toolChanges: [change], withhold: 'tools' });
  assert.equal(h.value(), 'running', 'tool scope keeps it running');
  assert.deepEqual(h.ctx().toolChanges, [change], 'the changed tool is withheld');
  assert.equal(h.ctx().lastError?.code, 'E_TOOLS_CHANGED');
  h.actor.send({ type: 'TOOLS_UPDATED', tools: [], toolChanges: [], withhold: 'tools' });
  assert.deepEqual(h.ctx().toolChanges, []);
  assert.equal(h.ctx().lastError, null);
  // a restart with a changed tool comes back running, the tool withheld
  h.actor.send({ type: 'RESTART' });
  await flush();
  assert.equal(h.value(), 'running');
  assert.deepEqual(h.ctx().toolChanges, [change]);
  h.actor.send({ type: 'APPROVE' });
  assert.deepEqual(h.ctx().toolChanges, []);
  assert.equal(h.ctx().lastError, null, 'approval answers the change');
  // a lost approval record quarantines the whole server, whatever the scope
  h.actor.send({ type: 'TOOLS_UPDATED', tools: [], withhold: 'tools', quarantine: { code: 'E_APPROVAL_MISSING', message: 'gone' } });
  assert.equal(h.value(), 'quarantined');
  assert.equal(h.ctx().lastError?.code, 'E_APPROVAL_MISSING');
  h.actor.stop();
});

test('the launched session lives in context while running/quarantined, reaches the watcher, and is cleared on stopping', async () => {
  const h = harness({ quarantined: true, script: { release: () => new Promise(() => undefined) } });
  await flush();
  assert.equal(h.value(), 'quarantined');
  const session = h.ctx().session;
  assert.ok(session, 'kept while quarantined');
  assert.equal(h.watchInputs.at(-1)?.session, session, 'the watch actor gets it from its input');
  h.actor.send({ type: 'APPROVE' });
  assert.equal(h.value(), 'running');
  assert.equal(h.ctx().session, session, 'the same session across quarantined → running');
  // Serialisable for the inspector and logs: the session shows only its summary.
  const json = JSON.parse(JSON.stringify(h.actor.getSnapshot())) as { context: { session: unknown } };
  assert.deepEqual(json.context.session, { name: 'demo', pid: 42, upstream: 'fake' });
  h.actor.send({ type: 'STOP' });
  assert.equal(h.value(), 'stopping');
  assert.equal(h.ctx().session, null, 'gone as soon as the server stops being usable');
  assert.equal(h.watchers(), 0);
  h.actor.stop();
});

test('DEADLINE: a release that never completes is abandoned; what is owned is handed over and the actor finishes', async () => {
  let handedOver = false;
  const h = harness({
    script: {
      release: () => new Promise(() => undefined),
      audit: async () => ({ remaining: handedOver ? 0 : 1 }),
      handOver: async () => {
        handedOver = true;
      },
    },
  });
  await flush();
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.equal(h.value(), 'stopping');
  h.actor.send({ type: 'DEADLINE' });
  await flush();
  assert.equal(h.calls.handOver, 1, 'straight to the hand-over');
  assert.equal(h.calls.force, 0, 'no forced attempt is waited for');
  assert.equal(h.actor.getSnapshot().status, 'done');
  assert.equal(h.ctx().deadline, true);
});

test('DEADLINE in reaping: a hanging forced release is abandoned for the hand-over', async () => {
  let handedOver = false;
  const h = harness({
    script: {
      audit: async () => ({ remaining: handedOver ? 0 : 1 }),
      force: () => new Promise(() => undefined),
      handOver: async () => {
        handedOver = true;
      },
    },
  });
  await flush();
  h.actor.send({ type: 'STOP' });
  await flush();
  assert.deepEqual(h.value(), { reaping: 'forcing' });
  h.actor.send({ type: 'DEADLINE' });
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
  assert.equal(h.calls.handOver, 1);
});

test('DEADLINE: something new after the hand-over is handed over again on the backoff, never forced; no stop while it remains', async () => {
  let remaining = 1;
  const h = harness({
    script: {
      release: () => new Promise(() => undefined),
      audit: async () => ({ remaining }),
      handOver: async () => undefined,
    },
  });
  await flush();
  h.actor.send({ type: 'STOP' });
  await flush();
  h.actor.send({ type: 'DEADLINE' });
  await flush();
  assert.deepEqual(h.value(), { reaping: 'backoff' });
  assert.notEqual(h.actor.getSnapshot().status, 'done', 'not final while the audit reports resources');
  h.clock.increment(settings.reapBackoffMaxMs);
  await flush();
  assert.equal(h.calls.handOver, 2);
  assert.equal(h.calls.force, 0);
  remaining = 0;
  h.clock.increment(settings.reapBackoffMaxMs);
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
});

test('DEADLINE while running (a child that missed STOP) goes to the hand-over and finishes, never restarts', async () => {
  const h = harness();
  await flush();
  assert.equal(h.value(), 'running');
  h.actor.send({ type: 'DEADLINE' });
  await flush();
  assert.equal(h.actor.getSnapshot().status, 'done');
  assert.equal(h.calls.launch, 1);
  assert.equal(h.watchers(), 0);
});
