/**
 * Optional OpenTelemetry traces against a local OTLP/HTTP receiver (a node:http server on 127.0.0.1
 * recording POSTs to /v1/traces): with OTEL_EXPORTER_OTLP_ENDPOINT set, every tools/call of a real
 * client through a real daemon to a real upstream becomes one span (name, server, tool, session,
 * outcome, error status, a duration covering the upstream's work); what is batched at shutdown is
 * exported by stop(). Without the variable nothing is sent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NODE, fixture, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';

interface OtlpSpan {
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string } }[];
  status?: { code?: number; message?: string };
}

function spansOf(bodies: string[]): { service: string | undefined; span: OtlpSpan }[] {
  const out: { service: string | undefined; span: OtlpSpan }[] = [];
  for (const b of bodies) {
    const doc = JSON.parse(b) as {
      resourceSpans: { resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
    };
    for (const rs of doc.resourceSpans) {
      const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
      for (const ss of rs.scopeSpans) for (const span of ss.spans) out.push({ service, span });
    }
  }
  return out;
}

const attr = (s: OtlpSpan, key: string) => s.attributes.find((a) => a.key === key)?.value.stringValue;

describe('OpenTelemetry traces', () => {
  let receiver: Server;
  const posts: { path: string; body: string }[] = [];
  let endpoint = '';
  const saved: Record<string, string | undefined> = {};
  const setEnv = (k: string, v: string | undefined) => {
    if (!(k in saved)) saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  };

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it('sends nothing when OTEL_EXPORTER_OTLP_ENDPOINT is not set', async () => {
    setEnv('OTEL_EXPORTER_OTLP_ENDPOINT', undefined);
    setEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', undefined);
    const td = await startTestDaemon({ fx: { command: NODE, args: [fixture('echo-server')] } });
    try {
      await td.waitForState('fx', 'running');
      const { client } = await td.connect();
      await client.callTool({ name: 'fx__echo', arguments: { message: 'untraced' } });
    } finally {
      await td.close();
    }
    assert.equal(posts.length, 0);
  });

  it('exports one span per tools/call to the OTLP/HTTP endpoint', async () => {
    setEnv('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint);
    setEnv('OTEL_SERVICE_NAME', 'warden-under-test');
    // The batch processor's delay: short, so spans arrive while the daemon runs (stop() flushes the rest).
    setEnv('OTEL_BSP_SCHEDULE_DELAY', '100');
    let td: TestDaemon | undefined;
    try {
      td = await startTestDaemon({ fx: { command: NODE, args: [fixture('echo-server')], env: { FIXTURE_FAIL_TOOL: '1' } } });
      await td.waitForState('fx', 'running');
      const { client } = await td.connect();
      const sessionId = (client as unknown as { transport?: { sessionId?: string } }).transport?.sessionId;
      await client.callTool({ name: 'fx__echo', arguments: { message: 'traced' } });
      await client.callTool({ name: 'fx__slow', arguments: { steps: 2, intervalMs: 100 } });
      await assert.rejects(client.callTool({ name: 'fx__fail', arguments: {} }));
      const arrived = await waitFor(() => spansOf(posts.map((p) => p.body)).length >= 3, { timeoutMs: 5_000, intervalMs: 50 });
      assert.ok(arrived, `spans did not arrive while the daemon runs: ${posts.length} posts`);
      await client.callTool({ name: 'fx__echo', arguments: { message: 'flushed at stop' } });
      await td.close();
      td = undefined;
      assert.ok(posts.every((p) => p.path === '/v1/traces'));
      const spans = spansOf(posts.map((p) => p.body));
      assert.equal(spans.length, 4, JSON.stringify(spans.map((s) => s.span.name)));
      assert.ok(spans.every((s) => s.service === 'warden-under-test'));
      const byTool = (tool: string) => spans.filter((s) => attr(s.span, 'gen_ai.tool.name') === tool).map((s) => s.span);
      const [echo] = byTool('echo');
      assert.equal(echo!.name, 'tools/call echo');
      assert.equal(echo!.kind, 2); // SERVER
      assert.equal(attr(echo!, 'mcp.server'), 'fx');
      assert.equal(attr(echo!, 'mcp_warden.outcome'), 'ok');
      if (sessionId) assert.equal(attr(echo!, 'mcp.session.id'), sessionId);
      const [slow] = byTool('slow');
      const ms = Number((BigInt(slow!.endTimeUnixNano) - BigInt(slow!.startTimeUnixNano)) / 1_000_000n);
      assert.ok(ms >= 190 && ms < 5_000, `the span covers the upstream's 200 ms of work (${ms} ms)`);
      const [fail] = byTool('fail');
      assert.equal(attr(fail!, 'mcp_warden.outcome'), 'error');
      assert.equal(attr(fail!, 'error.type'), 'E_UPSTREAM_ERROR');
      assert.equal(fail!.status?.code, 2); // ERROR
      assert.equal(byTool('echo').length, 2);
    } finally {
      await td?.close();
    }
  });
});
