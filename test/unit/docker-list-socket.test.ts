/**
 * listContainersOverSocket against a real node:http server on a unix socket (the Engine API's shape,
 * not a Docker engine: the real engine is covered by the docker suites). What it proves: the answer
 * is parsed, the connection is closed with it (no kept-alive socket holding the daemon's or the
 * watchdog's event loop), and an engine that never answers is given up after the timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerCallError, listContainersOverSocket } from '../../src/adapters/docker/docker-engine.js';

async function listen(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => server.listen(path, resolve));
}

async function openConnections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

test('lists over the socket, closes the connection with the answer, and gives up on a silent engine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'docker-list-'));
  const path = join(dir, 'engine.sock');
  let silent = false;
  let seenUrl = '';
  const server = createServer((req, res) => {
    seenUrl = req.url ?? '';
    if (silent) return; // never answers
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify([{ Id: 'abc', Labels: { 'mcp-warden.instance': 'x' } }]));
  });
  try {
    await listen(server, path);
    const list = await listContainersOverSocket(path, ['mcp-warden.instance'], 2_000);
    assert.deepEqual(
      list.map((c) => c.Id),
      ['abc'],
    );
    assert.ok(seenUrl.startsWith('/containers/json?all=1&filters='), seenUrl);
    // The connection ends with the answer: none stays open on the engine's side.
    const deadline = Date.now() + 2_000;
    while ((await openConnections(server)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await openConnections(server), 0, 'the list call left its connection open');

    silent = true;
    await assert.rejects(listContainersOverSocket(path, ['mcp-warden.instance'], 200), (err: unknown) => {
      assert.ok(err instanceof DockerCallError, String(err));
      assert.match(err.message, /no answer from the engine within 200 ms/);
      return true;
    });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});
