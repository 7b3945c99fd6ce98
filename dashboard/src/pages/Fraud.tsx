import { useState } from 'react';
import {
  Anchor,
  Badge,
  Button,
  Group,
  NumberInput,
  Select,
  SimpleGrid,
  Stack,
  Switch,
  Tabs,
  Text,
  Textarea,
  TextInput,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, can, PayForwardError, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useUrlFilters } from '../lib/url-state.ts';
import { formatPercent, formatTime } from '../lib/format.ts';
import { ApiErrorAlert, QueryState } from '../components/states.tsx';
import { afterLast, useCursorList } from '../lib/cursor-list.ts';
import {
  ConfirmAction,
  ConfirmDialog,
  CursorSimpleTable,
  CursorTable,
  Section,
  SimpleTable,
} from '../components/blocks.tsx';
import type { TextColumn } from '../components/DataTable.tsx';
import { StatusBadge } from '../components/StatusBadge.tsx';

type Rule = Schema<'FraudRule'>;
type FraudList = Schema<'FraudList'>;
const ACTIONS = ['block', 'review', 'request_3ds', 'allow'] as const;
const ITEM_TYPES = ['card_fingerprint', 'card_bin', 'email', 'ip_address', 'country', 'customer'] as const;

type Review = Schema<'Review'>;

function Reviews({ status }: { status: string }) {
  const session = useSession();
  const client = useQueryClient();
  const [, setFilters] = useUrlFilters(['review_status'] as const);
  const writes = can(session, 'reviews:write');
  const done = () => client.invalidateQueries({ queryKey: ['reviews'] });
  // One dialog for the table, outside its cells (DataTable redraws cells, which would drop a dialog's state).
  const [deciding, setDeciding] = useState<{ review: Review; approve: boolean } | null>(null);
  const [reason, setReason] = useState('');
  const columns: TextColumn<Review>[] = [
    {
      id: 'payment',
      header: 'Payment',
      text: (r) => r.payment,
      cell: (r) => (
        <Anchor component={Link} href={`/payments/${r.payment}`} ff="monospace" size="sm">
          {r.payment}
        </Anchor>
      ),
    },
    { id: 'status', header: 'Status', text: (r) => r.status, cell: (r) => <StatusBadge status={r.status} /> },
    { id: 'why', header: 'Why', text: (r) => r.opened_reason },
    { id: 'opened', header: 'Opened', text: (r) => formatTime(r.created) },
    {
      id: 'closed',
      header: 'Closed',
      text: (r) => (r.closed_at ? `${formatTime(r.closed_at)}${r.closed_reason ? ` (${r.closed_reason})` : ''}` : '—'),
    },
    ...(writes
      ? [
          {
            id: 'decide',
            header: 'Decision',
            text: () => '',
            cell: (r: Review) =>
              r.status === 'open' ? (
                <Group gap={4} wrap="nowrap">
                  <Button size="xs" variant="light" onClick={() => setDeciding({ review: r, approve: true })}>
                    Approve
                  </Button>
                  <Button
                    size="xs"
                    variant="light"
                    color="red"
                    onClick={() => setDeciding({ review: r, approve: false })}
                  >
                    Reject
                  </Button>
                </Group>
              ) : (
                '—'
              ),
          },
        ]
      : []),
  ];
  return (
    <Stack>
      <Select
        label="Status"
        w={200}
        data={['open', 'approved', 'rejected', 'all']}
        value={status}
        allowDeselect={false}
        onChange={(value) => setFilters({ review_status: value === 'open' ? null : value })}
      />
      <CursorTable
        queryKey={['reviews', status]}
        fetchPage={afterLast(
          async (cursor) =>
            (
              await api.GET('/v1/reviews', {
                params: {
                  query: { limit: 100, ...cursor, ...(status !== 'all' ? { status: status as 'open' } : {}) },
                },
              })
            ).data!,
        )}
        columns={columns}
        rowKey={(r) => r.id}
        caption="Reviews, newest first"
        empty="No review matches."
      />
      <ConfirmDialog
        opened={deciding?.approve === true}
        onClose={() => setDeciding(null)}
        title="Approve the payment"
        onConfirm={async () => {
          await api.POST('/v1/reviews/{id}/approve', { params: { path: { id: deciding!.review.id } }, body: {} });
          await done();
        }}
      >
        <Text size="sm">
          {deciding?.review.payment}: an uncaptured payment is captured; the review closes as approved.
        </Text>
      </ConfirmDialog>
      <ConfirmDialog
        opened={deciding?.approve === false}
        onClose={() => {
          setDeciding(null);
          setReason('');
        }}
        title="Reject the payment"
        color="red"
        onConfirm={async () => {
          await api.POST('/v1/reviews/{id}/reject', {
            params: { path: { id: deciding!.review.id } },
            body: reason.trim() ? { reason: reason.trim() } : {},
          });
          await done();
        }}
      >
        <Text size="sm">
          {deciding?.review.payment}: an uncaptured payment is canceled as fraudulent; a captured one is refunded in
          full.
        </Text>
        <TextInput label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} />
      </ConfirmDialog>
    </Stack>
  );
}

/**
 * Checks an expression without saving it: a backtest over the last second compiles it exactly as a save would, and
 * answers 400 with the position of the first error.
 */
async function validateExpression(expression: string): Promise<string | null> {
  const until = Math.floor(Date.now() / 1000);
  try {
    await api.POST('/v1/fraud/rules/backtest', { body: { expression, since: until - 1, until } });
    return null;
  } catch (error) {
    if (error instanceof PayForwardError && error.status === 400 && error.param === 'expression') return error.message;
    throw error;
  }
}

function useLiveValidation(expression: string) {
  const [debounced] = useDebouncedValue(expression, 400);
  const check = useQuery({
    queryKey: ['fraud-expression', debounced],
    queryFn: () => validateExpression(debounced),
    enabled: debounced.trim() !== '',
    retry: false,
    staleTime: Infinity,
  });
  const current = debounced === expression && check.isSuccess;
  return {
    error: current ? check.data : null,
    valid: current && check.data === null,
    failed: check.isError ? check.error : null,
  };
}

/**
 * The live check's verdict under the field, announced politely; in the text's own colour (Mantine's error red is
 * under 4.5:1 on white).
 */
function ExpressionCheck({ id, validation }: { id: string; validation: ReturnType<typeof useLiveValidation> }) {
  return (
    <>
      <Text id={id} size="sm" aria-live="polite" c={validation.error ? 'red.9' : 'teal.9'} data-testid={id}>
        {validation.valid ? 'The expression is valid.' : (validation.error ?? '')}
      </Text>
      {validation.failed && <ApiErrorAlert error={validation.failed} title="The expression could not be checked" />}
    </>
  );
}

function RuleEditor({ rule, onDone }: { rule: Rule | null; onDone: () => void }) {
  const client = useQueryClient();
  const [name, setName] = useState(rule?.name ?? '');
  const [expression, setExpression] = useState(rule?.expression ?? '');
  const [action, setAction] = useState<string>(rule?.action ?? 'review');
  const [priority, setPriority] = useState<number | string>(rule?.priority ?? 100);
  const [enabled, setEnabled] = useState(rule?.enabled ?? true);
  const [shadow, setShadow] = useState(rule?.shadow ?? false);
  const validation = useLiveValidation(expression);
  const save = useMutation({
    mutationFn: async () => {
      const body = {
        name,
        expression,
        action: action as Rule['action'],
        priority: Number(priority),
        enabled,
        shadow,
      };
      if (rule) await api.POST('/v1/fraud/rules/{id}', { params: { path: { id: rule.id } }, body });
      else await api.POST('/v1/fraud/rules', { body });
    },
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: ['fraud-rules'] });
      onDone();
    },
  });
  return (
    <Section title={rule ? `Edit rule: ${rule.name}` : 'New rule'}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          save.mutate();
        }}
      >
        <Stack>
          <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <Textarea
            label="Expression (CEL)"
            description="Checked as you type, without saving."
            required
            autosize
            minRows={2}
            ff="monospace"
            value={expression}
            onChange={(e) => setExpression(e.currentTarget.value)}
            aria-invalid={validation.error !== null}
            aria-describedby="rule-validation"
          />
          <ExpressionCheck id="rule-validation" validation={validation} />
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <Select label="Action" data={[...ACTIONS]} value={action} onChange={(v) => setAction(v ?? 'review')} />
            <NumberInput label="Priority (lower runs first)" value={priority} onChange={setPriority} min={0} />
          </SimpleGrid>
          <Group>
            <Switch label="Enabled" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
            <Switch label="Shadow (log only)" checked={shadow} onChange={(e) => setShadow(e.currentTarget.checked)} />
          </Group>
          {save.isError && <ApiErrorAlert error={save.error} title="The rule was not saved" />}
          <Group justify="flex-end">
            <Button variant="default" onClick={onDone}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              Save rule
            </Button>
          </Group>
        </Stack>
      </form>
    </Section>
  );
}

function Rules() {
  const session = useSession();
  const client = useQueryClient();
  const [editing, setEditing] = useState<Rule | 'new' | null>(null);
  const rules = useQuery({
    queryKey: ['fraud-rules'],
    queryFn: async () => (await api.GET('/v1/fraud/rules')).data!,
  });
  const writes = can(session, 'fraud:write');
  return (
    <Stack>
      {writes && editing === null && (
        <Group>
          <Button onClick={() => setEditing('new')}>New rule</Button>
        </Group>
      )}
      {editing !== null && (
        <RuleEditor
          key={editing === 'new' ? 'new' : editing.id}
          rule={editing === 'new' ? null : editing}
          onDone={() => setEditing(null)}
        />
      )}
      <QueryState query={rules} empty="No rules yet." isEmpty={(d) => d.data.length === 0}>
        {(data) => (
          <SimpleTable
            caption="Rules in run order"
            head={['Priority', 'Name', 'Expression', 'Action', 'State', ...(writes ? ['Change'] : [])]}
            rowKeys={data.data.map((r) => r.id)}
            rows={data.data.map((r) => [
              r.priority,
              r.name,
              <Text key="e" ff="monospace" size="xs">
                {r.expression}
              </Text>,
              r.action,
              <Group key="s" gap={4}>
                <Badge variant="dot" color={r.enabled ? 'green' : 'gray'} tt="none">
                  {r.enabled ? 'enabled' : 'disabled'}
                </Badge>
                {r.shadow && (
                  <Badge variant="dot" color="yellow" tt="none">
                    shadow
                  </Badge>
                )}
              </Group>,
              ...(writes
                ? [
                    <Group key="a" gap={4} wrap="nowrap">
                      <Button size="xs" variant="default" onClick={() => setEditing(r)}>
                        Edit
                      </Button>
                      <ConfirmAction
                        label="Delete"
                        title="Delete the rule"
                        color="red"
                        onConfirm={async () => {
                          await api.DELETE('/v1/fraud/rules/{id}', { params: { path: { id: r.id } } });
                          await client.invalidateQueries({ queryKey: ['fraud-rules'] });
                        }}
                      >
                        <Text size="sm">“{r.name}” stops deciding payments from the next one on.</Text>
                      </ConfirmAction>
                    </Group>,
                  ]
                : []),
            ])}
          />
        )}
      </QueryState>
    </Stack>
  );
}

const toUnix = (date: string) => Math.floor(new Date(`${date}T00:00:00Z`).getTime() / 1000);

function Backtest() {
  const [filters, setFilters] = useUrlFilters(['bt_expression', 'bt_from', 'bt_to'] as const);
  const validation = useLiveValidation(filters.bt_expression);
  const run = useMutation({
    mutationFn: async () =>
      (
        await api.POST('/v1/fraud/rules/backtest', {
          body: {
            expression: filters.bt_expression,
            since: toUnix(filters.bt_from),
            ...(filters.bt_to ? { until: toUnix(filters.bt_to) + 86_400 } : {}),
          },
        })
      ).data!,
  });
  return (
    <Stack>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          run.mutate();
        }}
      >
        <Stack>
          <Textarea
            label="Expression (CEL)"
            required
            autosize
            minRows={2}
            ff="monospace"
            value={filters.bt_expression}
            onChange={(e) => setFilters({ bt_expression: e.currentTarget.value })}
            aria-invalid={validation.error !== null}
            aria-describedby="backtest-validation"
          />
          <ExpressionCheck id="backtest-validation" validation={validation} />
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <TextInput
              label="From (UTC day)"
              type="date"
              required
              value={filters.bt_from}
              onChange={(e) => setFilters({ bt_from: e.currentTarget.value })}
            />
            <TextInput
              label="To (UTC day, included; empty: now)"
              type="date"
              value={filters.bt_to}
              onChange={(e) => setFilters({ bt_to: e.currentTarget.value })}
            />
          </SimpleGrid>
          <Group justify="flex-end">
            <Button type="submit" loading={run.isPending}>
              Run backtest
            </Button>
          </Group>
        </Stack>
      </form>
      {run.isError && <ApiErrorAlert error={run.error} title="The backtest failed" />}
      {run.data && (
        <Section title="Backtest results">
          <SimpleTable
            caption={`${run.data.expression}${run.data.truncated ? ' (first 100,000 payments only)' : ''}`}
            head={[
              'Payments replayed',
              'Matched',
              'Matched amount (minor units)',
              'Fraud',
              'Matched fraud',
              'Precision',
              'Recall',
            ]}
            rows={[
              [
                run.data.payments,
                run.data.matched,
                run.data.matched_amount,
                run.data.fraud,
                run.data.matched_fraud,
                run.data.precision === null ? '—' : formatPercent(run.data.precision),
                run.data.recall === null ? '—' : formatPercent(run.data.recall),
              ],
            ]}
          />
        </Section>
      )}
    </Stack>
  );
}

function ListItems({ list }: { list: FraudList }) {
  const session = useSession();
  const client = useQueryClient();
  const [value, setValue] = useState('');
  const items = useCursorList(
    ['fraud-list-items', list.id],
    afterLast(
      async (cursor) =>
        (
          await api.GET('/v1/fraud/lists/{id}/items', {
            params: { path: { id: list.id }, query: { limit: 100, ...cursor } },
          })
        ).data!,
    ),
  );
  const refresh = () => client.invalidateQueries({ queryKey: ['fraud-list-items', list.id] });
  const add = useMutation({
    mutationFn: () => api.POST('/v1/fraud/lists/{id}/items', { params: { path: { id: list.id } }, body: { value } }),
    onSuccess: async () => {
      setValue('');
      await refresh();
    },
  });
  const writes = can(session, 'fraud:write');
  return (
    <Section title={`Items of ${list.name} (${list.kind}, ${list.item_type})`}>
      <Stack>
        {writes && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              add.mutate();
            }}
          >
            <Group align="flex-end">
              <TextInput
                label={`Add a value (${list.item_type})`}
                required
                value={value}
                onChange={(e) => setValue(e.currentTarget.value)}
              />
              <Button type="submit" loading={add.isPending}>
                Add
              </Button>
            </Group>
          </form>
        )}
        {add.isError && <ApiErrorAlert error={add.error} title="The value was not added" />}
        <CursorSimpleTable
          list={items}
          empty="This list is empty."
          caption="Values"
          head={['Value', 'Added', ...(writes ? ['Remove'] : [])]}
          rowKey={(i) => i.id}
          cells={(item) => [
            <Text key="v" ff="monospace" size="sm">
              {item.value}
            </Text>,
            formatTime(item.created),
            ...(writes
              ? [
                  <ConfirmAction
                    key="r"
                    label="Remove"
                    title="Remove the value"
                    color="red"
                    onConfirm={async () => {
                      await api.DELETE('/v1/fraud/lists/{id}/items/{item}', {
                        params: { path: { id: list.id, item: item.id } },
                      });
                      await refresh();
                    }}
                  >
                    <Text size="sm">{item.value} leaves the list from the next payment on.</Text>
                  </ConfirmAction>,
                ]
              : []),
          ]}
        />
      </Stack>
    </Section>
  );
}

function Lists({ selected }: { selected: string }) {
  const session = useSession();
  const client = useQueryClient();
  const [, setFilters] = useUrlFilters(['list'] as const);
  const [name, setName] = useState('');
  const [itemType, setItemType] = useState<string>('email');
  const [kind, setKind] = useState<string>('block');
  const lists = useQuery({
    queryKey: ['fraud-lists'],
    queryFn: async () => (await api.GET('/v1/fraud/lists')).data!,
  });
  const create = useMutation({
    mutationFn: () =>
      api.POST('/v1/fraud/lists', {
        body: { name, item_type: itemType as FraudList['item_type'], kind: kind as FraudList['kind'] },
      }),
    onSuccess: async () => {
      setName('');
      await client.invalidateQueries({ queryKey: ['fraud-lists'] });
    },
  });
  const writes = can(session, 'fraud:write');
  const current = lists.data?.data.find((l) => l.id === selected);
  return (
    <Stack>
      {writes && (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            create.mutate();
          }}
        >
          <SimpleGrid cols={{ base: 1, sm: 4 }} spacing="sm">
            <TextInput label="New list name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            <Select label="Item type" data={[...ITEM_TYPES]} value={itemType} onChange={(v) => setItemType(v!)} />
            <Select label="Kind" data={['block', 'allow']} value={kind} onChange={(v) => setKind(v!)} />
            <Button type="submit" mt={{ sm: 'xl' }} loading={create.isPending}>
              Create list
            </Button>
          </SimpleGrid>
        </form>
      )}
      {create.isError && <ApiErrorAlert error={create.error} title="The list was not created" />}
      <QueryState query={lists} empty="No lists yet." isEmpty={(d) => d.data.length === 0}>
        {(data) => (
          <SimpleTable
            caption="Lists"
            head={['Name', 'Kind', 'Item type', 'Created', 'Items']}
            rowKeys={data.data.map((l) => l.id)}
            rows={data.data.map((l) => [
              l.name,
              l.kind,
              l.item_type,
              formatTime(l.created),
              <Button key="o" size="xs" variant="default" onClick={() => setFilters({ list: l.id })}>
                Show items
                <VisuallyHidden> of {l.name}</VisuallyHidden>
              </Button>,
            ])}
          />
        )}
      </QueryState>
      {current && <ListItems key={current.id} list={current} />}
    </Stack>
  );
}

export default function Fraud() {
  const [filters, setFilters] = useUrlFilters(['tab', 'review_status', 'list'] as const);
  const tab = filters.tab || 'reviews';
  return (
    <Stack>
      <Title order={1}>Fraud</Title>
      <Tabs
        value={tab}
        onChange={(value) => setFilters({ tab: value === 'reviews' ? null : value })}
        keepMounted={false}
      >
        <Tabs.List>
          <Tabs.Tab value="reviews">Review queue</Tabs.Tab>
          <Tabs.Tab value="rules">Rules</Tabs.Tab>
          <Tabs.Tab value="backtest">Backtest</Tabs.Tab>
          <Tabs.Tab value="lists">Lists</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="reviews" pt="md">
          <Reviews status={filters.review_status || 'open'} />
        </Tabs.Panel>
        <Tabs.Panel value="rules" pt="md">
          <Rules />
        </Tabs.Panel>
        <Tabs.Panel value="backtest" pt="md">
          <Backtest />
        </Tabs.Panel>
        <Tabs.Panel value="lists" pt="md">
          <Lists selected={filters.list} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
