import { useEffect, useRef, useState } from 'react';
import type { Event } from './api.ts';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting';

/**
 * The tenant's event stream (GET /v1/events/stream, server-sent events, with the session cookie) for `types`.
 * EventSource reconnects by itself with Last-Event-ID, and the stream then sends exactly what was missed.
 */
export function useEventStream(types: string, onEvent: (event: Event) => void): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    const source = new EventSource(`/v1/events/stream?types=${encodeURIComponent(types)}`);
    source.onopen = () => setStatus('live');
    source.onerror = () => setStatus('reconnecting');
    source.onmessage = (message) => handler.current(JSON.parse(message.data) as Event);
    return () => source.close();
  }, [types]);
  return status;
}
