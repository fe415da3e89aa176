/**
 * Process groups against real processes: spawn failures, the stop escalation per hostile fixture,
 * grandchildren, the ledger paths (release, force release, audit), EPIPE, listener hygiene.
 * Also the pure parts underneath: /proc stat parsing and the stderr drain's rate limit.
 * (Both process tables against real processes: test/integration/process-table.test.ts.)
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { Logger } from 'pino';
import { ResourceLedger, type LedgerChange } from '../../src/core/resource-ledger.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import {
  spawnProcessGroup,
  startProcessGroup,
  type ProcessGroupHandle,
  type ProcessGroupSettings,
} from '../../src/adapters/process/process-group.js';
import { findByEnv, groupMembers, listProcesses, processStartTime, readProc, type ProcInfo } from '../helpers/process-table.js';
import { parseStat, readEnviron } from '../../src/adapters/process/proc-table.js';
import { drainStderr } from '../../src/adapters/process/stderr-drain.js';
import {
  assertNoProcessesWithMarker,
  killProcessesWithMarker,
  markedEnv,
  memoryLogger,
  newInstanceId,
  processesWithMarker,
  runLeakChecked,
  waitFor,
  type CapturedLog,
} from '../helpers/leak-check.js';
import { NODE, PROCESS_GROUP_SETTINGS as SETTINGS, fixture } from '../helpers/process-fixtures.js';

/** Scheduling slack on a loaded 2-CPU machine. */
const SLACK_MS = 250;

interface Rig {
  ledger: ResourceLedger;
  owner: string;
  instanceId: string;
  logger: Logger;
  lines: CapturedLog[];
  changes: LedgerChange[];
  spawn(command: string, args: string[], extraEnv?: Record<string, string>, settings?: Partial<ProcessGroupSettings>): ProcessGroupHandle;
  /** Spawns a node fixture and waits until it logged `ready`. */
  fixture(name: string, extraEnv?: Record<string, string>): Promise<ProcessGroupHandle>;
  stderrLines(): string[];
}

/**
 * Runs `body` with a fresh ledger and marker; afterwards asserts the ledger is empty and no marked
 * process remains. Whatever happens, nothing is left running (so a failure can't hang the runner).
 */
async function withRig(name: string, body: (rig: Rig) => Promise<void>): Promise<void> {
  const ledger = new ResourceLedger();
  const changes: LedgerChange[] = [];
  const unsubscribe = ledger.subscribe((c) => changes.push(c));
  const instanceId = newInstanceId(name);
  const { logger, lines } = memoryLogger();
  const owner = `server:${name}`;
  const stderrLines = () => lines.filter((l) => l.stream === 'stderr' && l.level === 30).map((l) => l.msg);
  const rig: Rig = {
    ledger,
    owner,
    instanceId,
    logger,
    lines,
    changes,
    spawn: (command, args, extraEnv = {}, settings = {}) =>
      spawnProcessGroup(
        { command, args, env: markedEnv(instanceId, extraEnv), label: name },
        { ledger, owner, logger, settings: { ...SETTINGS, ...settings } },
      ),
    async fixture(fixtureName, extraEnv = {}) {
      const h = rig.spawn(NODE, [fixture(fixtureName)], extraEnv);
      await h.spawned;
      const ready = await waitFor(() => stderrLines().some((l) => l.includes('ready')), { timeoutMs: 5_000 });
      assert.ok(ready, `${fixtureName} did not become ready`);
      return h;
    },
    stderrLines,
  };
  await runLeakChecked(() => body(rig), {
    verify: async () => {
      assert.equal(
        ledger.size(),
        0,
        `ledger not empty: ${ledger
          .all()
          .map((e) => e.description)
          .join(', ')}`,
      );
      await assertNoProcessesWithMarker(instanceId, 1_000);
    },
    cleanup: async () => {
      await ledger.sweep('force');
      killProcessesWithMarker(instanceId);
      unsubscribe();
    },
  });
}

/** The same incarnation (pid + start time) is still running; a zombie counts as dead. */
function isAlive(p: ProcInfo): boolean {
  const now = readProc(p.pid);
  return now !== undefined && now.startTime === p.startTime && now.state !== 'Z' && now.state !== 'X';
}

function assertSpawnFailed(err: unknown, ...fragments: string[]): true {
  assert.ok(err instanceof WardenError, `expected WardenError, got ${String(err)}`);
  assert.equal(err.code, ErrorCodes.SPAWN_FAILED);
  for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${f}`);
  return true;
}

describe('proc-table', () => {
  it('parses /proc/<pid>/stat with spaces and parentheses in comm', () => {
    const fields = Array.from({ length: 49 }, (_, i) => String(i + 3));
    fields[0] = 'S'; // state (3)
    fields[1] = '77'; // ppid (4)
    fields[2] = '4242'; // pgrp (5)
    fields[19] = '987654'; // starttime (22)
    const info = parseStat(`4243 (we ird) (name)) ${fields.join(' ')}\n`);
    assert.deepEqual(info, { pid: 4243, ppid: 77, pgid: 4242, state: 'S', startTime: 987654, comm: 'we ird) (name)' });
    assert.equal(parseStat('garbage'), undefined);
    assert.equal(parseStat('12 (x) S 1 2'), undefined);
  });

  it('sees this process and tolerates vanished pids', () => {
    const me = listProcesses().find((p) => p.pid === process.pid);
    assert.ok(me, 'own pid not listed');
    assert.equal(me.pgid, groupMembers(me.pgid).find((p) => p.pid === process.pid)?.pgid);
    assert.equal(processStartTime(process.pid), me.startTime);
    assert.equal(processStartTime(2 ** 22 + 1), undefined);
    assert.equal(readEnviron(2 ** 22 + 1), undefined);
    assert.deepEqual(groupMembers(2 ** 22 + 1), []);
    assert.equal(readEnviron(process.pid)?.PATH, process.env.PATH);
    assert.deepEqual(
      findByEnv('MCP_WARDEN_NO_SUCH_VARIABLE', () => true),
      [],
    );
  });
});

describe('stderr-drain', () => {
  it('splits lines, truncates long ones, rate-limits with a token bucket and summarises drops', async () => {
    const { logger, lines } = memoryLogger();
    let t = 1_000_000;
    const stream = new PassThrough();
    const drain = drainStderr(stream, { logger, maxLinesPerSecond: 5, maxLineBytes: 10, now: () => t });
    stream.write('one\ntwo\r\nthr');
    stream.write('ee\n' + 'x'.repeat(25) + '\n');
    await new Promise((r) => setImmediate(r));
    const info = () => lines.filter((l) => l.level === 30).map((l) => l.msg);
    assert.deepEqual(info(), ['one', 'two', 'three', 'xxxxxxxxxx']);
    assert.equal(lines.find((l) => l.msg === 'xxxxxxxxxx')?.truncatedBytes, 15);
    // One token left; then 10 more lines: 1 logged, 9 dropped.
    stream.write(Array.from({ length: 10 }, (_, i) => `burst ${i}`).join('\n') + '\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(info().length, 5);
    assert.equal(drain.dropped(), 9);
    // 400 ms later: 2 tokens refilled.
    t += 400;
    stream.write('a\nb\nc\n');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(info().slice(5), ['a', 'b']);
    assert.equal(drain.dropped(), 10);
    // An unterminated over-long line is not buffered beyond maxLineBytes; dispose flushes it and the summary.
    t += 1000;
    stream.write('y'.repeat(100_000));
    await new Promise((r) => setImmediate(r));
    drain.dispose();
    assert.equal(stream.listenerCount('data'), 0);
    assert.equal(stream.listenerCount('error'), 0);
    assert.deepEqual(info().slice(7), ['yyyyyyyyyy']);
    const summaries = lines.filter((l) => l.level === 40).map((l) => l.msg);
    assert.deepEqual(summaries, ['10 stderr lines dropped']);
    drain.dispose(); // idempotent
    stream.destroy();
  });
});

describe('process groups', () => {
  it('fails cleanly for a missing command: E_SPAWN_FAILED, nothing in the ledger', () =>
    withRig('missing', async (rig) => {
      const h = rig.spawn('/nonexistent/mcp-warden-no-such-command', ['x']);
      assert.equal(rig.ledger.size(), 0);
      await assert.rejects(h.spawned, (err) => assertSpawnFailed(err, '/nonexistent/mcp-warden-no-such-command', 'ENOENT'));
      assert.deepEqual(await h.exited, { code: null, signal: null });
      assert.equal(h.isGone(), true);
      assert.equal((await h.stop()).survivors, 0);
      await h.kill();
      // Same through PATH lookup, and via startProcessGroup.
      await assert.rejects(
        startProcessGroup(
          { command: 'mcp-warden-no-such-command-on-path', args: [], env: markedEnv(rig.instanceId), label: 'x' },
          { ledger: rig.ledger, owner: rig.owner, logger: rig.logger, settings: SETTINGS },
        ),
        (err) => assertSpawnFailed(err, 'mcp-warden-no-such-command-on-path', 'ENOENT'),
      );
      assert.equal(rig.changes.length, 0, 'the ledger saw an acquisition');
    }));

  it('fails cleanly for a bad cwd and a non-executable file', () =>
    withRig('badspawn', async (rig) => {
      const bad = spawnProcessGroup(
        { command: NODE, args: ['-e', '0'], env: markedEnv(rig.instanceId), cwd: '/nonexistent/dir', label: 'bad-cwd' },
        { ledger: rig.ledger, owner: rig.owner, logger: rig.logger, settings: SETTINGS },
      );
      await assert.rejects(bad.spawned, (err) => assertSpawnFailed(err, NODE, 'working directory', '/nonexistent/dir'));
      const dir = mkdtempSync(join(tmpdir(), 'warden-pg-'));
      try {
        const file = join(dir, 'not-executable.sh');
        writeFileSync(file, '#!/bin/sh\necho hi\n');
        chmodSync(file, 0o644);
        const h = rig.spawn(file, []);
        await assert.rejects(h.spawned, (err) => assertSpawnFailed(err, file, 'EACCES'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      assert.equal(rig.changes.length, 0, 'the ledger saw an acquisition');
    }));

  it('stops a well-behaved server with stdin EOF', () =>
    withRig('echo', async (rig) => {
      const h = await rig.fixture('echo-server');
      assert.equal(h.pgid, h.pid);
      assert.ok(h.pid > 1);
      const [entry] = rig.ledger.owned(rig.owner);
      assert.ok(entry);
      assert.equal(rig.ledger.size(), 1);
      assert.equal(entry.kind, 'process-group');
      assert.equal(entry.description, `pgid ${h.pgid}: echo`);
      assert.deepEqual(entry.facts, { pid: h.pid, pgid: h.pgid });
      assert.deepEqual(
        groupMembers(h.pgid).map((p) => p.pid),
        [h.pid],
      );
      assert.deepEqual(
        processesWithMarker(rig.instanceId).map((p) => p.pid),
        [h.pid],
      );
      assert.equal(h.isGone(), false);
      assert.equal(await entry.isGone!(), false);

      const report = await h.stop();
      assert.equal(report.escalation, 'eof');
      assert.equal(report.survivors, 0);
      assert.ok(report.durationMs < SETTINGS.stopEofGraceMs, `eof stop took ${report.durationMs} ms`);
      assert.deepEqual(await h.exited, { code: 0, signal: null });
      assert.equal(h.isGone(), true);
      assert.deepEqual(groupMembers(h.pgid), []);
      assert.deepEqual(
        rig.changes.map((c) => c.type),
        ['acquired', 'settled'],
      );
      // Everything we attached is gone and the pipes are closed.
      await waitFor(() => h.stdout.destroyed, { timeoutMs: 500 });
      for (const [s, events] of [
        [h.stdin, ['error', 'drain']],
        [h.stdout, ['error', 'data']],
      ] as const) {
        for (const e of events) assert.equal(s.listenerCount(e), 0, `${e} listener left`);
      }
      assert.ok(h.stdin.destroyed && h.stdout.destroyed);
      // Idempotent.
      assert.equal(await h.stop(), report);
      console.log(`[measure] echo-server stop: ${report.escalation} in ${report.durationMs} ms`);
    }));

  it('escalates to SIGTERM for a server that ignores EOF', () =>
    withRig('ignore-eof', async (rig) => {
      const h = await rig.fixture('ignore-eof-server');
      const report = await h.stop();
      assert.equal(report.escalation, 'sigterm');
      assert.ok(report.durationMs >= SETTINGS.stopEofGraceMs - 20, `too fast: ${report.durationMs}`);
      assert.ok(report.durationMs < SETTINGS.stopEofGraceMs + SETTINGS.stopTermGraceMs + SLACK_MS, `too slow: ${report.durationMs}`);
      assert.equal((await h.exited).signal, 'SIGTERM');
      assert.deepEqual(groupMembers(h.pgid), []);
      console.log(`[measure] ignore-eof-server stop: ${report.escalation} in ${report.durationMs} ms`);
    }));

  it('escalates to SIGKILL for a server that ignores EOF and SIGTERM', () =>
    withRig('ignore-sigterm', async (rig) => {
      const h = await rig.fixture('ignore-sigterm-server');
      const report = await h.stop();
      assert.equal(report.escalation, 'sigkill');
      const budget = SETTINGS.stopEofGraceMs + SETTINGS.stopTermGraceMs + SETTINGS.stopKillGraceMs;
      assert.ok(report.durationMs >= SETTINGS.stopEofGraceMs + SETTINGS.stopTermGraceMs - 20, `too fast: ${report.durationMs}`);
      assert.ok(report.durationMs < budget, `over budget: ${report.durationMs}`);
      assert.equal((await h.exited).signal, 'SIGKILL');
      assert.ok(rig.stderrLines().includes('ignoring SIGTERM'), 'the fixture never saw SIGTERM');
      console.log(`[measure] ignore-sigterm-server stop: ${report.escalation} in ${report.durationMs} ms`);
    }));

  it("kills the grandchild of `sh -c 'sleep 3600 & exec node server'`", () =>
    withRig('sh-grandchild', async (rig) => {
      const script = `sleep 3600 & exec '${NODE}' '${fixture('echo-server')}'`;
      const h = rig.spawn('sh', ['-c', script]);
      await h.spawned;
      assert.ok(
        // The forked child is `sh` until its exec of `sleep` lands: wait for the name, not just the count.
        await waitFor(
          () =>
            groupMembers(h.pgid).some((p) => p.pid !== h.pid && p.comm === 'sleep') && rig.stderrLines().some((l) => l.includes('ready')),
          { timeoutMs: 5_000 },
        ),
      );
      const sleeper = groupMembers(h.pgid).find((p) => p.pid !== h.pid);
      assert.ok(sleeper);
      assert.equal(sleeper.comm, 'sleep');
      assert.equal(processesWithMarker(rig.instanceId).length, 2);
      const report = await h.stop();
      // The server exits at EOF; the orphaned sleep keeps the group alive until SIGTERM.
      assert.equal(report.escalation, 'sigterm');
      assert.equal((await h.exited).code, 0);
      assert.equal(isAlive(sleeper), false, 'sleep survived');
      console.log(`[measure] sh -c grandchild stop: ${report.escalation} in ${report.durationMs} ms`);
    }));

  it('SIGKILLs a grandchild that ignores SIGTERM and holds the pipes open', () =>
    withRig('grandchild', async (rig) => {
      const h = await rig.fixture('grandchild-server');
      assert.ok(await waitFor(() => groupMembers(h.pgid).length === 2, { timeoutMs: 5_000 }));
      const sleeper = groupMembers(h.pgid).find((p) => p.pid !== h.pid)!;
      // Its SIGTERM handler is installed once it says so; before that a SIGTERM would simply end it.
      assert.ok(await waitFor(() => rig.stderrLines().some((l) => /sleeper \d+ started/.test(l)), { timeoutMs: 5_000 }));
      const report = await h.stop();
      assert.equal(isAlive(sleeper), false, 'sleeper survived');
      assert.equal(report.escalation, 'sigkill');
      assert.equal((await h.exited).code, 0);
      assert.ok(rig.stderrLines().some((l) => /sleeper \d+ ignoring SIGTERM/.test(l)));
      console.log(`[measure] grandchild-server stop: ${report.escalation} in ${report.durationMs} ms`);
    }));

  it('keeps the entry while a grandchild outlives the child; the audit settles it once the group is empty', () =>
    withRig('audit', async (rig) => {
      const h = await rig.fixture('grandchild-server');
      assert.ok(await waitFor(() => groupMembers(h.pgid).length === 2, { timeoutMs: 5_000 }));
      const sleeper = groupMembers(h.pgid).find((p) => p.pid !== h.pid)!;
      h.stdin.end(); // the server exits on EOF, the sleeper stays behind
      assert.equal((await h.exited).code, 0);
      assert.equal(h.isGone(), false);
      assert.equal((await rig.ledger.audit(rig.owner)).length, 1);
      process.kill(sleeper.pid, 'SIGKILL');
      assert.ok(await waitFor(async () => (await rig.ledger.audit(rig.owner)).length === 0, { timeoutMs: 2_000 }));
      assert.equal(h.isGone(), true);
      assert.equal((await h.stop()).escalation, 'eof');
    }));

  it('settles by itself when the server crashes with an empty group', () =>
    withRig('crash', async (rig) => {
      const h = await rig.fixture('crash-after-server', { CRASH_AFTER_MS: '200' });
      const exits: unknown[] = [];
      h.onExit((info) => exits.push(info));
      const unsubscribed: unknown[] = [];
      h.onExit((info) => unsubscribed.push(info))();
      assert.deepEqual(await h.exited, { code: 3, signal: null });
      assert.ok(await waitFor(() => rig.ledger.size() === 0, { timeoutMs: 1_000 }));
      assert.deepEqual(exits, [{ code: 3, signal: null }]);
      assert.deepEqual(unsubscribed, []);
      // A late subscriber still hears about the exit.
      const late = await new Promise((r) => h.onExit(r));
      assert.deepEqual(late, { code: 3, signal: null });
      assert.equal((await h.stop()).escalation, 'eof');
    }));

  it('shares one stop run between concurrent callers', () =>
    withRig('concurrent', async (rig) => {
      const h = await rig.fixture('ignore-eof-server');
      const [a, b] = await Promise.all([h.stop(), h.stop()]);
      assert.equal(a, b);
      assert.equal(a.escalation, 'sigterm');
      assert.equal(await h.stop(), a);
      const sigterms = rig.lines.filter((l) => l.msg === 'signalled process group' && l.signal === 'SIGTERM');
      assert.equal(sigterms.length, 1);
    }));

  it('kill() SIGKILLs the group at once', () =>
    withRig('kill', async (rig) => {
      const h = await rig.fixture('ignore-sigterm-server');
      const started = Date.now();
      await h.kill();
      const took = Date.now() - started;
      assert.ok(took < SETTINGS.stopKillGraceMs, `kill took ${took} ms`);
      assert.equal((await h.exited).signal, 'SIGKILL');
      assert.equal(h.isGone(), true);
      await h.kill(); // idempotent
      console.log(`[measure] kill(): ${took} ms`);
    }));

  it('is released through the ledger: releaseOwned (polite) and sweep (force)', () =>
    withRig('ledger', async (rig) => {
      const eofIgnorer = await rig.fixture('ignore-eof-server');
      const termIgnorer = rig.spawn(NODE, [fixture('ignore-sigterm-server')]);
      await termIgnorer.spawned;
      // Until node has installed its SIGTERM handler, SIGTERM would still kill it.
      assert.ok(await waitFor(() => rig.stderrLines().filter((l) => l.includes('ready')).length === 2, { timeoutMs: 5_000 }));
      assert.equal(rig.ledger.countFor(rig.owner), 2);
      const started = Date.now();
      assert.deepEqual(await rig.ledger.releaseOwned(rig.owner, 'polite'), []);
      const took = Date.now() - started;
      assert.equal((await eofIgnorer.exited).signal, 'SIGTERM');
      assert.equal((await termIgnorer.exited).signal, 'SIGKILL');
      assert.ok(took < SETTINGS.stopEofGraceMs + SETTINGS.stopTermGraceMs + SETTINGS.stopKillGraceMs, `release took ${took} ms`);
      assert.equal(rig.ledger.size(), 0);

      const again = rig.spawn(NODE, [fixture('ignore-sigterm-server')]);
      await again.spawned;
      const t0 = Date.now();
      assert.deepEqual(await rig.ledger.sweep('force'), []);
      const forced = Date.now() - t0;
      assert.ok(forced < SETTINGS.stopEofGraceMs, `force release took ${forced} ms`);
      assert.equal((await again.exited).signal, 'SIGKILL');
      console.log(`[measure] ledger releaseOwned (sigterm + sigkill servers): ${took} ms; sweep(force): ${forced} ms`);
    }));

  it('swallows EPIPE on stdin', () =>
    withRig('epipe', async (rig) => {
      // The shell closes its stdin, then sleeps: our writes hit a pipe without readers.
      const h = rig.spawn('sh', ['-c', 'exec 0<&-; exec sleep 30']);
      await h.spawned;
      await waitFor(() => readEnviron(h.pid) !== undefined && listProcesses().some((p) => p.pid === h.pid && p.comm === 'sleep'), {
        timeoutMs: 2_000,
      });
      const big = Buffer.alloc(256 * 1024, 0x61);
      for (let i = 0; i < 4 && !h.stdin.destroyed; i++) h.stdin.write(big);
      assert.ok(
        await waitFor(() => rig.lines.some((l) => l.msg === 'stdin error ignored' && l.code === 'EPIPE'), { timeoutMs: 2_000 }),
        'no EPIPE observed',
      );
      const report = await h.stop();
      assert.equal(report.escalation, 'sigterm');
    }));
});
