import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import {
  createLogger,
  redactUrl,
  redactEnv,
  redactArgs,
  redactSecrets,
  serverLogger,
  LOG_LEVELS,
  formatConsoleLine,
  REDACT_PATHS,
} from '../../src/adapters/log/logger.js';
import pino from 'pino';
import { RotatingFileDestination } from '../../src/adapters/log/rotating-file-destination.js';

const tmpRoots: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-warden-logger-'));
  tmpRoots.push(d);
  return d;
}
after(() => {
  for (const d of tmpRoots) fs.rmSync(d, { recursive: true, force: true });
});

/** Parsed lines of one file, checking each file ends on a line boundary and each line is JSON. */
function readJsonLines(file: string): Record<string, unknown>[] {
  const text = fs.readFileSync(file, 'utf8');
  if (text.length === 0) return [];
  assert.ok(text.endsWith('\n'), `${path.basename(file)} ends mid-line`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line, i) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        assert.fail(`${path.basename(file)} line ${i + 1} is not JSON: ${line.slice(0, 120)}`);
      }
    });
}

describe('rotating file destination', () => {
  test('rotation bounds total size; every line is whole JSON, in order, none lost from the kept tail', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'daemon.log');
    const maxBytes = 64 * 1024;
    const maxFiles = 2;
    const { logger, close } = createLogger({ level: 'info', filePath: file, maxBytes, maxFiles, console: false });
    let written = 0;
    let longest = 0;
    let seq = 0;
    while (written < 5 * 1024 * 1024) {
      // Varied sizes, including lines that straddle the boundary.
      const pad = 'x'.repeat((seq * 7919) % 3000);
      logger.info({ seq, pad }, 'filler');
      seq++;
      written += pad.length + 60; // roughly the line length; exact sizes are measured from the files
    }
    close();

    const names = fs.readdirSync(dir).sort();
    assert.deepEqual(names, ['daemon.log', 'daemon.log.1', 'daemon.log.2']);
    assert.ok(names.length <= maxFiles + 1);

    const files = ['daemon.log.2', 'daemon.log.1', 'daemon.log'].map((n) => path.join(dir, n));
    const all: Record<string, unknown>[] = [];
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      for (const l of text.split('\n')) longest = Math.max(longest, Buffer.byteLength(l) + 1);
      all.push(...readJsonLines(f));
    }
    let total = 0;
    for (const f of files) {
      const size = fs.statSync(f).size;
      total += size;
      assert.ok(size <= maxBytes + longest, `${path.basename(f)} is ${size} bytes`);
      assert.ok(size <= maxBytes, `${path.basename(f)} is ${size} bytes > maxBytes (no single line exceeds it here)`);
    }
    assert.ok(total <= (maxFiles + 1) * maxBytes, `total ${total}`);

    // The kept lines are the most recent ones, contiguous, oldest file first.
    const seqs = all.map((r) => r.seq as number);
    assert.equal(seqs[seqs.length - 1], seq - 1);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `gap after seq ${seqs[i - 1]}`);
    for (const r of all) {
      assert.equal(r.msg, 'filler');
      assert.equal(r.pid, process.pid);
      assert.equal(r.hostname, undefined, 'base bindings are only pid');
    }
  });

  test('a line larger than maxBytes gets a file of its own; maxFiles 0 keeps no old files', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'big.log');
    const dest = new RotatingFileDestination({ path: file, maxBytes: 100, maxFiles: 0 });
    dest.write('{"a":1}\n');
    const big = JSON.stringify({ big: 'y'.repeat(500) }) + '\n';
    dest.write(big);
    assert.equal(fs.readFileSync(file, 'utf8'), big);
    dest.write('{"b":2}\n');
    assert.equal(fs.readFileSync(file, 'utf8'), '{"b":2}\n');
    assert.deepEqual(fs.readdirSync(dir), ['big.log']);
    assert.equal(dest.rotations, 2);
    dest.close();
    dest.write('{"after":"close"}\n'); // ignored, no throw
    assert.equal(fs.readFileSync(file, 'utf8'), '{"b":2}\n');
  });

  test('file is created with mode 0600 and appends to an existing file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'nested', 'daemon.log');
    const a = new RotatingFileDestination({ path: file, maxBytes: 1024, maxFiles: 1 });
    a.write('{"n":1}\n');
    a.close();
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const b = new RotatingFileDestination({ path: file, maxBytes: 1024, maxFiles: 1 });
    b.write('{"n":2}\n');
    b.close();
    assert.equal(fs.readFileSync(file, 'utf8'), '{"n":1}\n{"n":2}\n');
  });

  test('never throws on I/O errors, counts them, and reopens on a later write', () => {
    const dir = tmpDir();
    const blocker = path.join(dir, 'sub');
    fs.writeFileSync(blocker, 'not a directory');
    const file = path.join(blocker, 'daemon.log');
    const dest = new RotatingFileDestination({ path: file, maxBytes: 1024, maxFiles: 1 });
    assert.doesNotThrow(() => dest.write('{"lost":1}\n'));
    assert.ok(dest.errorCount >= 1);
    assert.ok(dest.lastError instanceof Error);
    fs.rmSync(blocker);
    dest.write('{"kept":1}\n');
    assert.equal(fs.readFileSync(file, 'utf8'), '{"kept":1}\n');
    dest.close();
  });

  test('rejects nonsensical limits at construction', () => {
    assert.throws(() => new RotatingFileDestination({ path: '/tmp/x.log', maxBytes: 0, maxFiles: 1 }), RangeError);
    assert.throws(() => new RotatingFileDestination({ path: '/tmp/x.log', maxBytes: 10, maxFiles: -1 }), RangeError);
  });
});

describe('redaction', () => {
  const SECRET = 'hunter2-very-secret-7f3a';

  test('env/headers/authorization/token are censored at top level and one level down, in file and console', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'daemon.log');
    const consoleLines: string[] = [];
    const { logger, close } = createLogger({
      level: 'trace',
      filePath: file,
      maxBytes: 1 << 20,
      maxFiles: 1,
      console: true,
      consoleStream: { write: (l: string) => consoleLines.push(l) },
    });
    const child = serverLogger(logger.child({ component: 'supervisor' }), 'github');
    logger.info({ env: { GITHUB_TOKEN: SECRET } }, 'top env');
    logger.info({ headers: { authorization: `Bearer ${SECRET}` } }, 'top headers');
    logger.info({ token: SECRET, authorization: SECRET }, 'top token');
    logger.info({ spawn: { env: { GITHUB_TOKEN: SECRET }, command: 'npx' } }, 'nested env');
    logger.info({ upstream: { headers: { 'x-api-key': SECRET }, token: SECRET, authorization: SECRET } }, 'nested');
    logger.info({ req: { headers: { authorization: SECRET, cookie: SECRET } } }, 'req');
    child.warn({ env: { K: SECRET }, cfg: { token: SECRET } }, 'child inherits root redaction');
    child.child({ attempt: 1 }).error({ token: SECRET }, 'grandchild too');
    logger.info({ url: `https://me:${SECRET}@example.com/sse?api_key=${SECRET}&x=1` }, 'url serializer');
    close();

    const text = fs.readFileSync(file, 'utf8');
    assert.ok(!text.includes(SECRET), 'secret leaked into the log file');
    assert.ok(!consoleLines.join('').includes(SECRET), 'secret leaked to the console');
    const recs = readJsonLines(file);
    assert.equal(recs.length, 9);
    assert.equal(recs[0]!.env, '[redacted]');
    assert.deepEqual(recs[3]!.spawn, { env: '[redacted]', command: 'npx' });
    assert.equal(recs[6]!.server, 'github');
    assert.equal(recs[6]!.component, 'supervisor');
    assert.equal(recs[8]!.url, 'https://example.com/sse?api_key=[redacted]&x=1');
    assert.equal(consoleLines.length, 9);
  });

  test('lines and child bindings are byte-identical to pino redacting every value itself (strings, numbers, booleans skip the redactor)', () => {
    const ours: string[] = [];
    const { logger } = createLogger({
      level: 'trace',
      maxBytes: 1 << 20,
      maxFiles: 1,
      console: false,
      tap: { write: (l: string) => ours.push(l) },
    });
    const theirs: string[] = [];
    const plain = pino(
      {
        level: 'trace',
        base: { pid: process.pid },
        redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
        serializers: { err: pino.stdSerializers.err },
      },
      { write: (l: string) => theirs.push(l) },
    );
    const odd = 'quote " backslash \\ newline \n tab \t nul \u0000 unicode é 😀 \ud800';
    const records: Record<string, unknown>[] = [
      { s: odd, n: 42, f: -1.5e-7, nan: Number.NaN, inf: Number.POSITIVE_INFINITY, t: true, no: false, nil: null },
      { nested: { env: { K: SECRET }, s: odd, n: 1 }, arr: [odd, 1, { a: odd }], token: SECRET },
      { big: 10n, sym: Symbol('x'), fn: () => 1, undef: undefined, date: new Date(0) },
    ];
    for (const [i, rec] of records.entries()) {
      for (const l of [logger, plain]) l.child({ server: odd, attempt: i, flag: true }).info(rec, `record ${i}`);
    }
    const strip = (l: string) => l.replace(/"time":\d+,/, '');
    assert.equal(ours.length, records.length);
    assert.deepEqual(ours.map(strip), theirs.map(strip));
    assert.ok(!ours.join('').includes(SECRET));
  });

  test('redactEnv keeps keys and hides values', () => {
    assert.deepEqual(redactEnv({ A: SECRET, PATH: '/usr/bin' }), { A: '[redacted]', PATH: '[redacted]' });
    assert.deepEqual(redactEnv({}), {});
  });

  test('redactUrl strips userinfo and secret-looking query values, leaves the rest alone', () => {
    const cases: [string, string][] = [
      ['https://user:pw@example.com/mcp', 'https://example.com/mcp'],
      ['https://user@example.com:8443/mcp?x=1', 'https://example.com:8443/mcp?x=1'],
      ['https://example.com/sse?token=abc', 'https://example.com/sse?token=[redacted]'],
      ['https://example.com/sse?Token=abc&page=2', 'https://example.com/sse?Token=[redacted]&page=2'],
      [
        'https://example.com/?API_KEY=1&apikey=2&client_secret=3&password=4',
        'https://example.com/?API_KEY=[redacted]&apikey=[redacted]&client_secret=[redacted]&password=[redacted]',
      ],
      [
        'https://s3.example.com/o?X-Amz-Signature=ab&X-Amz-Expires=60',
        'https://s3.example.com/o?X-Amz-Signature=[redacted]&X-Amz-Expires=60',
      ],
      ['https://example.com/?sig=zz&Auth=yy', 'https://example.com/?sig=[redacted]&Auth=[redacted]'],
      ['https://example.com/cb#access_token=zz&state=s', 'https://example.com/cb#access_token=[redacted]&state=s'],
      ['https://example.com/path#section', 'https://example.com/path#section'],
      ['http://localhost:3000/mcp', 'http://localhost:3000/mcp'],
      ['https://example.com/a%20b?q=hello%20world&flag', 'https://example.com/a%20b?q=hello%20world&flag'],
      ['redis://:pw@10.0.0.1:6379/0', 'redis://10.0.0.1:6379/0'],
      ['https://example.com/u@ser?x=1', 'https://example.com/u@ser?x=1'],
      ['not a url?token=abc', 'not a url?token=[redacted]'],
    ];
    for (const [input, want] of cases) assert.equal(redactUrl(input), want, input);
  });
});

describe('createLogger', () => {
  test('LOG_LEVELS lists pino levels; an invalid level is refused', () => {
    assert.deepEqual([...LOG_LEVELS], ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
    assert.throws(() => createLogger({ level: 'verbose', maxBytes: 1024, maxFiles: 1, console: false }), /invalid log level/);
  });

  test('the logger level filters; console format is one line: time level [component/server] msg key=val', () => {
    const lines: string[] = [];
    const { logger, close } = createLogger({
      level: 'info',
      maxBytes: 1024,
      maxFiles: 1,
      console: true,
      consoleStream: { write: (l: string) => lines.push(l) },
    });
    logger.debug('hidden');
    serverLogger(logger.child({ component: 'supervisor' }), 'mem').warn({ attempt: 3, reason: 'exit code 1' }, 'restarting\nsoon');
    logger.error({ err: new Error('boom') }, 'failed');
    close();
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} WARN  \[supervisor\/mem\] restarting\\nsoon attempt=3 reason="exit code 1"\n$/);
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{3} ERROR failed err="Error: boom"\n$/);
    assert.ok(!lines[1]!.includes('pid='));
    assert.equal(
      formatConsoleLine({ level: 30, time: 0, server: 'x', msg: 'm', n: null, o: { a: 1 } }).replace(/^\S+ /, ''),
      'INFO  [x] m n=null o={"a":1}\n',
    );
  });

  test('a line logged immediately before SIGKILL (and SIGTERM) is in the file', async () => {
    const dir = tmpDir();
    const loggerUrl = new URL('../../src/adapters/log/logger.js', import.meta.url).href;
    for (const sig of ['SIGKILL', 'SIGTERM'] as const) {
      const file = path.join(dir, `${sig}.log`);
      const marker = `last-words-${sig}-${process.pid}-${Date.now()}`;
      const script = `
        const { createLogger } = await import(${JSON.stringify(loggerUrl)});
        const { logger } = createLogger({ level: 'info', filePath: ${JSON.stringify(file)}, maxBytes: 1 << 20, maxFiles: 1, console: false });
        for (let i = 0; i < 1000; i++) logger.info({ i }, 'warm-up');
        logger.info({ marker: ${JSON.stringify(marker)} }, 'about to die');
        process.kill(process.pid, ${JSON.stringify(sig)});
        setTimeout(() => {}, 10000);
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.on('exit', (c, s) => resolve([c, s])),
      );
      assert.equal(signal, sig, `child exited with code ${code}, stderr: ${stderr}`);
      const recs = readJsonLines(file);
      assert.equal(recs.length, 1001);
      assert.equal(recs[recs.length - 1]!.marker, marker);
    }
  });
});

describe('per-source rate limit (logLinesPerSecond)', () => {
  test('a flooding source is cut to its budget with a "suppressed" summary; other sources are unaffected', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'daemon.log');
    const { logger, close, suppressed } = createLogger({
      level: 'info',
      filePath: file,
      maxBytes: 1 << 30,
      maxFiles: 0,
      console: false,
      linesPerSecond: 20,
    });
    const flood = logger.child({ component: 'upstream-client', server: 'spew' });
    const quiet = logger.child({ component: 'registry' });
    for (let i = 0; i < 5_000; i++) flood.warn({ err: 'Unexpected token' }, 'upstream protocol error');
    quiet.info('still here');
    await new Promise((r) => setTimeout(r, 1_100)); // the summary comes once per second
    close();
    const lines = readJsonLines(file);
    const floodLines = lines.filter((l) => l.server === 'spew' && l.msg === 'upstream protocol error');
    assert.ok(floodLines.length <= 21, `${floodLines.length} flood lines written`);
    assert.ok(lines.some((l) => l.component === 'registry' && l.msg === 'still here'));
    const summary = lines.find((l) => typeof l.msg === 'string' && /log lines suppressed/.test(l.msg));
    assert.ok(summary, 'a summary line');
    assert.equal(summary.server, 'spew', 'the summary carries the source');
    assert.equal(suppressed(), 5_000 - floodLines.length);
  });
});

describe('secrets in command lines', () => {
  test('redactArgs hides flag values, key=value secrets and URL credentials; keeps the rest', () => {
    assert.deepEqual(
      redactArgs(['--api-key=sk-1', '--token', 'abc', '--port', '80', 'password=pw', 'https://u:p@h/x?token=t&a=1', 'plain', '--key', 'k']),
      [
        '--api-key=[redacted]',
        '--token',
        '[redacted]',
        '--port',
        '80',
        'password=[redacted]',
        'https://h/x?token=[redacted]&a=1',
        'plain',
        '--key',
        '[redacted]',
      ],
    );
  });
  test('redactSecrets in messages', () => {
    const m = redactSecrets('failed to spawn "/bin/x --api-key=sk-1 --token abc" (token expired) password: pw Bearer xyz http://u:p@h/');
    for (const secret of ['sk-1', 'abc', ' pw', 'xyz', 'u:p']) assert.ok(!m.includes(secret), `${secret} in ${m}`);
    assert.ok(m.includes('token expired'), 'prose is left alone');
  });
});

describe('data-dir log file', () => {
  test('a daemon.log symlink is not followed: E_DATA_FILE_SYMLINK, the target keeps its content and mode', () => {
    const dir = tmpDir();
    const target = path.join(tmpDir(), 'elsewhere.txt');
    fs.writeFileSync(target, 'keep\n', { mode: 0o644 });
    fs.chmodSync(target, 0o644);
    fs.symlinkSync(target, path.join(dir, 'daemon.log'));
    const dest = new RotatingFileDestination({ path: path.join(dir, 'daemon.log'), maxBytes: 1024, maxFiles: 1 });
    dest.write('{"msg":"x"}\n');
    dest.close();
    assert.equal((dest.lastError as { code?: string } | undefined)?.code, 'E_DATA_FILE_SYMLINK');
    assert.match(String(dest.lastError?.message), /daemon\.log is a symbolic link/);
    assert.equal(fs.readFileSync(target, 'utf8'), 'keep\n');
    assert.equal(fs.statSync(target).mode & 0o777, 0o644);
  });
});
