/**
 * Refuses connections to /mcp and /ws whose client end is held by a process the daemon supervises
 * (docs/quarantine.md, "Who may approve"): an upstream runs as the same user and can read the token,
 * so the peer's process, not the token, is what tells it from a person's client. The lookup
 * (src/adapters/process/socket-owner.ts) runs once per TCP connection, asynchronously; its verdict
 * (or the lookup still under way) is remembered for every later request on the same keep-alive socket,
 * so only a connection's first request waits for it.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCodes, httpStatusOf } from '../../core/error-codes.js';
import { supervisedSocketOwner, type SupervisedGroup } from '../process/socket-owner.js';

export interface PeerRefusal {
  status: number;
  code: typeof ErrorCodes.SUPERVISED_PEER;
  message: string;
}

/** Undefined when the peer may proceed; a promise while the connection's first lookup runs. */
export type PeerCheck = (socket: Socket) => PeerRefusal | undefined | Promise<PeerRefusal | undefined>;

export function createPeerCheck(opts: { supervisedGroups: () => readonly SupervisedGroup[]; logger: Logger }): PeerCheck {
  const verdicts = new WeakMap<Socket, PeerRefusal | null | Promise<PeerRefusal | undefined>>();
  const lookup = async (socket: Socket): Promise<PeerRefusal | undefined> => {
    let verdict: PeerRefusal | null = null;
    const clientPort = socket.remotePort;
    const serverPort = socket.localPort;
    if (clientPort !== undefined && serverPort !== undefined) {
      const pid = await supervisedSocketOwner(clientPort, serverPort, opts.supervisedGroups);
      if (pid !== undefined) {
        opts.logger.warn(
          { code: ErrorCodes.SUPERVISED_PEER, pid, remote: `${socket.remoteAddress}:${clientPort}` },
          'connection from a supervised process refused',
        );
        verdict = {
          status: httpStatusOf(ErrorCodes.SUPERVISED_PEER),
          code: ErrorCodes.SUPERVISED_PEER,
          message: `Forbidden: this connection comes from process ${pid}, which the daemon supervises; upstream servers may not use /mcp or /ws`,
        };
      }
    }
    verdicts.set(socket, verdict);
    return verdict ?? undefined;
  };
  return (socket) => {
    const known = verdicts.get(socket);
    if (known !== undefined) return known ?? undefined;
    const pending = lookup(socket);
    verdicts.set(socket, pending);
    return pending;
  };
}
