/**
 * The flag handling every subcommand shares: strict parsing (no positionals), a usage error that
 * names the command and points at its --help (exit 2), and --help itself (exit 0).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

const USAGE_EXIT = 2;

type Options = NonNullable<ParseArgsConfig['options']>;

/** Either the parsed flags, or the exit code the command should return now. */
export function parseCommand<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  help: string,
):
  | { values: ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>>['values'] }
  | { exit: number } {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options }));
  } catch (err) {
    process.stderr.write(`mcp-warden ${command}: ${(err as Error).message}\nsee mcp-warden ${command} --help\n`);
    return { exit: USAGE_EXIT };
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(help);
    return { exit: 0 };
  }
  return { values };
}
