import { useState, type ReactNode } from 'react';
import { Badge, Code, Group, Select, SimpleGrid, Stack, Text, TextInput, Timeline, Title } from '@mantine/core';
import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { useParams } from 'wouter';
import {
  api,
  can,
  payforward,
  type BalanceTransaction,
  type Dispute,
  type Event,
  type Payment,
  type PaymentMethod,
  type Refund,
} from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { formatMoney, formatTime, parseAmount } from '../lib/format.ts';
import { ApiErrorAlert, Empty, Loading, QueryState } from '../components/states.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';
import { ConfirmAction, Section, SimpleTable } from '../components/blocks.tsx';

type Attempt = Payment['attempts'][number];

/** An authorize attempt that follows a failed one on another processor: the router failed over. */
const isFailover = (attempts: Attempt[], index: number) =>
  index > 0 &&
  attempts[index].operation === 'authorize' &&
  attempts[index - 1].status === 'error' &&
  attempts[index - 1].processor !== attempts[index].processor;

function Attempts({ payment }: { payment: Payment }) {
  if (payment.attempts.length === 0) return <Empty>No processor has been called yet.</Empty>;
  return (
    <SimpleTable
      caption="Every processor call, oldest first"
      head={['Operation', 'Processor', 'Outcome', 'Amount', 'Latency', 'Code', 'At']}
      rows={payment.attempts.map((a, i) => [
        <Group gap={4} key="op">
          {a.operation}
          {isFailover(payment.attempts, i) && (
            <Badge color="orange.9" variant="outline" size="sm">
              failover
            </Badge>
          )}
        </Group>,
        a.processor,
        <StatusBadge key="s" status={a.status} />,
        formatMoney(a.amount, payment.currency),
        a.latency_ms === null ? '—' : `${a.latency_ms} ms`,
        a.decline_code ?? a.error_code ?? '—',
        formatTime(a.created),
      ])}
    />
  );
}

function Fraud({ outcome }: { outcome: Payment['outcome'] }) {
  if (!outcome) return <Empty>No fraud decision was recorded for this payment.</Empty>;
  return (
    <Stack gap="xs">
      <Group>
        <Text>
          Decision: <strong>{outcome.action}</strong>
        </Text>
        <Text>
          Risk score: <strong>{outcome.risk_score}</strong> ({outcome.risk_level})
        </Text>
        {outcome.rule && <Text>Rule: {outcome.rule.name}</Text>}
      </Group>
      {outcome.reasons.length > 0 && (
        <SimpleTable
          caption={`Top reasons (model ${outcome.model_version})`}
          head={['Factor', 'Weight']}
          rows={outcome.reasons.map((r) => [r.feature, r.weight.toFixed(3)])}
        />
      )}
    </Stack>
  );
}

function Ledger({ payment, refunds }: { payment: Payment; refunds: Refund[] }) {
  const sources = [payment.id, ...refunds.map((r) => r.id)];
  const lines = useQueries({
    queries: sources.map((source) => ({
      queryKey: ['balance_transactions', { source }],
      queryFn: async () =>
        (await api.GET('/v1/balance_transactions', { params: { query: { source, limit: 100 } } })).data!,
    })),
  });
  const failed = lines.find((q) => q.isError);
  if (failed) return <ApiErrorAlert error={failed.error} />;
  if (lines.some((q) => q.isPending)) return <Loading label="Loading the ledger" />;
  const transactions = lines.flatMap((q) => q.data!.data as BalanceTransaction[]);
  if (transactions.length === 0) return <Empty>Nothing has reached the balance yet.</Empty>;
  return (
    <Stack>
      <SimpleTable
        caption="Balance transactions"
        head={['Type', 'Amount', 'Fee', 'Net', 'Status', 'Available on']}
        rows={transactions.map((t) => [
          t.type,
          formatMoney(t.amount, t.currency),
          formatMoney(t.fee, t.currency),
          formatMoney(t.net, t.currency),
          t.status,
          formatTime(t.available_on),
        ])}
      />
      <SimpleTable
        caption="Fee breakdown"
        head={['Fee', 'Why', 'Amount']}
        rows={transactions.flatMap((t) =>
          t.fee_details.map((f) => [f.type.replaceAll('_', ' '), f.description, formatMoney(f.amount, f.currency)]),
        )}
      />
    </Stack>
  );
}

function Deliveries({ events }: { events: Event[] }) {
  const deliveries = useQueries({
    queries: events.map((event) => ({
      queryKey: ['deliveries', event.id],
      queryFn: async () => (await api.GET('/v1/events/{id}/deliveries', { params: { path: { id: event.id } } })).data!,
    })),
  });
  const failed = deliveries.find((q) => q.isError);
  if (failed) return <ApiErrorAlert error={failed.error} />;
  if (deliveries.some((q) => q.isPending)) return <Loading label="Loading webhook deliveries" />;
  const rows = deliveries.flatMap((q, i) => q.data!.data.map((d) => ({ event: events[i], delivery: d })));
  if (rows.length === 0) return <Empty>No webhook endpoint received these events.</Empty>;
  return (
    <SimpleTable
      caption="Webhook deliveries of this payment's events"
      head={['Event', 'Endpoint', 'Status', 'Attempts', 'Last answer']}
      rows={rows.map(({ event, delivery }) => [
        event.type,
        <Code key="e">{delivery.webhook_endpoint}</Code>,
        <StatusBadge key="s" status={delivery.status} />,
        delivery.attempt_count,
        delivery.attempts.at(-1)?.status_code ?? delivery.attempts.at(-1)?.error ?? '—',
      ])}
    />
  );
}

function Actions({ payment }: { payment: Payment }) {
  const session = useSession();
  const client = useQueryClient();
  const [captureAmount, setCaptureAmount] = useState('');
  const [refundAmount, setRefundAmount] = useState('');
  const [reason, setReason] = useState<string | null>('requested_by_customer');
  const refresh = () => client.invalidateQueries({ predicate: (q) => JSON.stringify(q.queryKey).includes(payment.id) });
  const remaining = payment.amount_received - payment.amount_refunded;
  const amountOf = (text: string, fallback: number) => {
    if (!text.trim()) return fallback;
    const minor = parseAmount(text, payment.currency);
    if (minor === null || minor <= 0) throw new Error('Enter the amount as a number such as 12.50.');
    return minor;
  };
  const payments = can(session, 'payments:write');
  const refunds = can(session, 'refunds:write');
  const actions: ReactNode[] = [];

  if (payments && payment.status === 'requires_capture')
    actions.push(
      <ConfirmAction
        key="capture"
        label="Capture"
        title="Capture the payment"
        onConfirm={async () => {
          await payforward.payments.capture(payment.id, {
            amount_to_capture: amountOf(captureAmount, payment.amount_capturable),
          });
          await refresh();
        }}
      >
        <Text size="sm">
          Up to {formatMoney(payment.amount_capturable, payment.currency)} can be captured; leave the amount empty to
          capture all of it. A partial capture releases the rest.
        </Text>
        <TextInput
          label={`Amount to capture (${payment.currency.toUpperCase()})`}
          value={captureAmount}
          onChange={(e) => setCaptureAmount(e.currentTarget.value)}
          placeholder="all"
        />
      </ConfirmAction>,
    );
  if (
    payments &&
    ['requires_capture', 'requires_payment_method', 'requires_confirmation', 'requires_action'].includes(payment.status)
  )
    actions.push(
      <ConfirmAction
        key="cancel"
        label="Cancel"
        title="Cancel the payment"
        color="red"
        onConfirm={async () => {
          await payforward.payments.cancel(payment.id, {});
          await refresh();
        }}
      >
        <Text size="sm">The authorization is released and the payment can no longer be captured.</Text>
      </ConfirmAction>,
    );
  if (refunds && payment.status === 'succeeded' && remaining > 0)
    actions.push(
      <ConfirmAction
        key="refund"
        label="Refund"
        title="Refund the payment"
        color="red"
        onConfirm={async () => {
          await payforward.refunds.create({
            payment: payment.id,
            amount: amountOf(refundAmount, remaining),
            ...(reason ? { reason: reason as 'requested_by_customer' } : {}),
          });
          await refresh();
        }}
      >
        <Text size="sm">
          Up to {formatMoney(remaining, payment.currency)} can be refunded; leave the amount empty to refund all of it.
        </Text>
        <TextInput
          label={`Amount to refund (${payment.currency.toUpperCase()})`}
          value={refundAmount}
          onChange={(e) => setRefundAmount(e.currentTarget.value)}
          placeholder="all"
        />
        <Select
          label="Reason"
          data={['requested_by_customer', 'duplicate', 'fraudulent']}
          value={reason}
          onChange={setReason}
          allowDeselect={false}
        />
      </ConfirmAction>,
    );
  if (actions.length === 0) return null;
  return (
    <Group gap="sm" data-testid="payment-actions">
      {actions}
    </Group>
  );
}

function Overview({ payment }: { payment: Payment }) {
  const card =
    typeof payment.payment_method === 'object' ? (payment.payment_method as PaymentMethod | null)?.card : null;
  const customer = payment.customer && typeof payment.customer === 'object' ? payment.customer : null;
  const facts: [string, ReactNode][] = [
    ['Amount', formatMoney(payment.amount, payment.currency)],
    ['Received', formatMoney(payment.amount_received, payment.currency)],
    ['Refunded', formatMoney(payment.amount_refunded, payment.currency)],
    ['Fee', payment.fee === null ? '—' : formatMoney(payment.fee, payment.currency)],
    ['Net', payment.net === null ? '—' : formatMoney(payment.net, payment.currency)],
    ['Card', card ? `${card.brand} •••• ${card.last4} (${card.country ?? '—'})` : '—'],
    ['Customer', customer ? `${customer.email ?? customer.id}` : ((payment.customer as string | null) ?? '—')],
    ['Processor', payment.processor ?? '—'],
    ['Created', formatTime(payment.created)],
    [
      'Metadata',
      Object.entries(payment.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || '—',
    ],
  ];
  return (
    <SimpleGrid cols={{ base: 1, xs: 2, md: 5 }} spacing="sm" component="dl">
      {facts.map(([name, value]) => (
        <div key={name}>
          <Text component="dt" size="xs" c="dimmed">
            {name}
          </Text>
          <Text component="dd" m={0} data-testid={`fact-${name.toLowerCase()}`}>
            {value}
          </Text>
        </div>
      ))}
    </SimpleGrid>
  );
}

export default function PaymentDetail() {
  const { id } = useParams<{ id: string }>();
  const session = useSession();
  const payment = useQuery({
    queryKey: ['payment', id],
    queryFn: async () =>
      (
        await api.GET('/v1/payments/{id}', {
          params: {
            path: { id },
            query: { 'expand[]': ['payment_method', 'customer', 'refunds'] },
          },
        })
      ).data as Payment,
  });
  const refunds = (payment.data?.refunds?.data ?? []) as Refund[];
  const objectIds = [id, ...refunds.map((r) => r.id)];
  const events = useQuery({
    queryKey: ['events', id, objectIds],
    enabled: payment.isSuccess,
    queryFn: async () => {
      const lists = await Promise.all(
        objectIds.map(
          async (objectId) => (await payforward.events.list({ object_id: objectId, limit: 100 })).data as Event[],
        ),
      );
      return lists.flat().sort((a, b) => a.created - b.created || a.sequence - b.sequence);
    },
  });
  const disputes = useQuery({
    queryKey: ['disputes', { payment: id }],
    queryFn: async () =>
      (await api.GET('/v1/disputes', { params: { query: { payment: id } } })).data!.data as Dispute[],
  });

  return (
    <QueryState query={payment}>
      {(p) => (
        <Stack>
          <Group justify="space-between" align="flex-start">
            <div>
              <Title order={1}>
                {formatMoney(p.amount, p.currency)} <StatusBadge status={p.status} />
              </Title>
              <Code>{p.id}</Code>
            </div>
            <Actions payment={p} />
          </Group>
          <Overview payment={p} />
          <Section title="Timeline">
            <QueryState query={events} empty="No events yet." isEmpty={(e) => e.length === 0}>
              {(list) => (
                <Timeline bulletSize={14} lineWidth={2} data-testid="timeline">
                  {list.map((event) => (
                    <Timeline.Item key={event.id} title={event.type}>
                      <Text size="xs" c="dimmed">
                        {formatTime(event.created)} · {event.id}
                      </Text>
                    </Timeline.Item>
                  ))}
                </Timeline>
              )}
            </QueryState>
          </Section>
          <Section title="Processor attempts">
            <Attempts payment={p} />
          </Section>
          <Section title="Fraud decision">
            <Fraud outcome={p.outcome} />
          </Section>
          <Section title="Fees and ledger">
            <Ledger payment={p} refunds={refunds} />
          </Section>
          <Section title="Refunds">
            {refunds.length === 0 ? (
              <Empty>No refunds.</Empty>
            ) : (
              <SimpleTable
                caption="Refunds, newest first"
                head={['Refund', 'Amount', 'Status', 'Reason', 'Created']}
                rows={refunds.map((r) => [
                  <Code key="id">{r.id}</Code>,
                  formatMoney(r.amount, r.currency),
                  <StatusBadge key="s" status={r.status} />,
                  r.reason ?? '—',
                  formatTime(r.created),
                ])}
              />
            )}
          </Section>
          <Section title="Disputes">
            <QueryState query={disputes} empty="No disputes." isEmpty={(d) => d.length === 0}>
              {(list) => (
                <SimpleTable
                  caption="Disputes"
                  head={['Dispute', 'Amount', 'Reason', 'Status']}
                  rows={list.map((d) => [
                    <Code key="id">{d.id}</Code>,
                    formatMoney(d.amount, d.currency),
                    d.reason,
                    <StatusBadge key="s" status={d.status} />,
                  ])}
                />
              )}
            </QueryState>
          </Section>
          <Section title="Webhook deliveries">
            {!can(session, 'webhook_endpoints:read') ? (
              <Empty>Your role does not see webhook deliveries.</Empty>
            ) : events.data ? (
              <Deliveries events={events.data} />
            ) : (
              <Loading />
            )}
          </Section>
        </Stack>
      )}
    </QueryState>
  );
}
