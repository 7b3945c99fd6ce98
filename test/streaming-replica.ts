import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect, type Sql } from '../src/db/index.js';
import { freePort, waitFor } from './process.js';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';
const HBA_LINE = 'host replication postgres 127.0.0.1/32 trust # payforward test: streaming replica';

/** A hot standby of the server `adminUrl` names, streaming its WAL (pg_basebackup -R), on a port of its own. */
export interface StreamingReplica {
  port: number;
  /** `adminUrl` with the replica's port: the same databases and roles, read-only. */
  url: string;
  /** A superuser connection to the replica (pausing replay needs one). */
  admin: Sql;
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the replica, deletes its folder and undoes any change made to the primary. */
  remove(): Promise<void>;
}

/**
 * The primary must accept replication connections from 127.0.0.1. If its pg_hba.conf has no such
 * line, one is appended and the configuration reloaded (no restart), and taken out again by remove().
 */
export async function startStreamingReplica(adminUrl: string): Promise<StreamingReplica> {
  const primary = connect(adminUrl, { max: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'payforward-replica-'));
  const data = join(dir, 'data');
  let hbaFile: string | undefined;
  let hbaText = '';
  let replicaAdmin: Sql | undefined;
  const asUser = userInfo().uid === 0 ? await systemUser('postgres') : undefined;
  const pg = (command: string, args: string[]) => run(join(BIN, command), args, { ...asUser, cwd: dir });
  const undoHba = async () => {
    if (!hbaFile) return;
    writeFileSync(hbaFile, hbaText);
    await primary`SELECT pg_reload_conf()`;
    hbaFile = undefined;
  };
  try {
    const primaryUrl = new URL(adminUrl);
    const [rules] = await primary<{ count: number }[]>`
      SELECT count(*)::int AS count FROM pg_hba_file_rules
      WHERE 'replication' = ANY(database) AND type IN ('host', 'hostnossl') AND auth_method = 'trust'`;
    if (rules.count === 0) {
      const [{ hba_file }] = await primary<{ hba_file: string }[]>`SHOW hba_file`;
      hbaText = readFileSync(hba_file, 'utf8');
      hbaFile = hba_file;
      appendFileSync(hbaFile, `\n${HBA_LINE}\n`);
      await primary`SELECT pg_reload_conf()`;
    }
    // The standby's limits must be at least the primary's, or it refuses to start.
    const limits = await primary<{ name: string; setting: string }[]>`
      SELECT name, setting FROM pg_settings WHERE name IN
        ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
         'max_locks_per_transaction')`;
    if (asUser) chownSync(dir, asUser.uid, asUser.gid);
    // The reload above is asynchronous: the backup is retried until the new rule lets it in.
    await waitFor(
      async () => {
        rmSync(data, { recursive: true, force: true });
        await pg('pg_basebackup', [
          ...['-h', primaryUrl.hostname, '-p', primaryUrl.port || '5432', '-U', 'postgres'],
          ...['-D', data, '-X', 'stream', '-R', '--checkpoint=fast', '--no-sync'],
        ]);
        return true;
      },
      60_000,
      'pg_basebackup',
    );
    const port = await freePort();
    // Debian keeps postgresql.conf and pg_hba.conf outside the data folder, so the copy has none.
    const settings = [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      'hot_standby = on',
      // Replay never cancels a test's read for rows it still needs.
      'hot_standby_feedback = on',
      'fsync = off',
      'shared_buffers = 32MB',
      ...limits.map(({ name, setting }) => `${name} = ${setting}`),
    ];
    const files: [string, string][] = [
      ['postgresql.conf', settings.join('\n') + '\n'],
      ['pg_hba.conf', `local all all trust\nhost all all 127.0.0.1/32 trust\n`],
      ['pg_ident.conf', ''],
    ];
    for (const [name, text] of files) {
      writeFileSync(join(data, name), text);
      if (asUser) chownSync(join(data, name), asUser.uid, asUser.gid);
    }
    const start = async () => {
      await pg('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
    };
    await start();
    const url = new URL(adminUrl);
    url.port = String(port);
    const admin = connect(url.toString(), { max: 1 });
    replicaAdmin = admin;
    await waitFor(async () => {
      const [row] = await admin<{ recovering: boolean }[]>`SELECT pg_is_in_recovery() AS recovering`;
      return row.recovering;
    });
    const replayState = async () =>
      (await admin<{ state: string }[]>`SELECT pg_get_wal_replay_pause_state() AS state`)[0].state;
    return {
      port,
      url: url.toString(),
      admin,
      async pauseReplay() {
        await admin`SELECT pg_wal_replay_pause()`;
        await waitFor(async () => (await replayState()) === 'paused', 20_000, 'replay paused');
      },
      async resumeReplay() {
        await admin`SELECT pg_wal_replay_resume()`;
        await waitFor(async () => (await replayState()) === 'not paused', 20_000, 'replay resumed');
      },
      async stop() {
        await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      },
      start,
      async remove() {
        await admin.end({ timeout: 1 }).catch(() => {});
        await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
        rmSync(dir, { recursive: true, force: true });
        await undoHba();
        await primary.end({ timeout: 1 });
      },
    };
  } catch (error) {
    await replicaAdmin?.end({ timeout: 1 }).catch(() => {});
    await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    await undoHba().catch(() => {});
    await primary.end({ timeout: 1 });
    throw error;
  }
}

async function systemUser(name: string): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run('id', [name]);
  return { uid: Number(/uid=(\d+)/.exec(stdout)?.[1]), gid: Number(/gid=(\d+)/.exec(stdout)?.[1]) };
}
