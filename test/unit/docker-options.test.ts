/** The `docker` object of a server entry: shape, defaults, normalization and JSON-path errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig, parseServerEntry } from '../../src/config/config-schema.js';
import { MIN_MEMORY_BYTES, dockerWarnings, parseMemory, parseVolume } from '../../src/config/docker-options.js';
import { CONTAINER_DEFAULTS, createRequestBody } from '../../src/adapters/docker/container-config.js';
import type { DockerOptions } from '../../src/config/config-types.js';

const BASE = '/home/user/.config/mcp-warden';

function entry(docker: unknown, extra: Record<string, unknown> = {}) {
  return parseServerEntry('mem', { command: 'node', args: ['dist/index.js'], docker, ...extra }, BASE);
}

function issuesOf(r: ReturnType<typeof entry>): string[] {
  assert.equal(r.ok, false, 'expected issues');
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

describe('docker options', () => {
  test('minimal: image only; network defaults to "none"', () => {
    const r = entry({ image: 'mcp/memory:1.2' });
    assert.ok(r.ok);
    assert.deepEqual(r.entry.docker, { image: 'mcp/memory:1.2', network: 'none', volumes: [], env: {} });
    assert.deepEqual(r.warnings, []);
  });

  test('Privileged and host mounts need their explicit flag; status shows them as warnings', () => {
    const refused = entry({
      image: 'x',
      volumes: ['/srv:/srv'],
      extraHostConfig: { Privileged: true, Mounts: [{ Type: 'bind', Source: '/etc', Target: '/etc' }] },
    });
    assert.deepEqual(
      issuesOf(refused).map((m) => m.split(':')[0]),
      [
        '$.mcpServers.mem.docker.extraHostConfig.Privileged',
        '$.mcpServers.mem.docker.volumes',
        '$.mcpServers.mem.docker.extraHostConfig.Mounts',
      ],
    );
    const allowed = entry({
      image: 'x',
      volumes: ['/srv:/srv'],
      allowPrivileged: true,
      allowHostMounts: true,
      extraHostConfig: { Privileged: true, Mounts: [{ Type: 'bind', Source: '/etc', Target: '/etc' }] },
    });
    assert.ok(allowed.ok, JSON.stringify(allowed));
    const warnings = dockerWarnings(allowed.entry.docker);
    assert.ok(
      warnings.some((w) => w.startsWith('privileged container')),
      JSON.stringify(warnings),
    );
    assert.ok(
      warnings.some((w) => w.includes('/srv') && w.includes('/etc')),
      JSON.stringify(warnings),
    );
    const plain = entry({ image: 'x' });
    assert.ok(plain.ok);
    assert.deepEqual(dockerWarnings(plain.entry.docker), []);
  });

  test('the create body is hardened by default and each default is overridable', () => {
    const spec = (docker: Partial<DockerOptions>) => ({
      server: 's',
      instanceId: 'i',
      image: 'img',
      command: '/bin/x',
      args: [],
      env: {},
      docker: { image: 'img', network: 'none', volumes: [], env: {}, ...docker },
    });
    const hc = createRequestBody(spec({}), 'launch', 2).HostConfig as Record<string, unknown>;
    assert.deepEqual(hc.CapDrop, ['ALL']);
    assert.deepEqual(hc.CapAdd, []);
    assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
    assert.equal(hc.ReadonlyRootfs, true);
    assert.deepEqual(hc.Tmpfs, { '/tmp': CONTAINER_DEFAULTS.tmpfs });
    assert.equal(hc.Memory, CONTAINER_DEFAULTS.memoryBytes);
    assert.equal(hc.NanoCpus, 1e9);
    assert.equal(hc.PidsLimit, 256);
    assert.equal(hc.Privileged, undefined);
    const loose = createRequestBody(
      spec({ readOnly: false, noNewPrivileges: false, pidsLimit: 0, capAdd: ['NET_ADMIN'], memory: 64 * 1024 * 1024, cpus: 2 }),
      'launch',
      2,
    ).HostConfig as Record<string, unknown>;
    assert.equal(loose.ReadonlyRootfs, false);
    assert.deepEqual(loose.SecurityOpt, []);
    assert.equal(loose.PidsLimit, -1);
    assert.deepEqual(loose.CapAdd, ['NET_ADMIN']);
    assert.equal(loose.Tmpfs, undefined);
    assert.equal(loose.Memory, 64 * 1024 * 1024);
    assert.equal(loose.NanoCpus, 2e9);
  });

  test('every field, normalized', () => {
    const r = entry(
      {
        image: 'mcp/memory',
        network: 'bridge',
        memory: '512m',
        cpus: 0.5,
        pidsLimit: 64,
        readOnly: false,
        noNewPrivileges: false,
        capAdd: ['NET_BIND_SERVICE'],
        allowHostMounts: true,
        volumes: ['/srv/data:/data:ro', './cache:/cache'],
        env: { TOKEN: 'x' },
        extraHostConfig: { ShmSize: 1024, SecurityOpt: ['seccomp=unconfined'] },
      },
      { cwd: '/app' },
    );
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.entry.docker, {
      image: 'mcp/memory',
      network: 'bridge',
      memory: 512 * 1024 * 1024,
      cpus: 0.5,
      pidsLimit: 64,
      readOnly: false,
      noNewPrivileges: false,
      capAdd: ['NET_BIND_SERVICE'],
      allowHostMounts: true,
      volumes: ['/srv/data:/data:ro', `${BASE}/cache:/cache`],
      env: { TOKEN: 'x' },
      extraHostConfig: { ShmSize: 1024, SecurityOpt: ['seccomp=unconfined'] },
    });
    assert.equal(r.entry.cwd, '/app', 'cwd is a container path: not resolved against the config dir');
  });

  test('errors name the JSON path', () => {
    assert.deepEqual(issuesOf(entry({})), [
      '$.mcpServers.mem.docker: missing "image" (the container image to run, e.g. "mcp/memory:latest")',
    ]);
    const all = issuesOf(
      entry({
        image: 7,
        network: '',
        memory: '2x',
        cpus: 0,
        volumes: ['data:/data', '/a:b', '/a:/b:rx', 3],
        env: { A: 1 },
        extraHostConfig: [],
      }),
    );
    const paths = all.map((s) => s.split(':')[0]);
    assert.deepEqual(paths, [
      '$.mcpServers.mem.docker.image',
      '$.mcpServers.mem.docker.network',
      '$.mcpServers.mem.docker.memory',
      '$.mcpServers.mem.docker.cpus',
      '$.mcpServers.mem.docker.volumes[0]',
      '$.mcpServers.mem.docker.volumes[1]',
      '$.mcpServers.mem.docker.volumes[2]',
      '$.mcpServers.mem.docker.volumes[3]',
      '$.mcpServers.mem.docker.env.A',
      '$.mcpServers.mem.docker.extraHostConfig',
    ]);
    assert.match(all[4]!, /named volumes are not supported/);
    assert.match(issuesOf(entry({ image: 'x', memory: '1m' }))[0]!, /at least 6 MiB/);
    assert.match(issuesOf(entry('mcp/memory'))[0]!, /^\$\.mcpServers\.mem\.docker: expected an object, got a string/);
    assert.match(
      issuesOf(entry({ image: 'x' }, { cwd: 'rel' }))[0]!,
      /^\$\.mcpServers\.mem\.cwd: with "docker", cwd is the working directory inside the container/,
    );
  });

  test('unknown keys and managed HostConfig keys warn', () => {
    const r = entry({ image: 'x', imgae: 1, extraHostConfig: { Init: false, NetworkMode: 'host', Privileged: false } });
    assert.ok(r.ok);
    assert.deepEqual(r.entry.docker?.extraHostConfig, { Privileged: false });
    assert.deepEqual(
      r.warnings.map((w) => w.path),
      [
        '$.mcpServers.mem.docker.imgae',
        '$.mcpServers.mem.docker.extraHostConfig.Init',
        '$.mcpServers.mem.docker.extraHostConfig.NetworkMode',
      ],
    );
  });

  test('a remote entry ignores docker with a warning', () => {
    const r = parseServerEntry('r', { url: 'https://example.com/mcp', docker: { image: 'x' } }, BASE);
    assert.ok(r.ok);
    assert.equal(r.entry.docker, undefined);
    assert.ok(r.warnings.some((w) => w.path === '$.mcpServers.r.docker'));
  });

  test('memory and volume parsing', () => {
    assert.equal(parseMemory('512m'), 512 * 1024 ** 2);
    assert.equal(parseMemory('1.5g'), 1.5 * 1024 ** 3);
    assert.equal(parseMemory('64MB'), 64 * 1024 ** 2);
    assert.equal(parseMemory('1048576'), 1024 ** 2);
    assert.equal(parseMemory('12 t'), undefined);
    assert.ok(MIN_MEMORY_BYTES === 6 * 1024 * 1024);
    assert.equal(parseVolume('/a:/b', '/x'), '/a:/b');
    assert.equal(parseVolume('../a:/b:rw', '/x/y'), '/x/a:/b:rw');
    assert.deepEqual(parseVolume('~/a:/b', '/x'), {
      error: '"~" is not expanded; use an absolute host path (or one relative to the config file)',
    });
  });

  test('docker settings are configurable and range-checked', () => {
    const ok = parseConfig({ settings: { dockerCallTimeoutMs: 2500, dockerStopGraceSeconds: 0 } }, { baseDir: BASE });
    assert.ok(ok.ok);
    assert.equal(ok.config.settings.dockerCallTimeoutMs, 2500);
    assert.equal(ok.config.settings.dockerStopGraceSeconds, 0);
    const bad = parseConfig({ settings: { dockerCallTimeoutMs: 0, dockerStopGraceSeconds: 1.5 } }, { baseDir: BASE });
    assert.equal(bad.ok, false);
    assert.deepEqual(bad.ok ? [] : bad.issues.map((i) => i.path), ['$.settings.dockerCallTimeoutMs', '$.settings.dockerStopGraceSeconds']);
  });
});
