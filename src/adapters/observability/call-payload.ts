/**
 * Arguments and results as the call log keeps them when settings.callLogPayloads asks: values under
 * secret-looking keys replaced, secrets inside strings redacted (logger.ts redactSecrets), the whole
 * cut to a byte budget. Runs at flush time, never on the call path.
 */
import { REDACTED, redactSecrets } from '../log/logger.js';

const SECRET_KEY = /pass(word|phrase)?|secret|token|api[-_]?key|^key$|auth|cookie|credential|private[-_]?key|session[-_]?id/i;
const MAX_DEPTH = 32;

function redactValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return redactSecrets(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(v)) return v.map((x) => redactValue(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) ? REDACTED : redactValue(x, depth + 1);
  return out;
}

/** The redacted value, or `{ truncated: true, json }` (the first `maxBytes` of its JSON) when larger. */
export function loggedPayload(v: unknown, maxBytes: number): unknown {
  const redacted = redactValue(v, 0);
  let json: string;
  try {
    json = JSON.stringify(redacted) ?? 'null';
  } catch {
    return { unserializable: true };
  }
  if (Buffer.byteLength(json) <= maxBytes) return redacted;
  return { truncated: true, json: Buffer.from(json).subarray(0, maxBytes).toString('utf8') };
}
