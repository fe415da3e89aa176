/**
 * DeadlineQueue with a hand-driven clock: deadlines fire in order at their time, cancelled ones never,
 * one timer at most, none once nothing is live, and deadlines added by a firing one still fire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/core/clock.js';
import { DeadlineQueue } from '../../src/adapters/mcp/deadline-queue.js';

function manualClock() {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (h) => void timers.delete(h as number),
  };
  /** Moves time to `t`, running due timers in order. */
  const advance = (t: number) => {
    for (;;) {
      const due = [...timers.entries()].filter(([, x]) => x.at <= t).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      timers.delete(due[0]);
      now = due[1].at;
      due[1].fn();
    }
    now = t;
  };
  return { clock, advance, timers, now: () => now };
}

test('deadlines fire in order at their time; cancelled ones never; no timer once none is live', () => {
  const m = manualClock();
  const q = new DeadlineQueue(100, m.clock, m.now);
  const fired: string[] = [];
  q.add(() => fired.push('a'));
  m.advance(10);
  const b = q.add(() => fired.push('b'));
  m.advance(20);
  q.add(() => fired.push('c'));
  assert.equal(m.timers.size, 1, 'one timer for all deadlines');
  q.cancel(b);
  q.cancel(b); // twice is harmless
  m.advance(99);
  assert.deepEqual(fired, []);
  m.advance(100);
  assert.deepEqual(fired, ['a']);
  m.advance(119);
  assert.deepEqual(fired, ['a'], 'b was cancelled, c is due at 120');
  m.advance(120);
  assert.deepEqual(fired, ['a', 'c']);
  assert.equal(q.size, 0);
  assert.equal(m.timers.size, 0, 'no timer left');
});

test('cancelling the last live deadline clears the timer; a deadline added while firing still fires', () => {
  const m = manualClock();
  const q = new DeadlineQueue(50, m.clock, m.now);
  const d = q.add(() => assert.fail('cancelled'));
  q.cancel(d);
  assert.equal(m.timers.size, 0);
  const fired: number[] = [];
  q.add(() => {
    fired.push(m.now());
    q.add(() => fired.push(m.now())); // re-armed from inside, as a keep-alive does
  });
  m.advance(200);
  assert.deepEqual(fired, [50, 100, 150, 200].slice(0, 2));
  assert.equal(q.size, 0);
  assert.equal(m.timers.size, 0);
});

test('many cancelled deadlines are dropped, not kept until their time', () => {
  const m = manualClock();
  const q = new DeadlineQueue(1_000, m.clock, m.now);
  const keep = q.add(() => undefined);
  for (let i = 0; i < 10_000; i++) q.cancel(q.add(() => assert.fail('cancelled')));
  assert.equal(q.size, 1);
  const entries = (q as unknown as { entries: unknown[]; head: number }).entries.length;
  assert.ok(entries < 200, `entries kept: ${entries}`);
  q.cancel(keep);
  m.advance(5_000);
  assert.equal(m.timers.size, 0);
});

test('a throwing deadline does not keep the later ones from firing; the error is still thrown', () => {
  const m = manualClock();
  const q = new DeadlineQueue(10, m.clock, m.now);
  const fired: string[] = [];
  q.add(() => {
    throw new Error('boom');
  });
  q.add(() => fired.push('after'));
  const rethrows: Array<() => void> = [];
  const original = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (fn) => void rethrows.push(fn);
  try {
    m.advance(10);
  } finally {
    globalThis.queueMicrotask = original;
  }
  assert.deepEqual(fired, ['after']);
  assert.equal(rethrows.length, 1);
  assert.throws(rethrows[0]!, /boom/);
});

test('close() cancels everything', () => {
  const m = manualClock();
  const q = new DeadlineQueue(10, m.clock, m.now);
  q.add(() => assert.fail('closed'));
  q.add(() => assert.fail('closed'));
  q.close();
  assert.equal(q.size, 0);
  assert.equal(m.timers.size, 0);
  m.advance(100);
});
