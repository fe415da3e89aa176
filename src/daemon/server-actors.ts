/**
 * The one typed way to reach a server's actor from outside the statecharts: by its systemId
 * `server:<name>` through the actor system, or every live one from the `children` of the root's
 * server groups (src/machines/server-group-machine.ts). Callers
 * get the server machine's own ref and snapshot types, so nothing needs a `getSnapshot() as {…}`
 * or spells `'server:'` itself. Never throws (a stopped root answers "none").
 */
import type { ActorRefFrom, AnyActorRef, SnapshotFrom } from 'xstate';
import { nameOfActorId, serverActorId, type ServerMachine } from '../machines/server-machine.js';
import type { SupervisorMachine } from '../machines/supervisor-machine.js';

export { serverActorId };

export type ServerActorRef = ActorRefFrom<ServerMachine>;
export type ServerSnapshot = SnapshotFrom<ServerMachine>;
export type SupervisorActorRef = ActorRefFrom<SupervisorMachine>;

/**
 * The actor of server `name`, looked up by its systemId in the system of `from` (the root, or any
 * actor of the tree). A server actor that reached `stopped` is found until its group stops it
 * on its done event: check `getSnapshot().status`.
 */
export function serverActorOf(from: AnyActorRef | undefined, name: string): ServerActorRef | undefined {
  if (!from) return undefined;
  try {
    // Only the server groups register `server:*` systemIds, always for a server machine (server-group-machine.ts).
    return from.system.get(serverActorId(name)) as ServerActorRef | undefined;
  } catch {
    return undefined;
  }
}

/** The snapshot of server `name`'s actor, if it has one. */
export function serverSnapshotOf(from: AnyActorRef | undefined, name: string): ServerSnapshot | undefined {
  try {
    return serverActorOf(from, name)?.getSnapshot();
  } catch {
    return undefined;
  }
}

/** The server name of an actor: from its systemId `server:<name>` (its id is its place in its group, server-group-machine.ts). */
export function serverNameOf(ref: AnyActorRef | undefined): string | undefined {
  return nameOfActorId((ref as { systemId?: unknown } | undefined)?.systemId);
}

/** The root's server groups (its children), in group order. */
export function serverGroupsOf(root: SupervisorActorRef | undefined): AnyActorRef[] {
  if (!root) return [];
  try {
    return Object.values(root.getSnapshot().children as Record<string, AnyActorRef | undefined>).filter((g): g is AnyActorRef => !!g);
  } catch {
    return [];
  }
}

/** Every server actor in the root's groups, with its name, in slot order. */
export function serverActorsOf(root: SupervisorActorRef | undefined): Array<{ name: string; ref: ServerActorRef }> {
  if (!root) return [];
  try {
    const out: Array<{ name: string; ref: ServerActorRef }> = [];
    for (const group of serverGroupsOf(root)) {
      for (const child of Object.values((group.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children)) {
        const name = serverNameOf(child);
        if (name === undefined || !child) continue;
        const ref = serverActorOf(root, name);
        // The registered actor is the child itself; anything else is not ours to show.
        if (ref && ref === child) out.push({ name, ref });
      }
    }
    return out;
  } catch {
    return [];
  }
}
