import { createServer, connect as connectTcp, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy that can stop forwarding what its clients send while still relaying the server's answers: a process
 * behind it that writes to a broker from then on is stuck before the broker has seen it, as a process killed just
 * before its write would be. What it held is dropped with the client's connection, never forwarded.
 */
export class HoldProxy {
  private holding = false;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<HoldProxy> {
    let proxy: HoldProxy | undefined = undefined;
    const server = createServer((client) => proxy!.relay(client, connectTcp(target.port, target.host)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new HoldProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** Rewrites a connection string's host and port to go through the proxy. */
  url(serviceUrl: string): string {
    const url = new URL(serviceUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** From now on nothing a client sends reaches the server. */
  hold() {
    this.holding = true;
  }

  async close() {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private relay(client: Socket, server: Socket) {
    this.sockets.add(client).add(server);
    client.on('data', (chunk) => {
      if (!this.holding) server.write(chunk);
    });
    server.on('data', (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      server.destroy();
      this.sockets.delete(client);
      this.sockets.delete(server);
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
  }
}
