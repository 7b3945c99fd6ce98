import postgres from 'postgres';

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

  /** Resolves once the first LISTEN is in place. */
  start(): Promise<void> {
    return this.subscribe();
  }

  private subscribe(): Promise<void> {
    // A loss reported while LISTEN is in flight sets `lost` again, so the loop listens once more.
    this.subscribing ??= (async () => {
      for (let delay = 50; this.lost && !this.stopped; delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS)) {
        this.lost = false;
        try {
          await this.connection.unsafe(`LISTEN "${this.channel.replace(/"/g, '""')}"`);
          if (!this.lost) this.handlers.onUp();
        } catch {
          this.lost = true;
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
