/**
 * Which supervised process, if any, holds the other end of a TCP connection accepted on this host
 * (Linux). A supervised upstream runs as the same user as the daemon and can read the token from the
 * data dir, so the token alone cannot tell a person's client from an upstream (docs/quarantine.md):
 * the peer socket can.
 *
 * How: the accepted connection's remote port is the client's local port. /proc/net/tcp and
 * /proc/net/tcp6 map (local port, remote port) to the client socket's inode; a process holding that
 * socket has `socket:[<inode>]` among /proc/<pid>/fd. Only the descriptors of the given pids (the
 * members of the supervised process groups) are read, never every process on the machine.
 *
 * Cost: reading /proc/net/tcp walks the kernel's whole TCP hash table, whatever the number of sockets
 * (about 10 ms per file on a 24 GiB machine, measured in docs/benchmarks.md), so the tables are read
 * asynchronously (libuv's thread pool, never blocking the event loop), at most one read at a time, and
 * every lookup queued while a read runs shares the next one: a burst of new connections costs two reads,
 * not one each. The read a lookup uses always starts after the lookup was asked for, so the connection
 * it asks about is in it. Never throws: an unreadable file or a vanished process is simply not a match.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { processTable } from './current-table.js';

const PROC_NET_FILES = ['/proc/net/tcp', '/proc/net/tcp6'];

/**
 * Inodes of the sockets whose local port is `localPort` and remote port is `remotePort`, from the
 * text of /proc/net/tcp or /proc/net/tcp6 (columns: sl, local_address, rem_address, st, …, inode).
 */
export function inodesOfPortPair(procNetText: string, localPort: number, remotePort: number): string[] {
  const out: string[] = [];
  for (const line of procNetText.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const local = portOf(cols[1]!);
    const remote = portOf(cols[2]!);
    const inode = cols[9]!;
    if (local === localPort && remote === remotePort && /^\d+$/.test(inode) && inode !== '0') out.push(inode);
  }
  return out;
}

/** `0100007F:1F90` → 8080; undefined when malformed. */
function portOf(hexAddress: string): number | undefined {
  const colon = hexAddress.lastIndexOf(':');
  if (colon < 0) return undefined;
  const port = Number.parseInt(hexAddress.slice(colon + 1), 16);
  return Number.isInteger(port) ? port : undefined;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return '';
  }
}

let running: Promise<string[]> | undefined;
let next: Promise<string[]> | undefined;

/** The texts of PROC_NET_FILES from a read that starts no earlier than this call. */
function readNetTables(): Promise<string[]> {
  const read = () => Promise.all(PROC_NET_FILES.map(readText));
  if (!running) {
    const p = read().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  }
  // A read is under way and may have started before this connection existed: join the next one.
  next ??= running.then(() => {
    next = undefined;
    return readNetTables();
  });
  return next;
}

/** True when `pid` has one of `inodes` among its open descriptors. */
function holdsSocket(pid: number, inodes: ReadonlySet<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // gone, or not ours to read
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1]!)) return true;
  }
  return false;
}

/**
 * The live processes of the given supervised groups: every member of each pgid, each listed pid, and
 * their descendants (a child that left the group with setsid still has its parent chain; one that
 * double-forked away to init does not, see docs/quarantine.md). The daemon itself is never included.
 */
export async function supervisedPids(groups: readonly SupervisedGroup[]): Promise<number[]> {
  if (process.platform !== 'linux' || groups.length === 0) return [];
  const pgids = new Set(groups.map((g) => g.pgid).filter((n): n is number => Number.isInteger(n) && (n ?? 0) > 0));
  const roots = new Set(groups.map((g) => g.pid).filter((n): n is number => Number.isInteger(n) && (n ?? 0) > 0));
  const table = (await processTable().listAsync()).filter((p) => p.state !== 'Z' && p.state !== 'X');
  const chosen = new Set(table.filter((p) => pgids.has(p.pgid) || roots.has(p.pid)).map((p) => p.pid));
  // Descendants: repeat until no new child of a chosen process appears (the table is a snapshot).
  for (let grew = true; grew;) {
    grew = false;
    for (const p of table) {
      if (!chosen.has(p.pid) && chosen.has(p.ppid)) {
        chosen.add(p.pid);
        grew = true;
      }
    }
  }
  chosen.delete(process.pid);
  return [...chosen];
}

/** A supervised process group as the ledger records it. */
export interface SupervisedGroup {
  pid?: number;
  pgid?: number;
}

type PidsOf = (groups: readonly SupervisedGroup[]) => Promise<readonly number[]>;

/** Scans asked for in the current event-loop turn, per scanning function. */
const scans = new Map<PidsOf, Promise<readonly number[]>>();

/**
 * `pidsOf(groups())` shared by every lookup that asks for it in one event-loop turn: it runs in that
 * turn's check phase, after each of them was asked (so each sees every process that existed when it
 * asked), once for all of them. One scan per lookup read /proc/<pid>/stat of every process on the
 * machine per new connection, on the event loop: 17-60 ms each here, so a burst of 64 connections
 * held every session's traffic for seconds (docs/benchmarks.md, "Throughput").
 */
function sharedScan(pidsOf: PidsOf, groups: () => readonly SupervisedGroup[]): Promise<readonly number[]> {
  let scan = scans.get(pidsOf);
  if (!scan) {
    scan = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      scans.delete(pidsOf);
      return pidsOf(groups());
    });
    scans.set(pidsOf, scan);
  }
  return scan;
}

/**
 * The supervised process that holds the client end of the TCP connection whose client port is
 * `clientPort` and whose server port is `serverPort`; undefined when none does (or not on Linux).
 * `groups` is asked first: with no supervised process nothing is read at all. The process table is
 * read only when such a socket exists on this host, once for all the lookups of an event-loop turn.
 */
export async function supervisedSocketOwner(
  clientPort: number,
  serverPort: number,
  groups: () => readonly SupervisedGroup[],
  /** The live processes of those groups (tests pass their own). */
  pidsOf: PidsOf = supervisedPids,
): Promise<number | undefined> {
  if (process.platform !== 'linux' || groups().length === 0) return undefined;
  const inodes = new Set<string>();
  for (const text of await readNetTables()) for (const inode of inodesOfPortPair(text, clientPort, serverPort)) inodes.add(inode);
  if (inodes.size === 0) return undefined;
  for (const pid of await sharedScan(pidsOf, groups)) if (holdsSocket(pid, inodes)) return pid;
  return undefined;
}
