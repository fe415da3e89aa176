/**
 * What the tests read about processes, through the same process table the code under test uses
 * (src/adapters/process/current-table.ts): with MCP_WARDEN_PROCESS_TABLE=portable (the second pass
 * of test/run-tests.mjs) every check here runs on ps/pgrep/lsof, otherwise on /proc.
 */
import { processTable } from '../../src/adapters/process/current-table.js';
import { isDead, type ProcessInfo } from '../../src/adapters/process/process-table.js';

export type ProcInfo = ProcessInfo;

/** Live processes whose MCP_WARDEN_* variable `name` has a value accepted by `predicate`. */
export function findByEnv(name: string, predicate: (value: string) => boolean): ProcInfo[] {
  return processTable()
    .list({ markers: true })
    .filter((p) => !isDead(p) && p.markers?.[name] !== undefined && predicate(p.markers[name]!));
}

export function readProc(pid: number): ProcInfo | undefined {
  return processTable().get(pid);
}

export function processStartTime(pid: number): number | undefined {
  return processTable().get(pid)?.startTime;
}

/** The MCP_WARDEN_* variables of `pid` (undefined when gone or unreadable). */
export function readEnviron(pid: number): Record<string, string> | undefined {
  return processTable().markersOf(pid);
}

export function listProcesses(): ProcInfo[] {
  return processTable().list();
}

export function groupMembers(pgid: number): ProcInfo[] {
  return processTable().groupMembers(pgid);
}
