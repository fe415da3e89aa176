import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandSecretRefs } from '../../src/adapters/store/secret-refs.js';
import { WardenError } from '../../src/core/error-codes.js';
import type { ServerEntry } from '../../src/config/config-types.js';

const entry = (over: Partial<ServerEntry>): ServerEntry => ({
  type: 'stdio',
  command: 'x',
  args: [],
  env: {},
  disabled: false,
  quarantined: false,
  ...over,
});

test('expands env and file references in env, args, url, headers and docker.env; leaves other text alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-secrets-'));
  try {
    writeFileSync(join(dir, 'tok'), 'from-file\n');
    const out = await expandSecretRefs(
      'srv',
      entry({
        args: ['--key=${env:A}', '${input:keep}', 'plain $HOME'],
        env: { X: '${env:A}-${file:tok}', Y: '${file:' + join(dir, 'tok') + '}' },
        url: 'https://h/${env:A}',
        headers: { Authorization: 'Bearer ${file:tok}' },
        docker: { image: 'i', network: 'none', volumes: [], env: { D: '${env:A}' } },
      }),
      { env: { A: 'aaa' }, baseDir: dir },
    );
    assert.deepEqual(out.args, ['--key=aaa', '${input:keep}', 'plain $HOME']);
    assert.deepEqual(out.env, { X: 'aaa-from-file', Y: 'from-file' });
    assert.equal(out.url, 'https://h/aaa');
    assert.deepEqual(out.headers, { Authorization: 'Bearer from-file' });
    assert.deepEqual(out.docker!.env, { D: 'aaa' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every unresolvable reference is listed with its path, no value, code E_SECRET_UNRESOLVED', async () => {
  const err = await expandSecretRefs('srv', entry({ args: ['${env:NOPE}'], env: { K: 'known=${env:A} ${file:/nonexistent/x}' } }), {
    env: { A: 'value-that-must-not-appear' },
    baseDir: '/',
  }).then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WardenError);
  assert.equal(err.code, 'E_SECRET_UNRESOLVED');
  assert.match(err.message, /\$\.mcpServers\.srv\.env\.K: cannot read file \/nonexistent\/x: ENOENT/);
  assert.match(err.message, /\$\.mcpServers\.srv\.args\[0\]: environment variable NOPE is not set/);
  assert.ok(!err.message.includes('value-that-must-not-appear'));
});
