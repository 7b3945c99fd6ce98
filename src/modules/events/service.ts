import { primaryReads, type Reads } from '../../db/replica.js';
import { inScope, type Scope, type Sql } from '../../db/index.js';
import { findOwned, listPage, type ListParams } from '../../db/list.js';
import { toApiEvent, type Event, type EventRow } from './events.js';

export class EventService {
  constructor(
    private readonly sql: Sql,
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  async retrieve(scope: Scope, id: string): Promise<Event> {
    return toApiEvent(await inScope(this.sql, scope, (tx) => findOwned<EventRow>(tx, 'events', scope, id, 'event')));
  }

  async list(scope: Scope, params: ListParams & { type?: string; object_id?: string }) {
    return this.reads.inScope(scope, async (tx) => {
      const type = params.type;
      // The prefix is the caller's text: its LIKE wildcards (and the escape character) match literally.
      const prefix = (text: string) => text.replace(/[\\%_]/g, '\\$&') + '%';
      const page = await listPage<EventRow>(tx, 'events', scope, params, [
        type ? (type.endsWith('.*') ? tx`AND type LIKE ${prefix(type.slice(0, -1))}` : tx`AND type = ${type}`) : tx``,
        params.object_id ? tx`AND object_id = ${params.object_id}` : tx``,
      ]);
      return { data: page.rows.map(toApiEvent), has_more: page.hasMore };
    });
  }
}
