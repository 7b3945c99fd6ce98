import { Code, Stack, Text, Title } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { api, can, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useUrlFilters } from '../lib/url-state.ts';
import { afterLast, useCursorList } from '../lib/cursor-list.ts';
import { downloadText } from '../lib/csv.ts';
import { formatTime } from '../lib/format.ts';
import type { TextColumn } from '../components/DataTable.tsx';
import { filterField, SearchList } from '../components/SearchList.tsx';
import { Empty } from '../components/states.tsx';

type Entry = Schema<'AuditLog'>;

const FILTERS = ['actor', 'action', 'object', 'from', 'to'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

/** What changed, as `field: before → after`, for the fields the entry holds. */
function changesOf(entry: Entry): string {
  const before = entry.changes.before ?? {};
  const after = entry.changes.after ?? {};
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const show = (value: unknown) => (value === undefined ? '∅' : JSON.stringify(value));
  return fields.map((field) => `${field}: ${show(before[field])} → ${show(after[field])}`).join('; ');
}

const COLUMNS: TextColumn<Entry>[] = [
  { id: 'created', header: 'Time', text: (e) => formatTime(e.created) },
  { id: 'action', header: 'Action', text: (e) => e.action, cell: (e) => <Code>{e.action}</Code> },
  { id: 'actor', header: 'Actor', text: (e) => `${e.actor.type} ${e.actor.id}` },
  { id: 'target', header: 'Object', text: (e) => `${e.target.type} ${e.target.id}` },
  {
    id: 'changes',
    header: 'Changes',
    text: changesOf,
    cell: (e) => (
      <Text size="xs" lineClamp={2} title={changesOf(e)}>
        {changesOf(e) || '—'}
      </Text>
    ),
  },
  { id: 'ip', header: 'Address', text: (e) => e.actor.ip ?? '' },
  { id: 'request', header: 'Request id', text: (e) => e.request_id ?? '' },
];

/** The filters as the API's query: an empty field is no filter; days are whole UTC days, `to` included. */
function queryOf(filters: Filters) {
  const day = (date: string) => Math.floor(new Date(`${date}T00:00:00Z`).getTime() / 1000);
  return {
    ...(filters.actor ? { actor: filters.actor.trim() } : {}),
    ...(filters.action ? { action: filters.action.trim() } : {}),
    ...(filters.object ? { object: filters.object.trim() } : {}),
    ...(filters.from ? { 'created[gte]': day(filters.from) } : {}),
    ...(filters.to ? { 'created[lt]': day(filters.to) + 86_400 } : {}),
  };
}

export default function AuditLog() {
  const session = useSession();
  const [filters, setFilters] = useUrlFilters(FILTERS);
  const allowed = can(session, 'audit_logs:read');
  const list = useCursorList<Entry>(
    ['audit-logs', filters],
    afterLast(
      async (cursor) =>
        (await api.GET('/v1/audit_logs', { params: { query: { limit: 100, ...queryOf(filters), ...cursor } } })).data!,
    ),
    { enabled: allowed },
  );
  // The API's own export: every matching entry, oldest first, and the export itself is audited.
  const exportCsv = useMutation({
    mutationFn: async () => {
      const { data } = await api.GET('/v1/audit_logs/export', {
        params: { query: queryOf(filters) },
        parseAs: 'blob',
      });
      downloadText('audit-log.csv', data as Blob);
    },
  });
  if (!allowed)
    return (
      <Stack>
        <Title order={1}>Audit log</Title>
        <Empty>Your role does not include the audit log.</Empty>
      </Stack>
    );
  const field = filterField(filters, setFilters);
  return (
    <SearchList
      title="Audit log"
      intro={
        <Text size="sm" c="dimmed">
          Administrative and security actions of this mode, newest first; team changes are recorded in live mode.
        </Text>
      }
      columnsMd={5}
      fields={
        <>
          {field('action', 'Action (api_key.* for all)')}
          {field('actor', 'Actor (key or user id)')}
          {field('object', 'Object id')}
          {field('from', 'From', { type: 'date' })}
          {field('to', 'To', { type: 'date' })}
        </>
      }
      csv={{ run: () => exportCsv.mutate(), pending: exportCsv.isPending, error: exportCsv.error }}
      list={list}
      loading="Loading the audit log"
      empty="No entry matches these filters."
      caption="Audit entries, newest first"
      columns={COLUMNS}
      rowKey={(e) => e.id}
    />
  );
}
