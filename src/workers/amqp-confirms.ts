import type { Duplex } from 'node:stream';
import type amqp from 'amqplib';

/**
 * Waits until the broker has confirmed everything published on `channel`, for at most `ms`. A broker that stops
 * reading while its end of the socket stays open (a partition, a stalled proxy) never confirms and never closes
 * the socket, and the client's heartbeats do not notice, since the broker's own keep arriving: the wait, and the
 * loop awaiting it, would hang for as long as the socket lives. Past `ms` the connection is torn down as a missed
 * heartbeat would tear it, which fails every call still waiting on it and lets its owner reconnect; whatever it
 * published counts as unconfirmed.
 */
export async function confirmWithin(channel: amqp.ConfirmChannel, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`the broker did not confirm within ${ms} ms`);
      (channel.connection as unknown as { stream: Duplex }).stream.destroy(error);
      reject(error);
    }, ms);
  });
  try {
    await Promise.race([channel.waitForConfirms(), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
