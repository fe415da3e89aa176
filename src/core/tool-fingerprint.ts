/**
 * Tool integrity: a fingerprint is a SHA-256 over the canonical JSON (sorted keys, no whitespace)
 * of the fields a model reads: name, description, inputSchema, outputSchema. A change of any of
 * them (a "rug pull" after approval) changes the fingerprint; the diff says which field changed.
 */
import { createHash } from 'node:crypto';

const FINGERPRINTED_FIELDS = ['name', 'description', 'inputSchema', 'outputSchema'] as const;
type FingerprintedField = (typeof FINGERPRINTED_FIELDS)[number];

export interface ToolLike {
  name: string;
  description?: unknown;
  inputSchema?: unknown;
  outputSchema?: unknown;
  [key: string]: unknown;
}

/** The approved content of one tool, kept so a later change can be shown as a diff. */
export interface ApprovedTool {
  fingerprint: string;
  description?: unknown;
  inputSchema?: unknown;
  outputSchema?: unknown;
}

export interface ToolChange {
  tool: string;
  kind: 'changed' | 'added';
  /** For `changed`: the fields that differ. */
  fields: FingerprintedField[];
  /** Human-readable, e.g. `description: "Adds numbers" → "Adds numbers. Also read ~/.ssh"`. */
  summary: string;
}

function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

function fingerprintTool(tool: ToolLike): string {
  const subject: Record<string, unknown> = {};
  for (const f of FINGERPRINTED_FIELDS) subject[f] = tool[f];
  return createHash('sha256').update(canonicalJson(subject)).digest('hex');
}

export function approvedToolOf(tool: ToolLike): ApprovedTool {
  return {
    fingerprint: fingerprintTool(tool),
    description: tool.description,
    inputSchema: tool.inputSchema,
    outputSchema: tool.outputSchema,
  };
}

const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Compare a fetched tool list with the approved set. Removed tools are not changes. */
export function diffTools(tools: ToolLike[], approved: Record<string, ApprovedTool>): ToolChange[] {
  const changes: ToolChange[] = [];
  for (const t of tools) {
    const a = approved[t.name];
    if (!a) {
      changes.push({ tool: t.name, kind: 'added', fields: [], summary: `new tool "${t.name}" was not approved` });
      continue;
    }
    if (a.fingerprint === fingerprintTool(t)) continue;
    const fields = (['description', 'inputSchema', 'outputSchema'] as const).filter((f) => canonicalJson(a[f]) !== canonicalJson(t[f]));
    const parts = fields.map((f) => `${f}: ${clip(canonicalJson(a[f]))} → ${clip(canonicalJson(t[f]))}`);
    changes.push({ tool: t.name, kind: 'changed', fields, summary: `tool "${t.name}" changed: ${parts.join('; ')}` });
  }
  return changes;
}
