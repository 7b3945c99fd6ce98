import postgres from 'postgres';
import type { FastifyBaseLogger } from 'fastify';

export interface NotificationHandlers {
  onNotify(payload: string): void;
  /** LISTEN is in place (first time, or again after a connection loss). */
  onUp(): void;
  /** The listening connection is gone: notifications sent from now until onUp are lost. */
  onDown(): void;
}

const MAX_RETRY_DELAY_MS = 2_000;

/**
 * Keeps one PostgreSQL connection listening on a channel, re-issuing LISTEN after every connection
 * loss until it succeeds. postgres.js's own `sql.listen` re-listens only once after a close and drops
 * the listener silently if the database is still away, which would leave caches unaware of
 * revocations for good.
 */
export class NotificationListener {
  private readonly connection: postgres.Sql;
  private stopped = false;
  private lost = true;
  private subscribing?: Promise<void>;

  constructor(
    url: string,
    private readonly channel: string,
    private readonly handlers: NotificationHandlers,
  ) {
    const options = {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: 10,
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: 'payforward-listen' },
      onnotify: (name: string, payload: string) => {
        if (name === this.channel) this.handlers.onNotify(payload);
      },
      onclose: () => {
        if (this.stopped) return;
        this.lost = true;
        this.handlers.onDown();
        void this.subscribe();
      },
    };
    // onnotify and onclose are postgres.js options (its own `listen` uses them) missing from its types.
    this.connection = postgres(url, options as postgres.Options<Record<string, never>>);
  }

  /**
   * Resolves once the first LISTEN is in place, however long that takes: the process must not serve with caches that
   * would miss revocations. `onRetry` hears of each failed attempt: without it a process whose database refuses the
   * connection (too many connections, say) waits at start-up and says nothing.
   */
  start(onRetry?: (error: unknown, retryInMs: number) => void): Promise<void> {
    this.onRetry = onRetry;
    return this.subscribe();
  }

  private onRetry?: (error: unknown, retryInMs: number) => void;

  private subscribe(): Promise<void> {
    // A loss reported while LISTEN is in flight sets `lost` again, so the loop listens once more.
    this.subscribing ??= (async () => {
      for (let delay = 50; this.lost && !this.stopped; delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS)) {
        this.lost = false;
        try {
          await this.connection.unsafe(`LISTEN "${this.channel.replace(/"/g, '""')}"`);
          if (!this.lost) this.handlers.onUp();
        } catch (error) {
          this.lost = true;
          this.onRetry?.(error, delay);
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    })().finally(() => (this.subscribing = undefined));
    return this.subscribing;
  }

  async stop() {
    this.stopped = true;
    await this.connection.end({ timeout: 1 });
  }
}

/** NotificationListener.start's onRetry for a process's log: `what` the notifications keep current. */
export function logListenRetries(log: FastifyBaseLogger, what: string) {
  return (error: unknown, retryInMs: number) =>
    log.warn(
      { err: error, retry_in_ms: retryInMs },
      `LISTEN for ${what} failed: this process waits for it before serving, and tries again`,
    );
}
