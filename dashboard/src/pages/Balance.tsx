import {
  Anchor,
  Button,
  Card,
  Code,
  Group,
  Select,
  SimpleGrid,
  Stack,
  Text,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, can, type BalanceTransaction, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useUrlFilters } from '../lib/url-state.ts';
import { formatMoney, formatTime } from '../lib/format.ts';
import { Empty, QueryState } from '../components/states.tsx';
import { afterLast, useCursorList } from '../lib/cursor-list.ts';
import { CursorSimpleTable, CursorTable, Section } from '../components/blocks.tsx';
import type { TextColumn } from '../components/DataTable.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';

type Settlement = Schema<'Settlement'>;
type Payout = Schema<'Payout'>;

const FILTERS = ['settlement', 'payout', 'payout_status'] as const;

const dayOf = (date: number | string) =>
  typeof date === 'number' ? new Date(date * 1000).toISOString().slice(0, 10) : date;

function Funds() {
  const balance = useQuery({ queryKey: ['balance'], queryFn: async () => (await api.GET('/v1/balance')).data! });
  return (
    <QueryState query={balance}>
      {(data) => {
        const kinds = [
          ['Available', data.available, 'Can be paid out'],
          ['Pending', data.pending, 'Captured, not yet settled'],
          ['Reserved', data.reserved, 'Withheld: disputes and the reserve'],
        ] as const;
        return (
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            {kinds.map(([name, amounts, hint]) => (
              <Card withBorder key={name} component="section" aria-label={name} data-testid={`balance-${name}`}>
                <Text size="sm" c="dimmed">
                  {name}
                </Text>
                {amounts.length === 0 ? (
                  <Text fw={700} size="xl">
                    —
                  </Text>
                ) : (
                  amounts.map((a) => (
                    <Text fw={700} size="xl" key={a.currency}>
                      {formatMoney(a.amount, a.currency)}
                    </Text>
                  ))
                )}
                <Text size="xs" c="dimmed">
                  {hint}
                </Text>
              </Card>
            ))}
          </SimpleGrid>
        );
      }}
    </QueryState>
  );
}

const TRANSACTION_COLUMNS: TextColumn<BalanceTransaction>[] = [
  { id: 'type', header: 'Type', text: (t) => t.type },
  {
    id: 'source',
    header: 'Source',
    text: (t) => t.source ?? '',
    cell: (t) =>
      t.source?.startsWith('pay_') ? (
        <Anchor component={Link} href={`/payments/${t.source}`} ff="monospace" size="sm">
          {t.source}
        </Anchor>
      ) : (
        <Code>{t.source ?? '—'}</Code>
      ),
  },
  { id: 'amount', header: 'Amount', text: (t) => formatMoney(t.amount, t.currency) },
  { id: 'fee', header: 'Fee', text: (t) => formatMoney(t.fee, t.currency) },
  { id: 'net', header: 'Net', text: (t) => formatMoney(t.net, t.currency) },
  { id: 'status', header: 'Status', text: (t) => t.status },
];

/** The balance transactions a settlement settled or a payout carried: thousands on a busy day, so cursor pages. */
function Transactions({ filter, caption }: { filter: { settlement: string } | { payout: string }; caption: string }) {
  return (
    <CursorTable
      queryKey={['balance_transactions', filter]}
      fetchPage={afterLast(
        async (cursor) =>
          (await api.GET('/v1/balance_transactions', { params: { query: { ...filter, ...cursor, limit: 100 } } }))
            .data! as { data: BalanceTransaction[]; has_more: boolean },
      )}
      columns={TRANSACTION_COLUMNS}
      rowKey={(t) => t.id}
      caption={caption}
      empty="No balance transaction."
      height={360}
    />
  );
}

function Settlements({ selected }: { selected: string }) {
  const [, setFilters] = useUrlFilters(FILTERS);
  const money = (pick: (s: Settlement) => number) => (s: Settlement) => formatMoney(pick(s), s.currency);
  const columns: TextColumn<Settlement>[] = [
    { id: 'day', header: 'Day', text: (s) => dayOf(s.settlement_date) },
    { id: 'count', header: 'Transactions', text: (s) => String(s.count) },
    { id: 'gross', header: 'Gross', text: money((s) => s.gross) },
    { id: 'fees', header: 'Fees', text: money((s) => s.fees) },
    { id: 'refunds', header: 'Refunds', text: money((s) => s.refunds) },
    { id: 'disputes', header: 'Disputes', text: money((s) => s.disputes) },
    { id: 'net', header: 'Net', text: money((s) => s.net) },
    { id: 'payout', header: 'Payout', text: (s) => s.payout ?? '—' },
    {
      id: 'detail',
      header: 'Detail',
      text: () => '',
      cell: (s) => (
        <Button size="xs" variant="default" onClick={() => setFilters({ settlement: s.id === selected ? null : s.id })}>
          {s.id === selected ? 'Hide' : 'Transactions'}
          <VisuallyHidden>
            {s.id === selected ? ' the transactions' : ''} of settlement {s.id}
          </VisuallyHidden>
        </Button>
      ),
    },
  ];
  return (
    <Section title="Settlements">
      <Stack>
        <CursorTable
          queryKey={['settlements']}
          fetchPage={afterLast(
            async (cursor) =>
              (await api.GET('/v1/settlements', { params: { query: { limit: 100, ...cursor } } })).data! as {
                data: Settlement[];
                has_more: boolean;
              },
          )}
          columns={columns}
          rowKey={(s) => s.id}
          caption="Settlements, newest first"
          empty="Nothing has settled yet."
          height={360}
        />
        {selected && <Transactions filter={{ settlement: selected }} caption={`What settlement ${selected} settled`} />}
      </Stack>
    </Section>
  );
}

function Carried({ payout }: { payout: string }) {
  const settlements = useCursorList(
    ['settlements', { payout }],
    afterLast(
      async (cursor) =>
        (await api.GET('/v1/settlements', { params: { query: { payout, limit: 100, ...cursor } } })).data! as {
          data: Settlement[];
          has_more: boolean;
        },
    ),
  );
  return (
    <Stack>
      <CursorSimpleTable
        list={settlements}
        empty="No settlement rode on this payout (a manual payout of the available balance)."
        caption={`Settlements payout ${payout} carried`}
        head={['Settlement', 'Day', 'Net']}
        rowKey={(s) => s.id}
        cells={(s) => [s.id, dayOf(s.settlement_date), formatMoney(s.net, s.currency)]}
      />
      <Transactions filter={{ payout }} caption={`Balance transactions of payout ${payout}`} />
    </Stack>
  );
}

function Payouts({ selected, status }: { selected: string; status: string }) {
  const [, setFilters] = useUrlFilters(FILTERS);
  const columns: TextColumn<Payout>[] = [
    { id: 'amount', header: 'Amount', text: (p) => formatMoney(p.amount, p.currency) },
    {
      id: 'status',
      header: 'Status',
      text: (p) => (p.failure_code ? `${p.status} (${p.failure_code})` : p.status),
      cell: (p) => (
        <Group gap={4} wrap="nowrap">
          <StatusBadge status={p.status} />
          {p.failure_code && (
            <Text size="xs" c="red.9">
              {p.failure_code}
            </Text>
          )}
        </Group>
      ),
    },
    { id: 'method', header: 'Method', text: (p) => p.method },
    { id: 'destination', header: 'Destination', text: (p) => p.destination, cell: (p) => <Code>{p.destination}</Code> },
    { id: 'arrival', header: 'Arrival', text: (p) => formatTime(p.arrival_date) },
    { id: 'kind', header: 'Kind', text: (p) => (p.automatic ? 'automatic' : 'manual') },
    {
      id: 'detail',
      header: 'Detail',
      text: () => '',
      cell: (p) => (
        <Button size="xs" variant="default" onClick={() => setFilters({ payout: p.id === selected ? null : p.id })}>
          {p.id === selected ? 'Hide' : 'Carried'}
          <VisuallyHidden>: what payout {p.id} carried</VisuallyHidden>
        </Button>
      ),
    },
  ];
  return (
    <Section
      title="Payouts"
      actions={
        <Select
          aria-label="Payout status"
          placeholder="Every status"
          w={180}
          data={['pending', 'in_transit', 'paid', 'failed']}
          value={status || null}
          onChange={(v) => setFilters({ payout_status: v })}
          clearable
        />
      }
    >
      <Stack>
        <CursorTable
          queryKey={['payouts', status]}
          fetchPage={afterLast(
            async (cursor) =>
              (
                await api.GET('/v1/payouts', {
                  params: { query: { limit: 100, ...cursor, ...(status ? { status: status as 'paid' } : {}) } },
                })
              ).data!,
          )}
          columns={columns}
          rowKey={(p) => p.id}
          caption="Payouts, newest first"
          empty="No payout matches."
          height={360}
        />
        {selected && <Carried payout={selected} />}
      </Stack>
    </Section>
  );
}

function BankAccounts() {
  const accounts = useCursorList(
    ['bank_accounts'],
    afterLast(
      async (cursor) => (await api.GET('/v1/bank_accounts', { params: { query: { limit: 100, ...cursor } } })).data!,
    ),
  );
  return (
    <Section title="Bank accounts">
      <CursorSimpleTable
        list={accounts}
        empty="No bank account registered."
        caption="Payout destinations"
        head={['Account', 'Holder', 'Routing', 'Currency', 'Status', 'Default']}
        rowKey={(a) => a.id}
        cells={(a) => [
          `•••• ${a.last4}`,
          a.account_holder_name ?? '—',
          a.routing_number,
          a.currency.toUpperCase(),
          <StatusBadge key="s" status={a.status} />,
          a.default_for_currency ? 'yes' : 'no',
        ]}
      />
    </Section>
  );
}

export default function Balance() {
  const session = useSession();
  const [filters] = useUrlFilters(FILTERS);
  return (
    <Stack>
      <Title order={1}>Balance</Title>
      {can(session, 'balance:read') ? (
        <>
          <Funds />
          <Settlements selected={filters.settlement} />
        </>
      ) : (
        <Empty>Your role does not include the balance.</Empty>
      )}
      {can(session, 'payouts:read') && <Payouts selected={filters.payout} status={filters.payout_status} />}
      {can(session, 'bank_accounts:read') && <BankAccounts />}
    </Stack>
  );
}
