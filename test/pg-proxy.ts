import type { Socket } from 'node:net';
import { TcpProxy } from './tcp-proxy.js';

/**
 * A TCP proxy between the app and PostgreSQL that can lose one transaction's answer to COMMIT, as
 * a network failure would. It reads the wire protocol on both sides: statements by name (Parse),
 * their executions (Bind), and the server's CommandComplete messages.
 *
 * - `after-commit`: COMMIT reaches the server, which commits; the connection is cut just before
 *   its answer would reach the app (committed, unanswered).
 * - `before-commit`: everything up to the COMMIT reaches the server (the transaction's statements
 *   run), the COMMIT itself never does, and the connection is cut (not committed, unanswered).
 */
export type CutMode = 'after-commit' | 'before-commit';

interface Armed {
  mode: CutMode;
  /** Only a transaction that executes a statement containing this text is cut. */
  marker: string;
  done: () => void;
}

const SSL_REQUEST = 80877103;

export class PgProxy extends TcpProxy {
  private armed?: Armed;

  static start(target: { host: string; port: number }): Promise<PgProxy> {
    return TcpProxy.listen(target, (server, port) => new PgProxy(server, port));
  }

  /** Cuts the next transaction that runs `marker`; resolves once it has been cut. */
  cutNextCommit(mode: CutMode, marker: string): Promise<void> {
    return new Promise((done) => (this.armed = { mode, marker, done }));
  }

  protected relay(client: Socket, server: Socket) {
    this.sockets.add(client).add(server);
    const statements = new Map<string, string>();
    let startup = true;
    let sslAnswerPending = false;
    let marked = false;
    let awaitingCommitAnswer = false;
    let fromClient = Buffer.alloc(0);
    let fromServer = Buffer.alloc(0);
    let isCut = false;
    // The app's side drops at once; the server's side is half-closed, so that what was forwarded
    // still arrives before the server sees the end of its connection.
    const cut = () => {
      isCut = true;
      client.destroy();
      server.end();
      const armed = this.armed!;
      this.armed = undefined;
      armed.done();
    };

    client.on('data', (chunk) => {
      if (isCut) return;
      fromClient = Buffer.concat([fromClient, chunk]);
      let offset = 0;
      for (;;) {
        const rest = fromClient.subarray(offset);
        if (startup) {
          if (rest.length < 8) break;
          const length = rest.readInt32BE(0);
          if (rest.length < length) break;
          if (rest.readInt32BE(4) === SSL_REQUEST) sslAnswerPending = true;
          else startup = false;
          offset += length;
          continue;
        }
        if (rest.length < 5) break;
        const length = rest.readInt32BE(1) + 1;
        if (rest.length < length) break;
        const type = String.fromCharCode(rest[0]);
        const body = rest.subarray(5, length);
        if (type === 'P') {
          const [name, text] = cstrings(body, 2);
          statements.set(name, text);
        } else if (type === 'B' || type === 'Q') {
          const text = type === 'Q' ? cstrings(body, 1)[0] : (statements.get(cstrings(body, 2)[1]) ?? '');
          if (/^\s*BEGIN/i.test(text)) marked = false;
          if (this.armed && text.includes(this.armed.marker)) marked = true;
          if (this.armed && marked && /^\s*COMMIT\s*$/i.test(text)) {
            if (this.armed.mode === 'before-commit') {
              // The transaction's statements go through, their COMMIT does not.
              server.write(fromClient.subarray(0, offset));
              cut();
              return;
            }
            awaitingCommitAnswer = true;
          }
        }
        offset += length;
      }
      server.write(fromClient.subarray(0, offset));
      fromClient = fromClient.subarray(offset);
    });

    server.on('data', (chunk) => {
      if (isCut) return;
      fromServer = Buffer.concat([fromServer, chunk]);
      let offset = 0;
      for (;;) {
        const rest = fromServer.subarray(offset);
        if (sslAnswerPending) {
          if (!rest.length) break;
          sslAnswerPending = false;
          offset += 1;
          continue;
        }
        if (rest.length < 5) break;
        const length = rest.readInt32BE(1) + 1;
        if (rest.length < length) break;
        const complete = String.fromCharCode(rest[0]) === 'C' ? cstrings(rest.subarray(5, length), 1)[0] : '';
        if (awaitingCommitAnswer && this.armed && (complete === 'COMMIT' || complete === 'ROLLBACK')) {
          // Whatever came before reaches the app; the answer to COMMIT never does.
          client.write(fromServer.subarray(0, offset));
          cut();
          return;
        }
        offset += length;
      }
      client.write(fromServer.subarray(0, offset));
      fromServer = fromServer.subarray(offset);
    });

    const end = () => {
      client.destroy();
      if (!isCut) server.destroy();
      this.sockets.delete(client);
    };
    client.on('error', end).on('close', end);
    server
      .on('error', () => server.destroy())
      .on('close', () => {
        client.destroy();
        this.sockets.delete(server);
      });
  }
}

/** The first `count` NUL-terminated strings of a message body. */
function cstrings(body: Buffer, count: number): string[] {
  const strings: string[] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = body.indexOf(0, start);
    if (end < 0) break;
    strings.push(body.toString('utf8', start, end));
    start = end + 1;
  }
  return strings;
}
