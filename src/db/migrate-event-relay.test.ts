import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolledBack } from '../../test/helpers.js';
import { databaseAt, emptyDatabase } from '../../test/migrations.js';
import { prepareDatabase } from '../bootstrap.js';
import { loadConfig } from '../config.js';
import { connect, type Sql } from './index.js';
import { migrate } from './migrate.js';

// Migration 049 gave the RabbitMQ relay a queue of its own instead of events.published_at, and queues events only
// once a relay is registered. Two databases as they stood at 048: one where a relay had published some events, one
// where none ever ran (a platform without AMQP_URL).

const config = loadConfig({});
type Scratch = Awaited<ReturnType<typeof databaseAt>>;
let relayed: Scratch;
let neverRelayed: Scratch;

async function addEvent(db: Sql, id: string, publishedAt: Date | null) {
  await db`INSERT INTO events (id, tenant_id, livemode, type, object_id, data, published_at)
    VALUES (${id}, 'ten_a', false, 'payment.created', ${`pay_${id}`}, '{"object":{}}', ${publishedAt})`;
}

const queued = async (db: Sql) =>
  (await db<{ event_id: string }[]>`SELECT event_id FROM event_relay_queue ORDER BY event_id`).map((r) => r.event_id);
const relays = async (db: Sql) => (await db<{ name: string }[]>`SELECT name FROM event_relays`).map((r) => r.name);

beforeAll(async () => {
  [relayed, neverRelayed] = await Promise.all([
    databaseAt('relay048', '048_request_logs_by_day.sql'),
    databaseAt('norelay048', '048_request_logs_by_day.sql'),
  ]);
  for (const { db } of [relayed, neverRelayed]) await db`INSERT INTO tenants (id, name) VALUES ('ten_a', 'Shop A')`;
  await addEvent(relayed.db, 'evt_1', new Date());
  await addEvent(relayed.db, 'evt_2', null);
  await addEvent(relayed.db, 'evt_3', null);
  await addEvent(neverRelayed.db, 'evt_1', null);
  await addEvent(neverRelayed.db, 'evt_2', null);
  await Promise.all([migrate(relayed.db, config), migrate(neverRelayed.db, config)]);
});

afterAll(async () => {
  await Promise.all([relayed?.drop(), neverRelayed?.drop()]);
});

describe('migration 049: the relay queue', () => {
  it('where a relay had published, keeps it registered and queues exactly the events it had not published', async () => {
    expect(await relays(relayed.db)).toEqual(['amqp']);
    expect(await queued(relayed.db)).toEqual(['evt_2', 'evt_3']);
    const [column] = await relayed.db`
      SELECT 1 FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'published_at'`;
    expect(column).toBeUndefined();
  });

  it('queues each new event in the transaction that writes it, while a relay is registered', async () => {
    await rolledBack(relayed.db, async (tx) => {
      await addEventWithoutMark(tx, 'evt_4');
      expect(await queued(tx)).toEqual(['evt_2', 'evt_3', 'evt_4']);
    });
    // Rolled back with the event: nothing is queued that was never committed.
    expect(await queued(relayed.db)).toEqual(['evt_2', 'evt_3']);
  });

  it('where no relay ever ran, registers none, queues nothing, and starts queueing at registration', async () => {
    expect(await relays(neverRelayed.db)).toEqual([]);
    expect(await queued(neverRelayed.db)).toEqual([]);
    await addEventWithoutMark(neverRelayed.db, 'evt_3');
    expect(await queued(neverRelayed.db)).toEqual([]);
    await neverRelayed.db`SELECT worker_register_event_relay('amqp')`;
    await neverRelayed.db`SELECT worker_register_event_relay('amqp')`;
    expect(await relays(neverRelayed.db)).toEqual(['amqp']);
    await addEventWithoutMark(neverRelayed.db, 'evt_4');
    expect(await queued(neverRelayed.db)).toEqual(['evt_4']);
  });

  it('hands the relay the queued events with their payload, oldest first, and forgets those it dequeues', async () => {
    const events = await relayed.db<{ id: string; object_id: string; data: unknown }[]>`
      SELECT id, object_id, data FROM worker_queued_relay_events(10)`;
    expect(events).toEqual([
      { id: 'evt_2', object_id: 'pay_evt_2', data: { object: {} } },
      { id: 'evt_3', object_id: 'pay_evt_3', data: { object: {} } },
    ]);
    expect((await relayed.db`SELECT id FROM worker_queued_relay_events(1)`).map((r) => r.id)).toEqual(['evt_2']);
    await relayed.db`SELECT worker_dequeue_relay_events(${['evt_2']})`;
    expect(await queued(relayed.db)).toEqual(['evt_3']);
  });
});

async function addEventWithoutMark(db: Sql, id: string) {
  await db`INSERT INTO events (id, tenant_id, livemode, type, object_id, data)
    VALUES (${id}, 'ten_a', false, 'payment.created', ${`pay_${id}`}, '{"object":{}}')`;
}

describe('start-up with AMQP_URL', () => {
  it('registers the relay right after migrating, before any API process takes a request', async () => {
    const database = await emptyDatabase('relayboot');
    const db = connect(database.url, { max: 1 });
    try {
      await prepareDatabase(loadConfig({ DATABASE_URL: database.url }));
      expect(await relays(db)).toEqual([]);
      await prepareDatabase(loadConfig({ DATABASE_URL: database.url, AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672' }));
      expect(await relays(db)).toEqual(['amqp']);
    } finally {
      await db.end();
      await database.drop();
    }
  });
});
