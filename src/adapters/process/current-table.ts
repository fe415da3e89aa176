/**
 * The process table this process uses (process-table.ts says which and why): chosen once from the
 * `processTable` setting by the daemon (before its lock, its identity and its startup reap), from
 * `--process-table` by the watchdog, and from MCP_WARDEN_PROCESS_TABLE / /proc otherwise.
 */
import { existsSync } from 'node:fs';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { DEFAULT_SETTINGS } from '../../core/settings.js';
import { PortableProcessTable } from './portable-table.js';
import { ProcProcessTable } from './proc-table.js';
import { resolveProcessTableKind, type ProcessTable, type ProcessTableChoice } from './process-table.js';

export interface ProcessTableConfig {
  choice: ProcessTableChoice;
  /** Deadline of one ps/pgrep/lsof run of the portable table. */
  timeoutMs: number;
}

/** A table of the resolved kind; `proc` without /proc is refused rather than read as an empty table. */
export function createProcessTable(config: ProcessTableConfig): ProcessTable {
  const kind = resolveProcessTableKind(config.choice);
  if (kind === 'portable') return new PortableProcessTable({ timeoutMs: config.timeoutMs });
  if (!existsSync('/proc/self/stat')) {
    throw new WardenError(ErrorCodes.PROCESS_TABLE_UNAVAILABLE, 'processTable "proc" was chosen, but this system has no /proc');
  }
  return new ProcProcessTable();
}

let current: ProcessTable | undefined;

/** The table of this process (made on first use from MCP_WARDEN_PROCESS_TABLE or /proc). */
export function processTable(): ProcessTable {
  current ??= createProcessTable({ choice: 'auto', timeoutMs: DEFAULT_SETTINGS.processTableTimeoutMs });
  return current;
}

/** Chooses this process's table (the setting `processTable`); returns it. */
export function useProcessTable(config: ProcessTableConfig): ProcessTable {
  current = createProcessTable(config);
  return current;
}
