/**
 * E_REMOTE_NEEDS_AUTH, on its own: the OAuth provider raises it on every launch without a login, and
 * importing it must not load the SDK's client transports (remote-errors.ts does), which a daemon
 * without remote servers never needs.
 */
import { ErrorCodes, WardenError } from '../../core/error-codes.js';

/** A remote server needs `mcp-warden auth login <name>` first. */
export function needsAuthError(name: string, why: string): WardenError {
  return new WardenError(ErrorCodes.REMOTE_NEEDS_AUTH, `${name}: ${why}; run: mcp-warden auth login ${name}`, { server: name });
}
