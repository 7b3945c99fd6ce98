import { useState } from 'react';
import { Alert, Anchor, Button, Group, SimpleGrid, Stack, Text, Textarea, TextInput, Title } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, can, type Dispute } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useUrlFilters } from '../lib/url-state.ts';
import { formatMoney, formatTime } from '../lib/format.ts';
import { ApiErrorAlert, QueryState } from '../components/states.tsx';
import { afterLast } from '../lib/cursor-list.ts';
import { ConfirmAction, CursorTable, Section, SimpleTable } from '../components/blocks.tsx';
import type { TextColumn } from '../components/DataTable.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';

type Evidence = Dispute['evidence'];

/** The evidence fields a person writes, in the order a bank reads them. */
const FIELDS: [keyof Evidence, string, boolean][] = [
  ['product_description', 'Product or service description', true],
  ['customer_name', 'Customer name', false],
  ['customer_email_address', 'Customer email', false],
  ['billing_address', 'Billing address', false],
  ['shipping_carrier', 'Shipping carrier', false],
  ['shipping_tracking_number', 'Tracking number', false],
  ['shipping_date', 'Shipping date', false],
  ['customer_communication', 'Customer communication', true],
  ['refund_policy_disclosure', 'Refund policy disclosure', true],
  ['uncategorized_text', 'Other evidence', true],
];

function timeLeft(dueBy: number) {
  const hours = Math.floor((dueBy * 1000 - Date.now()) / 3_600_000);
  if (hours < 0) return 'the deadline has passed';
  return hours >= 48 ? `${Math.floor(hours / 24)} days left` : `${hours} hours left`;
}

function EvidenceForm({ dispute }: { dispute: Dispute }) {
  const client = useQueryClient();
  const [evidence, setEvidence] = useState<Record<string, string>>(() =>
    Object.fromEntries(FIELDS.map(([key]) => [key, dispute.evidence[key] ?? ''])),
  );
  const refresh = () => client.invalidateQueries({ queryKey: ['disputes'] });
  // Only what the person changed: "" removes a field, and an untouched empty field is not sent to be checked.
  const changed = Object.fromEntries(
    Object.entries(evidence).filter(([key, value]) => value !== (dispute.evidence[key as keyof Evidence] ?? '')),
  );
  const save = useMutation({
    mutationFn: (submit: boolean) =>
      api.POST('/v1/disputes/{id}', { params: { path: { id: dispute.id } }, body: { evidence: changed, submit } }),
    onSuccess: refresh,
  });
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        save.mutate(true);
      }}
    >
      <Stack>
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
          {FIELDS.map(([key, label, long]) =>
            long ? (
              <Textarea
                key={key}
                label={label}
                autosize
                minRows={2}
                value={evidence[key]}
                onChange={(e) => setEvidence({ ...evidence, [key]: e.currentTarget.value })}
              />
            ) : (
              <TextInput
                key={key}
                label={label}
                value={evidence[key]}
                onChange={(e) => setEvidence({ ...evidence, [key]: e.currentTarget.value })}
              />
            ),
          )}
        </SimpleGrid>
        {save.isError && <ApiErrorAlert error={save.error} title="The evidence was not saved" />}
        {/* A submission closes the form (the dispute goes under review); a draft stays, and says so. */}
        {save.isSuccess && !save.variables && (
          <Text size="sm" role="status" c="teal.9">
            Evidence saved as a draft.
          </Text>
        )}
        <Group justify="flex-end">
          <Button variant="default" loading={save.isPending && !save.variables} onClick={() => save.mutate(false)}>
            Save draft
          </Button>
          <Button type="submit" loading={save.isPending && save.variables}>
            Submit evidence
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function Detail({ id }: { id: string }) {
  const session = useSession();
  const client = useQueryClient();
  const dispute = useQuery({
    queryKey: ['disputes', id],
    queryFn: async () => (await api.GET('/v1/disputes/{id}', { params: { path: { id } } })).data! as Dispute,
  });
  return (
    <QueryState query={dispute}>
      {(d) => {
        const open = d.status === 'needs_response' && !d.evidence_details.past_due;
        const writes = can(session, 'disputes:write');
        return (
          <Section
            title={`Dispute ${d.id}`}
            actions={
              writes &&
              open && (
                <ConfirmAction
                  label="Accept the dispute"
                  title="Accept the loss"
                  color="red"
                  size="sm"
                  onConfirm={async () => {
                    await api.POST('/v1/disputes/{id}/close', { params: { path: { id: d.id } }, body: {} });
                    await client.invalidateQueries({ queryKey: ['disputes'] });
                  }}
                >
                  <Text size="sm">
                    {formatMoney(d.amount, d.currency)} goes back to the cardholder and the dispute closes as lost.
                  </Text>
                </ConfirmAction>
              )
            }
          >
            <Stack>
              <Group gap="lg">
                <StatusBadge status={d.status} />
                <Text>{formatMoney(d.amount, d.currency)}</Text>
                <Text>Reason: {d.reason}</Text>
                <Anchor component={Link} href={`/payments/${d.payment}`} ff="monospace">
                  {d.payment}
                </Anchor>
                <Text size="sm">Fee: {formatMoney(d.fee, d.currency)}</Text>
              </Group>
              <Alert
                color={open ? 'red' : 'gray'}
                title={`Evidence due by ${formatTime(d.evidence_details.due_by)}`}
                data-testid="evidence-deadline"
              >
                {open
                  ? `${timeLeft(d.evidence_details.due_by)}. Unanswered by then, the dispute is lost.`
                  : d.status === 'under_review'
                    ? 'Evidence submitted; the bank is reviewing it.'
                    : `Evidence is no longer accepted (${d.status.replaceAll('_', ' ')}).`}
              </Alert>
              {writes && open ? (
                <EvidenceForm key={d.id} dispute={d} />
              ) : (
                <SimpleTable
                  caption="Evidence on file"
                  head={['Field', 'Text']}
                  rows={FIELDS.filter(([key]) => d.evidence[key]).map(([key, label]) => [label, d.evidence[key]])}
                />
              )}
            </Stack>
          </Section>
        );
      }}
    </QueryState>
  );
}

export default function Disputes() {
  const [filters, setFilters] = useUrlFilters(['dispute'] as const);
  const columns: TextColumn<Dispute>[] = [
    {
      id: 'id',
      header: 'Dispute',
      text: (d) => d.id,
      cell: (d) => (
        <Anchor component="button" type="button" ff="monospace" size="sm" onClick={() => setFilters({ dispute: d.id })}>
          {d.id}
        </Anchor>
      ),
    },
    { id: 'amount', header: 'Amount', text: (d) => formatMoney(d.amount, d.currency) },
    { id: 'reason', header: 'Reason', text: (d) => d.reason },
    { id: 'status', header: 'Status', text: (d) => d.status, cell: (d) => <StatusBadge status={d.status} /> },
    {
      id: 'due',
      header: 'Evidence due',
      text: (d) => (d.status === 'needs_response' ? formatTime(d.evidence_details.due_by) : '—'),
    },
    { id: 'created', header: 'Opened', text: (d) => formatTime(d.created) },
  ];
  return (
    <Stack>
      <Title order={1}>Disputes</Title>
      <CursorTable
        queryKey={['disputes', 'list']}
        fetchPage={afterLast(
          async (cursor) =>
            (await api.GET('/v1/disputes', { params: { query: { limit: 100, ...cursor } } })).data! as {
              data: Dispute[];
              has_more: boolean;
            },
        )}
        columns={columns}
        rowKey={(d) => d.id}
        caption="Disputes, newest first"
        empty="No dispute. Long may it last."
      />
      {filters.dispute && <Detail id={filters.dispute} />}
    </Stack>
  );
}
