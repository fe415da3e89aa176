/**
 * The call log on real files: buffered calls reach calls.jsonl only at the flush, the file rotates at
 * callLogMaxBytes keeping callLogFileCount old files (disk use bounded), the reader reads them back
 * oldest first, payloads are kept only when asked and then redacted and cut, a symlink in the data
 * dir is refused, and close() writes what is buffered and leaves nothing in the ledger.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CallLog, CALL_LOG_FILE } from '../../src/adapters/observability/call-log.js';
import { readCallLogFiles } from '../../src/adapters/observability/call-log-files.js';
import { outcomeOf } from '../../src/adapters/observability/call-record.js';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { DEFAULT_SETTINGS, type Settings } from '../../src/core/settings.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const quiet = pino({ enabled: false });

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-calllog-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function makeLog(dir: string, settings: Partial<Settings>, ledger = new ResourceLedger()): CallLog {
  return new CallLog({ file: join(dir, CALL_LOG_FILE), settings: { ...DEFAULT_SETTINGS, ...settings }, ledger, logger: quiet });
}

describe('call log', () => {
  it(
    'buffers on the call path, writes at the flush, and rotates by size',
    withDir(async (dir) => {
      const ledger = new ResourceLedger();
      const log = makeLog(dir, { callLogMaxBytes: 2048, callLogFileCount: 2, callLogFlushMs: 60_000 }, ledger);
      const file = join(dir, CALL_LOG_FILE);
      for (let i = 0; i < 10; i++) log.record(Date.now(), undefined, `srv__tool${i}`, 'sess-1', i + 0.5, 'ok', null, { i }, undefined);
      // Nothing on disk before the flush: the call path never writes.
      assert.equal(statSync(file).size, 0);
      log.flush();
      assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 10);
      // About 150 bytes a line: 200 more calls rotate several times; only 2 old files are kept.
      for (let i = 10; i < 210; i++) {
        log.record(
          Date.now(),
          'srv',
          `tool${i}`,
          'sess-1',
          i,
          i % 2 ? 'ok' : 'error',
          i % 2 ? null : 'E_UPSTREAM_ERROR',
          undefined,
          undefined,
        );
        if (i % 25 === 0) log.flush();
      }
      log.flush();
      const files = readdirSync(dir)
        .filter((f) => f.startsWith(CALL_LOG_FILE))
        .sort();
      assert.deepEqual(files, [CALL_LOG_FILE, `${CALL_LOG_FILE}.1`, `${CALL_LOG_FILE}.2`]);
      for (const f of files) assert.ok(statSync(join(dir, f)).size <= 2048, `${f} exceeds callLogMaxBytes`);
      assert.ok(log.fileStats()!.rotations >= 3);
      // Read back: oldest first, the newest one last, each a complete entry.
      const back = await readCallLogFiles(dir);
      assert.ok(back.length > 20 && back.length < 210);
      assert.equal(back.at(-1)!.tool, 'tool209');
      assert.equal(back.at(-1)!.server, 'srv');
      assert.equal(back.at(-1)!.durationMs, 209);
      for (let i = 1; i < back.length; i++) assert.ok(Number(back[i]!.tool.slice(4)) > Number(back[i - 1]!.tool.slice(4)));
      assert.equal((await readCallLogFiles(dir, { limit: 3 })).length, 3);
      // The memory ring: newest last, filtered.
      assert.equal(log.recent({ limit: 1 })[0]!.tool, 'tool209');
      assert.equal(log.recent({ server: 'nobody' }).length, 0);
      assert.equal(ledger.size(), 2);
      await log.close();
      assert.equal(ledger.size(), 0);
    }),
  );

  it(
    'keeps arguments (and results) only when asked, redacted and cut to size',
    withDir(async (dir) => {
      const none = makeLog(dir, {});
      none.record(Date.now(), undefined, 'a__b', undefined, 1, 'ok', null, { password: 'hunter2' }, { content: [] });
      await none.close();
      assert.ok(!readFileSync(join(dir, CALL_LOG_FILE), 'utf8').includes('hunter2'));
      rmSync(join(dir, CALL_LOG_FILE));

      const all = makeLog(dir, { callLogPayloads: 'all', callLogPayloadMaxBytes: 200 });
      all.record(
        Date.now(),
        undefined,
        'a__b',
        's',
        1,
        'ok',
        null,
        {
          query: 'cats',
          apiKey: 'sk-123456',
          nested: { token: 'abc' },
          url: 'https://user:pw@example.com/x',
          text: '--password=swordfish',
        },
        { content: [{ type: 'text', text: 'x'.repeat(1000) }] },
      );
      await all.close();
      const line = JSON.parse(readFileSync(join(dir, CALL_LOG_FILE), 'utf8').trim()) as {
        arguments: { query: string; apiKey: string; nested: { token: string } };
        result: { truncated: boolean; json: string };
      };
      assert.equal(line.arguments.query, 'cats');
      assert.equal(line.arguments.apiKey, '[redacted]');
      assert.equal(line.arguments.nested.token, '[redacted]');
      const text = JSON.stringify(line);
      for (const secret of ['sk-123456', 'abc"', ':pw@', 'swordfish']) assert.ok(!text.includes(secret), `${secret} leaked`);
      assert.equal(line.result.truncated, true);
      assert.ok(Buffer.byteLength(line.result.json) <= 200);
    }),
  );

  it(
    'refuses a symlink at calls.jsonl (the target is untouched) and drops beyond callLogMaxPending',
    withDir(async (dir) => {
      const target = join(dir, 'elsewhere');
      writeFileSync(target, 'precious\n');
      symlinkSync(target, join(dir, CALL_LOG_FILE));
      const log = makeLog(dir, { callLogMaxPending: 3 });
      for (let i = 0; i < 5; i++) log.record(Date.now(), undefined, 'a__b', undefined, 1, 'ok', null, undefined, undefined);
      assert.equal(log.dropped, 2);
      log.flush();
      assert.equal(log.recent().length, 3);
      await log.close();
      assert.equal(readFileSync(target, 'utf8'), 'precious\n');
      await assert.rejects(
        readCallLogFiles(dir),
        (err: unknown) => err instanceof WardenError && err.code === ErrorCodes.DATA_FILE_SYMLINK,
      );
      assert.ok(existsSync(join(dir, CALL_LOG_FILE)));
    }),
  );

  it('reads outcomes: ok, tool_error (isError), error, timeout, cancelled', () => {
    assert.deepEqual(outcomeOf({ content: [] }, undefined, false), { outcome: 'ok', errorCode: null });
    assert.deepEqual(outcomeOf({ content: [], isError: true }, undefined, false), { outcome: 'tool_error', errorCode: null });
    assert.deepEqual(outcomeOf(undefined, new WardenError(ErrorCodes.UNKNOWN_TOOL, 'x'), false), {
      outcome: 'error',
      errorCode: ErrorCodes.UNKNOWN_TOOL,
    });
    assert.deepEqual(outcomeOf(undefined, new McpError(-32042, 'upstream says no'), false), {
      outcome: 'error',
      errorCode: ErrorCodes.UPSTREAM_ERROR,
    });
    const timeout = new WardenError(ErrorCodes.UPSTREAM_TIMEOUT, 'late');
    assert.deepEqual(outcomeOf(undefined, timeout, true), { outcome: 'timeout', errorCode: ErrorCodes.UPSTREAM_TIMEOUT });
    assert.deepEqual(outcomeOf(undefined, 'client cancelled', true), { outcome: 'cancelled', errorCode: null });
    assert.deepEqual(outcomeOf(undefined, new WardenError(ErrorCodes.SHUTTING_DOWN, 'session closed'), true), {
      outcome: 'cancelled',
      errorCode: ErrorCodes.SHUTTING_DOWN,
    });
  });

  it(
    'writes each line as JSON.stringify of its entry (names that need escaping, times within a second and across seconds)',
    withDir(async (dir) => {
      const log = makeLog(dir, { callLogFlushMs: 60_000 });
      const entries: unknown[] = [];
      log.subscribe((e) => entries.push(...e));
      const now = Date.now();
      const names = ['srv__echo', 'a"b__c\\d', 'x__\u2028y', 'no-separator', 'üñí__çødé', `${'a'.repeat(300)}__b`];
      const times = [now, now + 0.9999, now + 1, now + 1000.5, 0, 253402300800000];
      let i = 0;
      for (const at of times) {
        for (const name of names) {
          const failed = i % 2 === 1;
          log.record(
            at,
            i % 3 === 0 ? 'scope"x' : undefined,
            name,
            i % 4 === 0 ? undefined : `s"${i % 2}`,
            i * 0.12345,
            failed ? 'error' : 'ok',
            failed ? 'E_UPSTREAM_ERROR' : null,
            undefined,
            undefined,
          );
          i++;
        }
      }
      log.flush();
      const lines = readFileSync(join(dir, CALL_LOG_FILE), 'utf8').trim().split('\n');
      assert.equal(lines.length, times.length * names.length);
      lines.forEach((line, n) => assert.equal(line, JSON.stringify(entries[n])));
      entries.forEach((e, n) => assert.equal((e as { time: string }).time, new Date(times[Math.floor(n / names.length)]!).toISOString()));
      await log.close();
    }),
  );
});
