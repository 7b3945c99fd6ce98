import { useRef, useState } from 'react';
import { Anchor, Badge, Card, Group, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { can, payforward, type Event, type Payment } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useHomeFigures, type Figures, type HomeFigures, type Period } from '../lib/figures.ts';
import { useEventStream } from '../lib/live.ts';
import { formatMoney, formatPercent, formatTime } from '../lib/format.ts';
import { ApiErrorAlert, Empty, Loading, QueryState } from '../components/states.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';
import { ScrollRegion } from '../components/ScrollRegion.tsx';

const FEED_SIZE = 15;

/** The end of a period that starts at 00:00 UTC, as the hour of that day ("15:00 UTC", up to "24:00 UTC"). */
const endHour = ({ from, until }: Period) => `${String((until - from) / 3600).padStart(2, '0')}:00 UTC`;

function change(now: number | null, before: number | null, format: (n: number) => string, until: string) {
  if (now === null || before === null) return 'no comparison';
  const diff = now - before;
  return `${diff >= 0 ? '+' : '−'}${format(Math.abs(diff))} vs yesterday until ${until}`;
}

function Figure({
  label,
  value,
  raw,
  delta,
  testId,
}: {
  label: string;
  value: string;
  raw: number | null;
  delta: string;
  testId: string;
}) {
  return (
    <Card withBorder padding="md" data-testid={testId} data-value={raw ?? ''}>
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

function FigureGrid({ figures: { currency, today, yesterday, balance, balanceYesterday } }: { figures: HomeFigures }) {
  const money = (n: number) => formatMoney(n, currency);
  const until = endHour(yesterday);
  const figure = (key: keyof Figures, testId: string, label: string, show: (n: number) => string, diff = show) => {
    const value = today[key];
    return (
      <Figure
        testId={testId}
        label={label}
        value={value === null ? '—' : show(value)}
        raw={value}
        delta={change(value, yesterday[key], diff, until)}
      />
    );
  };
  return (
    <Stack gap="xs" data-testid="figures" data-from={today.from} data-until={today.until}>
      <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }} spacing="sm">
        {figure('volume', 'volume', 'Volume today', money)}
        {figure('count', 'count', 'Payments today', String)}
        {figure('approvalRate', 'approval', 'Approval rate', formatPercent, (n) => `${(n * 100).toFixed(1)} pts`)}
        {figure('fees', 'fees', 'Fees', money)}
        {figure('net', 'net', 'Net', money)}
        <Card
          withBorder
          padding="md"
          data-testid="balance"
          data-value={balance.total}
          data-yesterday={balanceYesterday?.total ?? ''}
          data-at={balanceYesterday?.at ?? ''}
        >
          <Text size="sm" c="dimmed">
            Balance now
          </Text>
          <Text size="xl" fw={700} data-testid="balance-value">
            {money(balance.total)}
          </Text>
          <Text size="xs" c="dimmed" data-testid="balance-change">
            {balanceYesterday
              ? `${balance.total >= balanceYesterday.total ? '+' : '−'}${money(Math.abs(balance.total - balanceYesterday.total))} vs this time yesterday`
              : 'no comparison: the account is less than a day old'}
          </Text>
          <Text size="xs" c="dimmed">
            {`${money(balance.available)} available, ${money(balance.pending)} pending, ${money(balance.reserved)} reserved`}
          </Text>
        </Card>
      </SimpleGrid>
      <Text size="xs" c="dimmed" data-testid="figures-period">
        Today since 00:00 UTC in {currency.toUpperCase()}, against yesterday from 00:00 to {until}: figures are kept per
        hour, so yesterday counts the whole of the hour under way today.
      </Text>
    </Stack>
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

function HomeFigureGrid() {
  const figures = useHomeFigures();
  return <QueryState query={figures}>{(f) => <FigureGrid figures={f} />}</QueryState>;
}

export default function Home() {
  const session = useSession();
  return (
    <Stack>
      <Title order={1}>Home</Title>
      {/* The figures are the analytics API's: a role without it (support) gets the live feed alone. */}
      {can(session, 'analytics:read') ? (
        <HomeFigureGrid />
      ) : (
        <Text c="dimmed" data-testid="figures-hidden">
          Your role does not read analytics, so today&apos;s figures are not shown.
        </Text>
      )}
      <LiveFeed />
    </Stack>
  );
}
