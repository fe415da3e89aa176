/**
 * The Docker test image (scripts/build-test-image.sh): FROM scratch + node + its libraries + the
 * compiled demo server, the test fixtures and the node_modules they load. Built locally (no registry)
 * when the tag for the current inputs is missing; its tag is `mcp-warden-test-node:<hash of inputs>`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The project root (this file runs as dist/test/helpers/docker-image.js). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BUILD_SCRIPT = `${PROJECT_ROOT}scripts/build-test-image.sh`;

/** Paths inside the image. */
export const IMAGE_NODE = '/usr/bin/node';
export const IMAGE_DEMO_SERVER = '/app/dist/src/demo/demo-server.js';
export const imageFixture = (name: string) => `/app/dist/test/fixtures/${name}.js`;

let tag: Promise<string> | undefined;

/** Builds the image if needed (once per process); resolves with its tag. */
export function ensureTestImage(): Promise<string> {
  tag ??= new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [BUILD_SCRIPT], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && /^mcp-warden-test-node:[0-9a-f]+$/.test(last)) resolve(last);
      else reject(new Error(`build-test-image.sh failed (exit ${code}):\n${err}${out}`));
    });
  });
  return tag;
}
