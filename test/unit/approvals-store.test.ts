/**
 * ApprovalsStore on a real temp dir: coalesced writes lose nothing, and a reload sees every change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApprovalsStore, type ServerApproval } from '../../src/adapters/store/approvals-store.js';

const approval = (n: number): ServerApproval => ({
  approvedAt: new Date(0).toISOString(),
  by: 'trust-on-first-use',
  tools: { [`tool${n}`]: { fingerprint: `fp-${n}` } as ServerApproval['tools'][string] },
});

test('50 changes in one turn are all persisted, in far fewer writes, and survive a reload', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    const store = new ApprovalsStore(dir);
    assert.deepEqual(store.load(), { ok: true });
    let writes = 0;
    const realStringify = JSON.stringify;
    // Count snapshots: every write serialises the whole file once.
    JSON.stringify = ((...a: Parameters<typeof JSON.stringify>) => {
      if (a[0] && typeof a[0] === 'object' && 'servers' in (a[0] as object)) writes++;
      return realStringify(...a);
    }) as typeof JSON.stringify;
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.set(`s${i}`, approval(i))));
      await store.delete('s7');
    } finally {
      JSON.stringify = realStringify;
    }
    assert.ok(writes <= 3, `expected the 50 sets to coalesce, got ${writes} writes`);
    const onDisk = JSON.parse(readFileSync(join(dir, 'approvals.json'), 'utf8')) as { servers: Record<string, unknown> };
    assert.equal(Object.keys(onDisk.servers).length, 49);
    assert.equal('s7' in onDisk.servers, false);
    const again = new ApprovalsStore(dir);
    assert.deepEqual(again.load(), { ok: true });
    assert.deepEqual(again.get('s49'), approval(49));
    assert.deepEqual(readdirSync(dir).sort(), ['approvals.json'], 'no temp file left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a change made while a write is in progress gets a write of its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    const store = new ApprovalsStore(dir);
    store.load();
    const first = store.set('a', approval(1));
    await new Promise((r) => setImmediate(r)); // the first write has started (snapshot taken)
    const second = store.set('b', approval(2));
    assert.notEqual(first, second);
    await Promise.all([first, second]);
    const onDisk = JSON.parse(readFileSync(join(dir, 'approvals.json'), 'utf8')) as { servers: Record<string, unknown> };
    assert.deepEqual(Object.keys(onDisk.servers).sort(), ['a', 'b']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupted file is moved aside by the first write, never overwritten in place', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    writeFileSync(join(dir, 'approvals.json'), '{not json');
    const store = new ApprovalsStore(dir);
    assert.equal(store.load().ok, false);
    await Promise.all([store.set('a', approval(1)), store.set('b', approval(2))]);
    const names = readdirSync(dir).sort();
    assert.equal(names.length, 2, names.join(', '));
    assert.match(names[1]!, /^approvals\.json\.corrupt-\d+$/);
    assert.equal(readFileSync(join(dir, names[1]!), 'utf8'), '{not json');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
