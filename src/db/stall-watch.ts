import { connect as connectTcp, type Socket } from 'node:net';

interface Watched {
  socket: Socket;
  target: Target;
  read: number;
  written: number;
  /** When the socket sent something that no byte has answered since (0: nothing awaited). */
  waitingSince: number;
}

type Target = { path: string } | { host: string; port: number };

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

const open = (target: Target) => ('path' in target ? connectTcp(target.path) : connectTcp(target.port, target.host));

/**
 * A PostgreSQL that stops answering while its sockets stay open (a network partition without a reset, a stalled
 * proxy, a frozen server) leaves a query waiting until the kernel gives the connection up, many minutes of
 * retransmissions later: postgres.js has no query timeout, and Node cannot set TCP_USER_TIMEOUT. Each connection's
 * socket is therefore watched: one that has sent something and heard nothing back for `answerMs` makes the watch
 * ask the server whether it answers at all, on a new connection (an SSLRequest, which the server answers with one
 * byte before any login). A long query on a server that answers is left alone; a server that does not answer that
 * either within `answerMs` is away, and every socket of it waiting that long is destroyed: their queries fail with
 * ETIMEDOUT, which the API answers 503, and the pool connects again.
 */
export class StallWatch {
  private readonly sockets = new Set<Watched>();
  private readonly pinging = new Set<string>();
  /** When each server last answered a ping: a long query on it is not asked about again for answerMs. */
  private readonly answered = new Map<string, number>();
  private next = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly answerMs: number) {}

  /**
   * postgres.js's `socket` option: opens the connection's socket to its hosts in turn (or its Unix socket) and
   * watches it. The driver writes its start-up message at once; the socket sends it once connected.
   */
  readonly socketFactory = (options: { host: string[]; port: number[]; path?: string | false }) => {
    const i = this.next++ % options.host.length;
    const target: Target = options.path ? { path: options.path } : { host: options.host[i], port: options.port[i] };
    const socket = open(target);
    // postgres.js reads these for its error messages and a TLS server name, as on the sockets it opens itself.
    Object.assign(socket, 'path' in target ? {} : { host: target.host, port: target.port });
    const watched: Watched = { socket, target, read: 0, written: 0, waitingSince: 0 };
    this.watch(watched);
    // Over TLS the driver wraps this socket and carries the connection on the wrapping, having removed the listeners
    // put here (patches/postgres+3.4.9.patch tells us of it): the wrapping is watched from then on, its bytes
    // counted and its close awaited. A query sent is bytes written to it, its answer bytes read, as in plain text.
    Object.assign(socket, {
      onTlsUpgrade: (secure: Socket) => {
        Object.assign(watched, { socket: secure, read: 0, written: 0, waitingSince: 0 });
        this.watch(watched);
      },
    });
    return socket;
  };

  /** The number of sockets watched: each leaves once it has closed. */
  get size(): number {
    return this.sockets.size;
  }

  private watch(watched: Watched) {
    this.sockets.add(watched);
    watched.socket.once('close', () => {
      this.sockets.delete(watched);
      if (!this.sockets.size) this.stop();
    });
    this.timer ??= setInterval(() => this.tick(), Math.max(10, Math.min(1000, this.answerMs / 4))).unref();
  }

  private stop() {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(now = performance.now()) {
    const overdue = new Map<string, Watched[]>();
    for (const watched of this.sockets) {
      const { socket } = watched;
      if (socket.bytesRead !== watched.read) {
        watched.read = socket.bytesRead;
        watched.waitingSince = 0;
      }
      if (socket.bytesWritten !== watched.written) {
        watched.written = socket.bytesWritten;
        watched.waitingSince ||= now;
      }
      if (watched.waitingSince && now - watched.waitingSince >= this.answerMs) {
        const key = JSON.stringify(watched.target);
        if (!overdue.has(key)) overdue.set(key, []);
        overdue.get(key)!.push(watched);
      }
    }
    for (const [key, waiting] of overdue) {
      if (this.pinging.has(key) || now - (this.answered.get(key) ?? -Infinity) < this.answerMs) continue;
      this.pinging.add(key);
      void this.ping(waiting[0].target)
        .then((answered) => {
          if (answered) return void this.answered.set(key, performance.now());
          const error = Object.assign(
            new Error(
              `PostgreSQL answered neither a query nor a ping within ${this.answerMs} ms: its connection is dropped`,
            ),
            { code: 'ETIMEDOUT' },
          );
          for (const watched of waiting) if (watched.waitingSince) watched.socket.destroy(error);
        })
        .finally(() => this.pinging.delete(key));
    }
  }

  /** Whether the server answers an SSLRequest on a new connection within answerMs. */
  private ping(target: Target): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = open(target);
      const done = (answered: boolean) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(answered);
      };
      const timer = setTimeout(() => done(false), this.answerMs);
      socket.once('data', () => done(true));
      socket.once('error', () => done(false));
      socket.once('close', () => done(false));
      socket.write(SSL_REQUEST);
    });
  }
}
