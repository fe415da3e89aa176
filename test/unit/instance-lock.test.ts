/**
 * The data-dir lock in-process: holder record, release, a lock taken over under its holder
 * (assertHeld, onCompromised, release leaves the new holder's lock alone), a dead holder's lock,
 * the lock settings' rules, and the relay that buffers until the daemon exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  acquireInstanceLock,
  inspectLockHolder,
  lockDirPath,
  lockFilePath,
  lockTimingFor,
  LockRelay,
} from '../../src/adapters/store/instance-lock.js';
import { WardenError } from '../../src/core/error-codes.js';
import { parseConfig } from '../../src/config/config-schema.js';
import { processStartTime } from '../helpers/process-table.js';
import { waitFor } from '../helpers/leak-check.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'mcp-warden-lock-'));
const noop = () => undefined;

test('acquire writes the holder record; release removes the lock dir; a second acquire then works', async () => {
  const dir = tempDir();
  try {
    const lock = await acquireInstanceLock(dir, { staleMs: 3_000, updateMs: 1_000, onCompromised: noop });
    assert.ok(existsSync(lockDirPath(dir)));
    const holder = JSON.parse(readFileSync(lockFilePath(dir), 'utf8')) as { pid: number; processStartTime: number };
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.processStartTime, processStartTime(process.pid));
    await lock.assertHeld();
    await lock.release();
    await lock.release(); // idempotent
    assert.equal(existsSync(lockDirPath(dir)), false);
    const again = await acquireInstanceLock(dir, { staleMs: 3_000, updateMs: 1_000, onCompromised: noop });
    await again.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('held: a second acquire fails with E_ALREADY_RUNNING', async () => {
  const dir = tempDir();
  try {
    const lock = await acquireInstanceLock(dir, { staleMs: 3_000, updateMs: 1_000, onCompromised: noop });
    await assert.rejects(
      acquireInstanceLock(dir, { staleMs: 3_000, updateMs: 1_000, onCompromised: noop, describeWaitMs: 50 }),
      (err: unknown) =>
        err instanceof WardenError && err.code === 'E_ALREADY_RUNNING' && /^mcp-warden is already running \(/.test(err.message),
    );
    await lock.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('taken over under its holder: assertHeld fails, onCompromised fires once, release leaves the new lock alone', async () => {
  const dir = tempDir();
  try {
    const errors: Error[] = [];
    const lock = await acquireInstanceLock(dir, { staleMs: 2_000, updateMs: 1_000, onCompromised: (e) => errors.push(e) });
    // Another process removes the lock and takes it (what a second successor of a dead daemon can do).
    rmdirSync(lockDirPath(dir));
    mkdirSync(lockDirPath(dir));
    await assert.rejects(lock.assertHeld(), (err: unknown) => err instanceof WardenError && err.code === 'E_ALREADY_RUNNING');
    assert.ok(await waitFor(() => errors.length > 0, { timeoutMs: 5_000 }), 'onCompromised was called');
    assert.equal(lock.compromised, true);
    await lock.release();
    assert.ok(existsSync(lockDirPath(dir)), "the new holder's lock dir is not removed");
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal(errors.length, 1, 'called once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('removed under its holder: assertHeld fails with E_LOCK_COMPROMISED', async () => {
  const dir = tempDir();
  try {
    const lock = await acquireInstanceLock(dir, { staleMs: 2_000, updateMs: 1_000, onCompromised: noop });
    rmdirSync(lockDirPath(dir));
    await assert.rejects(lock.assertHeld(), (err: unknown) => err instanceof WardenError && err.code === 'E_LOCK_COMPROMISED');
    await lock.release(); // before proper-lockfile noticed: the lock is forgotten, not removed later
    mkdirSync(lockDirPath(dir)); // someone else's lock now
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(existsSync(lockDirPath(dir)), "another holder's lock dir is left alone");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a dead holder's fresh lock: reported as such, then waited for and taken over once stale", async () => {
  const dir = tempDir();
  try {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10)']);
    const pid = child.pid!;
    const start = processStartTime(pid) ?? 1;
    await new Promise((r) => child.on('exit', r));
    writeFileSync(lockFilePath(dir), JSON.stringify({ pid, processStartTime: start, acquiredAt: 'then' }));
    mkdirSync(lockDirPath(dir)); // fresh: as if refreshed just before the SIGKILL
    const view = await inspectLockHolder(dir, 1_000);
    assert.equal(view.live, false);
    const t0 = Date.now();
    const lock = await acquireInstanceLock(dir, { staleMs: 2_000, updateMs: 1_000, onCompromised: noop });
    const waited = Date.now() - t0;
    assert.ok(waited >= 1_500 && waited < 4_000, `waited ${waited} ms`);
    await lock.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lock settings: ranges, the update/stale warning, and lockTimingFor', async () => {
  const bad = parseConfig({ mcpServers: {}, settings: { lockStaleMs: 1_999 } }, { baseDir: '/' });
  assert.equal(bad.ok, false);
  const badUpdate = parseConfig({ mcpServers: {}, settings: { lockUpdateMs: 999 } }, { baseDir: '/' });
  assert.equal(badUpdate.ok, false);
  const warned = parseConfig({ mcpServers: {}, settings: { lockStaleMs: 4_000, lockUpdateMs: 3_000 } }, { baseDir: '/' });
  assert.ok(warned.ok);
  assert.ok(warned.warnings.some((w) => w.path === '$.settings.lockUpdateMs'));

  const dir = tempDir();
  try {
    const cfg = join(dir, 'config.json');
    assert.deepEqual(await lockTimingFor(cfg), { staleMs: 3_000, updateMs: 1_000 }, 'missing config: defaults');
    writeFileSync(cfg, JSON.stringify({ mcpServers: {}, settings: { lockStaleMs: 6_000, lockUpdateMs: 2_000 } }));
    assert.deepEqual(await lockTimingFor(cfg), { staleMs: 6_000, updateMs: 2_000 });
    assert.deepEqual(await lockTimingFor(cfg, { lockStaleMs: 2_500 }), { staleMs: 2_500, updateMs: 2_000 });
    writeFileSync(cfg, '{ not json');
    assert.deepEqual(await lockTimingFor(cfg), { staleMs: 3_000, updateMs: 1_000 }, 'invalid config: defaults');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LockRelay buffers log lines and a compromise until bound', () => {
  const relay = new LockRelay();
  relay.log.info({ a: 1 }, 'early');
  relay.onCompromised(new Error('gone'));
  const lines: string[] = [];
  const logger = {
    debug: (_: object, m: string) => lines.push(`debug ${m}`),
    info: (_: object, m: string) => lines.push(`info ${m}`),
    warn: (_: object, m: string) => lines.push(`warn ${m}`),
    error: (_: object, m: string) => lines.push(`error ${m}`),
  };
  relay.bindLogger(logger);
  assert.deepEqual(lines, ['info early']);
  relay.log.warn({}, 'late');
  assert.deepEqual(lines, ['info early', 'warn late']);
  const seen: string[] = [];
  relay.bindCompromised((e) => seen.push(e.message));
  assert.deepEqual(seen, ['gone']);
  relay.onCompromised(new Error('again'));
  assert.deepEqual(seen, ['gone', 'again']);
});
