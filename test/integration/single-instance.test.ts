/**
 * One daemon per data dir (docs/cli.md), against real daemon processes started through the CLI:
 * concurrent starts, takeover after SIGKILL, side-by-side data dirs, `status` / `stop`, and a lock
 * that is removed under a running daemon. Every test ends with no daemon, watchdog or upstream
 * process of its own left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE, cliMain, demoServer } from '../helpers/test-daemon.js';
import { fixture } from '../helpers/process-fixtures.js';
import { killProcessesWithMarker, processesWithMarker, waitFor } from '../helpers/leak-check.js';
import { findByEnv, processStartTime, readProc } from '../helpers/process-table.js';
import { parseStat } from '../../src/adapters/process/proc-table.js';
import { collectStatus } from '../../src/cli/status-command.js';
import { sleep } from '../../src/core/clock.js';

/** The test runner's environment without its plumbing and without any MCP_WARDEN_* variable. */
function cliEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === 'NODE_OPTIONS' || k === 'NODE_TEST_CONTEXT') continue;
    // MCP_WARDEN_PROCESS_TABLE stays: the portable pass (test/run-tests.mjs) runs these daemons on ps too.
    if (k.startsWith('MCP_WARDEN_') && k !== 'MCP_WARDEN_PROCESS_TABLE') continue;
    env[k] = v;
  }
  return env;
}

interface Serve {
  child: ChildProcess;
  pid: number;
  startedAt: number;
  exitedAt?: number;
  out: { stdout: string; stderr: string };
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
}

interface DaemonJson {
  pid: number;
  instanceId: string;
  url: string;
  processStartTime: number;
}

const readDaemonJson = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, 'daemon.json'), 'utf8')) as DaemonJson;

/** package.json's `bin`: the shell launcher in the repo (dist/test/integration → ../../../bin). */
const launcher = fileURLToPath(new URL('../../../bin/mcp-warden', import.meta.url));

const demoConfig = { mcpServers: { demo: { command: NODE, args: [demoServer] } } };
const emptyConfig = { mcpServers: {} };

/** Per-test bookkeeping: data dirs, serve processes and daemon instances, all cleaned up and leak-checked. */
class Harness {
  readonly dirs: string[] = [];
  readonly serves: Serve[] = [];
  readonly instances = new Set<string>();

  dataDir(config: unknown): string {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-single-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    this.dirs.push(dir);
    return dir;
  }

  serve(dataDir: string, extra: string[] = ['--quiet']): Serve {
    const child = spawn(NODE, [cliMain, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extra], {
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { stdout: '', stderr: '' };
    child.stdout!.on('data', (c: Buffer) => (out.stdout += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (out.stderr += c.toString('utf8')));
    let done = false;
    const s: Serve = {
      child,
      pid: child.pid!,
      startedAt: Date.now(),
      out,
      exit: new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          done = true;
          s.exitedAt = Date.now();
          resolve({ code, signal });
        }),
      ),
      running: () => !done,
    };
    this.serves.push(s);
    return s;
  }

  /** 'listening' once serve printed its URL (daemon.json is written by then), 'exited' if it exited first. */
  async listeningOrExit(s: Serve, timeoutMs = 60_000): Promise<'listening' | 'exited'> {
    const ok = await waitFor(() => !s.running() || s.out.stdout.includes(' listening on '), { timeoutMs, intervalMs: 20 });
    assert.ok(ok, `serve pid ${s.pid} neither listened nor exited within ${timeoutMs} ms; stderr: ${s.out.stderr}`);
    if (s.out.stdout.includes(' listening on ')) {
      const info = readDaemonJson(this.dataDirOf(s));
      this.instances.add(info.instanceId);
      return 'listening';
    }
    return 'exited';
  }

  async listening(s: Serve): Promise<DaemonJson> {
    const r = await this.listeningOrExit(s);
    assert.equal(r, 'listening', `serve exited: ${s.out.stderr}`);
    return readDaemonJson(this.dataDirOf(s));
  }

  private dataDirOf(s: Serve): string {
    const args = s.child.spawnargs;
    return args[args.indexOf('--data-dir') + 1]!;
  }

  async cli(args: string[], timeoutMs = 40_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(NODE, [cliMain, ...args], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  /**
   * The `mcp-warden` command as npm installs it: a relative symlink in a `.bin` folder to bin/mcp-warden
   * (the shell launcher), run with this test's node first on PATH.
   */
  async bin(
    args: string[],
    extraEnv: Record<string, string> = {},
    pathFirst = dirname(NODE),
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const dotBin = mkdtempSync(join(tmpdir(), 'mcp-warden-bin-'));
    this.dirs.push(dotBin);
    const link = join(dotBin, 'mcp-warden');
    symlinkSync(relative(dotBin, launcher), link);
    const env = { ...cliEnv(), ...extraEnv, PATH: `${pathFirst}${delimiter}${process.env.PATH ?? ''}` };
    const child = spawn(link, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stdout, stderr };
  }

  async waitForServerState(dataDir: string, name: string, state: string, timeoutMs = 20_000): Promise<void> {
    let last: unknown;
    const ok = await waitFor(
      async () => {
        const r = await collectStatus(dataDir);
        last = r;
        return r.state === 'running' && r.servers?.find((x) => x.name === name)?.state === state;
      },
      { timeoutMs, intervalMs: 100 },
    );
    assert.ok(ok, `server ${name} did not reach ${state}: ${JSON.stringify(last)}`);
  }

  /** Stops whatever still runs, then asserts nothing of ours is left. */
  async cleanup(): Promise<void> {
    for (const s of this.serves) {
      if (!s.running()) continue;
      s.child.kill('SIGTERM');
      const timer = setTimeout(() => s.child.kill('SIGKILL'), 25_000);
      await s.exit;
      clearTimeout(timer);
    }
    const leftovers: string[] = [];
    for (const id of this.instances) {
      const watchdogs = () => findByEnv('MCP_WARDEN_WATCHDOG', (v) => v.endsWith(`:${id}`));
      const gone = await waitFor(() => processesWithMarker(id).length === 0 && watchdogs().length === 0, {
        timeoutMs: 10_000,
        intervalMs: 50,
      });
      if (!gone) {
        leftovers.push(...[...processesWithMarker(id), ...watchdogs()].map((p) => `${p.pid} (${p.comm}) of ${id}`));
        killProcessesWithMarker(id);
        for (const p of watchdogs()) process.kill(p.pid, 'SIGKILL');
      }
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    assert.deepEqual(leftovers, [], 'processes left behind');
  }
}

async function withHarness(fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = new Harness();
  let failed: unknown;
  try {
    await fn(h);
  } catch (err) {
    failed = err;
  }
  try {
    await h.cleanup();
  } catch (err) {
    failed ??= err;
  }
  if (failed) throw failed;
}

test('20 concurrent serve on one data dir: exactly one runs, 19 exit with code 4 naming its pid', { timeout: 180_000 }, async (t) => {
  await withHarness(async (h) => {
    const dataDir = h.dataDir(emptyConfig);
    const serves = Array.from({ length: 20 }, () => h.serve(dataDir));
    const results = await Promise.all(serves.map((s) => h.listeningOrExit(s)));
    const winners = serves.filter((_, i) => results[i] === 'listening');
    assert.equal(winners.length, 1, `winners: ${winners.map((w) => w.pid).join(', ')}`);
    const winner = winners[0]!;
    const losers = serves.filter((s) => s !== winner);
    await Promise.all(losers.map((l) => l.exit));

    const info = readDaemonJson(dataDir);
    assert.equal(info.pid, winner.pid, 'daemon.json names the winner');
    assert.ok(winner.running(), 'the winner keeps running');
    const latencies: number[] = [];
    for (const l of losers) {
      const { code } = await l.exit;
      assert.equal(code, 4, `loser pid ${l.pid}: ${l.out.stderr}`);
      const m = /^mcp-warden: E_ALREADY_RUNNING: mcp-warden is already running \(pid (\d+)[,:]/m.exec(l.out.stderr);
      assert.ok(m, `loser message: ${JSON.stringify(l.out.stderr)}`);
      assert.equal(Number(m[1]), winner.pid, `loser pid ${l.pid} names pid ${m[1]}`);
      assert.equal(l.out.stdout, '', 'a loser prints nothing on stdout');
      latencies.push(l.exitedAt! - l.startedAt);
      // A loser took the lock first thing: it started nothing of its own.
      assert.deepEqual(
        findByEnv('MCP_WARDEN_OWNER', (v) => v.startsWith(`${l.pid}:`)),
        [],
      );
    }
    const withUrl = losers.filter((l) => l.out.stderr.includes(`(pid ${winner.pid}, ${info.url})`)).length;
    t.diagnostic(
      `losers exited after ${Math.min(...latencies)}..${Math.max(...latencies)} ms (spawn to exit); ` +
        `${withUrl}/19 named the winner's URL too` +
        (withUrl < 19 ? ` (the others: "(pid ${winner.pid}: starting up)")` : ''),
    );
    // Spawn-to-exit is mostly node loading the CLI's module graph, 20 at once (CPU-bound); the bound
    // catches a loser that waits for the lock instead of failing (the winner runs until stopped).
    assert.ok(Math.max(...latencies) < 60_000, 'losers exit promptly');
    assert.ok(winner.running(), 'the winner is still running after all losers exited');

    const stop = await h.cli(['stop', '--data-dir', dataDir]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await winner.exit).code, 0);
    assert.equal(existsSync(join(dataDir, 'daemon.json')), false);
    assert.equal(existsSync(join(dataDir, 'daemon.lock.lock')), false, 'the lock is released');
  });
});

test('SIGKILL the holder: a new serve on the same data dir succeeds within 5 s', { timeout: 120_000 }, async (t) => {
  await withHarness(async (h) => {
    const dataDir = h.dataDir(demoConfig);
    const a = h.serve(dataDir);
    const infoA = await h.listening(a);
    await h.waitForServerState(dataDir, 'demo', 'running');
    await sleep(1_500); // a few lock refreshes: the lock is as fresh as a long-running daemon's

    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    await a.exit;
    let attempts = 0;
    let b: Serve | undefined;
    let lockedAt: number | undefined;
    const watchLock = setInterval(() => {
      try {
        const holder = JSON.parse(readFileSync(join(dataDir, 'daemon.lock'), 'utf8')) as { pid: number };
        if (holder.pid !== a.pid) lockedAt ??= Date.now();
      } catch {
        // being replaced
      }
    }, 10);
    while (!b) {
      attempts++;
      const s = h.serve(dataDir);
      if ((await h.listeningOrExit(s, 20_000)) === 'listening') {
        b = s;
        break;
      }
      assert.equal((await s.exit).code, 4, s.out.stderr);
      assert.ok(Date.now() - killedAt < 5_000, `no successor within 5 s; last attempt: ${s.out.stderr}`);
      await sleep(100);
    }
    const takeoverMs = Date.now() - killedAt;
    clearInterval(watchLock);
    t.diagnostic(
      `successor took the lock ${lockedAt ? lockedAt - killedAt : '?'} ms and listened ${takeoverMs} ms after ` +
        `SIGKILL of the holder (${attempts} start attempt(s))`,
    );
    assert.ok(takeoverMs < 5_000, `takeover took ${takeoverMs} ms`);

    const infoB = readDaemonJson(dataDir);
    assert.equal(infoB.pid, b.pid);
    assert.notEqual(infoB.instanceId, infoA.instanceId);
    await h.waitForServerState(dataDir, 'demo', 'running');
    assert.ok(b.running(), 'the successor stays up');

    // The killed daemon's demo server: its watchdog (or the successor's startup reaper) ends it;
    // whatever is still there is killed here.
    const left = killProcessesWithMarker(infoA.instanceId);
    if (left) t.diagnostic(`killed ${left} leftover process(es) of the SIGKILLed daemon`);

    const stop = await h.cli(['stop', '--data-dir', dataDir]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await b.exit).code, 0);
  });
});

test('different data dirs run side by side', { timeout: 120_000 }, async () => {
  await withHarness(async (h) => {
    const d1 = h.dataDir(demoConfig);
    const d2 = h.dataDir(demoConfig);
    const s1 = h.serve(d1);
    const s2 = h.serve(d2);
    const [i1, i2] = await Promise.all([h.listening(s1), h.listening(s2)]);
    assert.equal(i1.pid, s1.pid);
    assert.equal(i2.pid, s2.pid);
    assert.notEqual(i1.url, i2.url);
    await h.waitForServerState(d1, 'demo', 'running');
    await h.waitForServerState(d2, 'demo', 'running');
    const [st1, st2] = await Promise.all([h.cli(['stop', '--data-dir', d1]), h.cli(['stop', '--data-dir', d2])]);
    assert.equal(st1.code, 0, st1.stderr);
    assert.equal(st2.code, 0, st2.stderr);
    assert.equal((await s1.exit).code, 0);
    assert.equal((await s2.exit).code, 0);
  });
});

test('status and stop against a live daemon', { timeout: 120_000 }, async () => {
  await withHarness(async (h) => {
    // A server that ignores stdin EOF holds the shutdown for stopEofGraceMs, so a stop with a 1 ms
    // timeout cannot see the exit however fast the machine is.
    const dataDir = h.dataDir({
      mcpServers: { ...demoConfig.mcpServers, slow: { command: NODE, args: [fixture('ignore-eof-server')] } },
      settings: { stopEofGraceMs: 1_500 },
    });
    const s = h.serve(dataDir);
    const info = await h.listening(s);
    await h.waitForServerState(dataDir, 'demo', 'running');
    await h.waitForServerState(dataDir, 'slow', 'running');

    const human = await h.cli(['status', '--data-dir', dataDir]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`is running: pid ${s.pid}, ${info.url}/mcp, up \\d+`));
    assert.match(human.stdout, /^SERVER\s+STATE\s+TOOLS\s+PID\s+LAST ERROR$/m);
    const demoLine = human.stdout.split('\n').find((l) => l.startsWith('demo '));
    assert.ok(demoLine, human.stdout);
    assert.match(demoLine, /^demo\s+running\s+\d+\s+\d+\s+-$/);

    const json = await h.cli(['status', '--data-dir', dataDir, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as {
      running: boolean;
      state: string;
      daemon: { pid: number; url: string; instanceId: string; uptimeMs: number; version: string };
      servers: Array<{ name: string; state: string; tools: number; pid: number | null; lastError: unknown }>;
    };
    assert.equal(report.running, true);
    assert.equal(report.state, 'running');
    assert.equal(report.daemon.pid, s.pid);
    assert.equal(report.daemon.instanceId, info.instanceId);
    assert.equal(typeof report.daemon.uptimeMs, 'number');
    const demo = report.servers.find((x) => x.name === 'demo');
    assert.ok(demo && demo.state === 'running' && demo.tools > 0 && typeof demo.pid === 'number' && demo.lastError === null, json.stdout);
    const demoPid = demo.pid!;

    // A timeout too short to see the exit: code 3, the daemon stops anyway.
    const early = await h.cli(['stop', '--data-dir', dataDir, '--timeout-ms', '1']);
    assert.equal(early.code, 3, early.stdout + early.stderr);
    assert.match(early.stderr, /still running 1 ms after SIGTERM/);
    const again = await h.cli(['stop', '--data-dir', dataDir]);
    assert.ok(again.code === 0 || again.code === 1, again.stdout + again.stderr); // 1 if it had already exited
    assert.equal((await s.exit).code, 0);
    assert.equal(readProc(s.pid), undefined, 'the daemon process is gone');
    assert.equal(existsSync(join(dataDir, 'daemon.json')), false, 'daemon.json removed');
    assert.equal(processesWithMarker(info.instanceId).length, 0, 'no upstream left');
    assert.equal(readProc(demoPid)?.state ?? 'gone', 'gone');

    const after = await h.cli(['status', '--data-dir', dataDir]);
    assert.equal(after.code, 1);
    assert.match(after.stdout, /not running/);
  });
});

test('stop waits for the daemon to exit and answers 0', { timeout: 120_000 }, async () => {
  await withHarness(async (h) => {
    const dataDir = h.dataDir(demoConfig);
    const s = h.serve(dataDir);
    const info = await h.listening(s);
    await h.waitForServerState(dataDir, 'demo', 'running');
    const stop = await h.cli(['stop', '--data-dir', dataDir]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, new RegExp(`^stopped mcp-warden \\(pid ${s.pid}\\) in \\d+ ms$`, 'm'));
    // stop returned only once the process was gone: it can no longer be alive with that identity.
    const p = readProc(s.pid);
    assert.ok(!p || p.state === 'Z' || p.startTime !== info.processStartTime, `pid ${s.pid} still alive: ${JSON.stringify(p)}`);
    assert.equal(existsSync(join(dataDir, 'daemon.json')), false);
    assert.equal((await s.exit).code, 0);
    assert.equal(processesWithMarker(info.instanceId).length, 0, 'no upstream left');
  });
});

test(
  'the bin (a shell launcher behind an npm-style symlink): stop drops NODE_EXTRA_CA_CERTS, other commands keep it',
  { timeout: 120_000 },
  async () => {
    // Node warns at start-up when the file NODE_EXTRA_CA_CERTS names cannot be read: the warning shows
    // which commands still get the variable.
    const missingCa = { NODE_EXTRA_CA_CERTS: join(tmpdir(), 'mcp-warden-no-such-ca.pem') };
    await withHarness(async (h) => {
      const version = await h.bin(['--version'], missingCa);
      assert.equal(version.code, 0, version.stderr);
      assert.equal(
        version.stdout.trim(),
        (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version,
      );
      assert.match(version.stderr, /Ignoring extra certs/, 'other commands keep the variable');

      const dataDir = h.dataDir(demoConfig);
      const s = h.serve(dataDir);
      const info = await h.listening(s);
      await h.waitForServerState(dataDir, 'demo', 'running');
      const status = await h.bin(['status', '--data-dir', dataDir], missingCa);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stderr, /Ignoring extra certs/);
      const stop = await h.bin(['stop', '--data-dir', dataDir], missingCa);
      assert.equal(stop.code, 0, stop.stderr);
      assert.doesNotMatch(stop.stderr, /extra certs/, 'stop runs without the variable');
      assert.match(stop.stdout, new RegExp(`^stopped mcp-warden \\(pid ${s.pid}\\) in \\d+ ms$`, 'm'));
      assert.equal((await s.exit).code, 0);
      assert.equal(processesWithMarker(info.instanceId).length, 0, 'no upstream left');
      // Signalled once, whether the launcher did it (/proc) or the stop program: no second SIGTERM.
      const log = readFileSync(join(dataDir, 'daemon.log'), 'utf8');
      assert.equal(log.split('\n').filter((l) => l.includes('"shutting down"')).length, 1, log);
      assert.doesNotMatch(log, /already shutting down/);
    });
  },
);

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), as the launcher reads it; undefined without /proc. */
function procStartTicks(pid: number): number | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.startTime;
  } catch {
    return undefined;
  }
}

test(
  'the bin signals the daemon itself only when daemon.json names a live process with its /proc start time',
  { timeout: 60_000, skip: existsSync('/proc/self/stat') ? false : 'SKIPPED: no /proc (the launcher leaves stop to Node there)' },
  async () => {
    await withHarness(async (h) => {
      // A `node` first on PATH that only records what the launcher handed it (the variable, and the
      // arguments after the program's path): whatever happens to the named process is the launcher's doing.
      const fake = mkdtempSync(join(tmpdir(), 'mcp-warden-fake-node-'));
      h.dirs.push(fake);
      const record = join(fake, 'record');
      writeFileSync(join(fake, 'node'), `#!/bin/sh\nshift\nprintf '%s|%s\\n' "\${MCP_WARDEN_STOP_SIGNALLED-}" "$*" >> '${record}'\n`, {
        mode: 0o755,
      });
      const victims: ChildProcess[] = [];
      const victim = async () => {
        const c = spawn('sleep', ['60'], { stdio: 'ignore' });
        victims.push(c);
        const exit = new Promise<NodeJS.Signals | null>((resolve) => c.on('exit', (_code, sig) => resolve(sig)));
        assert.ok(await waitFor(() => procStartTicks(c.pid!) !== undefined, { timeoutMs: 5_000, intervalMs: 10 }));
        return { pid: c.pid!, start: procStartTicks(c.pid!)!, exit, alive: () => c.exitCode === null && c.signalCode === null };
      };
      const daemonJson = (dir: string, pid: number, start: number) =>
        JSON.stringify(
          {
            pid,
            instanceId: 'test',
            url: 'http://127.0.0.1:9',
            host: '127.0.0.1',
            port: 9,
            processStartTime: start,
            startedAt: '',
            version: '0',
            dataDir: dir,
          },
          null,
          2,
        ) + '\n';
      const lastRecord = () => readFileSync(record, 'utf8').trim().split('\n').at(-1)!;
      try {
        const dir = h.dataDir(emptyConfig);
        const v = await victim();

        // A start time one tick off (a reused pid): not signalled, nothing handed on.
        writeFileSync(join(dir, 'daemon.json'), daemonJson(dir, v.pid, v.start + 1));
        assert.equal((await h.bin(['stop', '--data-dir', dir], {}, fake)).code, 0);
        assert.equal(lastRecord(), `|stop --data-dir ${dir}`);
        // An option the launcher does not know (the stop program answers it): not signalled.
        writeFileSync(join(dir, 'daemon.json'), daemonJson(dir, v.pid, v.start));
        await h.bin(['stop', '--data-dir', dir, '--help'], {}, fake);
        assert.equal(lastRecord(), `|stop --data-dir ${dir} --help`);
        // daemon.json a symbolic link (the stop program refuses to follow it): not signalled.
        writeFileSync(join(dir, 'elsewhere.json'), daemonJson(dir, v.pid, v.start));
        rmSync(join(dir, 'daemon.json'));
        symlinkSync(join(dir, 'elsewhere.json'), join(dir, 'daemon.json'));
        await h.bin(['stop', '--data-dir', dir], {}, fake);
        assert.equal(lastRecord(), `|stop --data-dir ${dir}`);
        await sleep(200);
        assert.ok(v.alive(), 'no signal reached the process in any of these cases');

        // The real thing: SIGTERM from the launcher, the pid and start time handed to the stop program.
        rmSync(join(dir, 'daemon.json'));
        writeFileSync(join(dir, 'daemon.json'), daemonJson(dir, v.pid, v.start));
        await h.bin(['stop', `--data-dir=${dir}`, '--timeout-ms', '5000'], {}, fake);
        assert.equal(lastRecord(), `${v.pid}:${v.start}|stop --data-dir=${dir} --timeout-ms 5000`);
        assert.equal(await v.exit, 'SIGTERM');

        // The default data dir ($MCP_WARDEN_HOME) is the stop program's.
        const w = await victim();
        writeFileSync(join(dir, 'daemon.json'), daemonJson(dir, w.pid, w.start));
        await h.bin(['stop'], { MCP_WARDEN_HOME: dir }, fake);
        assert.equal(lastRecord(), `${w.pid}:${w.start}|stop`);
        assert.equal(await w.exit, 'SIGTERM');
      } finally {
        for (const c of victims) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
    });
  },
);

test('status and stop with a stale daemon.json, a corrupt one, and none', { timeout: 60_000 }, async () => {
  await withHarness(async (h) => {
    // None.
    const empty = h.dataDir(emptyConfig);
    let r = await h.cli(['status', '--data-dir', empty]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^mcp-warden is not running \(data dir /);
    r = await h.cli(['status', '--data-dir', empty, '--json']);
    assert.equal(r.code, 1);
    assert.deepEqual(JSON.parse(r.stdout), { running: false, state: 'not-running', dataDir: empty });
    r = await h.cli(['stop', '--data-dir', empty]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /not running/);

    // Stale: the pid of a process that has exited.
    const dead = spawn(NODE, ['-e', 'setTimeout(() => {}, 10)']);
    const deadPid = dead.pid!;
    const deadStart = processStartTime(deadPid) ?? 12345;
    await new Promise((resolve) => dead.on('exit', resolve));
    const stale = h.dataDir(emptyConfig);
    writeFileSync(
      join(stale, 'daemon.json'),
      JSON.stringify({
        pid: deadPid,
        instanceId: 'staleinstance',
        url: 'http://127.0.0.1:9',
        host: '127.0.0.1',
        port: 9,
        processStartTime: deadStart,
        startedAt: new Date().toISOString(),
        version: '0.0.0',
        dataDir: stale,
      }),
    );
    r = await h.cli(['status', '--data-dir', stale]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`not running \\(stale daemon\\.json from pid ${deadPid}`));
    r = await h.cli(['status', '--data-dir', stale, '--json']);
    assert.equal(r.code, 1);
    const sj = JSON.parse(r.stdout) as { running: boolean; stale: boolean; state: string; daemon: { pid: number } };
    assert.equal(sj.running, false);
    assert.equal(sj.stale, true);
    assert.equal(sj.state, 'stale');
    assert.equal(sj.daemon.pid, deadPid);
    r = await h.cli(['stop', '--data-dir', stale]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`removed the stale daemon\\.json of pid ${deadPid}`));
    assert.equal(existsSync(join(stale, 'daemon.json')), false, 'the stale daemon.json is removed');

    // A daemon.json naming a live process with another start time (a reused pid) is stale too.
    const reused = h.dataDir(emptyConfig);
    writeFileSync(
      join(reused, 'daemon.json'),
      // Another start time in the unit of the table in use (a tick count means nothing to the portable one).
      JSON.stringify({
        pid: process.pid,
        instanceId: 'reused',
        url: 'http://127.0.0.1:9',
        processStartTime: processStartTime(process.pid)! + 1,
      }),
    );
    r = await h.cli(['status', '--data-dir', reused, '--json']);
    assert.equal(r.code, 1, r.stdout);
    assert.equal((JSON.parse(r.stdout) as { state: string }).state, 'stale');

    // Corrupt.
    const corrupt = h.dataDir(emptyConfig);
    writeFileSync(join(corrupt, 'daemon.json'), '{"pid": 12');
    r = await h.cli(['status', '--data-dir', corrupt]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${join(corrupt, 'daemon.json').replace(/[.]/g, '\\.')} is corrupt \\(not JSON`));
    r = await h.cli(['stop', '--data-dir', corrupt]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /daemon\.json is corrupt .* and was left in place/);
    assert.equal(existsSync(join(corrupt, 'daemon.json')), true, 'a corrupt daemon.json is not removed by stop');

    // ... and a new serve takes the data dir over, with a warning, and overwrites it.
    const s = h.serve(corrupt, []);
    const info = await h.listening(s);
    assert.equal(info.pid, s.pid);
    assert.match(s.out.stderr, /daemon\.json is corrupt; it will be overwritten/);
    s.child.kill('SIGTERM');
    assert.equal((await s.exit).code, 0);

    // Usage errors.
    assert.equal((await h.cli(['status', '--bogus'])).code, 2);
    assert.equal((await h.cli(['stop', '--timeout-ms', 'soon'])).code, 2);
    const help = await h.cli(['stop', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes:/);
  });
});

test('a removed lock under a running daemon: it stops cleanly with exit code 7', { timeout: 120_000 }, async () => {
  await withHarness(async (h) => {
    const dataDir = h.dataDir(demoConfig);
    const s = h.serve(dataDir);
    const info = await h.listening(s);
    await h.waitForServerState(dataDir, 'demo', 'running');
    const upstreams = processesWithMarker(info.instanceId);
    assert.ok(upstreams.length > 0, 'the demo server runs');

    rmSync(join(dataDir, 'daemon.lock.lock'), { recursive: true });
    const t0 = Date.now();
    const exited = await waitFor(() => !s.running(), { timeoutMs: 30_000 });
    assert.ok(exited, 'the daemon stopped after losing its lock');
    const { code } = await s.exit;
    assert.equal(code, 7, s.out.stderr);
    assert.match(s.out.stderr, /^mcp-warden: E_LOCK_COMPROMISED: the data-dir lock .* was removed or taken over/m);
    assert.ok(Date.now() - t0 < 30_000);
    assert.equal(processesWithMarker(info.instanceId).length, 0, 'no upstream left');
    assert.equal(existsSync(join(dataDir, 'daemon.json')), false, 'daemon.json removed');
    for (const p of upstreams) assert.equal(readProc(p.pid)?.state ?? 'gone', 'gone');
  });
});
