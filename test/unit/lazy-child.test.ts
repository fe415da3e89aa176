import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/adapters/log/logger.js';
import { lazyChild } from '../../src/adapters/log/lazy-child.js';

/** A real daemon logger (redaction, rate-limit hook) whose JSON lines are collected, and a count of the children made from it. */
function collecting(level: string) {
  const lines: Record<string, unknown>[] = [];
  const { logger } = createLogger({
    level,
    maxBytes: 1e6,
    maxFiles: 1,
    console: false,
    linesPerSecond: 1_000,
    tap: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const parent = logger.child({ server: 'demo' });
  let children = 0;
  const child = parent.child.bind(parent);
  parent.child = ((...args: Parameters<typeof parent.child>) => {
    children++;
    return child(...args);
  }) as typeof parent.child;
  return { parent, lines, children: () => children };
}

test('lazyChild: lines below the level make no child; the first written line makes it once, with its bindings', () => {
  const { parent, lines, children } = collecting('info');
  const log = lazyChild(parent, { component: 'process-group', label: 'demo: ./server' });
  log.debug({ x: 1 }, 'dropped');
  log.trace('dropped too');
  assert.equal(children(), 0);
  assert.equal(lines.length, 0);
  log.info({ childPid: 42 }, 'process exited');
  log.warn('second');
  assert.equal(children(), 1);
  assert.deepEqual(
    lines.map((l) => [l.server, l.component, l.label, l.msg]),
    [
      ['demo', 'process-group', 'demo: ./server', 'process exited'],
      ['demo', 'process-group', 'demo: ./server', 'second'],
    ],
  );
  assert.equal(lines[0]!.childPid, 42);
  // Redaction of the root still applies to the child's lines.
  log.info({ env: { TOKEN: 'secret' } }, 'with env');
  assert.equal(lines[2]!.env, '[redacted]');
});

test('lazyChild: at debug level a debug line is written under the bindings', () => {
  const { parent, lines, children } = collecting('debug');
  const log = lazyChild(parent, { component: 'upstream-client', server: 'demo' });
  log.debug('tools/list_changed');
  assert.equal(children(), 1);
  assert.equal(lines[0]?.component, 'upstream-client');
  assert.equal(lines[0]?.msg, 'tools/list_changed');
  assert.equal(log.isLevelEnabled('debug'), true);
});
