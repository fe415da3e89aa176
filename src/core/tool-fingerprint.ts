/**
 * Tool integrity: a fingerprint is a SHA-256 over the canonical JSON (sorted keys, no whitespace)
 * of the whole tool object as upstreams list it — everything a client or model sees of a tool, since
 * the catalog passes tools on whole (src/daemon/supervisor-catalog.ts): name, title, description,
 * inputSchema, outputSchema, annotations, _meta, icons, and any field a later spec adds. A change of
 * any of them (a "rug pull" after approval, an annotation flipped from read-only to destructive, a new
 * title) changes the fingerprint; the diff says which field changed. The tool-set fingerprint binds
 * an approval to the exact list a person inspected (docs/quarantine.md).
 */
import { hash } from 'node:crypto';

/** What records made before the whole tool was covered fingerprinted (approvals.json without `v`). */
const LEGACY_FIELDS = ['name', 'description', 'inputSchema', 'outputSchema'] as const;

export interface ToolLike {
  name: string;
  [key: string]: unknown;
}

/** The approved content of one tool, kept so a later change can be shown as a diff. */
export interface ApprovedTool {
  fingerprint: string;
  /** 2: `fingerprint` covers the whole tool, kept in `tool`; absent: an older record over LEGACY_FIELDS only. */
  v?: 2;
  tool?: Record<string, unknown>;
  /** Older records only (no `v`). */
  description?: unknown;
  inputSchema?: unknown;
  outputSchema?: unknown;
}

export interface ToolChange {
  /** The tool's name; for a prompt its name, for a resource template its uriTemplate. */
  tool: string;
  /** Absent for a tool; set for a prompt or resource template (src/core/offer-fingerprint.ts). */
  item?: 'prompt' | 'resourceTemplate';
  kind: 'changed' | 'added';
  /** For `changed`: the fields that differ. */
  fields: string[];
  /** Human-readable, e.g. `description: "Adds numbers" → "Adds numbers. Also read ~/.ssh"`. */
  summary: string;
}

export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

// One-shot (Node ≥ 20.12, the engines floor): no Hash object per tool; every server's start fingerprints its tools.
const sha256 = (s: string) => hash('sha256', s, 'hex');

export function fingerprintTool(tool: ToolLike): string {
  return sha256(canonicalJson(tool));
}

/** One fingerprint for a whole tool list as shown (order-independent): what an approval is bound to. */
export function fingerprintToolSet(tools: readonly ToolLike[]): string {
  return sha256(canonicalJson([...tools].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))));
}

export function approvedToolOf(tool: ToolLike): ApprovedTool {
  return { fingerprint: fingerprintTool(tool), v: 2, tool: { ...tool } };
}

/** The approved fields of a record, whatever its age (an older one kept only LEGACY_FIELDS). */
function approvedFields(a: ApprovedTool, name: string): Record<string, unknown> {
  if (a.v === 2 && a.tool) return a.tool;
  return { name, description: a.description, inputSchema: a.inputSchema, outputSchema: a.outputSchema };
}

/**
 * Unchanged against its approved record? An older record (no `v`) fingerprinted only LEGACY_FIELDS:
 * it still matches when those match and the tool shows no other field — a tool that now has a title
 * or annotations was never approved with them (fail closed).
 */
function matches(tool: ToolLike, a: ApprovedTool): boolean {
  if (a.v === 2) return a.fingerprint === fingerprintTool(tool);
  const legacy: Record<string, unknown> = {};
  for (const f of LEGACY_FIELDS) legacy[f] = tool[f];
  const others = Object.keys(tool).filter((k) => !(LEGACY_FIELDS as readonly string[]).includes(k) && tool[k] !== undefined);
  return a.fingerprint === sha256(canonicalJson(legacy)) && others.length === 0;
}

const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Compare a fetched tool list with the approved set. Removed tools are not changes. */
export function diffTools(tools: ToolLike[], approved: Record<string, ApprovedTool>): ToolChange[] {
  const changes: ToolChange[] = [];
  for (const t of tools) {
    const a = Object.hasOwn(approved, t.name) ? approved[t.name] : undefined;
    if (!a) {
      changes.push({ tool: t.name, kind: 'added', fields: [], summary: `new tool "${t.name}" was not approved` });
      continue;
    }
    if (matches(t, a)) continue;
    const before = approvedFields(a, t.name);
    const fields = [...new Set([...Object.keys(before), ...Object.keys(t)])]
      .filter((f) => f !== 'name' && canonicalJson(before[f]) !== canonicalJson(t[f]))
      .sort(fieldOrder);
    const parts = fields.map((f) => `${f}: ${clip(canonicalJson(before[f]))} → ${clip(canonicalJson(t[f]))}`);
    changes.push({ tool: t.name, kind: 'changed', fields, summary: `tool "${t.name}" changed: ${parts.join('; ')}` });
  }
  return changes;
}

/** The fields a person reads first come first in a diff; the rest alphabetically. */
const FIRST = ['title', 'description', 'inputSchema', 'outputSchema', 'annotations', '_meta', 'icons'];
function fieldOrder(a: string, b: string): number {
  const ia = FIRST.indexOf(a) < 0 ? FIRST.length : FIRST.indexOf(a);
  const ib = FIRST.indexOf(b) < 0 ? FIRST.length : FIRST.indexOf(b);
  return ia - ib || (a < b ? -1 : a > b ? 1 : 0);
}
