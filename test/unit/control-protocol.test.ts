/**
 * The control protocol's schemas and receipt validation (src/control/protocol.ts), and that the
 * committed JSON Schema (docs/control-protocol.schema.json) is the one the code generates.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  ClientMessageSchema,
  COMMAND_NAMES,
  ControlErrorCodes,
  DaemonMessageSchema,
  decodeClientMessage,
  protocolJsonSchemaText,
} from '../../src/control/protocol.js';
import { redactEntry } from '../../src/adapters/http/control-commands.js';

const SCHEMA_FILE = fileURLToPath(new URL('../../../docs/control-protocol.schema.json', import.meta.url));

describe('control protocol', () => {
  it('docs/control-protocol.schema.json is up to date (regenerate: node dist/src/control/write-protocol-schema.js)', async () => {
    const committed = await readFile(SCHEMA_FILE, 'utf8');
    assert.equal(committed, protocolJsonSchemaText());
    const doc = JSON.parse(committed) as { $defs: Record<string, unknown> };
    assert.ok(doc.$defs.clientMessage && doc.$defs.daemonMessage);
  });

  it('accepts every command with valid args', () => {
    const args: Record<string, unknown> = {
      'server.list': {},
      'server.add': { name: 'mem', entry: { command: 'npx', args: ['-y', 'x'] }, trusted: true },
      'server.remove': { name: 'mem' },
      'server.enable': { name: 'mem' },
      'server.disable': { name: 'mem' },
      'server.restart': { name: 'mem' },
      'server.approve': { name: 'mem', fingerprint: 'a'.repeat(64) },
      'server.quarantine': { name: 'mem' },
      'server.tools': { name: 'mem' },
      reap: { dryRun: true },
      'auth.login': { name: 'mem' },
      'auth.wait': { name: 'mem' },
      'auth.logout': { name: 'mem' },
      shutdown: {},
      'calls.list': { server: 'mem', limit: 10 },
    };
    assert.deepEqual(Object.keys(args).sort(), [...COMMAND_NAMES].sort());
    for (const command of COMMAND_NAMES) {
      const msg = { type: 'command', id: 7, command, args: args[command] };
      const d = decodeClientMessage(JSON.stringify(msg));
      assert.equal(d.kind, 'command', command);
      assert.ok(ClientMessageSchema.safeParse(msg).success, `${command} matches the exported schema`);
    }
    // args may be omitted where every field is optional
    assert.equal(decodeClientMessage('{"type":"command","id":"a","command":"server.list"}').kind, 'command');
  });

  it('classifies bad input without echoing it', () => {
    const secret = 'sk-live-SECRET';
    const cases: [string, string, string][] = [
      ['{', 'error', ControlErrorCodes.BAD_JSON],
      ['[]', 'error', ControlErrorCodes.BAD_MESSAGE],
      ['{}', 'error', ControlErrorCodes.BAD_MESSAGE],
      [`{"type":"${secret}"}`, 'error', ControlErrorCodes.BAD_MESSAGE],
      ['{"type":"command","command":"server.list"}', 'error', ControlErrorCodes.BAD_MESSAGE],
      ['{"type":"command","id":{},"command":"server.list"}', 'error', ControlErrorCodes.BAD_MESSAGE],
      ['{"type":"command","id":1,"command":"nope"}', 'bad-command', ControlErrorCodes.UNKNOWN_COMMAND],
      ['{"type":"command","id":1,"command":"server.remove","args":{"name":7}}', 'bad-command', ControlErrorCodes.BAD_ARGS],
      [
        `{"type":"command","id":1,"command":"server.remove","args":{"name":"a","token":"${secret}"}}`,
        'bad-command',
        ControlErrorCodes.BAD_ARGS,
      ],
      ['{"type":"command","id":1,"command":"server.list","extra":true}', 'bad-command', ControlErrorCodes.BAD_MESSAGE],
      ['{"type":"command","id":1,"command":"server.list","args":null}', 'bad-command', ControlErrorCodes.BAD_ARGS],
      ['{"type":"subscribe","logs":"a"}', 'error', ControlErrorCodes.BAD_MESSAGE],
      ['{"type":"ping","x":1}', 'error', ControlErrorCodes.BAD_MESSAGE],
    ];
    for (const [text, kind, code] of cases) {
      const d = decodeClientMessage(text);
      assert.equal(d.kind, kind, text);
      assert.ok(d.kind === 'error' || d.kind === 'bad-command');
      assert.equal(d.error.code, code, text);
      assert.ok(!d.error.message.includes(secret) || text.startsWith('{"type":"sk'), `no echo: ${d.error.message}`);
    }
    assert.deepEqual(decodeClientMessage('{"type":"subscribe","logs":["a","a","*"]}'), { kind: 'subscribe', logs: ['a', '*'] });
    assert.deepEqual(decodeClientMessage('{"type":"ping","id":3}'), { kind: 'ping', id: 3 });
  });

  it('describes what the daemon sends', () => {
    const view = {
      name: 'a',
      state: 'running',
      quarantined: false,
      attempt: 0,
      restartsInWindow: 0,
      reapAttempt: 0,
      lastError: null,
      pid: 12,
      toolCount: 2,
      upSince: 1,
      resources: { 'process-group': 1 },
    };
    const samples = [
      {
        type: 'snapshot',
        daemon: { instanceId: 'x', version: '0.1.0', uptimeMs: 5, pid: 1 },
        servers: [view],
        ledger: { http: { socket: 1 } },
        machine: { id: 'server' },
      },
      { type: 'event', event: { type: 'server', server: view, previousState: null, at: 1 } },
      { type: 'event', event: { type: 'server-removed', name: 'a', at: 1 } },
      { type: 'log', server: 'a', record: { level: 30, msg: 'hi' } },
      { type: 'result', id: 1, ok: true, result: { servers: [] } },
      { type: 'result', id: 'q', ok: false, error: { code: 'E_BAD_ARGS', message: 'no' } },
      { type: 'error', code: 'E_BAD_JSON', message: 'no' },
      { type: 'subscribed', logs: ['a'] },
      { type: 'pong' },
    ];
    for (const m of samples) assert.ok(DaemonMessageSchema.safeParse(m).success, JSON.stringify(m));
  });

  it('redacts env values, headers and URL secrets when echoing an entry', () => {
    const r = redactEntry({
      type: 'remote',
      args: [],
      env: { A: 'secret-a' },
      url: 'https://u:p@h.example/mcp?api_key=k&x=1',
      headers: { Authorization: 'Bearer t' },
      disabled: false,
      quarantined: false,
    });
    const text = JSON.stringify(r);
    for (const s of ['secret-a', 'u:p@', 'api_key=k', 'Bearer t']) assert.ok(!text.includes(s), s);
    assert.deepEqual(r.env, { A: '[redacted]' });
    assert.equal(r.url, 'https://h.example/mcp?api_key=[redacted]&x=1');
  });
});
