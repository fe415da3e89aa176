/**
 * ApprovalsStore on a real temp dir: coalesced writes lose nothing, and a reload sees every change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    assert.deepEqual(readdirSync(dir).sort(), ['approvals.json', 'approved-once.json'], 'no temp file left');
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
    const names = readdirSync(dir)
      .filter((n) => n !== 'approved-once.json')
      .sort();
    assert.equal(names.length, 2, names.join(', '));
    assert.match(names[1]!, /^approvals\.json\.corrupt-\d+$/);
    assert.equal(readFileSync(join(dir, names[1]!), 'utf8'), '{not json');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('approved-once marks: a record removed from a valid file, or the file deleted, still reads as approved before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    const store = new ApprovalsStore(dir);
    store.load();
    await store.set('a', approval(1));
    await store.set('b', approval(2));
    // The record of "a" is removed by hand; the file stays valid JSON.
    const file = join(dir, 'approvals.json');
    const data = JSON.parse(readFileSync(file, 'utf8')) as { servers: Record<string, unknown> };
    delete data.servers['a'];
    writeFileSync(file, JSON.stringify(data));
    const again = new ApprovalsStore(dir);
    assert.deepEqual(again.load(), { ok: true });
    assert.equal(again.get('a'), undefined);
    assert.equal(again.approvedBefore('a'), approval(1).approvedAt, 'the mark outlives the record');
    assert.equal(again.approvedBefore('never'), undefined);
    // The whole file deleted.
    rmSync(file);
    const third = new ApprovalsStore(dir);
    assert.deepEqual(third.load(), { ok: true });
    assert.ok(third.approvedBefore('a') !== undefined && third.approvedBefore('b') !== undefined);
    // Removing a server forgets its mark too.
    await third.delete('b');
    const fourth = new ApprovalsStore(dir);
    fourth.load();
    assert.equal(fourth.approvedBefore('b'), undefined);
    assert.ok(fourth.approvedBefore('a') !== undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('approved-once marks: records written before the marks existed are marked at load; a corrupt marks file fails the load', () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    writeFileSync(join(dir, 'approvals.json'), JSON.stringify({ version: 1, servers: { old: approval(3) } }));
    const store = new ApprovalsStore(dir);
    assert.deepEqual(store.load(), { ok: true });
    const marks = JSON.parse(readFileSync(join(dir, 'approved-once.json'), 'utf8')) as { approvedOnce: Record<string, string> };
    assert.deepEqual(Object.keys(marks.approvedOnce), ['old'], 'seeded on disk at load');
    writeFileSync(join(dir, 'approved-once.json'), '{"version":1,"approvedOnce":{"x":');
    const bad = new ApprovalsStore(dir).load();
    assert.equal(bad.ok, false);
    assert.ok(!bad.ok && bad.reason.includes(join(dir, 'approved-once.json')), 'the reason names the marks file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('withheld tools are persisted with the record, and a malformed list fails the load', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    const store = new ApprovalsStore(dir);
    store.load();
    await store.set('s', approval(1));
    await store.setWithheld('s', ['b', 'a', 'b']);
    const again = new ApprovalsStore(dir);
    again.load();
    assert.deepEqual(again.get('s')?.withheld, ['a', 'b']);
    const file = join(dir, 'approvals.json');
    writeFileSync(file, JSON.stringify({ version: 1, servers: { s: { ...approval(1), withheld: 'a' } } }));
    assert.equal(new ApprovalsStore(dir).load().ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('approved-once marks: the record is written before its mark, so a lost mark write never quarantines after a crash', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'approvals-'));
  try {
    const store = new ApprovalsStore(dir);
    store.load();
    const errors: unknown[] = [];
    store.onMarksWriteError = (err) => errors.push(err);
    // The marks file cannot be replaced (a directory stands in its place): as if the daemon died
    // between the two writes.
    mkdirSync(join(dir, 'approved-once.json'));
    await store.set('a', approval(1));
    assert.equal(errors.length, 1, 'the failed mark write is reported');
    const onDisk = JSON.parse(readFileSync(join(dir, 'approvals.json'), 'utf8')) as { servers: Record<string, unknown> };
    assert.ok(onDisk.servers['a'], 'the record was written although its mark could not be');
    // The next start (the obstacle gone) finds the record, trusts it and marks it.
    rmSync(join(dir, 'approved-once.json'), { recursive: true });
    const again = new ApprovalsStore(dir);
    assert.deepEqual(again.load(), { ok: true });
    assert.deepEqual(again.get('a'), approval(1));
    assert.equal(again.approvedBefore('a'), approval(1).approvedAt);
    const marks = JSON.parse(readFileSync(join(dir, 'approved-once.json'), 'utf8')) as { approvedOnce: Record<string, string> };
    assert.deepEqual(Object.keys(marks.approvedOnce), ['a']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
