import { Type, type Static } from 'typebox';
import { newId } from '../../lib/ids.js';
import type { Scope } from '../../db/index.js';
import type { Columns } from '../../db/unnest.js';
import { convertVersion, LATEST_API_VERSION } from '../versions/versions.js';
import type { EventType } from './catalog.js';

/** An event as stored: `sequence` is assigned by the database when the event is written. */
export interface EventRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  type: string;
  object_id: string;
  data: { object: unknown };
  request_id: string | null;
  /** The API version `data.object` was written in. */
  api_version: string;
  created_at: Date;
  sequence: number;
}

/** An event about to be written, in the same transaction as the change it reports. */
export type NewEventRow = Omit<EventRow, 'sequence'>;

export const EVENT_COLUMNS: Columns<NewEventRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['type', 'text'],
  ['object_id', 'text'],
  ['data', 'json'],
  ['request_id', 'text'],
  ['api_version', 'text'],
  ['created_at', 'timestamptz'],
];

/**
 * Builds an event for the outbox (its object in the latest API version's shape); it is written in the same
 * transaction as the change it reports.
 */
export function newEvent(
  scope: Scope,
  type: EventType,
  object: { id: string },
  requestId: string | null,
  at: Date = new Date(),
): NewEventRow {
  return {
    id: newId('evt', at),
    tenant_id: scope.tenantId,
    livemode: scope.livemode,
    type,
    object_id: object.id,
    data: { object },
    request_id: requestId,
    api_version: LATEST_API_VERSION,
    created_at: at,
  };
}

export const EventSchema = Type.Object(
  {
    id: Type.String({ examples: ['evt_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('event'),
    type: Type.String({ examples: ['payment.succeeded'] }),
    created: Type.Integer({ description: 'Unix time in seconds' }),
    livemode: Type.Boolean(),
    sequence: Type.Integer({
      description:
        'Increases with every event about the same object (`data.object.id`): of two events about one object, ' +
        'the one with the larger sequence describes the later state. Not consecutive: compare, do not count.',
    }),
    data: Type.Object({ object: Type.Unknown() }),
    request: Type.Object({ id: Type.Union([Type.String(), Type.Null()]) }),
    api_version: Type.String({
      description: 'The API version `data.object` is shown in: the one the request (or the tenant) asked for.',
      examples: [LATEST_API_VERSION],
    }),
  },
  { $id: 'Event' },
);
export type Event = Static<typeof EventSchema>;

/** The event in the latest API version; convertVersion takes it to a caller's. */
export function toApiEvent(row: EventRow): Event {
  return {
    id: row.id,
    object: 'event',
    type: row.type,
    created: Math.floor(new Date(row.created_at).getTime() / 1000),
    livemode: row.livemode,
    sequence: row.sequence,
    data: convertVersion(row.data, row.api_version, LATEST_API_VERSION),
    request: { id: row.request_id },
    api_version: LATEST_API_VERSION,
  };
}
