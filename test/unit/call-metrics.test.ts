/**
 * WardenMetrics on its own registry, read back through the exposition parser: reap attempts and
 * restarts follow the server events (first launch not counted, each later one is), label values stay
 * bounded for names nobody listed, two instances in one process never share a series, and the
 * process metrics come once per exposition.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WardenMetrics, type MetricsSources } from '../../src/adapters/observability/call-metrics.js';
import { find, parseExposition, value } from '../helpers/prom-text.js';

function sources(over: Partial<MetricsSources> = {}): MetricsSources {
  return {
    servers: () => [
      { name: 'a', state: 'reaping.forcing' },
      { name: 'b', state: 'disabled' },
    ],
    sessions: () => 3,
    ledgerCounts: () => ({ 'server:a': { 'process-group': 1 }, front: { 'mcp-session': 3 }, http: { socket: 2 } }),
    knownServer: (s) => s === 'a' || s === 'b',
    knownTool: (s, t) => s === 'a' && t === 'echo',
    ...over,
  };
}

const view = (name: string, state: string, reapAttempt = 0) => ({ type: 'server', server: { name, state, reapAttempt } });

describe('WardenMetrics', () => {
  it('counts restarts and reap attempts from server events', async () => {
    const m = new WardenMetrics(sources());
    m.onServerEvent(view('a', 'starting.launching'));
    m.onServerEvent(view('a', 'running'));
    m.onServerEvent(view('a', 'stopping'));
    m.onServerEvent(view('a', 'reaping.auditing'));
    m.onServerEvent(view('a', 'reaping.forcing', 1));
    m.onServerEvent(view('a', 'reaping.backoff', 1));
    m.onServerEvent(view('a', 'reaping.forcing', 2));
    m.onServerEvent(view('a', 'reaping.handingOver', 3));
    m.onServerEvent(view('a', 'reaping.auditing', 0));
    m.onServerEvent(view('a', 'starting.backoff'));
    m.onServerEvent(view('a', 'starting.launching'));
    // A server first seen running (its launch was not an event of its own) restarts once.
    m.onServerEvent(view('b', 'running'));
    m.onServerEvent(view('b', 'starting.launching'));
    // Removed and added again: its next launch is a first launch.
    m.onServerEvent({ type: 'server-removed', name: 'b' });
    m.onServerEvent(view('b', 'starting.launching'));
    const e = parseExposition(await m.text());
    assert.equal(value(e, 'mcp_warden_server_restarts_total', { server: 'a' }), 1);
    assert.equal(value(e, 'mcp_warden_server_restarts_total', { server: 'b' }), 1);
    assert.equal(value(e, 'mcp_warden_reap_attempts_total', { server: 'a' }), 3);
    assert.equal(value(e, 'mcp_warden_server_state', { server: 'a', state: 'reaping' }), 1);
    assert.equal(value(e, 'mcp_warden_server_state', { server: 'a', state: 'running' }), 0);
    assert.equal(value(e, 'mcp_warden_server_state', { server: 'b', state: 'disabled' }), 1);
    assert.equal(value(e, 'mcp_warden_sessions'), 3);
    assert.equal(value(e, 'mcp_warden_ledger_entries', { kind: 'mcp-session' }), 3);
    assert.equal(value(e, 'mcp_warden_ledger_entries', { kind: 'socket' }), 2);
    assert.equal(find(e, 'process_cpu_user_seconds_total').length, 1);
  });

  it('keeps labels bounded and never shares a series between daemons', async () => {
    const one = new WardenMetrics(sources());
    const two = new WardenMetrics(sources());
    for (let i = 0; i < 500; i++) one.observeCall(undefined, `a__random_${i}`, 'error', 0.001);
    for (let i = 0; i < 500; i++) one.observeCall(undefined, `nobody${i}__x`, 'error', 0.001);
    one.observeCall(undefined, 'a__echo', 'ok', 0.002);
    one.observeCall('a', 'echo', 'tool_error', 0.003);
    one.observeCall(undefined, 'no-separator', 'error', 0.001);
    const e = parseExposition(await one.text());
    const series = find(e, 'mcp_warden_tool_calls_total');
    // 1001 distinct names, 3 label pairs (a/echo, a/(unknown), (unknown)/(unknown)) × 5 outcomes.
    assert.equal(series.length, 15);
    assert.deepEqual(new Set(series.map((s) => s.labels.tool)), new Set(['(unknown)', 'echo']));
    assert.equal(value(e, 'mcp_warden_tool_calls_total', { server: 'a', tool: '(unknown)', outcome: 'error' }), 500);
    assert.equal(value(e, 'mcp_warden_tool_calls_total', { server: '(unknown)', tool: '(unknown)', outcome: 'error' }), 501);
    assert.equal(value(e, 'mcp_warden_tool_calls_total', { server: 'a', tool: 'echo', outcome: 'ok' }), 1);
    assert.equal(value(e, 'mcp_warden_tool_calls_total', { server: 'a', tool: 'echo', outcome: 'tool_error' }), 1);
    assert.equal(value(e, 'mcp_warden_tool_call_duration_seconds_count', { server: 'a', tool: 'echo' }), 2);
    // The histogram: cumulative buckets, +Inf equal to the count.
    const b = find(e, 'mcp_warden_tool_call_duration_seconds_bucket', { server: 'a', tool: 'echo' });
    assert.equal(b.find((x) => x.labels.le === '0.001')!.value, 0);
    assert.equal(b.find((x) => x.labels.le === '0.0025')!.value, 1);
    assert.equal(b.find((x) => x.labels.le === '0.005')!.value, 2);
    assert.equal(b.at(-1)!.labels.le, '+Inf');
    assert.equal(b.at(-1)!.value, 2);
    assert.ok(Math.abs(value(e, 'mcp_warden_tool_call_duration_seconds_sum', { server: 'a', tool: 'echo' }) - 0.005) < 1e-9);
    assert.equal(value(e, 'mcp_warden_tool_call_duration_seconds_count', { server: '(unknown)', tool: '(unknown)' }), 501);
    const other = parseExposition(await two.text());
    assert.equal(find(other, 'mcp_warden_tool_calls_total').length, 0);
  });
});
