import type { Duplex } from 'node:stream';
import type amqp from 'amqplib';

/**
 * Waits until the broker has confirmed everything published on `channel`, for at most `ms`. A broker that stops
 * reading while its end of the socket stays open (a partition, a stalled proxy) never confirms, and the client's
 * heartbeat check does not notice, since the broker's own heartbeats keep arriving; only the broker drops the
 * connection, once it has missed our heartbeats for its whole timeout (60 s by default). Until then the wait, and the
 * loop awaiting it, would hang. Past `ms` the connection is torn down as a missed heartbeat would tear it, which fails
 * every call still waiting on it and lets its owner reconnect; whatever it published counts as unconfirmed.
 */
export function confirmWithin(channel: amqp.ConfirmChannel, ms: number): Promise<void> {
  return answeredWithin(channel.waitForConfirms(), channel.connection, ms, 'confirm');
}

/** Closes the connection, the polite way (the broker's answer awaited) for at most `ms`, then by dropping it. */
export async function closeWithin(model: amqp.ChannelModel, ms: number): Promise<void> {
  await answeredWithin(model.close(), model.connection, ms, 'answer the close').catch(() => {});
}

/** `answer`, or past `ms` the connection dropped and an error. */
export async function answeredWithin(answer: Promise<unknown>, connection: amqp.Connection, ms: number, what: string) {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`the broker did not ${what} within ${ms} ms`);
      (connection as unknown as { stream: Duplex }).stream.destroy(error);
      reject(error);
    }, ms);
  });
  try {
    await Promise.race([answer, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
