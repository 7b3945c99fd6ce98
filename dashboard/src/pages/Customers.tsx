import { Anchor } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { Link } from 'wouter';
import { api, PayForwardError, payforward, type Customer } from '../lib/api.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { useCursorList, type FetchPage } from '../lib/cursor-list.ts';
import { createdClauses, metadataClause, quote } from '../lib/search-query.ts';
import { formatTime } from '../lib/format.ts';
import type { TextColumn } from '../components/DataTable.tsx';
import { filterField, SearchList } from '../components/SearchList.tsx';

const FILTERS = ['id', 'email', 'name', 'phone', 'metadata', 'from', 'to'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

/** The id links to the customer's payments (the Payments page filtered by customer). */
const COLUMNS: TextColumn<Customer>[] = [
  {
    id: 'id',
    header: 'Customer',
    text: (c) => c.id,
    cell: (c) => (
      <Anchor component={Link} href={`/payments?customer=${encodeURIComponent(c.id)}`} ff="monospace" size="sm">
        {c.id}
      </Anchor>
    ),
  },
  { id: 'email', header: 'Email', text: (c) => c.email ?? '' },
  { id: 'name', header: 'Name', text: (c) => c.name ?? '' },
  { id: 'phone', header: 'Phone', text: (c) => c.phone ?? '' },
  { id: 'created', header: 'Created', text: (c) => formatTime(c.created) },
];

function fetcher(filters: Filters): { fetchPage: FetchPage<Customer>; invalid: string | null } {
  const id = filters.id.trim();
  if (id)
    return {
      invalid: null,
      fetchPage: async () => {
        try {
          return { rows: [await payforward.customers.retrieve(id)], next: null };
        } catch (error) {
          if (error instanceof PayForwardError && error.status === 404) return { rows: [], next: null };
          throw error;
        }
      },
    };
  const clauses: string[] = [];
  if (filters.email) clauses.push(`email:${quote(filters.email.trim())}`);
  if (filters.name) clauses.push(`name:${quote(filters.name.trim())}`);
  if (filters.phone) clauses.push(`phone:${quote(filters.phone.trim())}`);
  if (filters.metadata) {
    const clause = metadataClause(filters.metadata);
    if (!clause)
      return { invalid: 'Metadata is searched as key=value.', fetchPage: async () => ({ rows: [], next: null }) };
    clauses.push(clause);
  }
  clauses.push(...createdClauses(filters));
  const query = clauses.join(' AND ');
  if (query)
    return {
      invalid: null,
      fetchPage: async (cursor) => {
        const page = (
          await api.GET('/v1/customers/search', {
            params: { query: { query, limit: 100, ...(cursor ? { page: cursor } : {}) } },
          })
        ).data!;
        return { rows: page.data as Customer[], next: page.has_more ? (page.next_page ?? null) : null };
      },
    };
  return {
    invalid: null,
    fetchPage: async (cursor) => {
      const page = await payforward.customers.list({ limit: 100, ...(cursor ? { starting_after: cursor } : {}) });
      return { rows: page.data as Customer[], next: page.has_more ? (page.data.at(-1)?.id ?? null) : null };
    },
  };
}

export default function Customers() {
  const [filters, setFilters] = useUrlFilters(FILTERS);
  // The URL follows every keystroke; the search waits for a pause in typing.
  const [settled] = useDebouncedValue(filters, 300);
  const { fetchPage, invalid } = fetcher(settled);
  const list = useCursorList(['customers', settled], fetchPage, { enabled: invalid === null });
  const field = filterField(filters, setFilters);
  return (
    <SearchList
      title="Customers"
      columnsMd={4}
      fields={
        <>
          {field('id', 'Customer id')}
          {field('email', 'Email')}
          {field('name', 'Name')}
          {field('phone', 'Phone')}
          {field('metadata', 'Metadata (key=value)')}
          {field('from', 'Created from', { type: 'date' })}
          {field('to', 'Created to', { type: 'date' })}
        </>
      }
      csv="customers.csv"
      invalid={invalid}
      list={list}
      loading="Loading customers"
      empty="No customers match these filters."
      caption="Customers, newest first"
      columns={COLUMNS}
      rowKey={(c) => c.id}
    />
  );
}
