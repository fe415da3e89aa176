import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { inodesOfPortPair, supervisedSocketOwner } from '../../src/adapters/process/socket-owner.js';

const SAMPLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 22222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 33333 1 0000000000000000 20 4 30 10 -1
`;

test('inodesOfPortPair picks the client end (local = client port, remote = server port)', () => {
  assert.deepEqual(inodesOfPortPair(SAMPLE, 0xc350, 0x1f90), ['22222']);
  assert.deepEqual(inodesOfPortPair(SAMPLE, 0x1f90, 0xc350), ['33333']);
  assert.deepEqual(inodesOfPortPair(SAMPLE, 1, 2), []);
  assert.deepEqual(inodesOfPortPair('garbage\nmore garbage', 1, 2), []);
});

test(
  'supervisedSocketOwner finds the holder among the candidates only',
  { skip: process.platform !== 'linux' && 'Linux /proc only' },
  async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    const client = connect((server.address() as { port: number }).port, '127.0.0.1');
    const peer = await accepted;
    try {
      let asked = 0;
      const self = [{ pid: process.pid }];
      const pidsOf = async () => (asked++, [process.pid]);
      // This process holds the client end: found when it is a candidate, not otherwise.
      assert.equal(await supervisedSocketOwner(peer.remotePort!, peer.localPort!, () => self, pidsOf), process.pid);
      assert.equal(
        await supervisedSocketOwner(
          peer.remotePort!,
          peer.localPort!,
          () => self,
          async () => [],
        ),
        undefined,
      );
      // No such connection on this host: the processes are not even listed.
      assert.equal(await supervisedSocketOwner(1, 2, () => self, pidsOf), undefined);
      assert.equal(asked, 1);
      // No supervised group: nothing is read at all.
      assert.equal(await supervisedSocketOwner(peer.remotePort!, peer.localPort!, () => [], pidsOf), undefined);
      assert.equal(asked, 1);
      // Lookups asked together share the table reads and the process scans, and still each see their connection.
      const many = await Promise.all(
        Array.from({ length: 8 }, () => supervisedSocketOwner(peer.remotePort!, peer.localPort!, () => self, pidsOf)),
      );
      assert.deepEqual(many, Array(8).fill(process.pid));
      assert.ok(asked - 1 <= 2, `8 lookups together scanned the processes ${asked - 1} times (one per table read at most)`);
    } finally {
      client.destroy();
      peer.destroy();
      await new Promise((r) => server.close(r));
    }
  },
);
