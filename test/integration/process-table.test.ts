/**
 * Both process tables (src/adapters/process/proc-table.ts and portable-table.ts) against real
 * processes on this machine: a spawned group is listed with its marker, found as a group, killed
 * and verified gone; the owner of a listening socket is found; start times agree across the two.
 * The portable one acting as if no environment were readable (macOS's view of other users'
 * processes) still finds the group through its mark file (group-marks.ts). Nothing is skipped:
 * without ps/pgrep/lsof the portable cases fail (scripts/ensure-process-tools.sh installs them).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PortableProcessTable, parseLsof, parseMarkers, parsePsLine } from '../../src/adapters/process/portable-table.js';
import { ProcProcessTable } from '../../src/adapters/process/proc-table.js';
import { isDead, resolveProcessTableKind, type ProcessTable } from '../../src/adapters/process/process-table.js';
import { GroupMarks, applyGroupMarks, pruneGroupMarks, readGroupMarks } from '../../src/adapters/process/group-marks.js';
import { killMarked, markedSnapshot } from '../../src/adapters/process/marker-kill.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import { ownerMarker, parseOwnerMarker } from '../../src/core/instance-identity.js';
import { assertNoProcessesWithMarker, newInstanceId, waitFor } from '../helpers/leak-check.js';

const TIMEOUT_MS = 5_000;
const tables: Array<[string, () => ProcessTable]> = [
  ['proc', () => new ProcProcessTable()],
  ['portable', () => new PortableProcessTable({ timeoutMs: TIMEOUT_MS })],
];

/** A group: `sh` (leader) with a `sleep` grandchild, both carrying MCP_WARDEN_INSTANCE=<id>. */
async function spawnGroup(id: string): Promise<{ pgid: number }> {
  const child = spawn('sh', ['-c', 'sleep 60 & wait'], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MCP_WARDEN_INSTANCE: id, MCP_WARDEN_SERVER: `${id}/table-test` },
  });
  child.unref();
  const pgid = child.pid!;
  const proc = new ProcProcessTable();
  // Two members is not enough: the forked child is `sh` until its exec of `sleep` lands.
  const started = () => {
    const members = proc.groupMembers(pgid);
    return members.length === 2 && members.some((p) => p.pid !== pgid && p.comm === 'sleep');
  };
  assert.ok(await waitFor(started, { timeoutMs: 5_000 }), 'group did not start');
  return { pgid };
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone
  }
}

describe('process tables', () => {
  for (const [name, make] of tables) {
    describe(name, () => {
      it('lists a spawned group with its markers, finds its members, kills it and sees it gone', async () => {
        const table = make();
        assert.equal(table.kind, name);
        const id = newInstanceId('ptable');
        const { pgid } = await spawnGroup(id);
        try {
          const all = table.list({ markers: true, command: true });
          const mine = all.filter((p) => p.markers?.MCP_WARDEN_INSTANCE === id);
          assert.deepEqual(mine.map((p) => p.pgid).sort(), [pgid, pgid]);
          const leader = mine.find((p) => p.pid === pgid)!;
          assert.ok(leader, 'leader listed');
          assert.equal(leader.markers?.MCP_WARDEN_SERVER, `${id}/table-test`);
          // The portable table splits ps's text at spaces: the same words either way.
          assert.equal(leader.command?.join(' '), 'sh -c sleep 60 & wait');
          const sleeper = mine.find((p) => p.pid !== pgid)!;
          assert.equal(sleeper.ppid, pgid);
          assert.equal(sleeper.comm, 'sleep');
          assert.deepEqual(
            table
              .groupMembers(pgid)
              .map((p) => p.pid)
              .sort((a, b) => a - b),
            mine.map((p) => p.pid).sort((a, b) => a - b),
          );
          assert.deepEqual(table.markersOf(sleeper.pid)?.MCP_WARDEN_INSTANCE, id);
          const viaAsync = (await table.listAsync({ markers: true })).filter((p) => p.markers?.MCP_WARDEN_INSTANCE === id);
          assert.deepEqual(
            viaAsync.map((p) => p.pid).sort((a, b) => a - b),
            mine.map((p) => p.pid).sort((a, b) => a - b),
            'the non-blocking listing sees the same',
          );
          assert.equal(table.get(pgid)?.startTime, leader.startTime);
          assert.equal(table.startTimeMatches(leader, leader.startTime), true);
          assert.equal(table.startTimeMatches(leader, leader.startTime + (name === 'proc' ? 1 : 1000)), false);
          const me = table.get(process.pid)!;
          assert.ok(
            table.groupMembers(me.pgid).some((p) => p.pid === process.pid),
            'own group lists this process',
          );

          const result = await killMarked({
            table,
            match: (t) => t.filter((p) => p.markers?.MCP_WARDEN_INSTANCE === id),
            termGraceMs: 500,
            deadlineMs: 3_000,
          });
          assert.equal(result.survivors.length, 0);
          assert.deepEqual(result.groups, [pgid]);
          assert.ok(
            result.seen.some((p) => p.argv[0] === 'sh'),
            'command lines reported',
          );
          assert.deepEqual(table.groupMembers(pgid), []);
          assert.equal(table.list({ markers: true }).filter((p) => !isDead(p) && p.markers?.MCP_WARDEN_INSTANCE === id).length, 0);
        } finally {
          killGroup(pgid);
          await assertNoProcessesWithMarker(id, 3_000);
        }
      });

      it('tolerates pids that do not exist', () => {
        const table = make();
        const none = 4_194_304 + 7; // above Linux's pid_max limit
        assert.equal(table.get(none), undefined);
        assert.deepEqual(table.groupMembers(none), []);
        assert.equal(table.markersOf(none), undefined);
        assert.deepEqual(table.commandOf(none), []);
      });

      it('finds the owner of a listening TCP socket', async () => {
        const table = make();
        const server = createServer();
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        const port = (server.address() as { port: number }).port;
        try {
          const owners = table.tcpListeners(port);
          assert.deepEqual(
            owners.map((o) => [o.pid, o.port, o.address]),
            [[process.pid, port, '127.0.0.1']],
          );
          assert.ok(
            table.tcpListeners().some((o) => o.pid === process.pid && o.port === port),
            'listed among all listeners',
          );
        } finally {
          await new Promise<void>((r) => server.close(() => r()));
        }
        assert.deepEqual(table.tcpListeners(port), []);
      });
    });
  }

  it('both tables agree on start times across their units', () => {
    const proc = new ProcProcessTable();
    const portable = new PortableProcessTable({ timeoutMs: TIMEOUT_MS });
    const a = proc.get(process.pid)!;
    const b = portable.get(process.pid)!;
    assert.deepEqual([a.pid, a.ppid, a.pgid], [b.pid, b.ppid, b.pgid]);
    assert.equal(proc.startTimeMatches(a, b.startTime), true, 'proc reads a portable start time');
    assert.equal(proc.startTimeMatches(a, b.startTime - 60_000), false);
    // Ticks cannot be turned into wall-clock time without /proc: unknown, so callers stay on the safe side.
    assert.equal(portable.startTimeMatches(b, a.startTime), undefined);
  });

  it('portable without readable environments finds a group by its mark file', async () => {
    const table = new PortableProcessTable({ timeoutMs: TIMEOUT_MS, readEnvironments: false });
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-marks-'));
    const id = newInstanceId('ptmark');
    const { pgid } = await spawnGroup(id);
    try {
      assert.equal(table.list({ markers: true }).find((p) => p.pid === pgid)?.markers, undefined, 'no environment without the mark');
      const marks = new GroupMarks(dir);
      assert.equal(marks.record({ pgid, leaderStartTime: table.get(pgid)!.startTime, markers: { MCP_WARDEN_INSTANCE: id } }), undefined);
      const snap = markedSnapshot(table, dir);
      assert.deepEqual(snap.filter((p) => p.markers?.MCP_WARDEN_INSTANCE === id).length, 2);
      // A mark whose leader is alive but another incarnation is not believed.
      const stale = table.list({ markers: true });
      applyGroupMarks(stale, [{ pgid, leaderStartTime: 1_000_000_000_000, markers: { MCP_WARDEN_INSTANCE: 'other' } }], table);
      assert.equal(stale.find((p) => p.pid === pgid)?.markers, undefined);

      const result = await killMarked({
        table,
        marksDir: dir,
        match: (t) => t.filter((p) => p.markers?.MCP_WARDEN_INSTANCE === id),
        termGraceMs: 500,
        deadlineMs: 3_000,
      });
      assert.equal(result.survivors.length, 0);
      assert.deepEqual(table.groupMembers(pgid), []);
      pruneGroupMarks(dir, table.list(), (m) => m.markers.MCP_WARDEN_INSTANCE === id);
      assert.deepEqual(readGroupMarks(dir), []);
    } finally {
      killGroup(pgid);
      rmSync(dir, { recursive: true, force: true });
      await assertNoProcessesWithMarker(id, 3_000);
    }
  });

  it('a missing ps is E_PROCESS_TABLE_UNAVAILABLE, not an empty table', async () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const table = new PortableProcessTable({ timeoutMs: TIMEOUT_MS });
      assert.throws(
        () => table.groupMembers(1),
        (err: unknown) => err instanceof WardenError && err.code === ErrorCodes.PROCESS_TABLE_UNAVAILABLE,
      );
      await assert.rejects(
        table.listAsync(),
        (err: unknown) => err instanceof WardenError && err.code === ErrorCodes.PROCESS_TABLE_UNAVAILABLE,
      );
    } finally {
      process.env.PATH = saved;
    }
  });

  it('parses ps, lsof and environment text', () => {
    const r = parsePsLine('  4242     1  4242 Ss   Thu Dec  3 06:30:55 2026 /usr/bin/node server.js --port 1');
    assert.deepEqual(r, {
      pid: 4242,
      ppid: 1,
      pgid: 4242,
      state: 'S',
      startTime: Date.UTC(2026, 11, 3, 6, 30, 55),
      comm: 'node',
      text: '/usr/bin/node server.js --port 1',
    });
    assert.equal(parsePsLine('garbage'), undefined);
    assert.deepEqual(parseMarkers(' A=1 MCP_WARDEN_INSTANCE=abc MCP_WARDEN_OWNER=1:2:abc B=x y MCP_WARDEN_INSTANCE=late'), {
      MCP_WARDEN_INSTANCE: 'abc',
      MCP_WARDEN_OWNER: '1:2:abc',
    });
    assert.deepEqual(parseLsof('p12\nf5\nn127.0.0.1:8080\nf6\nn[::1]:8080\np13\nn*:80\n'), [
      { pid: 12, port: 8080, address: '127.0.0.1' },
      { pid: 12, port: 8080, address: '::1' },
      { pid: 13, port: 80, address: '*' },
    ]);
    assert.equal(resolveProcessTableKind('auto', { MCP_WARDEN_PROCESS_TABLE: 'portable' }), 'portable');
    assert.equal(resolveProcessTableKind('proc', { MCP_WARDEN_PROCESS_TABLE: 'portable' }), 'proc');
    assert.equal(resolveProcessTableKind('auto', {}), 'proc');
  });
});

describe('owner markers across the two tables', () => {
  it('writes a wall-clock start time as w<ms>, which a /proc-only reader cannot parse', () => {
    const wall = ownerMarker({ pid: 42, startTime: Date.UTC(2026, 0, 1), instanceId: 'abc' });
    assert.equal(wall, `42:w${Date.UTC(2026, 0, 1)}:abc`);
    assert.equal(/^(\d+):(\d+):([A-Za-z0-9_-]+)$/.test(wall), false, 'the old marker syntax does not match');
    assert.deepEqual(parseOwnerMarker(wall), { pid: 42, startTime: Date.UTC(2026, 0, 1), instanceId: 'abc' });
    assert.equal(ownerMarker({ pid: 42, startTime: 987, instanceId: 'abc' }), '42:987:abc');
    assert.equal(parseOwnerMarker('42:w987:abc'), undefined, 'w with ticks is malformed');
    assert.equal(parseOwnerMarker(`42:${Date.UTC(2026, 0, 1)}:abc`), undefined, 'ms without w is malformed');
  });
});
