import { Anchor, Select } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { Link } from 'wouter';
import { api, PayForwardError, payforward, type Payment } from '../lib/api.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { useCursorList, type FetchPage } from '../lib/cursor-list.ts';
import { amountClauses, createdClauses, metadataClause, quote } from '../lib/search-query.ts';
import { currencyDigits, formatTime } from '../lib/format.ts';
import type { TextColumn } from '../components/DataTable.tsx';
import { filterField, SearchList } from '../components/SearchList.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';

const FILTERS = [
  'id',
  'customer',
  'email',
  'last4',
  'min',
  'max',
  'currency',
  'status',
  'metadata',
  'from',
  'to',
] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

const STATUSES = [
  'succeeded',
  'requires_capture',
  'processing',
  'requires_payment_method',
  'requires_action',
  'requires_confirmation',
  'canceled',
];

const amountText = (amount: number, currency: string) =>
  (amount / 10 ** currencyDigits(currency)).toFixed(currencyDigits(currency));

export const PAYMENT_COLUMNS: TextColumn<Payment>[] = [
  {
    id: 'id',
    header: 'Payment',
    text: (p) => p.id,
    cell: (p) => (
      <Anchor component={Link} href={`/payments/${p.id}`} ff="monospace" size="sm">
        {p.id}
      </Anchor>
    ),
  },
  { id: 'created', header: 'Created', text: (p) => formatTime(p.created) },
  { id: 'amount', header: 'Amount', text: (p) => amountText(p.amount, p.currency) },
  { id: 'currency', header: 'Currency', text: (p) => p.currency.toUpperCase() },
  { id: 'status', header: 'Status', text: (p) => p.status, cell: (p) => <StatusBadge status={p.status} /> },
  { id: 'refunded', header: 'Refunded', text: (p) => amountText(p.amount_refunded, p.currency) },
  {
    id: 'customer',
    header: 'Customer',
    text: (p) => (typeof p.customer === 'string' ? p.customer : (p.customer?.id ?? '')),
  },
];

/** The search language's query for the filters, or null when none is set (then the plain list is read). */
function searchQuery(filters: Filters): { query: string | null; invalid: string | null } {
  const clauses: string[] = [];
  if (filters.customer) clauses.push(`customer:${quote(filters.customer.trim())}`);
  if (filters.email) clauses.push(`email:${quote(filters.email.trim())}`);
  if (filters.last4) clauses.push(`last4:${quote(filters.last4.trim())}`);
  if (filters.status) clauses.push(`status:${quote(filters.status)}`);
  if (filters.currency) clauses.push(`currency:${quote(filters.currency.toLowerCase())}`);
  const amounts = amountClauses(filters.min, filters.max, filters.currency);
  if (amounts.invalid) return { query: null, invalid: 'An amount must be a number such as 12.50.' };
  clauses.push(...amounts.clauses);
  if (filters.metadata) {
    const clause = metadataClause(filters.metadata);
    if (!clause) return { query: null, invalid: 'Metadata is searched as key=value.' };
    clauses.push(clause);
  }
  clauses.push(...createdClauses(filters));
  return { query: clauses.length ? clauses.join(' AND ') : null, invalid: null };
}

function fetcher(filters: Filters, query: string | null): FetchPage<Payment> {
  const id = filters.id.trim();
  if (id)
    return async () => {
      try {
        return { rows: [await payforward.payments.retrieve(id)], next: null };
      } catch (error) {
        if (error instanceof PayForwardError && error.status === 404) return { rows: [], next: null };
        throw error;
      }
    };
  if (query)
    return async (cursor) => {
      const page = (
        await api.GET('/v1/payments/search', {
          params: { query: { query, limit: 100, ...(cursor ? { page: cursor } : {}) } },
        })
      ).data!;
      return { rows: page.data as Payment[], next: page.has_more ? (page.next_page ?? null) : null };
    };
  return async (cursor) => {
    const page = await payforward.payments.list({ limit: 100, ...(cursor ? { starting_after: cursor } : {}) });
    return { rows: page.data as Payment[], next: page.has_more ? (page.data.at(-1)?.id ?? null) : null };
  };
}

export default function Payments() {
  const [filters, setFilters] = useUrlFilters(FILTERS);
  // The URL follows every keystroke; the search waits for a pause in typing.
  const [settled] = useDebouncedValue(filters, 300);
  const { query, invalid } = searchQuery(settled);
  const list = useCursorList(['payments', settled], fetcher(settled, query), { enabled: invalid === null });
  const field = filterField(filters, setFilters);
  return (
    <SearchList
      title="Payments"
      columnsMd={4}
      fields={
        <>
          {field('id', 'Payment id', { placeholder: 'pay_…' })}
          {field('customer', 'Customer id', { placeholder: 'cus_…' })}
          {field('email', 'Customer email')}
          {field('last4', 'Card last 4')}
          {field('min', 'Amount from', { placeholder: '10.00' })}
          {field('max', 'Amount to', { placeholder: '250.00' })}
          {field('currency', 'Currency', { placeholder: 'usd' })}
          <Select
            label="Status"
            data={STATUSES}
            value={filters.status || null}
            onChange={(value) => setFilters({ status: value })}
            clearable
          />
          {field('metadata', 'Metadata', { placeholder: 'order_id=1042' })}
          {field('from', 'Created from', { type: 'date' })}
          {field('to', 'Created to', { type: 'date' })}
        </>
      }
      csv="payments.csv"
      invalid={invalid}
      list={list}
      loading="Loading payments"
      empty="No payments match these filters."
      caption="Payments, newest first"
      columns={PAYMENT_COLUMNS}
      rowKey={(p) => p.id}
    />
  );
}
