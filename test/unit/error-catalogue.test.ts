/**
 * The one error catalogue (src/core/error-catalogue.ts): codes are unique and stable, the views
 * (ErrorCodes, ControlErrorCodes, HttpErrorCodes) come from it, docs/error-codes.md lists every code
 * once with the catalogue's numbers, and the /mcp mapping of upstream errors and headerValue behave as
 * their comments say.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCatalogue, ErrorCodes, WardenError, allErrorSpecs, httpStatusOf, rpcCodeOf } from '../../src/core/error-codes.js';
import { ControlErrorCodes } from '../../src/control/protocol.js';
import { HttpErrorCodes } from '../../src/adapters/http/http-server.js';
import { headerValue } from '../../src/adapters/http/headers.js';
import { toMcpError } from '../../src/adapters/mcp/front-errors.js';
import { stripMcpErrorPrefix, upstreamRpcErrorOf } from '../../src/adapters/mcp/upstream-rpc-error.js';

const DOC = fileURLToPath(new URL('../../../docs/error-codes.md', import.meta.url));

/** The codes exported before the catalogue existed: none may disappear or change its value. */
const EARLIER = {
  ErrorCodes:
    'E_CONFIG_INVALID E_CONFIG_UNREADABLE E_REMOTE_UNSUPPORTED E_SPAWN_FAILED E_INIT_TIMEOUT E_INIT_FAILED E_UPSTREAM_EXITED E_CRASH_LOOP E_STOP_FAILED E_REAP_FAILED E_UNKNOWN_TOOL E_SERVER_UNAVAILABLE E_QUARANTINED E_TOOLS_CHANGED E_APPROVALS_CORRUPT E_UPSTREAM_ERROR E_UPSTREAM_TIMEOUT E_SHUTTING_DOWN E_TOO_MANY_SESSIONS E_FORBIDDEN_HOST E_FORBIDDEN_ORIGIN E_UNAUTHORIZED E_LISTEN_FAILED E_NON_LOOPBACK_REFUSED E_DATA_DIR_UNWRITABLE E_ALREADY_RUNNING E_LOCK_COMPROMISED E_DOCKER_UNAVAILABLE E_DOCKER_FAILED E_DOCKER_IMAGE_MISSING E_CONTAINER_EXITED E_INTERNAL',
  ControlErrorCodes:
    'E_BAD_JSON E_BAD_MESSAGE E_UNKNOWN_COMMAND E_BAD_ARGS E_SERVER_EXISTS E_UNKNOWN_SERVER E_SERVER_DISABLED E_NOT_AVAILABLE E_BUSY E_SHUTTING_DOWN E_TOO_MANY_CONNECTIONS E_BAD_SUBPROTOCOL E_INTERNAL',
  HttpErrorCodes: 'E_NOT_FOUND E_METHOD_NOT_ALLOWED E_BODY_TOO_LARGE E_INTERNAL',
};

/** `E_FOO_BAR` → key `FOO_BAR`, as every view names them. */
const keyOf = (code: string) => code.slice(2);

describe('error catalogue', () => {
  it('defines every code once, under the key its views use', () => {
    const codes = allErrorSpecs().map((s) => s.code);
    assert.equal(new Set(codes).size, codes.length, 'no code is defined twice');
    for (const [key, spec] of Object.entries(ErrorCatalogue)) {
      assert.equal(spec.code, `E_${key}`);
      assert.equal((ErrorCodes as Record<string, string>)[key], spec.code);
    }
  });

  it('keeps every earlier exported code, with the same key and value', () => {
    const views: Record<keyof typeof EARLIER, Record<string, string>> = { ErrorCodes, ControlErrorCodes, HttpErrorCodes };
    for (const [view, list] of Object.entries(EARLIER) as [keyof typeof EARLIER, string][]) {
      for (const code of list.split(' ')) assert.equal(views[view][keyOf(code)], code, `${view}.${keyOf(code)}`);
    }
    assert.deepEqual(Object.keys(ControlErrorCodes).sort(), EARLIER.ControlErrorCodes.split(' ').map(keyOf).sort());
  });

  it('gives statuses and JSON-RPC codes, with documented fallbacks', () => {
    assert.equal(httpStatusOf(ErrorCodes.BODY_TOO_LARGE), 413);
    assert.equal(httpStatusOf(ErrorCodes.FORBIDDEN_HOST), 403);
    assert.equal(httpStatusOf(ErrorCodes.UNAUTHORIZED), 401);
    assert.equal(httpStatusOf(ErrorCodes.SESSION_NOT_FOUND), 404);
    assert.equal(httpStatusOf(ErrorCodes.CRASH_LOOP), 500, 'a code never meant for HTTP');
    assert.equal(httpStatusOf('E_NOT_OURS'), 500);
    assert.equal(rpcCodeOf(ErrorCodes.BODY_TOO_LARGE), -32600);
    assert.equal(rpcCodeOf(ErrorCodes.UNKNOWN_TOOL), -32602);
    assert.equal(rpcCodeOf(ErrorCodes.SPAWN_FAILED), -32603);
  });

  it("docs/error-codes.md lists every code exactly once, with the catalogue's numbers", () => {
    const rows = new Map<string, string[]>();
    for (const line of readFileSync(DOC, 'utf8').split('\n')) {
      const m = /^\| `(E_[A-Z_]+)` \|(.*)\|$/.exec(line);
      if (!m) continue;
      assert.ok(!rows.has(m[1]!), `${m[1]} is listed twice`);
      rows.set(
        m[1]!,
        m[2]!.split('|').map((c) => c.trim()),
      );
    }
    for (const spec of allErrorSpecs()) {
      const cells = rows.get(spec.code);
      assert.ok(cells, `${spec.code} is missing from docs/error-codes.md`);
      const [, http, rpc] = cells;
      assert.equal(http, spec.http === undefined ? '' : String(spec.http), `${spec.code}: HTTP`);
      const wantRpc = spec.code === ErrorCodes.UPSTREAM_ERROR ? "upstream's" : spec.rpc === undefined ? '' : String(spec.rpc);
      assert.equal(rpc, wantRpc, `${spec.code}: JSON-RPC`);
    }
    const known = new Set<string>(allErrorSpecs().map((s) => s.code));
    for (const code of rows.keys()) assert.ok(known.has(code), `${code} is documented but not in the catalogue`);
  });
});

describe('upstream JSON-RPC errors on /mcp', () => {
  const data = { a: [1, { b: null }], c: 'd' };

  it('strips only the SDK prefixes of the same code', () => {
    assert.equal(stripMcpErrorPrefix(-32042, 'MCP error -32042: MCP error -32042: boom'), 'boom');
    assert.equal(stripMcpErrorPrefix(-32042, 'MCP error -32001: boom'), 'MCP error -32001: boom');
    assert.equal(stripMcpErrorPrefix(-32042, 'boom: MCP error -32042: x'), 'boom: MCP error -32042: x');
    assert.deepEqual(upstreamRpcErrorOf(new McpError(-32042, 'MCP error -32042: boom', data)), { code: -32042, message: 'boom', data });
    assert.deepEqual(upstreamRpcErrorOf(new McpError(-32042, 'boom')), { code: -32042, message: 'boom' });
  });

  it('maps detail.upstream to the upstream code, message and data beside our code', () => {
    const err = new WardenError(ErrorCodes.UPSTREAM_ERROR, 'fx: boom (JSON-RPC -32042)', {
      server: 'fx',
      upstream: { code: -32042, message: 'boom', data },
    });
    const m = toMcpError(err, 'fx__fail');
    assert.equal(m.code, -32042);
    assert.equal(m.message, 'boom');
    assert.deepEqual(m.data, { code: 'E_UPSTREAM_ERROR', upstream: data });

    const noData = toMcpError(new WardenError(ErrorCodes.UPSTREAM_ERROR, 'x', { upstream: { code: -32050, message: 'y' } }), 't');
    assert.deepEqual([noData.code, noData.message, noData.data], [-32050, 'y', { code: 'E_UPSTREAM_ERROR' }]);

    // no upstream answer (e.g. a malformed tools/list): the catalogue's fallback, our message
    const bare = toMcpError(new WardenError(ErrorCodes.UPSTREAM_ERROR, 'fx: tools/list result has no tools array'), 't');
    assert.deepEqual(
      [bare.code, bare.message, bare.data],
      [-32603, 'fx: tools/list result has no tools array', { code: 'E_UPSTREAM_ERROR' }],
    );
  });
});

describe('headerValue', () => {
  it('reads a header once; a repeated one is null', () => {
    assert.equal(headerValue(undefined), undefined);
    assert.equal(headerValue('a'), 'a');
    assert.equal(headerValue(''), '');
    assert.equal(headerValue(['a']), 'a');
    assert.equal(headerValue(['a', 'b']), null);
    assert.equal(headerValue([]), null);
  });
});
