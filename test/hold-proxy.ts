import type { Socket } from 'node:net';
import { TcpProxy } from './tcp-proxy.js';

/**
 * A TCP proxy that can stop forwarding what its clients send while still relaying the server's answers: a process
 * behind it that writes to a broker from then on is stuck before the broker has seen it, as a process killed just
 * before its write would be. What it held is dropped with the client's connection, never forwarded.
 */
export class HoldProxy extends TcpProxy {
  private holding = false;

  static start(target: { host: string; port: number }): Promise<HoldProxy> {
    return TcpProxy.listen(target, (server, port) => new HoldProxy(server, port));
  }

  /** From now on nothing a client sends reaches the server. */
  hold() {
    this.holding = true;
  }

  /** Forwards again; a connection that lost bytes while held is broken for good, so only a new one is of use. */
  release() {
    this.holding = false;
  }

  protected relay(client: Socket, server: Socket) {
    this.tie(client, server);
    client.on('data', (chunk) => {
      if (!this.holding) server.write(chunk);
    });
    server.on('data', (chunk) => client.write(chunk));
  }
}
