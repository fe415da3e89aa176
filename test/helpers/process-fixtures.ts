/**
 * The node fixtures under test/fixtures (compiled next to this file's dist/test/helpers), and the
 * small process-group budgets the process-level tests spawn them with.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessGroupSettings } from '../../src/adapters/process/process-group.js';

export const NODE = process.execPath;
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
/** The compiled fixture `name` (e.g. 'echo-server'). */
export const fixture = (name: string) => join(FIXTURES, `${name}.js`);

/** Stop escalation and stderr drain budgets small enough that hostile fixtures cost little test time. */
export const PROCESS_GROUP_SETTINGS: ProcessGroupSettings = {
  stopEofGraceMs: 300,
  stopTermGraceMs: 300,
  stopKillGraceMs: 1000,
  stderrLinesPerSecond: 200,
  stderrMaxLineBytes: 4096,
};
