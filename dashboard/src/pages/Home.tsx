import { useRef, useState } from 'react';
import { Anchor, Badge, Card, Group, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { payforward, type Event, type Payment } from '../lib/api.ts';
import { useHomeFigures, type Figures } from '../lib/figures.ts';
import { useEventStream } from '../lib/live.ts';
import { formatMoney, formatPercent, formatTime } from '../lib/format.ts';
import { ApiErrorAlert, Empty, Loading, QueryState } from '../components/states.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';
import { ScrollRegion } from '../components/ScrollRegion.tsx';

const FEED_SIZE = 15;

function change(now: number | null, before: number | null, format: (n: number) => string) {
  if (now === null || before === null) return 'no comparison';
  const diff = now - before;
  return `${diff >= 0 ? '+' : '−'}${format(Math.abs(diff))} vs this time yesterday`;
}

function Figure({ label, value, delta, testId }: { label: string; value: string; delta: string; testId: string }) {
  return (
    <Card withBorder padding="md" data-testid={testId}>
      <Text size="sm" c="dimmed">
        {label}
      </Text>
      <Text size="xl" fw={700} data-testid={`${testId}-value`}>
        {value}
      </Text>
      <Text size="xs" c="dimmed">
        {delta}
      </Text>
    </Card>
  );
}

function FigureGrid({ currency, today, yesterday }: { currency: string; today: Figures; yesterday: Figures }) {
  const money = (n: number) => formatMoney(n, currency);
  const count = (n: number) => String(n);
  const rate = (n: number | null) => (n === null ? '—' : formatPercent(n));
  return (
    <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }} spacing="sm">
      <Figure
        testId="volume"
        label="Volume today"
        value={money(today.volume)}
        delta={change(today.volume, yesterday.volume, money)}
      />
      <Figure
        testId="count"
        label="Payments today"
        value={count(today.count)}
        delta={change(today.count, yesterday.count, count)}
      />
      <Figure
        testId="approval"
        label="Approval rate"
        value={rate(today.approvalRate)}
        delta={change(today.approvalRate, yesterday.approvalRate, (n) => `${(n * 100).toFixed(1)} pts`)}
      />
      <Figure testId="fees" label="Fees" value={money(today.fees)} delta={change(today.fees, yesterday.fees, money)} />
      <Figure testId="net" label="Net" value={money(today.net)} delta={change(today.net, yesterday.net, money)} />
      <Figure
        testId="balance"
        label="Balance"
        value={money(today.balance)}
        delta={change(today.balance, yesterday.balance, money)}
      />
    </SimpleGrid>
  );
}

/**
 * The latest payments, kept current by the event stream: each payment.* event carries the payment as it now
 * stands, applied only when its sequence is newer than what is shown (events may arrive out of order).
 */
function LiveFeed() {
  const client = useQueryClient();
  const initial = useQuery({
    queryKey: ['payments', 'latest'],
    queryFn: async () => (await payforward.payments.list({ limit: FEED_SIZE })).data as Payment[],
  });
  const [live, setLive] = useState<Map<string, { payment: Payment; sequence: number }>>(new Map());
  const refresh = useRef<ReturnType<typeof setTimeout> | null>(null);
  const status = useEventStream('payment.*', (event: Event) => {
    const payment = event.data.object as unknown as Payment;
    setLive((current) => {
      const known = current.get(payment.id);
      if (known && known.sequence >= event.sequence) return current;
      return new Map(current).set(payment.id, { payment, sequence: event.sequence });
    });
    // A burst of events refreshes the figures once.
    if (refresh.current) clearTimeout(refresh.current);
    refresh.current = setTimeout(() => client.invalidateQueries({ queryKey: ['home-figures'] }), 150);
  });

  const merged = new Map<string, Payment>();
  for (const p of initial.data ?? []) merged.set(p.id, p);
  for (const [id, { payment }] of live) merged.set(id, payment);
  const rows = [...merged.values()]
    .sort((a, b) => b.created - a.created || b.id.localeCompare(a.id))
    .slice(0, FEED_SIZE);

  return (
    <Card withBorder component="section" aria-label="Live payments">
      <Group justify="space-between" mb="sm">
        <Title order={2} size="h4">
          Live payments
        </Title>
        <Badge color={status === 'live' ? 'teal.9' : 'dark.6'} variant="outline" data-testid="live-status">
          {status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting' : 'Reconnecting'}
        </Badge>
      </Group>
      {initial.isPending ? (
        <Loading label="Loading payments" />
      ) : initial.isError ? (
        <ApiErrorAlert error={initial.error} />
      ) : rows.length === 0 ? (
        <Empty>No payments yet: they appear here as they happen.</Empty>
      ) : (
        <ScrollRegion label="Latest payments">
          <Table data-testid="live-feed" aria-live="polite" miw={480}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th scope="col">Payment</Table.Th>
                <Table.Th scope="col">Amount</Table.Th>
                <Table.Th scope="col">Status</Table.Th>
                <Table.Th scope="col">Created</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((p) => (
                <Table.Tr key={p.id} data-row-id={p.id}>
                  <Table.Td>
                    <Anchor component={Link} href={`/payments/${p.id}`} ff="monospace" size="sm">
                      {p.id}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>{formatMoney(p.amount, p.currency)}</Table.Td>
                  <Table.Td>
                    <StatusBadge status={p.status} />
                  </Table.Td>
                  <Table.Td>{formatTime(p.created)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </ScrollRegion>
      )}
    </Card>
  );
}

export default function Home() {
  const figures = useHomeFigures();
  return (
    <Stack>
      <Title order={1}>Home</Title>
      <QueryState query={figures}>
        {(f) => <FigureGrid currency={f.currency} today={f.today} yesterday={f.yesterday} />}
      </QueryState>
      <LiveFeed />
    </Stack>
  );
}
