/**
 * The one reading of a request header for the daemon's HTTP endpoints.
 *
 * Node joins most repeated headers into one string (', ') and drops repeats of a few (host,
 * authorization, content-type, …), so an array only arrives for set-cookie or from a hand-built request.
 * An array of exactly one value is that value; any other array means the header was sent more than
 * once with no agreed reading, which a security decision must not guess about: it is `null`, and
 * callers refuse the request.
 */
export function headerValue(v: string | string[] | undefined): string | undefined | null {
  if (Array.isArray(v)) return v.length === 1 ? v[0]! : null;
  return v;
}
