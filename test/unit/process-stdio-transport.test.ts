/**
 * The stdout failures ProcessStdioTransport turns into coded connection failures: sustained
 * garbage beyond maxGarbageLines per window (E_UPSTREAM_PROTOCOL; a few banner lines are fine, the
 * window restarts) and a message over maxBufferSize (E_UPSTREAM_MESSAGE_TOO_LARGE: only its request
 * when it is a response with a readable id, else the connection). Streams are in-memory pipes and
 * time is a hand-moved clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ProcessStdioTransport } from '../../src/adapters/process/process-stdio-transport.js';
import type { Clock } from '../../src/core/clock.js';

function rig(opts: { maxGarbageLines?: number; garbageWindowMs?: number; maxBufferSize?: number }) {
  let now = 0;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  };
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const t = new ProcessStdioTransport({ stdin, stdout, onExit: () => () => undefined }, { ...opts, clock });
  const messages: unknown[] = [];
  let closed = 0;
  t.onmessage = (m) => messages.push(m);
  t.onerror = () => undefined;
  t.onclose = () => closed++;
  const write = (text: string) =>
    new Promise<void>((resolve) => {
      stdout.write(text);
      setImmediate(resolve);
    });
  return { t, write, messages, closed: () => closed, advance: (ms: number) => (now += ms) };
}

const garbage = (n: number) => Array.from({ length: n }, (_, i) => `banner ${i}\n`).join('');
const MESSAGE = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n';

test('garbage up to the threshold per window is tolerated; the window restarts', async () => {
  const r = rig({ maxGarbageLines: 10, garbageWindowMs: 1_000 });
  await r.t.start();
  await r.write(garbage(10) + MESSAGE);
  r.advance(1_000);
  await r.write(garbage(10) + MESSAGE);
  assert.equal(r.t.failure(), undefined);
  assert.equal(r.closed(), 0);
  assert.equal(r.messages.length, 2);
  await r.t.close();
});

test('beyond the threshold within the window the connection fails with E_UPSTREAM_PROTOCOL', async () => {
  const r = rig({ maxGarbageLines: 10, garbageWindowMs: 1_000 });
  await r.t.start();
  await r.write(garbage(6));
  r.advance(999);
  await r.write(garbage(5) + MESSAGE);
  assert.equal(r.t.failure()?.code, 'E_UPSTREAM_PROTOCOL');
  assert.match(r.t.failure()!.message, /more than 10 lines/);
  assert.equal(r.closed(), 1);
  assert.equal(r.messages.length, 0, 'nothing after the failing line is delivered');
});

test('0 = garbage never fails the connection', async () => {
  const r = rig({ maxGarbageLines: 0 });
  await r.t.start();
  await r.write(garbage(5_000) + MESSAGE);
  assert.equal(r.t.failure(), undefined);
  assert.equal(r.messages.length, 1);
  await r.t.close();
});

test('an oversized response fails only its request (an error answer for its id); the server goes on', async () => {
  const r = rig({ maxBufferSize: 1_024 });
  await r.t.start();
  // The JS SDK's key order: id last. Several chunks, the end of the line with the next message.
  await r.write(`{"result":{"t":"${'z'.repeat(1_500)}`);
  await r.write('z'.repeat(3_000));
  await r.write(`"},"jsonrpc":"2.0","id":7}\n${MESSAGE}`);
  // pydantic's order: id first, the whole line in one chunk.
  await r.write(`{"jsonrpc":"2.0","id":"p-1","result":{"t":"${'y'.repeat(2_000)}"}}\n`);
  assert.equal(r.t.failure(), undefined);
  assert.equal(r.closed(), 0);
  const [first, second, third] = r.messages as Array<{ id?: unknown; error?: { code: number; message: string; data: { code: string } } }>;
  assert.equal(first?.id, 7);
  assert.equal(first?.error?.data.code, 'E_UPSTREAM_MESSAGE_TOO_LARGE');
  assert.match(first!.error!.message, /larger than 1024 bytes/);
  assert.equal((second as { method?: string }).method, 'notifications/message');
  assert.equal(third?.id, 'p-1');
  assert.equal(third?.error?.data.code, 'E_UPSTREAM_MESSAGE_TOO_LARGE');
  await r.t.close();
});

test('an oversized message that is not surely a response fails the connection with E_UPSTREAM_MESSAGE_TOO_LARGE', async () => {
  const r = rig({ maxBufferSize: 1_024 });
  await r.t.start();
  await r.write(`{"method":"notifications/message","params":{"data":"${'z'.repeat(2_000)}`);
  assert.equal(r.t.failure(), undefined, 'not known until its end');
  await r.write(`"},"jsonrpc":"2.0"}\n`);
  assert.equal(r.t.failure()?.code, 'E_UPSTREAM_MESSAGE_TOO_LARGE');
  assert.match(r.t.failure()!.message, /larger than 1024 bytes/);
  assert.equal(r.closed(), 1);
});
