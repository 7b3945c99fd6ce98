import { createServer, connect as connectTcp, type Server, type Socket } from 'node:net';

/**
 * What every proxy the tests put between a process and a service shares: a listener on 127.0.0.1 (a free port) that
 * opens a connection to the service for each client and hands both sockets to `relay`, and the URL to go through it.
 */
export abstract class TcpProxy {
  protected readonly sockets = new Set<Socket>();

  protected constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  protected static async listen<P extends TcpProxy>(
    target: { host: string; port: number },
    make: (server: Server, port: number) => P,
  ): Promise<P> {
    let proxy: P | undefined = undefined;
    const server = createServer((client) => proxy!.relay(client, connectTcp(target.port, target.host)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = make(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** Rewrites a connection string's host and port to go through the proxy. */
  url(serviceUrl: string): string {
    const url = new URL(serviceUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  async close() {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  protected abstract relay(client: Socket, server: Socket): void;

  /** Tracks a client and its server connection, and closes each with the other. */
  protected tie(client: Socket, server: Socket) {
    this.sockets.add(client).add(server);
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
