/** A JSON object (not null, not an array): the shape check every wire and config parser needs. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
