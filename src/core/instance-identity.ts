/**
 * Who this daemon is, as stamped into every child's environment. A reaper can tell a dead owner
 * from a live one without guessing: the marker carries the daemon's pid *and* its process start
 * time, so a reused pid does not look alive.
 */
import { randomBytes } from 'node:crypto';
import { processTable } from '../adapters/process/current-table.js';
import { EPOCH_MS_FLOOR, isDead } from '../adapters/process/process-table.js';

export const ENV_INSTANCE = 'MCP_WARDEN_INSTANCE';
export const ENV_OWNER = 'MCP_WARDEN_OWNER';
export const ENV_SERVER = 'MCP_WARDEN_SERVER';

export interface InstanceIdentity {
  instanceId: string;
  pid: number;
  /** Start time of the daemon process as its process table reads it (adapters/process/process-table.ts `startTime`). */
  startTime: number;
}

export function newInstanceIdentity(): InstanceIdentity {
  return {
    instanceId: randomBytes(9).toString('base64url'),
    pid: process.pid,
    startTime: processTable().get(process.pid)?.startTime ?? 0,
  };
}

/**
 * `<pid>:<startTime>:<instanceId>`; a wall-clock start time (the portable table's ms since the epoch)
 * is written `w<ms>`, so a reader that only knows /proc ticks (an older mcp-warden) cannot parse it
 * and leaves the process alone instead of comparing units and judging a live daemon dead.
 */
export function ownerMarker(id: InstanceIdentity): string {
  return `${id.pid}:${id.startTime >= EPOCH_MS_FLOOR ? 'w' : ''}${id.startTime}:${id.instanceId}`;
}

export function parseOwnerMarker(value: string): InstanceIdentity | undefined {
  const m = /^(\d+):(w?)(\d+):([A-Za-z0-9_-]+)$/.exec(value);
  if (!m) return undefined;
  const startTime = Number(m[3]);
  if ((m[2] === 'w') !== startTime >= EPOCH_MS_FLOOR) return undefined;
  return { pid: Number(m[1]), startTime, instanceId: m[4]! };
}

/**
 * Alive = a process with that pid exists, started at the recorded time, and is not a zombie
 * (a SIGKILLed daemon whose parent has not reaped it yet is dead, though the table still lists it).
 * When the start times cannot be compared (recorded by the /proc table, read by the portable one)
 * or the table cannot be read, a live process with that pid counts as the owner: nothing of a
 * possibly live daemon is ever reaped.
 */
export function isOwnerAlive(id: InstanceIdentity): boolean {
  const table = processTable();
  let p;
  try {
    p = table.get(id.pid);
  } catch {
    return true;
  }
  if (p === undefined || isDead(p)) return false;
  return table.startTimeMatches(p, id.startTime) ?? true;
}

/** The environment markers for one server's processes (`serverKey` = `<instanceId>/<name>`). */
export function markerEnv(id: InstanceIdentity, server: string): Record<string, string> {
  return {
    [ENV_INSTANCE]: id.instanceId,
    [ENV_OWNER]: ownerMarker(id),
    [ENV_SERVER]: `${id.instanceId}/${server}`,
  };
}
