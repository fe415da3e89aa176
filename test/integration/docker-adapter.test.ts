/**
 * The Docker container adapter against a real engine (scripts/ensure-docker.sh starts one) and the
 * locally built test image (scripts/build-test-image.sh): an MCP session through the container,
 * stop escalation per hostile fixture, early exits, missing images, an unreachable engine, removal as
 * one attempt per call while an engine proxy (test/helpers/docker-engine-proxy.ts) refuses or stalls
 * it, and the label-based reaper helpers. Every test ends with zero containers labelled with its instance id and
 * an empty ledger.
 *
 * A fake engine on a unix socket checks what goes over the wire (no env in URLs); it needs no Docker.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type Docker from 'dockerode';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import type { DockerOptions } from '../../src/config/config-types.js';
import { LABEL_INSTANCE, LABEL_LAUNCH, LABEL_MANAGED, LABEL_OWNER, LABEL_SERVER } from '../../src/adapters/docker/container-labels.js';
import { createDockerClient, engineAddress } from '../../src/adapters/docker/docker-engine.js';
import { CONTAINER_DEFAULTS } from '../../src/adapters/docker/container-config.js';
import {
  listManagedContainers,
  reapOrphanContainers,
  removeContainers,
  removeInstanceContainers,
} from '../../src/adapters/docker/managed-containers.js';
import {
  startContainer,
  type ContainerHandle,
  type ContainerSettings,
  type ContainerSpec,
} from '../../src/adapters/docker/container-run.js';
import { connectUpstream } from '../../src/adapters/mcp/upstream-client.js';
import { processStartTime } from '../helpers/process-table.js';
import { ownerMarker } from '../../src/core/instance-identity.js';
import { memoryLogger, newInstanceId, waitFor, type CapturedLog } from '../helpers/leak-check.js';
import { dockerSuiteSkip, requireDocker } from '../helpers/docker-available.js';
import { startEngineProxy } from '../helpers/docker-engine-proxy.js';
import { IMAGE_DEMO_SERVER, IMAGE_NODE, ensureTestImage, imageFixture } from '../helpers/docker-image.js';

const SETTINGS: ContainerSettings = {
  stopEofGraceMs: 500,
  stopKillGraceMs: 2_000,
  stderrLinesPerSecond: 200,
  stderrMaxLineBytes: 4_096,
  dockerCallTimeoutMs: 5_000,
  dockerStopGraceSeconds: 1,
};
/** Scheduling slack on a loaded 2-CPU machine (engine calls included). */
const SLACK_MS = 1_500;
const SECRET = 'sk-test-0123456789-do-not-leak';
/**
 * This process as a *live* owner: every daemon's startup reaper (and `mcp-warden reap`) removes
 * containers whose owner label names a dead daemon, so a suite running beside this one must see ours alive.
 */
const liveOwnerOf = (instanceId: string): string =>
  ownerMarker({ pid: process.pid, startTime: processStartTime(process.pid) ?? 0, instanceId });

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(vars)) {
    saved[k] = process.env[k];
    if (vars[k] === undefined) delete process.env[k];
    else process.env[k] = vars[k];
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

interface Rig {
  docker: Docker;
  image: string;
  ledger: ResourceLedger;
  owner: string;
  instanceId: string;
  lines: CapturedLog[];
  deps(settings?: Partial<ContainerSettings>, docker?: Docker): Parameters<typeof startContainer>[1];
  spec(command: string, args: string[], extra?: Partial<ContainerSpec>): ContainerSpec;
  /** Containers labelled with this rig's instance id. */
  labelled(): Promise<number>;
}

/** The unix socket path behind a client (the engine proxy forwards to it). */
function engineSocket(docker: Docker): string {
  const address = engineAddress(docker);
  assert.ok(address.startsWith('unix://'), `the engine proxy needs a unix socket engine, not ${address}`);
  return address.slice('unix://'.length);
}

function dockerOptions(image: string, extra: Partial<DockerOptions> = {}): DockerOptions {
  return { image, network: 'none', volumes: [], env: {}, ...extra };
}

// ---------------------------------------------------------------------------------------------
// What goes over the wire: a fake engine on a unix socket (no Docker needed)
// ---------------------------------------------------------------------------------------------

describe('docker adapter: requests on the wire (fake engine)', () => {
  let dir: string;
  let server: Server;
  let socketPath: string;
  const seen: Array<{ method: string; url: string; body: string }> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-warden-fake-engine-'));
    socketPath = join(dir, 'docker.sock');
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body });
        const path = (req.url ?? '').split('?')[0]!;
        if (path.endsWith('/_ping')) {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
        } else if (path.endsWith('/containers/create')) {
          res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'fake engine says no' }));
        } else if (path.endsWith('/containers/json')) {
          res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
        } else {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'not found' }));
        }
      });
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends Env and configuration only in the create body, never in a URL; a failed create leaves nothing', async () => {
    const docker = withEnv({ DOCKER_HOST: `unix://${socketPath}`, DOCKER_CLIENT_TIMEOUT: '1' }, () => createDockerClient());
    assert.equal(engineAddress(docker), `unix://${socketPath}`);
    assert.equal((docker.modem as unknown as { timeout?: number }).timeout, undefined, 'no global timeout');
    const ledger = new ResourceLedger();
    const { logger, lines } = memoryLogger();
    const err = await startContainer(
      {
        server: 'wire',
        instanceId: 'inst-wire',
        image: 'some/image:1',
        command: 'node',
        args: ['server.js', '--flag'],
        env: { API_KEY: SECRET },
        docker: dockerOptions('some/image:1'),
      },
      { ledger, owner: 'server:wire', logger, settings: SETTINGS, docker },
    ).then(
      () => assert.fail('create must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WardenError);
    assert.equal(err.code, ErrorCodes.DOCKER_FAILED);
    assert.match(err.message, /fake engine says no/);
    const create = seen.find((s) => s.url.includes('/containers/create'));
    assert.ok(create, 'create was sent');
    assert.ok(!create.url.includes(SECRET) && !create.url.includes('API_KEY'), `env leaked into the URL: ${create.url}`);
    assert.match(create.url, /[?&]name=mcp-warden-wire-[0-9a-f]+(&|$)/);
    const body = JSON.parse(create.body) as Record<string, unknown>;
    assert.deepEqual(body.Env, [`API_KEY=${SECRET}`]);
    assert.deepEqual(body.Entrypoint, ['node']);
    assert.deepEqual(body.Cmd, ['server.js', '--flag']);
    const hc = body.HostConfig as Record<string, unknown>;
    assert.equal(hc.Init, true);
    assert.equal(hc.NetworkMode, 'none');
    assert.deepEqual(hc.LogConfig, { Type: 'none', Config: {} });
    const labels = body.Labels as Record<string, string>;
    assert.equal(labels[LABEL_MANAGED], 'true');
    assert.equal(labels[LABEL_INSTANCE], 'inst-wire');
    assert.equal(labels[LABEL_SERVER], 'wire');
    assert.match(labels[LABEL_LAUNCH]!, /^[0-9a-f]{10}$/);
    // 500 on create: unknown whether it exists, so it was looked up by its launch label (none): settled.
    assert.ok(
      seen.some((s) => s.url.includes('/containers/json') && decodeURIComponent(s.url).includes(`${LABEL_LAUNCH}=${labels[LABEL_LAUNCH]}`)),
    );
    assert.equal(ledger.size(), 0);
    for (const l of lines) assert.ok(!JSON.stringify(l).includes(SECRET), `secret in a log line: ${JSON.stringify(l)}`);
    assert.ok(
      lines.some((l) => l.level === 50 && /creating container/.test(l.msg)),
      'the failed call is logged as an error',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Real engine
// ---------------------------------------------------------------------------------------------

describe('docker adapter (real engine)', { skip: await dockerSuiteSkip('docker adapter') }, () => {
  let docker: Docker;
  let image: string;

  before(async () => {
    docker = (await requireDocker()).docker;
    image = await ensureTestImage();
  });

  async function withRig(name: string, body: (rig: Rig) => Promise<void>): Promise<void> {
    const ledger = new ResourceLedger();
    const instanceId = newInstanceId(`docker-${name}`);
    const owner = `server:${name}`;
    const { logger, lines } = memoryLogger();
    const labelled = async () => (await listManagedContainers({ docker, instanceId })).length;
    const rig: Rig = {
      docker,
      image,
      ledger,
      owner,
      instanceId,
      lines,
      deps: (settings = {}, d = docker) => ({ ledger, owner, logger, settings: { ...SETTINGS, ...settings }, docker: d }),
      spec: (command, args, extra = {}) => ({
        server: name,
        instanceId,
        ownerMarker: liveOwnerOf(instanceId),
        image,
        command,
        args,
        env: { API_KEY: SECRET },
        docker: dockerOptions(image),
        ...extra,
      }),
      labelled,
    };
    try {
      await body(rig);
      const clean = await waitFor(async () => (await labelled()) === 0, { timeoutMs: 3_000, intervalMs: 100 });
      assert.ok(clean, `${await labelled()} container(s) labelled ${LABEL_INSTANCE}=${instanceId} left behind`);
      assert.equal(
        ledger.size(),
        0,
        `ledger not empty: ${ledger
          .all()
          .map((e) => e.description)
          .join(', ')}`,
      );
      for (const l of lines) assert.ok(!JSON.stringify(l).includes(SECRET), `secret in a log line: ${JSON.stringify(l)}`);
    } finally {
      // Whatever happened, nothing outlives the test.
      await ledger.sweep('force');
      await removeInstanceContainers(instanceId, { docker });
    }
  }

  it('runs the demo server in a container: MCP over the handle, labels, ledger, stop removes everything', async (t) => {
    await withRig('demo', async (rig) => {
      const t0 = Date.now();
      const handle = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER]), rig.deps());
      const startMs = Date.now() - t0;
      assert.match(handle.name, /^mcp-warden-demo-[0-9a-f]{10}$/);
      assert.match(handle.containerId, /^[0-9a-f]{64}$/);
      assert.ok(handle.pid > 1, `init pid ${handle.pid}`);
      await handle.spawned;

      const entries = rig.ledger.owned(rig.owner);
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.kind, 'container');
      assert.equal(entries[0]!.facts?.containerId, handle.containerId);
      assert.equal(entries[0]!.facts?.name, handle.name);

      const listed = await listManagedContainers({ docker: rig.docker, instanceId: rig.instanceId });
      assert.equal(listed.length, 1);
      assert.equal(listed[0]!.id, handle.containerId);
      assert.equal(listed[0]!.server, 'demo');
      assert.equal(listed[0]!.state, 'running');
      assert.equal(listed[0]!.owner, liveOwnerOf(rig.instanceId));

      const inspect = await rig.docker.getContainer(handle.containerId).inspect();
      assert.ok(inspect.Config.Env.includes(`API_KEY=${SECRET}`), 'env reaches the container through Env');
      assert.equal(inspect.HostConfig.Init, true);
      assert.equal(inspect.HostConfig.NetworkMode, 'none');

      const { logger } = memoryLogger();
      const t1 = Date.now();
      const conn = await connectUpstream(handle, { name: 'demo', logger, requestTimeoutMs: 10_000 });
      const initMs = Date.now() - t1;
      assert.equal(conn.serverInfo?.name, 'mcp-warden-demo');
      const tools = await conn.listTools();
      assert.deepEqual(tools.map((x) => x.name).sort(), ['add', 'countdown', 'echo', 'time']);
      const t2 = Date.now();
      const result = await conn.callTool('echo', { text: 'hello from a container' }, { timeoutMs: 5_000 });
      const callMs = Date.now() - t2;
      assert.deepEqual(result.content, [{ type: 'text', text: 'hello from a container' }]);
      const sum = await conn.callTool('add', { a: 2, b: 40 }, { timeoutMs: 5_000 });
      assert.deepEqual(sum.structuredContent, { sum: 42 });

      await conn.close();
      const t3 = Date.now();
      const report = await handle.stop();
      const stopMs = Date.now() - t3;
      assert.equal(report.escalation, 'eof', 'the demo server exits on stdin EOF');
      assert.equal(report.exitCode, 0);
      assert.deepEqual(await handle.exited, { code: 0, signal: null });
      assert.equal(await handle.isGone(), true);
      assert.equal(await rig.labelled(), 0);
      assert.equal(rig.ledger.size(), 0);
      await assert.rejects(rig.docker.getContainer(handle.containerId).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
      // Idempotent.
      assert.deepEqual(await handle.stop(), report);
      t.diagnostic(`timings: start ${startMs} ms, initialize ${initMs} ms, echo ${callMs} ms, stop+remove ${stopMs} ms`);
      const started = rig.lines.find((l) => l.msg === 'container started');
      if (started)
        t.diagnostic(`engine calls: create ${started.createMs} ms, attach+wait ${started.attachMs} ms, start ${started.startMs} ms`);
    });
  });

  it('releasing the owner through the ledger stops and removes the container', async () => {
    await withRig('ledger', async (rig) => {
      const handle = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER]), rig.deps());
      const exits: unknown[] = [];
      handle.onExit((info) => exits.push(info));
      // Once the server is up it exits on stdin EOF (exit 0). (Released during node's own start-up on
      // a loaded machine it may still be booting after stopEofGraceMs and get SIGTERM: 143.)
      const { logger } = memoryLogger();
      await connectUpstream(handle, { name: 'ledger', logger, requestTimeoutMs: 10_000 });
      assert.deepEqual(await rig.ledger.releaseOwned(rig.owner, 'polite'), []);
      assert.equal(rig.ledger.size(), 0);
      assert.equal(await rig.labelled(), 0);
      assert.deepEqual(exits, [{ code: 0, signal: null }]);
    });
  });

  it('a server that ignores stdin EOF is stopped by docker stop (SIGTERM through docker-init)', async () => {
    await withRig('ignore-eof', async (rig) => {
      const handle = await startContainer(rig.spec(IMAGE_NODE, [imageFixture('ignore-eof-server')]), rig.deps());
      const { logger } = memoryLogger();
      const conn = await connectUpstream(handle, { name: 'ignore-eof', logger, requestTimeoutMs: 10_000 });
      await conn.close();
      const report = await handle.stop();
      assert.equal(report.escalation, 'sigterm');
      assert.ok(
        report.durationMs < SETTINGS.stopEofGraceMs + SETTINGS.dockerStopGraceSeconds * 1_000 + SLACK_MS,
        `${report.durationMs} ms`,
      );
    });
  });

  it('a server that ignores SIGTERM is SIGKILLed within the budget', async (t) => {
    await withRig('ignore-sigterm', async (rig) => {
      const handle = await startContainer(rig.spec(IMAGE_NODE, [imageFixture('ignore-sigterm-server')]), rig.deps());
      const { logger } = memoryLogger();
      const conn = await connectUpstream(handle, { name: 'ignore-sigterm', logger, requestTimeoutMs: 10_000 });
      await conn.close();
      const report = await handle.stop();
      const budget = SETTINGS.stopEofGraceMs + SETTINGS.dockerStopGraceSeconds * 1_000 + SETTINGS.stopKillGraceMs;
      t.diagnostic(`ignore-sigterm: stopped in ${report.durationMs} ms (budget ${budget} ms + slack), exit ${report.exitCode}`);
      assert.equal(report.escalation, 'sigkill');
      assert.equal(report.exitCode, 137);
      assert.ok(report.durationMs >= SETTINGS.stopEofGraceMs + SETTINGS.dockerStopGraceSeconds * 1_000 - 100, `${report.durationMs} ms`);
      assert.ok(report.durationMs < budget + SLACK_MS, `${report.durationMs} ms`);
      // SIGTERM reached the server (docker-init forwards it), which logged and ignored it.
      assert.ok(
        rig.lines.some((l) => l.stream === 'stderr' && /ignoring SIGTERM/.test(l.msg)),
        'the fixture saw SIGTERM',
      );
    });
  });

  it('kill() (the forced path) removes a server that ignores everything at once', async () => {
    await withRig('kill', async (rig) => {
      const handle = await startContainer(rig.spec(IMAGE_NODE, [imageFixture('ignore-sigterm-server')]), rig.deps());
      const t0 = Date.now();
      await handle.kill();
      assert.ok(Date.now() - t0 < 2_000, `kill took ${Date.now() - t0} ms`);
      assert.equal((await handle.exited).code, 137);
      assert.equal(rig.ledger.size(), 0);
    });
  });

  it('a command that does not exist: E_CONTAINER_EXITED with the exit code and the reason, nothing left', async () => {
    await withRig('badcmd', async (rig) => {
      let err: unknown;
      try {
        const handle: ContainerHandle = await startContainer(rig.spec('/nonexistent/server', ['x']), rig.deps());
        // Lost the race with the post-start check: the exit is reported by the handle instead.
        const { logger } = memoryLogger();
        await connectUpstream(handle, { name: 'badcmd', logger, requestTimeoutMs: 5_000 }).catch(() => undefined);
        await handle.exited;
        err = handle.exitError();
        await handle.stop();
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof WardenError, String(err));
      assert.equal(err.code, ErrorCodes.CONTAINER_EXITED);
      assert.match(err.message, /code 127/);
      assert.match(err.message, /\/nonexistent\/server/);
    });
  });

  it('an image that is not on the engine: E_DOCKER_IMAGE_MISSING, nothing created', async () => {
    await withRig('noimage', async (rig) => {
      const missing = 'mcp-warden-test-node:does-not-exist';
      const err = await startContainer(
        rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { image: missing, docker: dockerOptions(missing) }),
        rig.deps(),
      ).then(
        () => assert.fail('must fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WardenError);
      assert.equal(err.code, ErrorCodes.DOCKER_IMAGE_MISSING);
      assert.match(err.message, /never pulls/);
    });
  });

  it('hardened by default: no capabilities, no-new-privileges, memory/CPU/pids limits, read-only root with a tmpfs /tmp; the server still works', async () => {
    await withRig('hardened', async (rig) => {
      const handle = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { docker: dockerOptions(rig.image) }), rig.deps());
      const info = await rig.docker.getContainer(handle.containerId).inspect();
      const hc = info.HostConfig as Record<string, unknown>;
      assert.deepEqual(hc.CapDrop, ['ALL']);
      assert.ok(hc.CapAdd === null || (Array.isArray(hc.CapAdd) && hc.CapAdd.length === 0), `CapAdd ${JSON.stringify(hc.CapAdd)}`);
      assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
      assert.equal(hc.ReadonlyRootfs, true);
      assert.equal(hc.Privileged, false);
      assert.equal(hc.Memory, CONTAINER_DEFAULTS.memoryBytes);
      assert.equal(hc.NanoCpus, CONTAINER_DEFAULTS.cpus * 1e9);
      assert.equal(hc.PidsLimit, CONTAINER_DEFAULTS.pidsLimit);
      assert.deepEqual(hc.Tmpfs, { '/tmp': CONTAINER_DEFAULTS.tmpfs });
      // The MCP stream works on the read-only root (the image is FROM scratch + node).
      const conn = await connectUpstream(handle, { name: 'hardened', logger: memoryLogger().logger, requestTimeoutMs: 10_000 });
      assert.ok((await conn.listTools()).length > 0);
      await conn.close();
      await handle.stop();

      // Each default is overridable per server.
      const loose = dockerOptions(rig.image, { readOnly: false, noNewPrivileges: false, pidsLimit: 0, capAdd: ['NET_BIND_SERVICE'] });
      const h2 = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { docker: loose }), rig.deps());
      const hc2 = (await rig.docker.getContainer(h2.containerId).inspect()).HostConfig as Record<string, unknown>;
      assert.equal(hc2.ReadonlyRootfs, false);
      assert.ok(!JSON.stringify(hc2.SecurityOpt ?? []).includes('no-new-privileges'));
      assert.ok(hc2.PidsLimit === null || Number(hc2.PidsLimit) <= 0, `PidsLimit ${String(hc2.PidsLimit)}`);
      assert.deepEqual(hc2.CapAdd, ['NET_BIND_SERVICE']);
      assert.equal(hc2.Tmpfs ?? null, null);
      await h2.stop();
    });
  });

  it('limits, binds, working directory and network reach the engine; a missing network fails the start cleanly', async () => {
    await withRig('limits', async (rig) => {
      const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-bind-'));
      try {
        const opts = dockerOptions(rig.image, { memory: 64 * 1024 * 1024, cpus: 0.5, volumes: [`${dir}:/data:ro`] });
        const handle = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { cwd: '/data', docker: opts }), rig.deps());
        const info = await rig.docker.getContainer(handle.containerId).inspect();
        assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
        assert.equal(info.HostConfig.NanoCpus, 500_000_000);
        assert.deepEqual(info.HostConfig.Binds, [`${dir}:/data:ro`]);
        assert.equal(info.Config.WorkingDir, '/data');
        assert.equal(info.HostConfig.AutoRemove, true);
        await handle.stop();

        const bad = dockerOptions(rig.image, { network: 'mcp-warden-no-such-network' });
        const err = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { docker: bad }), rig.deps()).then(
          () => assert.fail('must fail'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof WardenError);
        assert.equal(err.code, ErrorCodes.DOCKER_FAILED);
        assert.match(err.message, /starting container .* network mcp-warden-no-such-network not found/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('an unreachable engine: E_DOCKER_UNAVAILABLE naming the address, nothing acquired', async () => {
    await withRig('noengine', async (rig) => {
      const deadSocket = join(tmpdir(), `mcp-warden-no-engine-${process.pid}.sock`);
      const dead = withEnv({ DOCKER_HOST: `unix://${deadSocket}` }, () => createDockerClient());
      const seen: number[] = [];
      const off = rig.ledger.subscribe(() => seen.push(1));
      const t0 = Date.now();
      const err = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER]), rig.deps({}, dead)).then(
        () => assert.fail('must fail'),
        (e: unknown) => e,
      );
      off();
      assert.ok(Date.now() - t0 < 1_000, 'fails fast');
      assert.ok(err instanceof WardenError);
      assert.equal(err.code, ErrorCodes.DOCKER_UNAVAILABLE);
      assert.ok(err.message.includes(`unix://${deadSocket}`), err.message);
      assert.deepEqual(seen, [], 'nothing was ever acquired');
      assert.ok(
        rig.lines.some((l) => l.level === 50 && l.engine === `unix://${deadSocket}`),
        'logged with the address',
      );
    });
  });

  it('removal is one attempt per call: a refused or stalled remove rejects with its cause, the next call removes it', async (t) => {
    const proxy = await startEngineProxy(engineSocket(docker));
    try {
      await withRig('single-shot', async (rig) => {
        const viaProxy = createDockerClient({ socketPath: proxy.socketPath });
        const handle = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER]), rig.deps({ dockerCallTimeoutMs: 1_000 }, viaProxy));
        const removals = () => proxy.seen.filter((r) => r.method === 'DELETE' && r.path === `/containers/${handle.containerId}`).length;

        // 1. The engine refuses: one DELETE, a coded error naming the engine's answer, the entry stays.
        proxy.rule = (method) => (method === 'DELETE' ? 'fail' : 'pass');
        const refused = await handle.remove().then(
          () => assert.fail('the removal must fail'),
          (e: unknown) => e,
        );
        assert.ok(refused instanceof WardenError, String(refused));
        assert.equal(refused.code, ErrorCodes.DOCKER_FAILED);
        assert.match(refused.message, /removing container .* failed: remove: HTTP 500: engine proxy: refused by the test/);
        assert.equal(removals(), 1, 'exactly one removal call');
        assert.equal(rig.ledger.size(), 1, 'still owned');

        // 2. The engine stalls: the one call is cut by its own deadline (dockerCallTimeoutMs), not retried.
        proxy.rule = (method) => (method === 'DELETE' ? 'stall' : 'pass');
        const t0 = Date.now();
        const stalled = await handle.remove().then(
          () => assert.fail('the removal must fail'),
          (e: unknown) => e,
        );
        const stalledMs = Date.now() - t0;
        assert.ok(stalled instanceof WardenError, String(stalled));
        assert.match(stalled.message, /no answer from the engine within 1000 ms/);
        assert.equal(stalled.detail?.timedOut, true);
        assert.ok(stalledMs >= 950 && stalledMs < 1_000 + SLACK_MS, `failed after ${stalledMs} ms`);
        assert.equal(removals(), 2, 'exactly one more removal call');
        const failures = rig.lines.filter((l) => l.level === 50 && /removing container .* failed/.test(l.msg));
        assert.equal(failures.length, 2, 'each failed attempt is logged as an error, once');

        // 3. The caller's next attempt (the statechart's retry in the daemon) removes it.
        proxy.rule = () => 'pass';
        await handle.remove();
        assert.equal(removals(), 3);
        assert.equal(await handle.isGone(), true);
        assert.equal(rig.ledger.size(), 0);
        t.diagnostic(`refused, then stalled ${stalledMs} ms, then removed: ${removals()} removal calls for 3 remove() calls`);
      });
    } finally {
      await proxy.close();
    }
  });

  it('label-based helpers find and remove an instance’s containers; the handle then audits as gone', async () => {
    await withRig('reaper', async (rig) => {
      const a = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER]), rig.deps());
      const b = await startContainer(rig.spec(IMAGE_NODE, [imageFixture('ignore-sigterm-server')]), rig.deps());
      const other = await listManagedContainers({ docker: rig.docker, instanceId: `${rig.instanceId}-other` });
      assert.equal(other.length, 0, 'another instance id selects nothing (labels, not name substrings)');
      const found = await listManagedContainers({ docker: rig.docker, instanceId: rig.instanceId, server: 'reaper' });
      assert.deepEqual(found.map((c) => c.id).sort(), [a.containerId, b.containerId].sort());
      const t0 = Date.now();
      const { results } = await removeInstanceContainers(rig.instanceId, { docker: rig.docker });
      const removeMs = Date.now() - t0;
      assert.equal(results.length, 2);
      assert.ok(
        results.every((r) => r.removed),
        JSON.stringify(results),
      );
      assert.ok(removeMs < 3_000, `${removeMs} ms`);
      // The owner's audit now finds both gone and settles them.
      assert.deepEqual(await rig.ledger.audit(rig.owner), []);
      assert.equal(rig.ledger.size(), 0);
      const again = await removeContainers([a.containerId], { docker: rig.docker });
      assert.deepEqual(again, [{ id: a.containerId, removed: true }], '404 counts as removed');
    });
  });

  it('a stop arriving through the ledger while the start is in flight wins: the start is abandoned, nothing left', async () => {
    await withRig('race', async (rig) => {
      const starting = startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER]), rig.deps());
      starting.catch(() => undefined);
      // The entry exists as soon as the engine answered the ping (before create).
      assert.ok(await waitFor(() => rig.ledger.size() === 1, { timeoutMs: 5_000, intervalMs: 1 }));
      const isGoneDuringStart = await rig.ledger.owned(rig.owner)[0]!.isGone!();
      assert.equal(isGoneDuringStart, false, 'never "gone" while a create may be in flight');
      assert.deepEqual(await rig.ledger.releaseOwned(rig.owner, 'polite'), []);
      const err = await starting.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof WardenError && /abandoned/.test(err.message), String(err));
      assert.equal(rig.ledger.size(), 0);
      assert.equal(await rig.labelled(), 0);
    });
  });

  it('reapOrphanContainers removes containers of dead owners only', async () => {
    await withRig('orphans', async (rig) => {
      const deadOwner = `999999:1:${rig.instanceId}-dead`;
      const liveOwner = liveOwnerOf(rig.instanceId);
      const dead = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { ownerMarker: deadOwner }), rig.deps());
      const live = await startContainer(rig.spec(IMAGE_NODE, [IMAGE_DEMO_SERVER], { ownerMarker: liveOwner }), rig.deps());
      // Only this test's containers are judged dead; anyone else's are "alive" and untouched.
      const isOwnerAlive = (m: string) => m !== deadOwner;
      const dry = await reapOrphanContainers({ docker: rig.docker, dryRun: true, isOwnerAlive });
      assert.deepEqual(
        dry.containers.map((c) => [c.id, c.removed]),
        [[dead.containerId, false]],
      );
      const t0 = Date.now();
      const real = await reapOrphanContainers({ docker: rig.docker, dryRun: false, isOwnerAlive });
      const ms = Date.now() - t0;
      assert.deepEqual(real.errors, []);
      assert.deepEqual(
        real.containers.map((c) => [c.id, c.removed, c.server]),
        [[dead.containerId, true, 'orphans']],
      );
      assert.ok(ms < 3_000, `${ms} ms`);
      assert.deepEqual(
        (await listManagedContainers({ docker: rig.docker, instanceId: rig.instanceId })).map((c) => c.id),
        [live.containerId],
      );
      // The live one's own stop, and the dead one's audit, leave nothing.
      await live.stop();
      assert.deepEqual(await rig.ledger.audit(rig.owner), []);
      const none = await reapOrphanContainers({
        docker: withEnv({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, () => createDockerClient()),
        dryRun: false,
        isOwnerAlive,
      });
      assert.deepEqual(none.containers, []);
      assert.deepEqual(none.errors, []);
      assert.match(none.skipped ?? '', /unix:\/\/\/nonexistent\/docker\.sock/);
    });
  });

  it('the docker CLI sees no mcp-warden container of this process afterwards', () => {
    // One listing with the label in it: a per-id inspect races with other suites' containers going away.
    const out = execFileSync(
      'docker',
      ['ps', '-a', '--filter', `label=${LABEL_OWNER}`, '--format', `{{.ID}} {{.Label "${LABEL_OWNER}"}}`],
      {
        encoding: 'utf8',
      },
    );
    const mine = out
      .split('\n')
      .filter(Boolean)
      .filter((line) => (line.split(' ')[1] ?? '').startsWith(`${process.pid}:`));
    assert.deepEqual(mine, []);
  });
});

// Keep DEFAULT_SETTINGS' docker values in the range the adapter expects.
describe('docker settings defaults', () => {
  it('are documented values', () => {
    assert.equal(DEFAULT_SETTINGS.dockerCallTimeoutMs, 10_000);
    assert.equal(DEFAULT_SETTINGS.dockerStopGraceSeconds, 2);
  });
});
