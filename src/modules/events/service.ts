import { primaryReads, type Reads } from '../../db/replica.js';
import { scopedRead, type Scope, type Sql } from '../../db/index.js';
import { findOwned, listPage, type ListParams } from '../../db/list.js';
import { idRangeFrom, idTime } from '../../lib/ids.js';
import { toApiEvent, type Event, type EventRow } from './events.js';

export class EventService {
  constructor(
    private readonly sql: Sql,
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  async retrieve(scope: Scope, id: string): Promise<Event> {
    return toApiEvent(await scopedRead(this.sql, scope, (tx) => findOwned<EventRow>(tx, 'events', scope, id, 'event')));
  }

  async list(scope: Scope, params: ListParams & { type?: string; object_id?: string }) {
    // Neither filter has an index: the page walks the tenant's events in id order either way, in one round trip.
    return this.reads.page(scope, async (tx) => {
      const type = params.type;
      // The prefix is the caller's text: its LIKE wildcards (and the escape character) match literally.
      const prefix = (text: string) => text.replace(/[\\%_]/g, '\\$&') + '%';
      const objectSince = params.object_id === undefined ? undefined : objectCreatedAt(params.object_id);
      const page = await listPage<EventRow>(tx, 'events', scope, params, [
        type ? (type.endsWith('.*') ? tx`AND type LIKE ${prefix(type.slice(0, -1))}` : tx`AND type = ${type}`) : tx``,
        params.object_id ? tx`AND object_id = ${params.object_id}` : tx``,
        objectSince === undefined ? tx`` : tx`AND id >= ${idRangeFrom('evt', new Date(objectSince))}`,
      ]);
      return { data: page.rows.map(toApiEvent), has_more: page.hasMore };
    });
  }
}

/**
 * When an object was made, from its id (newId's time-ordered ids): none of its events is older, so the walk for an
 * object's events stops there instead of reading the tenant's whole history for an object of last week.
 */
function objectCreatedAt(id: string): number | undefined {
  const separator = id.indexOf('_');
  return separator > 0 ? idTime(id.slice(0, separator), id) : undefined;
}
