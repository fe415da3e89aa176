/**
 * The depth check of /mcp bodies: the byte pre-check never lets a body past that the walk would refuse
 * (it only over-counts: brackets inside strings), and the walk measures nesting as the front needs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsonDepthExceeds, mayNestDeeperThan } from '../../src/adapters/mcp/json-depth.js';

const nested = (depth: number, open = '[', close = ']', inner = ''): string => open.repeat(depth) + inner + close.repeat(depth);

describe('json depth', () => {
  it('pre-check: false only when the text cannot nest deeper than the limit', () => {
    for (const depth of [1, 5, 9, 10, 11, 50]) {
      for (const text of [nested(depth), nested(depth, '{"a":', '}', '0'), `{"s":"${'['.repeat(depth)}","v":${nested(depth)}}`]) {
        const value: unknown = JSON.parse(text);
        const buf = Buffer.from(text);
        // Whenever the walk refuses, the pre-check must have said "may".
        if (jsonDepthExceeds(value, 10)) assert.equal(mayNestDeeperThan(buf, 10), true, text);
      }
    }
    assert.equal(mayNestDeeperThan(Buffer.from(nested(10)), 10), false);
    assert.equal(mayNestDeeperThan(Buffer.from(nested(11)), 10), true);
    // A typical tools/call body is longer than the limit but has few brackets.
    const call = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'a__b', arguments: { m: 'x'.repeat(200) } },
    });
    assert.equal(mayNestDeeperThan(Buffer.from(call), 10), false);
    // Brackets inside strings over-count: "may", and the walk decides.
    const inString = JSON.stringify({ s: '['.repeat(20) });
    assert.equal(mayNestDeeperThan(Buffer.from(inString), 10), true);
    assert.equal(jsonDepthExceeds(JSON.parse(inString), 10), false);
  });

  it('walk: scalars are depth 0, each object or array one level', () => {
    assert.equal(jsonDepthExceeds(5, 0), false);
    assert.equal(jsonDepthExceeds(JSON.parse(nested(3)), 3), false);
    assert.equal(jsonDepthExceeds(JSON.parse(nested(4)), 3), true);
    assert.equal(jsonDepthExceeds({ a: [{ b: {} }] }, 3), true);
  });
});
