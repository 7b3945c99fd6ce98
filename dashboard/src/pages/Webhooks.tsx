import { useState } from 'react';
import { Alert, Anchor, Button, Checkbox, Code, Group, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, can, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useUrlFilters } from '../lib/url-state.ts';
import { formatTime } from '../lib/format.ts';
import { ApiErrorAlert } from '../components/states.tsx';
import { ConfirmAction, ConfirmDialog, CursorSimpleTable, CursorTable, Section } from '../components/blocks.tsx';
import type { TextColumn } from '../components/DataTable.tsx';
import { afterLast, useCursorList, type FetchPage } from '../lib/cursor-list.ts';
import { StatusBadge } from '../components/StatusBadge.tsx';

type Delivery = Schema<'WebhookDelivery'>;
type WebhookEndpoint = Schema<'WebhookEndpoint'>;

const eventsOf = (text: string) =>
  text
    .split(/[\s,]+/)
    .map((e) => e.trim())
    .filter(Boolean);

/** A secret is shown once, where it was made: the person copies it now or rotates again later. */
function SecretOnce({ secret }: { secret: string | null }) {
  if (!secret) return null;
  return (
    <Alert color="indigo" title="Signing secret: copy it now, it is not shown again" data-testid="secret-once">
      <Code block>{secret}</Code>
    </Alert>
  );
}

function CreateEndpoint({ onSecret }: { onSecret: (secret: string) => void }) {
  const client = useQueryClient();
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState('*');
  const [description, setDescription] = useState('');
  const create = useMutation({
    mutationFn: async () =>
      (
        await api.POST('/v1/webhook_endpoints', {
          body: { url, enabled_events: eventsOf(events), ...(description ? { description } : {}) },
        })
      ).data!,
    onSuccess: async (endpoint) => {
      onSecret(endpoint.secret ?? '');
      setUrl('');
      setDescription('');
      await client.invalidateQueries({ queryKey: ['webhook-endpoints'] });
    },
  });
  return (
    <Section title="Add an endpoint">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          create.mutate();
        }}
      >
        <Stack>
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <TextInput label="URL" required type="url" value={url} onChange={(e) => setUrl(e.currentTarget.value)} />
            <TextInput
              label="Events (comma separated)"
              description="payment.succeeded, payment.* or *"
              required
              value={events}
              onChange={(e) => setEvents(e.currentTarget.value)}
            />
            <TextInput
              label="Description"
              value={description}
              onChange={(e) => setDescription(e.currentTarget.value)}
            />
          </SimpleGrid>
          {create.isError && <ApiErrorAlert error={create.error} title="The endpoint was not added" />}
          <Group justify="flex-end">
            <Button type="submit" loading={create.isPending}>
              Add endpoint
            </Button>
          </Group>
        </Stack>
      </form>
    </Section>
  );
}

function EndpointActions({ endpoint, onSecret }: { endpoint: WebhookEndpoint; onSecret: (s: string) => void }) {
  const client = useQueryClient();
  const [events, setEvents] = useState(endpoint.enabled_events.join(', '));
  const [since, setSince] = useState('');
  const [onlyFailed, setOnlyFailed] = useState(false);
  const refresh = () =>
    Promise.all([
      client.invalidateQueries({ queryKey: ['webhook-endpoints'] }),
      client.invalidateQueries({ queryKey: ['webhook-deliveries'] }),
    ]);
  const path = { params: { path: { id: endpoint.id } } };
  const disabled = endpoint.status === 'disabled';
  return (
    <Group gap={4}>
      <ConfirmAction
        label="Edit events"
        title="Save the events"
        onConfirm={async () => {
          await api.POST('/v1/webhook_endpoints/{id}', { ...path, body: { enabled_events: eventsOf(events) } });
          await refresh();
        }}
      >
        <TextInput label="Events (comma separated)" value={events} onChange={(e) => setEvents(e.currentTarget.value)} />
      </ConfirmAction>
      <ConfirmAction
        label={disabled ? 'Enable' : 'Disable'}
        title={disabled ? 'Enable the endpoint' : 'Disable the endpoint'}
        color={disabled ? undefined : 'red'}
        onConfirm={async () => {
          await api.POST('/v1/webhook_endpoints/{id}', { ...path, body: { disabled: !disabled } });
          await refresh();
        }}
      >
        <Text size="sm">
          {disabled
            ? 'Deliveries to this endpoint resume.'
            : 'Nothing more is sent to this endpoint until it is enabled again.'}
        </Text>
      </ConfirmAction>
      <ConfirmAction
        label="Rotate secret"
        title="Rotate the secret"
        onConfirm={async () => {
          const rotated = (await api.POST('/v1/webhook_endpoints/{id}/rotate_secret', { ...path, body: {} })).data!;
          onSecret(rotated.secret ?? '');
        }}
      >
        <Text size="sm">
          A new signing secret is made; for the next 24 hours each delivery is signed with the old one too.
        </Text>
      </ConfirmAction>
      <ConfirmAction
        label="Send test event"
        title="Send a test event"
        onConfirm={async () => {
          await api.POST('/v1/webhook_endpoints/{id}/test', path);
          await refresh();
        }}
      >
        <Text size="sm">A webhook_endpoint.test event goes to this endpoint only.</Text>
      </ConfirmAction>
      <ConfirmAction
        label="Replay"
        title="Replay the events"
        disabled={!since}
        onConfirm={async () => {
          await api.POST('/v1/webhook_endpoints/{id}/replay', {
            ...path,
            body: { since: Math.floor(new Date(since).getTime() / 1000), only_failed: onlyFailed },
          });
          await refresh();
        }}
      >
        <Text size="sm">Every event this endpoint subscribes to since the time below is sent again.</Text>
        <TextInput
          label="Since"
          type="datetime-local"
          required
          value={since}
          onChange={(e) => setSince(e.currentTarget.value)}
        />
        <Checkbox
          label="Only deliveries that gave up"
          checked={onlyFailed}
          onChange={(e) => setOnlyFailed(e.currentTarget.checked)}
        />
      </ConfirmAction>
    </Group>
  );
}

/** The delivery log of an endpoint (cursor pages: it grows with every event) or of one event (every endpoint). */
function Deliveries({ endpoint, event }: { endpoint: string; event: string }) {
  const session = useSession();
  const [, setFilters] = useUrlFilters(['endpoint', 'event'] as const);
  const client = useQueryClient();
  const writes = can(session, 'webhook_endpoints:write');
  // The dialog lives outside the table's cells, which DataTable redraws.
  const [redelivering, setRedelivering] = useState<string | null>(null);
  const last = (d: Delivery) => d.attempts.at(-1);
  const columns: TextColumn<Delivery>[] = [
    {
      id: 'event',
      header: 'Event',
      text: (d) => d.event,
      cell: (d) => (
        <Anchor
          component="button"
          type="button"
          ff="monospace"
          size="sm"
          onClick={() => setFilters({ event: d.event })}
        >
          {d.event}
        </Anchor>
      ),
    },
    ...(event ? [{ id: 'endpoint', header: 'Endpoint', text: (d: Delivery) => d.webhook_endpoint }] : []),
    { id: 'status', header: 'Status', text: (d) => d.status, cell: (d) => <StatusBadge status={d.status} /> },
    { id: 'attempts', header: 'Attempts', text: (d) => String(d.attempt_count) },
    { id: 'answer', header: 'Last answer', text: (d) => String(last(d)?.status_code ?? last(d)?.error ?? '—') },
    { id: 'latency', header: 'Latency', text: (d) => (last(d) ? `${last(d)!.latency_ms} ms` : '—') },
    { id: 'at', header: 'Last attempt', text: (d) => (last(d) ? formatTime(last(d)!.created) : '—') },
    ...(writes
      ? [
          {
            id: 'redeliver',
            header: 'Redeliver',
            text: () => '',
            cell: (d: Delivery) => (
              <Button size="xs" variant="light" onClick={() => setRedelivering(d.event)}>
                Redeliver
              </Button>
            ),
          },
        ]
      : []),
  ];
  const fetchPage: FetchPage<Delivery> = event
    ? async () => ({
        rows: (await api.GET('/v1/events/{id}/deliveries', { params: { path: { id: event } } })).data!.data,
        next: null,
      })
    : afterLast(
        async (cursor) =>
          (
            await api.GET('/v1/webhook_endpoints/{id}/deliveries', {
              params: { path: { id: endpoint }, query: { limit: 100, ...cursor } },
            })
          ).data!,
      );
  return (
    <Section
      title={event ? `Deliveries of event ${event}` : `Delivery log of ${endpoint}`}
      actions={
        event && (
          <Button size="xs" variant="default" onClick={() => setFilters({ event: null })}>
            Back to the endpoint's log
          </Button>
        )
      }
    >
      <CursorTable
        queryKey={['webhook-deliveries', endpoint, event]}
        fetchPage={fetchPage}
        columns={columns}
        rowKey={(d) => d.id}
        caption="Deliveries, newest first, with their last attempt"
        empty="Nothing was delivered yet."
      />
      <ConfirmDialog
        opened={redelivering !== null}
        onClose={() => setRedelivering(null)}
        title="Redeliver the event"
        onConfirm={async () => {
          await api.POST('/v1/events/{id}/redeliver', { params: { path: { id: redelivering! } } });
          await client.invalidateQueries({ queryKey: ['webhook-deliveries'] });
        }}
      >
        <Text size="sm">
          {redelivering} is sent again, with the same webhook-id, to every enabled endpoint it went to.
        </Text>
      </ConfirmDialog>
    </Section>
  );
}

export default function Webhooks() {
  const session = useSession();
  const [filters, setFilters] = useUrlFilters(['endpoint', 'event'] as const);
  const [secret, setSecret] = useState<string | null>(null);
  const endpoints = useCursorList(
    ['webhook-endpoints'],
    afterLast(
      async (cursor) =>
        (await api.GET('/v1/webhook_endpoints', { params: { query: { limit: 100, ...cursor } } })).data!,
    ),
  );
  const writes = can(session, 'webhook_endpoints:write');
  return (
    <Stack>
      <Title order={1}>Webhooks</Title>
      <SecretOnce secret={secret} />
      {writes && <CreateEndpoint onSecret={setSecret} />}
      <CursorSimpleTable
        list={endpoints}
        empty="No webhook endpoint yet."
        caption="Endpoints"
        head={['URL', 'Events', 'Status', 'Created', 'Log', ...(writes ? ['Actions'] : [])]}
        rowKey={(e) => e.id}
        cells={(e) => [
          <Stack key="u" gap={0}>
            <Text size="sm" ff="monospace">
              {e.url}
            </Text>
            {e.description && (
              <Text size="xs" c="dimmed">
                {e.description}
              </Text>
            )}
          </Stack>,
          e.enabled_events.join(', '),
          <StatusBadge key="s" status={e.disabled_reason ? `${e.status} (${e.disabled_reason})` : e.status} />,
          formatTime(e.created),
          <Button
            key="l"
            size="xs"
            variant="default"
            aria-label={`Delivery log of ${e.url}`}
            onClick={() => setFilters({ endpoint: e.id, event: null })}
          >
            Delivery log
          </Button>,
          ...(writes ? [<EndpointActions key={`a-${e.id}`} endpoint={e} onSecret={setSecret} />] : []),
        ]}
      />
      {(filters.endpoint || filters.event) && <Deliveries endpoint={filters.endpoint} event={filters.event} />}
    </Stack>
  );
}
