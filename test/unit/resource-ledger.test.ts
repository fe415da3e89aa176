/**
 * The ledger's per-owner index: counts per owner and kind are kept as entries are
 * acquired, settled and transferred, and always agree with a walk over every entry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResourceLedger, type ResourceKind } from '../../src/core/resource-ledger.js';

/** The counts a full walk over the ledger gives: what the index must agree with. */
function walked(ledger: ResourceLedger): Record<string, Partial<Record<ResourceKind, number>>> {
  const out: Record<string, Partial<Record<ResourceKind, number>>> = {};
  for (const e of ledger.all()) {
    const byKind = (out[e.owner] ??= {});
    byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
  }
  return out;
}

const spec = (kind: ResourceKind) => ({ kind, description: kind, release: async () => undefined });

test('per-owner counts stay right through acquire, settle and transfer', async () => {
  const ledger = new ResourceLedger();
  const check = () => {
    assert.deepEqual(ledger.counts(), walked(ledger));
    for (const owner of ['server:a', 'server:b', 'reaper', 'nobody']) {
      assert.deepEqual(ledger.countsOf(owner), walked(ledger)[owner] ?? {});
      assert.equal(ledger.countFor(owner), ledger.all().filter((e) => e.owner === owner).length);
      assert.deepEqual(
        ledger.owned(owner).map((e) => e.id),
        ledger
          .all()
          .filter((e) => e.owner === owner)
          .map((e) => e.id),
      );
    }
  };
  const a1 = ledger.acquire('server:a', spec('process-group'));
  const a2 = ledger.acquire('server:a', spec('mcp-client'));
  ledger.acquire('server:a', spec('timer'));
  const b1 = ledger.acquire('server:b', spec('process-group'));
  check();
  assert.deepEqual(ledger.countsOf('server:a'), { 'process-group': 1, 'mcp-client': 1, timer: 1 });
  a2.settle();
  a2.settle();
  check();
  assert.equal(ledger.transfer('server:a', 'reaper'), 2);
  check();
  assert.deepEqual(ledger.countsOf('server:a'), {});
  assert.deepEqual(ledger.countsOf('reaper'), { 'process-group': 1, timer: 1 });
  assert.equal(ledger.transfer('server:b', 'server:b'), 1, 'a transfer to itself moves nothing');
  check();
  a1.settle();
  b1.settle();
  check();
  // A copy: changing what countsOf returned changes nothing in the ledger.
  const copy = ledger.countsOf('reaper');
  copy.timer = 99;
  check();
  assert.equal(await ledger.releaseOwned('reaper').then((f) => f.length), 0);
  check();
  assert.equal(ledger.size(), 0);
  assert.deepEqual(ledger.counts(), {});
});

test('500 owners: a change costs what that owner holds', () => {
  const ledger = new ResourceLedger();
  for (let i = 0; i < 500; i++) for (const k of ['process-group', 'mcp-client'] as const) ledger.acquire(`server:s${i}`, spec(k));
  assert.equal(ledger.countFor('server:s250'), 2);
  assert.equal(ledger.owned('server:s499').length, 2);
  assert.deepEqual(ledger.counts(), walked(ledger));
});

test('releaseOwned: every outcome of a release (resolved, rejected, thrown, still present, isGone sync or async) in entry order', async () => {
  const ledger = new ResourceLedger();
  const o = 'server:mixed';
  let calls = 0;
  ledger.acquire(o, { kind: 'process-group', description: 'ok-sync-gone', release: async () => void calls++, isGone: () => true });
  ledger.acquire(o, { kind: 'socket', description: 'rejects', release: () => Promise.reject(new Error('no')) });
  ledger.acquire(o, {
    kind: 'timer',
    description: 'throws',
    release: () => {
      throw new Error('sync throw');
    },
  });
  ledger.acquire(o, { kind: 'container', description: 'still there', release: async () => undefined, isGone: () => false });
  ledger.acquire(o, { kind: 'file', description: 'async gone', release: async () => undefined, isGone: async () => true });
  ledger.acquire(o, {
    kind: 'listener',
    description: 'isGone throws',
    release: async () => undefined,
    isGone: () => {
      throw new Error('cannot tell');
    },
  });
  ledger.acquire(o, { kind: 'subscription', description: 'no isGone', release: async () => undefined });
  const failures = await ledger.releaseOwned(o);
  assert.equal(calls, 1);
  assert.deepEqual(
    failures.map((f) => [f.description, f.message]),
    [
      ['rejects', 'no'],
      ['throws', 'sync throw'],
      ['still there', 'still present after release'],
      ['isGone throws', 'cannot tell'],
    ],
  );
  assert.deepEqual(
    ledger
      .owned(o)
      .map((e) => e.description)
      .sort(),
    ['isGone throws', 'rejects', 'still there', 'throws'],
  );
  assert.deepEqual(await ledger.releaseOwned('nobody'), []);
});
