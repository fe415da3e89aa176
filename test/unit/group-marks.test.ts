/**
 * The daemon's group marks written off the event loop (group-marks.ts `recordLater`): a mark lands
 * with its content, a removal queued behind a pending write never leaves the write's file behind,
 * a failed write is reported, and `settled` waits for all of it. Real files in a temp dir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupMarks, readGroupMarks } from '../../src/adapters/process/group-marks.js';

const markers = { MCP_WARDEN_INSTANCE: 'marks-test' };

test('recordLater writes the mark (making its directory), forget after a pending write leaves no file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mcp-warden-marks-'));
  try {
    const marks = new GroupMarks(join(root, 'process-groups'));
    const errors: string[] = [];
    marks.recordLater({ pgid: 4242, leaderStartTime: 7, markers }, (m) => errors.push(m));
    marks.recordLater({ pgid: 4343, markers }, (m) => errors.push(m));
    // Forgotten before its write could have landed: the removal runs after the write.
    marks.forget(4343);
    await marks.settled();
    assert.equal(errors.length, 0, errors.join('; '));
    assert.deepEqual(readGroupMarks(marks.dir), [{ pgid: 4242, leaderStartTime: 7, markers }]);
    assert.equal(existsSync(join(marks.dir, '4343.json')), false);
    // With nothing queued, forget removes off the event loop too: gone once settled.
    marks.forget(4242);
    await marks.settled();
    assert.equal(existsSync(join(marks.dir, '4242.json')), false);
    // A pgid reused after its removal gets its new mark.
    marks.recordLater({ pgid: 4343, leaderStartTime: 9, markers }, (m) => errors.push(m));
    await marks.settled();
    assert.deepEqual(readGroupMarks(marks.dir), [{ pgid: 4343, leaderStartTime: 9, markers }]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a mark that cannot be written is reported, and settled still resolves', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mcp-warden-marks-'));
  try {
    // The marks "directory" is a file: neither the write nor the mkdir can succeed.
    const notADir = join(root, 'process-groups');
    writeFileSync(notADir, 'x');
    const marks = new GroupMarks(notADir);
    const errors: string[] = [];
    marks.recordLater({ pgid: 4444, markers }, (m) => errors.push(m));
    await marks.settled();
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /ENOTDIR|EEXIST/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('during a shutdown (deferRemovals) forget keeps the mark until removeDeferred or settled; afterwards at once again', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mcp-warden-marks-'));
  try {
    const marks = new GroupMarks(join(root, 'process-groups'));
    const errors: string[] = [];
    for (const pgid of [5001, 5002, 5003]) marks.recordLater({ pgid, markers }, (m) => errors.push(m));
    await marks.settled();
    marks.deferRemovals();
    marks.forget(5001);
    marks.forget(5002);
    assert.deepEqual(
      readGroupMarks(marks.dir)
        .map((m) => m.pgid)
        .sort(),
      [5001, 5002, 5003],
      'nothing removed yet',
    );
    marks.removeDeferred();
    assert.deepEqual(
      readGroupMarks(marks.dir).map((m) => m.pgid),
      [5003],
      'the batch is gone when removeDeferred returns',
    );
    // Still deferring until settled, which removes the rest of the batch and ends the deferral.
    marks.forget(5003);
    assert.equal(existsSync(join(marks.dir, '5003.json')), true);
    await marks.settled();
    assert.equal(existsSync(join(marks.dir, '5003.json')), false);
    marks.recordLater({ pgid: 5004, markers }, (m) => errors.push(m));
    await marks.settled();
    marks.forget(5004);
    assert.equal(existsSync(join(marks.dir, '5004.json')), false, 'removed at once after settled');
    assert.equal(errors.length, 0, errors.join('; '));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
