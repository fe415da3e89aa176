/**
 * The server statechart's definition as sent to UIs (the control channel's snapshot `machine`).
 *
 * xstate's `machine.toJSON()` lists every event transition of a state node under `transitions`, but
 * leaves out the eventless (`always`) ones: drawn from it alone, `starting.check` and
 * `reaping.settled` would look like dead ends. This adds them to each node that has any, as
 * `always: [{ eventType: "", target: ["#server.…"], guard?, actions, source }]`, in the same shape
 * as the entries of `transitions`. Pure: no I/O, nothing secret (names of states, guards, actions).
 */
import type { AnyStateMachine } from 'xstate';

interface NodeLike {
  always?: unknown[];
  states?: Record<string, NodeLike>;
}

type Json = Record<string, unknown>;

function transitionJson(t: unknown): Json | undefined {
  if (t && typeof t === 'object' && typeof (t as { toJSON?: unknown }).toJSON === 'function') {
    return (t as { toJSON: () => Json }).toJSON();
  }
  return undefined;
}

function addEventless(node: NodeLike, json: Json): void {
  const always = (node.always ?? []).map(transitionJson).filter((t): t is Json => t !== undefined);
  if (always.length > 0) json.always = always;
  const jsonStates = (json.states ?? {}) as Record<string, Json>;
  for (const [key, child] of Object.entries(node.states ?? {})) {
    const childJson = jsonStates[key];
    if (childJson) addEventless(child, childJson);
  }
}

/** `machine.toJSON()` plus the eventless transitions of every state node (see the header). */
export function machineDefinitionOf(machine: AnyStateMachine): Record<string, unknown> {
  const json = machine.toJSON() as unknown as Json;
  addEventless(machine.root as unknown as NodeLike, json);
  return json;
}
