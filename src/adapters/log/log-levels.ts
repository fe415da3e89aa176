/**
 * The log levels, on their own: the CLI checks `--log-level` with them before any command runs, and
 * every command (`stop`, `status`, …) would otherwise load pino with the logger just for this list.
 */

/** Valid `--log-level` values, most to least severe. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}
