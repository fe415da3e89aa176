/**
 * Flags for the approval view (docs/quarantine.md): tool text a person cannot see or would not
 * expect. Advisory only — a flag does not block approval; it points the reviewer at what to read.
 * Every string anywhere in a tool is scanned (description, title, schema descriptions, annotations,
 * _meta), so hidden text in a parameter description is found as well. Pure, no I/O.
 */
import type { ToolLike } from './tool-fingerprint.js';

export type ToolFlagKind =
  'invisible' | 'bidi' | 'tag-characters' | 'html-comment' | 'instruction-like' | 'name-characters' | 'look-alike-name';

export interface ToolFlag {
  tool: string;
  kind: ToolFlagKind;
  /** JSON-path-like location, e.g. `description`, `inputSchema.properties.q.description`, `name`. */
  path: string;
  detail: string;
}

// Zero-width and other invisible format characters (soft hyphen, word joiner, BOM, Mongolian vowel separator…).
const INVISIBLE = /[\u00AD\u180E\u200B-\u200D\u2060-\u2064\uFEFF]/u;
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
// Unicode tag characters: invisible, yet models read them (ASCII smuggled as U+E0020…U+E007E).
const TAGS = /[\u{E0000}-\u{E007F}]/u;
const HTML_COMMENT = /<!--/;
const INSTRUCTION =
  /\b(ignore (all |any )?(the )?(previous|prior|above|earlier) (instructions?|prompts?|rules)|disregard (all |any )?(previous|prior|other)|system prompt|do not (tell|inform|mention|reveal)|don't (tell|inform|mention)|without (telling|informing) the user|you must (always |first )?(call|use|read|send)|before using this tool|<\/?(important|system|instructions?)>|\[\/?INST\])/i;
const NAME_OK = /^[A-Za-z0-9_.-]+$/;

const codePoints = (s: string, re: RegExp) =>
  [...new Set([...s].filter((c) => re.test(c)).map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`))].join(' ');

/** A skeleton for look-alike comparison: case, separators and common digit/letter swaps folded. */
function skeleton(name: string): string {
  return name
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[_.\-\s]/g, '')
    .replace(/[0]/g, 'o')
    .replace(/[1il|]/g, 'l')
    .replace(/rn/g, 'm')
    .replace(/5/g, 's');
}

function walkStrings(value: unknown, path: string, visit: (s: string, path: string) => void, depth = 0): void {
  if (depth > 32) return;
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) value.forEach((v, i) => walkStrings(v, `${path}[${i}]`, visit, depth + 1));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      walkStrings(k, `${p} (key)`, visit, depth + 1);
      walkStrings(v, p, visit, depth + 1);
    }
  }
}

/** Flags of every tool of a list; `otherNames` are tool names elsewhere (e.g. other servers) to compare against. */
export function flagTools(tools: readonly ToolLike[], otherNames: readonly string[] = []): ToolFlag[] {
  const flags: ToolFlag[] = [];
  const names = [...tools.map((t) => t.name), ...otherNames];
  for (const t of tools) {
    const add = (kind: ToolFlagKind, path: string, detail: string) => flags.push({ tool: t.name, kind, path, detail });
    if (!NAME_OK.test(t.name)) add('name-characters', 'name', `the name has characters outside [A-Za-z0-9_.-]: ${JSON.stringify(t.name)}`);
    const sk = skeleton(t.name);
    for (const other of names) {
      if (other !== t.name && skeleton(other) === sk) add('look-alike-name', 'name', `"${t.name}" looks like "${other}"`);
    }
    walkStrings({ ...t, name: undefined }, '', (s, path) => {
      if (INVISIBLE.test(s)) add('invisible', path, `invisible characters ${codePoints(s, INVISIBLE)}`);
      if (BIDI.test(s)) add('bidi', path, `bidirectional controls ${codePoints(s, BIDI)}`);
      if (TAGS.test(s))
        add('tag-characters', path, `Unicode tag characters (hidden text): ${codePoints(s, TAGS).split(' ').length} distinct`);
      if (HTML_COMMENT.test(s)) add('html-comment', path, 'an HTML comment (<!-- … -->), hidden when rendered');
      const m = INSTRUCTION.exec(s);
      if (m) add('instruction-like', path, `instruction-like text: "${m[0]}"`);
    });
  }
  return flags;
}
