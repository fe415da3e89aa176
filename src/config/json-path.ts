/** Small helpers for config error messages: JSON paths and value types (never the value itself). */

/** A value's JSON type for messages. Never echoes the value itself (it may be a secret). */
export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isFinite(v) ? 'a number' : String(v);
  if (typeof v === 'string') return v === '' ? 'an empty string' : 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'object') return 'an object';
  return String(typeof v);
}

/** Appends one key or index to a JSON path: `$.a.b`, `$.a["x y"]`, `$.a[3]`. */
export function joinPath(base: string, seg: PropertyKey): string {
  if (typeof seg === 'number') return `${base}[${seg}]`;
  const s = String(seg);
  return /^[A-Za-z0-9_$-]+$/.test(s) ? `${base}.${s}` : `${base}[${JSON.stringify(s)}]`;
}
