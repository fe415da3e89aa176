/**
 * The coded errors of remote upstreams (adapters/remote/remote-fetch.ts, remote-errors.ts): socket
 * failures by kind, Retry-After in both spellings, the SDK transports' HTTP errors, and 401 as a
 * login to do rather than an error to retry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { networkError, retryAfterMs } from '../../src/adapters/remote/remote-fetch.js';
import { classifyRemoteError, httpStatusOfTransportError, SSE_FALLBACK_STATUSES } from '../../src/adapters/remote/remote-errors.js';

const url = new URL('https://user:secret@mcp.example.com:8443/mcp?key=k');
const errno = (code: string, message = code) => Object.assign(new Error(message), { code });

test('socket failures become E_REMOTE_UNREACHABLE or E_REMOTE_TLS, naming the origin without credentials', () => {
  for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN']) {
    const e = networkError('r', url, errno(code));
    assert.equal(e?.code, 'E_REMOTE_UNREACHABLE', code);
    assert.match(e!.message, /https:\/\/mcp\.example\.com:8443/);
    assert.doesNotMatch(e!.message, /secret|key=k/);
  }
  for (const err of [
    errno('DEPTH_ZERO_SELF_SIGNED_CERT'),
    errno('CERT_HAS_EXPIRED'),
    errno('ERR_TLS_CERT_ALTNAME_INVALID'),
    errno('EPROTO', 'write EPROTO …:SSL routines:ssl3_get_record:wrong version number'),
  ]) {
    assert.equal(networkError('r', url, err)?.code, 'E_REMOTE_TLS', err.message);
  }
  assert.equal(networkError('r', url, new Error('something else')), undefined);
});

test('Retry-After: seconds or an HTTP date', () => {
  assert.equal(retryAfterMs('2'), 2_000);
  assert.equal(retryAfterMs(' 120 '), 120_000);
  const now = Date.parse('2026-12-03T10:00:00Z');
  assert.equal(retryAfterMs('Thu, 03 Dec 2026 10:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Thu, 03 Dec 2026 09:00:00 GMT', now), 0, 'a date in the past: at once');
  assert.equal(retryAfterMs(null), undefined);
  assert.equal(retryAfterMs('soon'), undefined);
});

test('transport errors: statuses, the SSE fallback set, and 401 as needs-auth', () => {
  assert.deepEqual([...SSE_FALLBACK_STATUSES].sort(), [400, 404, 405]);
  assert.equal(httpStatusOfTransportError(new StreamableHTTPError(404, 'Error POSTing to endpoint: not found')), 404);
  assert.equal(httpStatusOfTransportError(new SseError(405, 'Non-200 status code (405)', undefined as never)), 405);
  assert.equal(httpStatusOfTransportError(new StreamableHTTPError(-1, 'Unexpected content type: text/plain')), undefined);

  const s500 = classifyRemoteError('r', new StreamableHTTPError(500, 'Error POSTing to endpoint: boom'));
  assert.equal(s500?.code, 'E_REMOTE_HTTP_STATUS');
  assert.equal(s500?.detail?.statusCode, 500);
  assert.equal(classifyRemoteError('r', new StreamableHTTPError(-1, 'Unexpected content type: text/plain'))?.code, 'E_REMOTE_NOT_MCP');
  for (const err of [new UnauthorizedError('no'), new StreamableHTTPError(401, 'unauthorized')]) {
    const e = classifyRemoteError('r', err);
    assert.equal(e?.code, 'E_REMOTE_NEEDS_AUTH');
    assert.match(e!.message, /mcp-warden auth login r/);
  }
  assert.equal(classifyRemoteError('r', new Error('not a transport error')), undefined);
});
