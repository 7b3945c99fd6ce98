import { useState } from 'react';
import {
  Alert,
  Badge,
  Button,
  Code,
  Group,
  MultiSelect,
  Select,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, can, type RequestBody, type Schema } from '../lib/api.ts';
import { useSession } from '../session.tsx';
import { useUrlFilters } from '../lib/url-state.ts';
import { afterLast, useCursorList } from '../lib/cursor-list.ts';
import { formatTime } from '../lib/format.ts';
import { ApiErrorAlert, Empty } from '../components/states.tsx';
import { ConfirmAction, CursorSimpleTable, CursorState, Section } from '../components/blocks.tsx';
import { DataTable, type TextColumn } from '../components/DataTable.tsx';

type ApiKey = Schema<'ApiKey'>;
type RequestLog = Schema<'RequestLog'>;
type Scope = NonNullable<RequestBody<'/v1/api_keys', 'post'>['scopes']>[number];

const GRACE = [
  { value: '0', label: 'at once' },
  { value: '3600', label: 'in 1 hour' },
  { value: '86400', label: 'in 24 hours' },
  { value: '604800', label: 'in 7 days' },
];

function SecretOnce({ secret }: { secret: string | null }) {
  if (!secret) return null;
  return (
    <Alert color="indigo" title="New key: copy it now, it is not shown again" data-testid="secret-once">
      <Code block>{secret}</Code>
    </Alert>
  );
}

function keyState(key: ApiKey) {
  if (key.revoked) return 'revoked';
  if (key.expires_at !== null) return `expires ${formatTime(key.expires_at)}`;
  return 'active';
}

function ApiKeys() {
  const session = useSession();
  const client = useQueryClient();
  const [secret, setSecret] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>([]);
  const [grace, setGrace] = useState<Record<string, string>>({});
  const keys = useCursorList(
    ['api-keys'],
    afterLast(
      async (cursor) => (await api.GET('/v1/api_keys', { params: { query: { limit: 100, ...cursor } } })).data!,
    ),
  );
  const refresh = () => client.invalidateQueries({ queryKey: ['api-keys'] });
  const create = useMutation({
    mutationFn: async () => (await api.POST('/v1/api_keys', { body: { name, scopes: scopes as Scope[] } })).data!,
    onSuccess: async (key) => {
      setSecret(key.secret ?? null);
      setName('');
      setScopes([]);
      await refresh();
    },
  });
  const writes = can(session, 'api_keys:write');
  return (
    <Section title="API keys">
      <Stack>
        <SecretOnce secret={secret} />
        {writes && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              create.mutate();
            }}
          >
            <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
              <TextInput label="Key name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
              <MultiSelect
                label="Scopes"
                description="At most your own"
                data={session.scopes}
                value={scopes}
                onChange={setScopes}
                searchable
                required
              />
              <Button type="submit" mt={{ sm: 'xl' }} loading={create.isPending} disabled={scopes.length === 0}>
                Create restricted key
              </Button>
            </SimpleGrid>
          </form>
        )}
        {create.isError && <ApiErrorAlert error={create.error} title="The key was not created" />}
        <CursorSimpleTable
          list={keys}
          empty="No keys yet."
          caption="Keys of this mode"
          head={['Name', 'Key', 'Type', 'Scopes', 'State', 'Created', ...(writes ? ['Actions'] : [])]}
          rowKey={(k) => k.id}
          cells={(k) => [
            k.name ?? '—',
            <Code key="r">{k.redacted}</Code>,
            k.type,
            <Text key="s" size="xs">
              {k.scopes.join(', ') || 'all'}
            </Text>,
            <Badge key="st" variant="dot" color={k.revoked ? 'red' : 'green'} tt="none">
              {keyState(k)}
            </Badge>,
            formatTime(k.created),
            ...(writes && !k.revoked
              ? [
                  <Group key="a" gap={4} wrap="nowrap">
                    <ConfirmAction
                      label="Roll"
                      title="Roll the key"
                      onConfirm={async () => {
                        const rolled = (
                          await api.POST('/v1/api_keys/{id}/roll', {
                            params: { path: { id: k.id } },
                            body: { expires_in: Number(grace[k.id] ?? '0') },
                          })
                        ).data!;
                        setSecret(rolled.secret ?? null);
                        await refresh();
                      }}
                    >
                      <Text size="sm">A new key with the same scopes is made; the old one stops working:</Text>
                      <Select
                        label="Old key stops"
                        data={GRACE}
                        value={grace[k.id] ?? '0'}
                        allowDeselect={false}
                        onChange={(v) => setGrace({ ...grace, [k.id]: v ?? '0' })}
                      />
                    </ConfirmAction>
                    <ConfirmAction
                      label="Revoke"
                      title="Revoke the key"
                      color="red"
                      onConfirm={async () => {
                        await api.POST('/v1/api_keys/{id}/revoke', { params: { path: { id: k.id } }, body: {} });
                        await refresh();
                      }}
                    >
                      <Text size="sm">{k.redacted} stops working on every server at once.</Text>
                    </ConfirmAction>
                  </Group>,
                ]
              : writes
                ? ['—']
                : []),
          ]}
        />
      </Stack>
    </Section>
  );
}

const LOG_COLUMNS: TextColumn<RequestLog>[] = [
  { id: 'created', header: 'Time', text: (r) => formatTime(r.created) },
  { id: 'method', header: 'Method', text: (r) => r.method },
  { id: 'path', header: 'Path', text: (r) => r.path },
  { id: 'status', header: 'Status', text: (r) => String(r.status) },
  { id: 'error', header: 'Error', text: (r) => r.error?.code ?? '' },
  { id: 'latency', header: 'Latency', text: (r) => `${r.latency_ms} ms` },
  { id: 'id', header: 'Request id', text: (r) => r.id, cell: (r) => <Code>{r.id}</Code> },
  { id: 'key', header: 'Key', text: (r) => r.api_key ?? '' },
];

const FILTERS = ['status', 'method', 'path'] as const;

function RequestLogs() {
  const [filters, setFilters] = useUrlFilters(FILTERS);
  const list = useCursorList<RequestLog>(
    ['request-logs', filters],
    afterLast(
      async (cursor) =>
        (
          await api.GET('/v1/request_logs', {
            params: {
              query: {
                limit: 100,
                ...(filters.status ? { status: filters.status } : {}),
                ...(filters.method ? { method: filters.method as 'GET' } : {}),
                ...(filters.path ? { path: filters.path } : {}),
                ...cursor,
              },
            },
          })
        ).data!,
    ),
  );
  return (
    <Section title="Recent API requests">
      <Stack>
        <form role="search" aria-label="Requests" onSubmit={(event) => event.preventDefault()}>
          <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
            <TextInput
              label="Status (402 or 4xx)"
              value={filters.status}
              onChange={(e) => setFilters({ status: e.currentTarget.value })}
            />
            <Select
              label="Method"
              data={['GET', 'POST', 'PATCH', 'DELETE']}
              value={filters.method || null}
              onChange={(v) => setFilters({ method: v })}
              clearable
            />
            <TextInput
              label="Path starts with"
              value={filters.path}
              onChange={(e) => setFilters({ path: e.currentTarget.value })}
            />
          </SimpleGrid>
        </form>
        <CursorState
          list={list}
          loading="Loading requests"
          empty="No request matches. Requests made with your API keys appear here within about a second."
        >
          {() => (
            <DataTable
              caption="Requests made with this mode's keys, newest first"
              columns={LOG_COLUMNS}
              list={list}
              rowKey={(r) => r.id}
              height={420}
            />
          )}
        </CursorState>
      </Stack>
    </Section>
  );
}

export default function Developers() {
  const session = useSession();
  return (
    <Stack>
      <Title order={1}>Developers</Title>
      {can(session, 'api_keys:read') && <ApiKeys />}
      {can(session, 'request_logs:read') && <RequestLogs />}
      {!can(session, 'api_keys:read') && !can(session, 'request_logs:read') && (
        <Empty>Your role does not include API keys or request logs.</Empty>
      )}
    </Stack>
  );
}
