import { Anchor, Button, Group, Select, SimpleGrid, Stack, TextInput, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { Link } from 'wouter';
import { api, PayForwardError, payforward, type Payment } from '../lib/api.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { useCursorList, type FetchPage } from '../lib/cursor-list.ts';
import { amountClauses, createdClauses, metadataClause, quote } from '../lib/search-query.ts';
import { currencyDigits, formatTime } from '../lib/format.ts';
import { DataTable, type TextColumn } from '../components/DataTable.tsx';
import { ApiErrorAlert, Empty, Loading } from '../components/states.tsx';
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
  const list = useCursorList(['payments', settled], fetcher(settled, query), invalid === null);
  const field = (key: keyof Filters, label: string, placeholder?: string) => (
    <TextInput
      label={label}
      placeholder={placeholder}
      value={filters[key]}
      onChange={(event) => setFilters({ [key]: event.currentTarget.value })}
    />
  );

  return (
    <Stack>
      <Title order={1}>Payments</Title>
      <form role="search" aria-label="Payments" onSubmit={(event) => event.preventDefault()}>
        <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
          {field('id', 'Payment id', 'pay_…')}
          {field('customer', 'Customer id', 'cus_…')}
          {field('email', 'Customer email')}
          {field('last4', 'Card last 4')}
          {field('min', 'Amount from', '10.00')}
          {field('max', 'Amount to', '250.00')}
          {field('currency', 'Currency', 'usd')}
          <Select
            label="Status"
            data={STATUSES}
            value={filters.status || null}
            onChange={(value) => setFilters({ status: value })}
            clearable
          />
          {field('metadata', 'Metadata', 'order_id=1042')}
          <TextInput
            label="Created from"
            type="date"
            value={filters.from}
            onChange={(e) => setFilters({ from: e.currentTarget.value })}
          />
          <TextInput
            label="Created to"
            type="date"
            value={filters.to}
            onChange={(e) => setFilters({ to: e.currentTarget.value })}
          />
        </SimpleGrid>
      </form>
      <Group justify="flex-end">
        <Button
          variant="default"
          onClick={() => list.exportCsv('payments.csv', PAYMENT_COLUMNS)}
          loading={list.exporting}
          disabled={invalid !== null || list.rows.length === 0}
        >
          Export CSV
        </Button>
      </Group>
      {list.exportError !== null && <ApiErrorAlert error={list.exportError} title="The export failed" />}
      {invalid ? (
        <ApiErrorAlert error={new Error(invalid)} title="Check the filters" />
      ) : list.query.isPending ? (
        <Loading label="Loading payments" />
      ) : list.query.isError ? (
        <ApiErrorAlert error={list.query.error} />
      ) : list.rows.length === 0 ? (
        <Empty>No payments match these filters.</Empty>
      ) : (
        <DataTable
          caption="Payments, newest first"
          columns={PAYMENT_COLUMNS}
          rows={list.rows}
          rowKey={(p) => p.id}
          hasMore={list.query.hasNextPage}
          loadingMore={list.query.isFetchingNextPage}
          onLoadMore={() => list.query.fetchNextPage()}
        />
      )}
    </Stack>
  );
}
