import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FirstLaunches } from '../../src/daemon/first-launches.js';

const isSettled = async (p: Promise<void>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 3; i++) await Promise.resolve();
  return done;
};

test('first launches: settles once no server of the start is launching, whatever order the changes come in', async () => {
  const launching = new Set(['a', 'b', 'c']);
  const f = new FirstLaunches(['a', 'b', 'c'], (n) => launching.has(n));
  f.changed(['a', 'zz']); // still launching; an unknown name is ignored
  assert.equal(await isSettled(f.settled), false);
  launching.delete('a');
  launching.delete('c');
  f.changed(['c', 'a']);
  assert.equal(await isSettled(f.settled), false);
  launching.delete('b'); // e.g. failed or removed: no longer launching
  f.changed(['b']);
  assert.equal(await isSettled(f.settled), true);
});

test('first launches: nothing to launch settles at once; a stop settles it', async () => {
  assert.equal(await isSettled(new FirstLaunches([], () => true).settled), true);
  const f = new FirstLaunches(['a'], () => true);
  f.changed(['a']);
  assert.equal(await isSettled(f.settled), false);
  f.end();
  assert.equal(await isSettled(f.settled), true);
});
