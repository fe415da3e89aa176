/**
 * How `stop` waits for the daemon's exit (src/cli/daemon-exit-wait.ts) and the synchronous removal
 * of daemon.json at the daemon's exit: with a real child process standing in for the daemon and a
 * real lock dir whose removal wakes the wait.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForDaemonExit } from '../../src/cli/daemon-exit-wait.js';
import { lockDirPath } from '../../src/adapters/store/lock-holder.js';
import { daemonFilePath, removeDaemonFileSync } from '../../src/adapters/store/daemon-file.js';
import { processStartTime } from '../helpers/process-table.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'mcp-warden-exit-wait-'));

/** A process that runs until killed, and how `stop` identifies it. */
async function standIn(): Promise<{ child: ChildProcess; info: { pid: number; processStartTime: number }; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((r) => child.once('spawn', r));
  const startTime = processStartTime(child.pid!);
  assert.ok(startTime !== undefined && startTime > 0, 'the stand-in has a start time');
  return { child, info: { pid: child.pid!, processStartTime: startTime }, exited };
}

test('the wait ends once the process has exited, woken by the lock dir going first', async () => {
  const dir = tempDir();
  const { child, info, exited } = await standIn();
  try {
    mkdirSync(lockDirPath(dir));
    let killedAt = Infinity;
    const waiting = waitForDaemonExit(dir, info, Date.now() + 10_000);
    // The holder's mtime refresh is reported as an event too: it must not count as the release.
    setTimeout(() => utimesSync(lockDirPath(dir), new Date(), new Date()), 20);
    setTimeout(() => {
      rmdirSync(lockDirPath(dir));
      killedAt = Date.now();
      child.kill('SIGKILL');
    }, 100);
    assert.equal(await waiting, true);
    assert.ok(Date.now() >= killedAt, 'the wait ended only after the process was killed');
    await exited;
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a lock dir to watch the wait still ends at the exit; at the deadline it gives up with false', async () => {
  const dir = tempDir();
  const { child, info, exited } = await standIn();
  try {
    const t0 = Date.now();
    assert.equal(await waitForDaemonExit(dir, info, t0 + 150), false);
    assert.ok(Date.now() - t0 >= 150);
    assert.ok(!child.killed && child.exitCode === null, 'the stand-in still runs');
    let killedAt = Infinity;
    setTimeout(() => {
      killedAt = Date.now();
      child.kill('SIGKILL');
    }, 50);
    assert.equal(await waitForDaemonExit(dir, info, Date.now() + 10_000), true);
    assert.ok(Date.now() >= killedAt, 'the wait ended only after the process was killed');
    await exited;
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test("removeDaemonFileSync removes our daemon.json only; a successor's stays; a missing one is fine", () => {
  const dir = tempDir();
  try {
    const file = daemonFilePath(dir);
    writeFileSync(file, JSON.stringify({ pid: 1, url: 'http://127.0.0.1:1', instanceId: 'successor' }), { mode: 0o600 });
    removeDaemonFileSync(dir, 'ours');
    assert.ok(existsSync(file), "a successor's daemon.json is left alone");
    writeFileSync(file, JSON.stringify({ pid: 1, url: 'http://127.0.0.1:1', instanceId: 'ours' }), { mode: 0o600 });
    removeDaemonFileSync(dir, 'ours');
    assert.equal(existsSync(file), false);
    removeDaemonFileSync(dir, 'ours'); // missing: no throw
    writeFileSync(file, 'not json', { mode: 0o600 });
    removeDaemonFileSync(dir, 'ours');
    assert.equal(existsSync(file), false, 'a corrupt one is removed, as removeDaemonFile does');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
