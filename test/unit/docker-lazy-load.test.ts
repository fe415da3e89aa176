/**
 * dockerode is loaded on first use only: the startup reap on a machine without an engine socket must
 * neither load it nor fail. Checked in a fresh process (module caches are per process).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const managed = fileURLToPath(new URL('../../src/adapters/docker/managed-containers.js', import.meta.url));
const engine = fileURLToPath(new URL('../../src/adapters/docker/docker-engine.js', import.meta.url));
const containerRun = fileURLToPath(new URL('../../src/adapters/docker/container-run.js', import.meta.url));

function run(script: string, env: Record<string, string>): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

const probe = `
import { createRequire } from 'node:module';
const { reapOrphanContainers } = await import(${JSON.stringify(managed)});
const { createDockerClient } = await import(${JSON.stringify(engine)});
await import(${JSON.stringify(containerRun)});
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/dockerode/'));
const before = loaded();
const report = await reapOrphanContainers({ dryRun: true, isOwnerAlive: () => true });
const afterReap = loaded();
createDockerClient();
console.log(JSON.stringify({ before, afterReap, afterClient: loaded(), report }));
`;

test('no engine socket: the reap says why, and dockerode stays unloaded until a client is made', () => {
  const r = run(probe, { DOCKER_HOST: 'unix:///nonexistent/mcp-warden-test/docker.sock' });
  assert.equal(r['before'], false, 'importing the Docker adapter modules does not load dockerode');
  assert.equal(r['afterReap'], false, 'the reap found no socket and did not load dockerode');
  assert.equal(r['afterClient'], true, 'creating a client loads it');
  const report = r['report'] as { containers: unknown[]; errors: unknown[]; skipped?: string };
  assert.deepEqual(report.containers, []);
  assert.deepEqual(report.errors, []);
  assert.match(report.skipped ?? '', /Docker engine at unix:\/\/\/nonexistent\/mcp-warden-test\/docker\.sock is not reachable \(ENOENT/);
});
