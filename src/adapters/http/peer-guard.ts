/**
 * Refuses connections to /mcp and /ws whose client end is held by a process the daemon supervises
 * (docs/quarantine.md, "Who may approve"): an upstream runs as the same user and can read the token,
 * so the peer's process, not the token, is what tells it from a person's client. The lookup
 * (src/adapters/process/socket-owner.ts) runs once per TCP connection; its verdict is remembered for
 * every later request on the same keep-alive socket.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCodes, httpStatusOf } from '../../core/error-codes.js';
import { supervisedSocketOwner } from '../process/socket-owner.js';

export interface PeerRefusal {
  status: number;
  code: typeof ErrorCodes.SUPERVISED_PEER;
  message: string;
}

/** Undefined when the peer may proceed. */
export type PeerCheck = (socket: Socket) => PeerRefusal | undefined;

export function createPeerCheck(opts: { supervisedPids: () => readonly number[]; logger: Logger }): PeerCheck {
  const verdicts = new WeakMap<Socket, PeerRefusal | null>();
  return (socket) => {
    const known = verdicts.get(socket);
    if (known !== undefined) return known ?? undefined;
    let verdict: PeerRefusal | null = null;
    const clientPort = socket.remotePort;
    const serverPort = socket.localPort;
    if (clientPort !== undefined && serverPort !== undefined) {
      const pid = supervisedSocketOwner(clientPort, serverPort, opts.supervisedPids);
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
}
