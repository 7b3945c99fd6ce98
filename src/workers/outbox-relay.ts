import amqp from 'amqplib';
import type { Sql } from '../db/index.js';
import { closeWithin, confirmWithin } from './amqp-confirms.js';

export const EVENTS_EXCHANGE = 'payforward.events';

/** From now on, every committed event is queued for the relay (idempotent). */
export async function registerEventRelay(sql: Sql) {
  await sql`SELECT worker_register_event_relay('amqp')`;
}

interface OutboxEvent {
  id: string;
  tenant_id: string;
  livemode: boolean;
  type: string;
  object_id: string;
  data: unknown;
  created_at: Date;
}

/**
 * Publishes committed events from the outbox to RabbitMQ (topic exchange, routing key = event
 * type) with publisher confirms, and takes them off the relay's queue only after the broker
 * confirmed. A crash in between re-publishes: delivery is at least once, and the event id lets
 * consumers drop duplicates. Events are queued once a relay is registered (migration 049): the
 * first pass registers this one, so everything committed from then on is relayed.
 */
export class OutboxRelay {
  private connection?: amqp.ChannelModel;
  private channel?: amqp.ConfirmChannel;
  private registered = false;

  constructor(
    private readonly sql: Sql,
    private readonly url: string,
    private readonly confirmTimeoutMs = 10_000,
  ) {}

  private async open(): Promise<amqp.ConfirmChannel> {
    if (this.channel) return this.channel;
    this.connection = await amqp.connect(this.url, { timeout: this.confirmTimeoutMs });
    this.connection.on('error', () => {});
    this.connection.on('close', () => {
      this.connection = undefined;
      this.channel = undefined;
    });
    const channel = await this.connection.createConfirmChannel();
    await channel.assertExchange(EVENTS_EXCHANGE, 'topic', { durable: true });
    this.channel = channel;
    return channel;
  }

  async relayOnce(batchSize = 500): Promise<number> {
    if (!this.registered) {
      await registerEventRelay(this.sql);
      this.registered = true;
    }
    const events = await this.sql<OutboxEvent[]>`SELECT * FROM worker_queued_relay_events(${batchSize})`;
    if (!events.length) return 0;
    const channel = await this.open();
    for (const event of events) {
      const body = {
        id: event.id,
        object: 'event',
        type: event.type,
        tenant: event.tenant_id,
        livemode: event.livemode,
        created: Math.floor(new Date(event.created_at).getTime() / 1000),
        data: event.data,
      };
      channel.publish(EVENTS_EXCHANGE, event.type, Buffer.from(JSON.stringify(body)), {
        persistent: true,
        messageId: event.id,
        contentType: 'application/json',
        headers: { tenant_id: event.tenant_id, livemode: event.livemode },
      });
    }
    // Unconfirmed in time, the connection is dropped and the events stay queued for the next pass.
    await confirmWithin(channel, this.confirmTimeoutMs);
    await this.sql`SELECT worker_dequeue_relay_events(${events.map((e) => e.id)})`;
    return events.length;
  }

  async close() {
    if (this.connection) await closeWithin(this.connection, this.confirmTimeoutMs);
  }
}
