export interface StreamedEvent {
  id: string;
  type: string;
  sequence: number;
  api_version: string;
  data: { object: { id: string } & Record<string, unknown> };
}

/** A minimal server-sent-events client over fetch: complete messages only, as EventSource keeps them. */
export class SseClient {
  readonly messages: { id: string; event: StreamedEvent }[] = [];
  readonly errors: unknown[] = [];
  heartbeats = 0;
  ended = false;
  private readonly abort = new AbortController();

  private constructor(readonly response: Response) {}

  static async open(
    baseUrl: string,
    key: string,
    query = '',
    lastEventId?: string,
    headers: Record<string, string> = {},
  ): Promise<SseClient> {
    const abort = new AbortController();
    const response = await fetch(`${baseUrl}/v1/events/stream${query}`, {
      headers: { authorization: `Bearer ${key}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}), ...headers },
      signal: abort.signal,
    });
    const client = new SseClient(response);
    client.abort.signal.addEventListener('abort', () => abort.abort());
    if (response.ok) void client.read();
    return client;
  }

  get events() {
    return this.messages.map((m) => m.event);
  }

  get lastId() {
    return this.messages[this.messages.length - 1]?.id;
  }

  close() {
    this.abort.abort();
  }

  private async read() {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of this.response.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by close()
    }
    this.ended = true;
  }

  private parse(block: string) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        if (line.includes('heartbeat')) this.heartbeats++;
        continue;
      }
      const colon = line.indexOf(':');
      fields.set(line.slice(0, colon), line.slice(colon + 2));
    }
    if (fields.get('event') === 'stream_error') this.errors.push(JSON.parse(fields.get('data')!));
    else if (fields.has('data')) this.messages.push({ id: fields.get('id')!, event: JSON.parse(fields.get('data')!) });
  }
}
