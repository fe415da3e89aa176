/**
 * Upstream stdout framing and the structural JSON-RPC check that replaced the SDK's zod parse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';
import { JsonRpcLineBuffer, LineTooLongError } from '../../src/adapters/mcp/json-rpc-line-buffer.js';
import { isJsonRpcMessage } from '../../src/adapters/mcp/json-rpc-message.js';

const ACCEPTED: unknown[] = [
  { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } },
  { jsonrpc: '2.0', id: 'a', method: 'ping' },
  { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
  { jsonrpc: '2.0', id: 2, result: {} },
  { jsonrpc: '2.0', id: 3, result: { content: [], extra: true } },
  { jsonrpc: '2.0', id: 4, error: { code: -32601, message: 'nope', data: [1] } },
];
const REFUSED: unknown[] = [
  null,
  42,
  'x',
  [],
  {},
  { jsonrpc: '1.0', id: 1, method: 'x' },
  { id: 1, method: 'x' },
  { jsonrpc: '2.0', id: 1.5, method: 'x' },
  { jsonrpc: '2.0', id: null, method: 'x' },
  { jsonrpc: '2.0', id: {}, method: 'x' },
  { jsonrpc: '2.0', id: 1, method: 'x', params: [1, 2] },
  { jsonrpc: '2.0', id: 1, method: 7 },
  { jsonrpc: '2.0', id: 1, result: 'text' },
  { jsonrpc: '2.0', result: {} },
  { jsonrpc: '2.0', id: 1, error: { code: 'x', message: 'm' } },
  { jsonrpc: '2.0', id: 1, error: { code: 1 } },
  { jsonrpc: '2.0', id: 1 },
];

test('isJsonRpcMessage agrees with the SDK schema on every sample', () => {
  for (const m of ACCEPTED) {
    assert.equal(isJsonRpcMessage(m), true, JSON.stringify(m));
    assert.equal(JSONRPCMessageSchema.safeParse(m).success, true, `SDK also accepts ${JSON.stringify(m)}`);
  }
  for (const m of REFUSED) {
    assert.equal(isJsonRpcMessage(m), false, JSON.stringify(m));
    assert.equal(JSONRPCMessageSchema.safeParse(m).success, false, `SDK also refuses ${JSON.stringify(m)}`);
  }
});

test('frames lines across chunks, drops \\r, and reports a malformed line without losing the next one', () => {
  const b = new JsonRpcLineBuffer();
  assert.equal(b.readMessage(), null);
  b.append(Buffer.from('{"jsonrpc":"2.0","id":1,"res'));
  assert.equal(b.readMessage(), null);
  b.append(Buffer.from('ult":{}}\r\nnot json\n{"jsonrpc":"2.0","method":"m"}\n{"x":1}\n{"jsonrpc":"2.0","id":"ü","result":{"t":"é"}}\n'));
  assert.deepEqual(b.readMessage(), { jsonrpc: '2.0', id: 1, result: {} });
  assert.throws(() => b.readMessage(), SyntaxError);
  assert.deepEqual(b.readMessage(), { jsonrpc: '2.0', method: 'm' });
  assert.throws(() => b.readMessage(), /not a JSON-RPC 2.0 message/);
  assert.deepEqual(b.readMessage(), { jsonrpc: '2.0', id: 'ü', result: { t: 'é' } });
  assert.equal(b.readMessage(), null);
});

test('a multi-byte character split across chunks survives', () => {
  const b = new JsonRpcLineBuffer();
  const bytes = Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"t":"€"}}\n');
  const cut = bytes.indexOf(0xe2) + 1; // inside the euro sign
  b.append(bytes.subarray(0, cut));
  assert.equal(b.readMessage(), null);
  b.append(bytes.subarray(cut));
  assert.deepEqual(b.readMessage(), { jsonrpc: '2.0', id: 1, result: { t: '€' } });
});

test('an unterminated message over the limit throws and empties the buffer', () => {
  const b = new JsonRpcLineBuffer({ maxBufferSize: 64 });
  b.append(Buffer.from('x'.repeat(60)));
  assert.throws(() => b.append(Buffer.from('y'.repeat(10))), /exceeded maximum size of 64 bytes/);
  b.append(Buffer.from('{"jsonrpc":"2.0","method":"m"}\n'));
  assert.deepEqual(b.readMessage(), { jsonrpc: '2.0', method: 'm' });
});

test('a line over the limit that arrives whole is dropped with LineTooLongError; the next line survives', () => {
  const b = new JsonRpcLineBuffer({ maxBufferSize: 64 });
  b.append(Buffer.from(`${'x'.repeat(40)}`));
  b.append(Buffer.from(`${'x'.repeat(40)}\n{"jsonrpc":"2.0","method":"m"}\n`));
  assert.throws(() => b.readMessage(), LineTooLongError);
  assert.deepEqual(b.readMessage(), { jsonrpc: '2.0', method: 'm' });
  assert.equal(b.readMessage(), null);
});

test('a long message in many chunks is joined once, when its newline comes', () => {
  const b = new JsonRpcLineBuffer({ maxBufferSize: 10 * 1024 * 1024 });
  const text = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { t: 'z'.repeat(5_000_000) } });
  for (let i = 0; i < text.length; i += 65_536) {
    b.append(Buffer.from(text.slice(i, i + 65_536)));
    assert.equal(b.readMessage(), null);
  }
  b.append(Buffer.from('\n'));
  const m = b.readMessage() as unknown as { result: { t: string } };
  assert.equal(m.result.t.length, 5_000_000);
});
