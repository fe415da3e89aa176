/**
 * Cost that does not grow with the number of upstreams: stopping many process groups
 * reads the process table a bounded number of times (never once per group per poll), still verifies
 * every group empty (a live member left behind in a group keeps it "not gone"), and the shared scans
 * of group-census.ts and marker-census.ts answer correctly. Real processes throughout; the table is
 * the real one, wrapped to count its reads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { spawnProcessGroup, type ProcessGroupHandle } from '../../src/adapters/process/process-group.js';
import { processTable } from '../../src/adapters/process/current-table.js';
import { GroupCensus, censusOf, groupHasProcesses } from '../../src/adapters/process/group-census.js';
import { MarkerCensus } from '../../src/adapters/process/marker-census.js';
import type { ListOptions, ProcessTable } from '../../src/adapters/process/process-table.js';
import {
  assertNoProcessesWithMarker,
  killProcessesWithMarker,
  markedEnv,
  memoryLogger,
  newInstanceId,
  waitFor,
} from '../helpers/leak-check.js';
import { PROCESS_GROUP_SETTINGS as SETTINGS } from '../helpers/process-fixtures.js';

/** The real table of this process, counting what is read through it. */
function countingTable(): { table: ProcessTable; reads: { list: number; groupMembers: number } } {
  const real = processTable();
  const reads = { list: 0, groupMembers: 0 };
  const table: ProcessTable = {
    kind: real.kind,
    list: (opts?: ListOptions) => (reads.list++, real.list(opts)),
    listAsync: (opts?: ListOptions) => (reads.list++, real.listAsync(opts)),
    get: (pid) => real.get(pid),
    groupMembers: (pgid) => (reads.groupMembers++, real.groupMembers(pgid)),
    commandOf: (pid) => real.commandOf(pid),
    markersOf: (pid) => real.markersOf(pid),
    tcpListeners: (port) => real.tcpListeners(port),
    startTimeMatches: (o, r) => real.startTimeMatches(o, r),
  };
  return { table, reads };
}

describe('group census', () => {
  it('stopping 40 groups reads the process table a bounded number of times, and every group is verified gone', async () => {
    const { table, reads } = countingTable();
    const ledger = new ResourceLedger();
    const instanceId = newInstanceId('census');
    const { logger } = memoryLogger();
    const handles: ProcessGroupHandle[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        // `sh -c 'cat'`: sh forks cat into the group, so each group has a leader and a member; both exit on EOF.
        handles.push(
          spawnProcessGroup(
            { command: 'sh', args: ['-c', 'cat; exit 0'], env: markedEnv(instanceId), label: `g${i}` },
            { ledger, owner: `server:g${i}`, logger, settings: SETTINGS, table },
          ),
        );
      }
      await Promise.all(handles.map((h) => h.spawned));
      const before = reads.list;
      const reports = await Promise.all(handles.map((h) => h.stop()));
      assert.ok(
        reports.every((r) => r.escalation === 'eof'),
        `every group ended on EOF: ${JSON.stringify(reports.map((r) => r.escalation))}`,
      );
      assert.equal(reads.groupMembers, 0, 'no per-group table read');
      // One scan per poll round at most while groups are still emptying, never one per group per poll.
      assert.ok(reads.list - before <= 15, `table scans during the stop of 40 groups: ${reads.list - before}`);
      for (const h of handles) {
        assert.equal(h.isGone(), true);
        assert.equal(groupHasProcesses(h.pgid), false, `group ${h.pgid} is empty in the kernel's eyes`);
      }
      assert.equal(ledger.size(), 0);
      await assertNoProcessesWithMarker(instanceId);
    } finally {
      killProcessesWithMarker(instanceId);
    }
  });

  it('a live member left in the group after the leader exited keeps the group "not gone" until it is killed', async () => {
    const { table } = countingTable();
    const ledger = new ResourceLedger();
    const instanceId = newInstanceId('census-left');
    const { logger } = memoryLogger();
    try {
      // The leader exits at once; its background sleep stays in the group (and ignores stdin EOF).
      const h = spawnProcessGroup(
        { command: 'sh', args: ['-c', 'sleep 30 </dev/null >/dev/null 2>&1 & exit 0'], env: markedEnv(instanceId), label: 'left' },
        { ledger, owner: 'server:left', logger, settings: SETTINGS, table },
      );
      await h.spawned;
      await h.exited;
      assert.equal(groupHasProcesses(h.pgid), true);
      assert.equal(h.isGone(), false, 'the sleeper is a live member');
      assert.equal(ledger.size(), 1, 'still owned');
      const report = await h.stop();
      assert.equal(report.escalation, 'sigterm');
      assert.equal(h.isGone(), true);
      // The sleeper's parent is now init, which in a container may never reap it: a zombie can keep
      // the pgid alive (the signal probe still says "something"), but no live member is left.
      assert.deepEqual(processTable().groupMembers(h.pgid), []);
      assert.equal(ledger.size(), 0);
      await assertNoProcessesWithMarker(instanceId);
    } finally {
      killProcessesWithMarker(instanceId);
    }
  });

  it('a group with only a zombie in it counts as empty; a scan older than the exit is not trusted', () => {
    const { table, reads } = countingTable();
    let t = 1_000;
    // Probe says "something has the pgid" (as for a zombie); the table shows no live member.
    const census = new GroupCensus(
      table,
      () => t,
      () => true,
    );
    assert.deepEqual(census.liveMembers(2 ** 22 + 7, 1_000), []);
    assert.equal(reads.list, 1);
    t += 5;
    census.liveMembers(2 ** 22 + 8, 1_000);
    assert.equal(reads.list, 1, 'a fresh scan after the exit is shared');
    census.liveMembers(2 ** 22 + 8, 1_003);
    assert.equal(reads.list, 2, 'a scan taken before the exit was seen is not used');
    const me = table.get(process.pid)!;
    assert.ok(census.liveMembers(me.pgid, 0).includes(process.pid), 'live members are found');
    // No process has the pgid: no table read at all.
    const probing = new GroupCensus(table);
    const n = reads.list;
    assert.deepEqual(probing.liveMembers(2 ** 22 + 9, 0), []);
    assert.equal(reads.list, n);
    assert.equal(censusOf(table), censusOf(table), 'one census per table');
  });

  it('marker census: requests made together share one scan; a request after a scan gets a new one', async () => {
    const { table, reads } = countingTable();
    const census = new MarkerCensus(() => table);
    const all = await Promise.all(Array.from({ length: 25 }, () => census.snapshot()));
    assert.equal(reads.list, 1);
    assert.ok(all.every((s) => s === all[0]));
    assert.ok(all[0]!.some((p) => p.pid === process.pid));
    const later = await census.snapshot();
    assert.equal(reads.list, 2);
    assert.notEqual(later, all[0]);
    assert.ok(await waitFor(() => census.scans === 2, { timeoutMs: 100 }));
  });

  it('marker census with candidates: markers are read only for the processes it accepts; a process started after a cut-off is still found', async () => {
    const instanceId = newInstanceId('candidates');
    const self = processTable().get(process.pid)!;
    // Processes that started no earlier than this one (the daemon's rule in teardown-actors.ts).
    const census = new MarkerCensus(processTable, (p) => p.startTime >= self.startTime);
    const child = spawn('sleep', ['30'], { env: markedEnv(instanceId), stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      const all = await census.snapshot();
      const found = all.find((p) => p.pid === child.pid);
      assert.equal(found?.markers?.MCP_WARDEN_INSTANCE, instanceId, 'the marked child started after the cut-off: its markers are read');
      const older = all.filter((p) => p.startTime < self.startTime);
      assert.ok(older.length > 0, 'the machine has processes older than this one (pid 1 at least)');
      // The portable table gets every environment from one `ps` call and may ignore the filter (process-table.ts).
      if (processTable().kind === 'proc') {
        assert.ok(
          older.every((p) => p.markers === undefined),
          'no environment read for processes older than the cut-off',
        );
      }
      assert.ok(all.length > older.length, 'every process is still listed');
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('marker census hold: a pending scan waits for the hold to be let go, and never longer than its bound', async () => {
    const { table, reads } = countingTable();
    const census = new MarkerCensus(() => table);
    const letGo = census.hold();
    const first = census.snapshot();
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(reads.list, 0, 'no scan while a teardown that will ask is still releasing');
    letGo();
    letGo(); // a second call changes nothing
    await first;
    assert.equal(reads.list, 1, 'scanned once the hold was let go');
    // A hold never let go (a release that hangs) delays a scan by its bound only (100 ms), not forever.
    census.hold();
    const t0 = performance.now();
    await census.snapshot();
    assert.equal(reads.list, 2);
    assert.ok(performance.now() - t0 < 2_000, `waited ${performance.now() - t0} ms`);
  });

  it('marker census: markers read once are kept by pid and start time; a later scan reads only new processes and still reports them', async (t) => {
    if (processTable().kind !== 'proc') return t.skip('the portable table reads every environment at once (process-table.ts)');
    const instanceId = newInstanceId('known');
    const real = processTable();
    const readFor: number[][] = [];
    const table: ProcessTable = {
      ...countingTable().table,
      listAsync: (opts?: ListOptions) => {
        const read: number[] = [];
        readFor.push(read);
        const markersOf = opts?.markersOf;
        return real.listAsync({ ...opts, markersOf: (p) => (markersOf ? markersOf(p) : true) && (read.push(p.pid), true) });
      },
    };
    const census = new MarkerCensus(() => table);
    const child = spawn('sleep', ['30'], { env: markedEnv(instanceId), stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      const first = await census.snapshot();
      assert.equal(first.find((p) => p.pid === child.pid)?.markers?.MCP_WARDEN_INSTANCE, instanceId);
      assert.ok(readFor[0]!.includes(child.pid!), 'read on the first scan');
      const second = await census.snapshot();
      assert.equal(second.find((p) => p.pid === child.pid)?.markers?.MCP_WARDEN_INSTANCE, instanceId, 'still reported');
      assert.ok(!readFor[1]!.includes(child.pid!), 'not read again');
      assert.ok(readFor[1]!.length < readFor[0]!.length, `second scan read ${readFor[1]!.length}, first ${readFor[0]!.length}`);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('marker census with skip: a skipped pid is not listed by the /proc table; every other one is', async (t) => {
    if (processTable().kind !== 'proc') return t.skip('the portable table may list skipped pids anyway (process-table.ts)');
    const skipped = spawn('sleep', ['30'], { stdio: 'ignore' });
    const kept = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await Promise.all([once(skipped, 'spawn'), once(kept, 'spawn')]);
      const census = new MarkerCensus(processTable, undefined, (pid) => pid === skipped.pid);
      const pids = new Set((await census.snapshot()).map((p) => p.pid));
      assert.equal(pids.has(skipped.pid!), false, 'the skipped pid is not listed');
      assert.ok(pids.has(kept.pid!) && pids.has(process.pid), 'the others are');
    } finally {
      for (const c of [skipped, kept]) c.kill('SIGKILL');
      await Promise.all([once(skipped, 'exit'), once(kept, 'exit')]);
    }
  });
});
