import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.js';

const dataDir = mkdtempSync(join(tmpdir(), 'payforward-embedded-'));
// As root the cluster runs as an unprivileged user, which must reach the folder (mkdtemp makes it 0700).
chmodSync(dataDir, 0o755);
const started: EmbeddedDatabase[] = [];

/**
 * A port no one listens on, below Linux's ephemeral range (32768 and up), where a client connection could take it
 * between this check and the server's start.
 */
async function freePort(from: number): Promise<number> {
  for (let port = from; ; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

afterAll(async () => {
  for (const database of started.reverse()) await database.stop().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
});

async function answers(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ db: string }[]>`SELECT current_database() AS db`;
    return row.db;
  } finally {
    await sql.end();
  }
}

describe('the embedded PostgreSQL', () => {
  it('is shared by a second process of the same data folder, which leaves it running when it stops', async () => {
    const port = await freePort(20_000 + (process.pid % 5_000));
    const first = await startEmbeddedPostgres(dataDir, port);
    started.push(first);
    expect(await answers(first.url)).toBe('payforward');
    // A command run beside `npm start` (ledger:verify, verify-audit) failed here: a second server on the same files.
    const second = await startEmbeddedPostgres(dataDir, port, 'payforward_other');
    started.push(second);
    expect(await answers(second.url)).toBe('payforward_other');
    await second.stop();
    expect(await answers(first.url)).toBe('payforward');
  }, 120_000);

  it('says which port it could not start on when another server holds it', async () => {
    const port = await freePort(25_000 + (process.pid % 5_000));
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    const otherDir = join(dataDir, 'other');
    try {
      await expect(startEmbeddedPostgres(otherDir, port)).rejects.toThrow(
        `did not start on port ${port}: another server may hold the port`,
      );
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  }, 120_000);
});
