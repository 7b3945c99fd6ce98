import amqp from 'amqplib';
import type { FastifyBaseLogger } from 'fastify';
import { answeredWithin, closeWithin, confirmWithin } from './amqp-confirms.js';

/** A delivery job as RabbitMQ carries it: which delivery, and the dispatch it belongs to (see 027). */
export interface WebhookJob {
  id: string;
  seq: number;
}

/** A received message, to be acked on the channel it came from (a tag means nothing on another channel). */
export interface JobHandle {
  channel: amqp.ConfirmChannel;
  message: amqp.ConsumeMessage;
}

// Waits besides the retry schedule's steps, so a long Retry-After or circuit cooldown takes a few hops at most.
const LADDER_MS = [1_000, 5_000, 30_000, 300_000, 1_800_000, 7_200_000];

/**
 * RabbitMQ topology of webhook delivery, and a connection that comes back by itself:
 *
 * - `<prefix>` (direct exchange) → `<prefix>.deliveries` (the work queue, routing key `deliver`);
 * - `<prefix>.delay.<ms>`: one queue per wait, with that message TTL, dead-lettering back to `<prefix>` with
 *   `deliver`: retries, Retry-After and circuit cooldowns wait here, without a plugin;
 * - `<prefix>.dead` (fanout exchange and queue): messages the work queue rejects (unreadable ones).
 *
 * Everything is durable and every message persistent; publishes wait for the broker's confirms, for at most
 * `confirmTimeoutMs` (then the connection is dropped and made again, and the publish counts as lost).
 */
export class WebhookAmqpQueue {
  private connection?: amqp.ChannelModel;
  private channel?: amqp.ConfirmChannel;
  private running = false;
  private connecting?: Promise<void>;
  private reconnectTimer?: NodeJS.Timeout;
  private consumerTag?: string;
  private readonly delays: number[];
  readonly workQueue: string;

  constructor(
    private readonly url: string,
    private readonly prefix: string,
    retryScheduleMs: number[],
    private readonly prefetch: number,
    private readonly confirmTimeoutMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly onJob: (job: WebhookJob, handle: JobHandle) => void,
  ) {
    this.delays = [...new Set([...retryScheduleMs.filter((ms) => ms > 0), ...LADDER_MS])]
      .map(Math.round)
      .sort((a, b) => a - b);
    this.workQueue = `${prefix}.deliveries`;
  }

  get connected() {
    return this.channel !== undefined;
  }

  start() {
    this.running = true;
    void this.connect();
  }

  /** Connects, declares the topology and consumes; on failure or a lost connection tries again, backing off. */
  private connect(attempt = 0): Promise<void> {
    if (this.connecting || !this.running) return this.connecting ?? Promise.resolve();
    this.connecting = (async () => {
      try {
        // Bounded like a confirm: a broker that accepts the socket but never answers is tried again.
        const connection = await amqp.connect(this.url, { timeout: this.confirmTimeoutMs });
        connection.on('error', (error) => this.log.warn({ err: error }, 'webhook queue connection error'));
        connection.on('close', () => {
          if (this.connection !== connection) return;
          this.connection = undefined;
          this.channel = undefined;
          if (this.running) {
            this.log.warn('webhook queue connection lost; reconnecting');
            this.scheduleReconnect(0);
          }
        });
        const channel = await connection.createConfirmChannel();
        channel.on('error', (error) => this.log.warn({ err: error }, 'webhook queue channel error'));
        // A channel closed by the broker (not the connection) is as good as a lost connection.
        channel.on('close', () => {
          if (this.channel === channel) void connection.close().catch(() => {});
        });
        await this.declare(channel);
        await channel.prefetch(this.prefetch);
        this.connection = connection;
        this.channel = channel;
        if (!this.running) {
          await connection.close().catch(() => {});
          return;
        }
        const consumer = await channel.consume(this.workQueue, (message) => message && this.receive(channel, message), {
          noAck: false,
        });
        this.consumerTag = consumer.consumerTag;
        if (attempt > 0) this.log.info('webhook queue reconnected');
      } catch (error) {
        this.log.warn({ err: error }, 'webhook queue unavailable; retrying');
        this.scheduleReconnect(attempt + 1);
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private scheduleReconnect(attempt: number) {
    if (!this.running || this.reconnectTimer) return;
    const wait = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect(attempt + 1);
    }, wait);
    this.reconnectTimer.unref();
  }

  private async declare(channel: amqp.ConfirmChannel) {
    const dead = `${this.prefix}.dead`;
    await channel.assertExchange(this.prefix, 'direct', { durable: true });
    await channel.assertExchange(dead, 'fanout', { durable: true });
    await channel.assertQueue(dead, { durable: true });
    await channel.bindQueue(dead, dead, '');
    await channel.assertQueue(this.workQueue, { durable: true, arguments: { 'x-dead-letter-exchange': dead } });
    await channel.bindQueue(this.workQueue, this.prefix, 'deliver');
    for (const ms of this.delays)
      await channel.assertQueue(this.delayQueue(ms), {
        durable: true,
        arguments: {
          'x-message-ttl': ms,
          'x-dead-letter-exchange': this.prefix,
          'x-dead-letter-routing-key': 'deliver',
        },
      });
  }

  private delayQueue(ms: number) {
    return `${this.prefix}.delay.${ms}`;
  }

  /** The longest wait not past `ms` (a message back early waits again for the rest), or the shortest one. */
  private delayFor(ms: number) {
    let chosen = this.delays[0];
    for (const delay of this.delays) if (delay <= ms) chosen = delay;
    return chosen;
  }

  private receive(channel: amqp.ConfirmChannel, message: amqp.ConsumeMessage) {
    let job: WebhookJob;
    try {
      job = JSON.parse(message.content.toString('utf8')) as WebhookJob;
      if (typeof job.id !== 'string' || typeof job.seq !== 'number') throw new Error('not a webhook job');
    } catch (error) {
      this.log.error({ err: error, messageId: message.properties.messageId }, 'unreadable webhook job: dead-lettered');
      channel.nack(message, false, false);
      return;
    }
    this.onJob(job, { channel, message });
  }

  private content(job: WebhookJob) {
    return Buffer.from(JSON.stringify({ id: job.id, seq: job.seq }));
  }

  private requireChannel() {
    if (!this.channel) throw new Error('webhook queue not connected');
    return this.channel;
  }

  /** Publishes jobs to the work queue; resolves once the broker confirmed every one. */
  async publish(jobs: WebhookJob[]) {
    const channel = this.requireChannel();
    for (const job of jobs)
      channel.publish(this.prefix, 'deliver', this.content(job), {
        persistent: true,
        messageId: job.id,
        contentType: 'application/json',
      });
    await confirmWithin(channel, this.confirmTimeoutMs);
  }

  /** Publishes jobs to wait about `waitMs` each before they are back in the work queue; confirmed. */
  async delay(jobs: { job: WebhookJob; waitMs: number }[]) {
    if (!jobs.length) return;
    const channel = this.requireChannel();
    for (const { job, waitMs } of jobs)
      channel.sendToQueue(this.delayQueue(this.delayFor(waitMs)), this.content(job), {
        persistent: true,
        messageId: job.id,
        contentType: 'application/json',
      });
    await confirmWithin(channel, this.confirmTimeoutMs);
  }

  /** Acks on the channel the message came from; on a channel since lost the broker has already put it back. */
  ack(handle: JobHandle) {
    if (handle.channel === this.channel) handle.channel.ack(handle.message);
  }

  /** Gives a message back to the queue at once (its job could not be put where it should wait). */
  requeue(handle: JobHandle) {
    if (handle.channel === this.channel) handle.channel.nack(handle.message, false, true);
  }

  /** Messages in the work queue and in each delay queue (for the queue-depth metric). */
  async depth(): Promise<{ ready: number; delayed: number } | undefined> {
    const channel = this.channel;
    if (!channel) return undefined;
    const ready = (await channel.checkQueue(this.workQueue)).messageCount;
    let delayed = 0;
    for (const ms of this.delays) delayed += (await channel.checkQueue(this.delayQueue(ms))).messageCount;
    return { ready, delayed };
  }

  /** Stops taking new jobs; unacked ones go back to the queue when the connection closes. */
  async stopConsuming() {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    await this.connecting;
    const channel = this.channel;
    if (!channel || !this.consumerTag) return;
    const cancelled = channel.cancel(this.consumerTag);
    await answeredWithin(cancelled, channel.connection, this.confirmTimeoutMs, 'answer the cancel').catch(() => {});
  }

  async close() {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    await this.connecting;
    const connection = this.connection;
    this.connection = undefined;
    this.channel = undefined;
    if (connection) await closeWithin(connection, this.confirmTimeoutMs);
  }

  /** Deletes the topology (tests that use a prefix of their own clean up after themselves). */
  static async deleteTopology(url: string, prefix: string, retryScheduleMs: number[]) {
    const connection = await amqp.connect(url);
    try {
      const channel = await connection.createChannel();
      const delays = [...new Set([...retryScheduleMs.filter((ms) => ms > 0), ...LADDER_MS])].map(Math.round);
      for (const queue of [`${prefix}.deliveries`, `${prefix}.dead`, ...delays.map((ms) => `${prefix}.delay.${ms}`)])
        await channel.deleteQueue(queue);
      await channel.deleteExchange(prefix);
      await channel.deleteExchange(`${prefix}.dead`);
    } finally {
      await connection.close();
    }
  }
}
