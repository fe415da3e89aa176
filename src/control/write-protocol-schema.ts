/**
 * `node dist/src/control/write-protocol-schema.js [FILE]` regenerates the JSON Schema of the control
 * protocol (default docs/control-protocol.schema.json). test/unit/control-protocol.test.ts fails when
 * the committed file is out of date.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeProtocolSchema } from './protocol.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const target = resolve(process.argv[2] ?? resolve(here, '../../../docs/control-protocol.schema.json'));
await writeProtocolSchema(target);
process.stdout.write(`wrote ${target}\n`);
