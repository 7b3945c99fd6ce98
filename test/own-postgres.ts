import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.js';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

/**
 * A PostgreSQL server of the test's own (trust auth, its own port and socket folder), for tests
 * that stop or restart the database: the shared server on 5432 must never be touched.
 */
export interface OwnPostgres {
  /** Superuser URL of the `payforward` database on this server. */
  url: string;
  port: number;
  /** Stops at once, as a crash or failover would: backends die without a goodbye. */
  kill(): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
}

/** `tls`: the server also speaks TLS, with a self-signed certificate made for it (clients: `sslmode=require`). */
export async function startOwnPostgres(options: { tls?: boolean } = {}): Promise<OwnPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'payforward-own-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  // PostgreSQL refuses to run as root: as root, the server runs as the postgres system user.
  const asUser = userInfo().uid === 0 ? await systemUser('postgres') : undefined;
  if (asUser) chownSync(dir, asUser.uid, asUser.gid);
  const pg = (command: string, args: string[]) => run(join(BIN, command), args, { ...asUser, cwd: dir });
  await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  let settings = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
  if (options.tls) {
    const [cert, key] = [join(dir, 'server.crt'), join(dir, 'server.key')];
    await run(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { ...asUser, cwd: dir },
    );
    // PostgreSQL refuses a key others may read.
    chmodSync(key, 0o600);
    settings += ` -c ssl=on -c ssl_cert_file=${cert} -c ssl_key_file=${key}`;
  }
  const start = async () => {
    await pg('pg_ctl', ['-D', data, '-o', settings, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  };
  await start();
  await run(join(BIN, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'payforward']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/payforward`,
    port,
    kill: async () => {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    },
    start,
    remove: async () => {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function systemUser(name: string): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run('id', [name]);
  const uid = Number(/uid=(\d+)/.exec(stdout)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(stdout)?.[1]);
  return { uid, gid };
}
