import type { Socket } from 'node:net';
import { TcpProxy } from './tcp-proxy.js';

/**
 * A TCP proxy that can cut the network between its clients and the server without closing anything, as a partition
 * does: from `partition()` on, nothing passes either way, on open connections and on new ones (accepted, then
 * silent). `heal()` delivers what waited, in order, and forwards again; what was meant for a socket closed meanwhile
 * is dropped.
 */
export class PartitionProxy extends TcpProxy {
  private partitioned = false;
  private readonly waiting: (() => void)[] = [];

  static start(target: { host: string; port: number }): Promise<PartitionProxy> {
    return TcpProxy.listen(target, (server, port) => new PartitionProxy(server, port));
  }

  partition() {
    this.partitioned = true;
  }

  heal() {
    this.partitioned = false;
    for (const deliver of this.waiting.splice(0)) deliver();
  }

  protected relay(client: Socket, server: Socket) {
    this.tie(client, server);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        if (!this.partitioned) to.write(chunk);
        else this.waiting.push(() => to.writable && to.write(chunk));
      });
    forward(client, server);
    forward(server, client);
  }
}
