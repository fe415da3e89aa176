/**
 * The `--log-level` values, apart from the logger: the CLI checks a flag with them without loading
 * pino (every command parses its flags; `stop` and `status` never log).
 */

/** Valid `--log-level` values, most to least severe. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}
