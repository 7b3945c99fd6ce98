import { useState, type ReactNode } from 'react';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Checkbox,
  Code,
  Group,
  NativeSelect,
  NumberInput,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient, type UseMutationResult } from '@tanstack/react-query';
import { api, type RequestBody, type ResponseBody } from '../lib/api.ts';
import { formatTime } from '../lib/format.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { useSession } from '../session.tsx';
import { ApiErrorAlert, QueryState } from '../components/states.tsx';
import { ConfirmAction, CursorTable, Section } from '../components/blocks.tsx';
import { afterLast } from '../lib/cursor-list.ts';
import type { TextColumn } from '../components/DataTable.tsx';

type Tenant = ResponseBody<'/v1/tenants/{id}', 'get'>;
type Schedule = Tenant['settlement_schedule'];
type PricingBody = RequestBody<'/v1/tenants/{id}/pricing', 'put'>;

/** "sim_beta, sim_alpha" → the routing order the API takes. */
const processorList = (text: string) =>
  text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);

const num = (value: string | number) => (typeof value === 'number' ? value : Number(value));

function ScheduleFields({ schedule, onChange }: { schedule: Schedule; onChange: (s: Schedule) => void }) {
  return (
    <Group align="end" gap="sm" wrap="wrap">
      <NativeSelect
        label="Settlement"
        value={schedule.type}
        data={[
          { value: 'daily', label: 'Daily, after a delay' },
          { value: 'instant', label: 'Instant' },
        ]}
        onChange={(e) => onChange({ ...schedule, type: e.currentTarget.value as Schedule['type'] })}
      />
      <NumberInput
        label="Delay (business days)"
        min={0}
        max={30}
        allowDecimal={false}
        value={schedule.delay_days}
        disabled={schedule.type === 'instant'}
        onChange={(value) => onChange({ ...schedule, delay_days: num(value) || 0 })}
        w={180}
      />
      <Checkbox
        label="Automatic payouts"
        checked={schedule.automatic_payouts ?? false}
        onChange={(e) => onChange({ ...schedule, automatic_payouts: e.currentTarget.checked })}
      />
    </Group>
  );
}

/**
 * A form whose submit runs one mutation: the button shows it pending, the API's refusal is shown in words with its
 * request id, and `done` says what happened. Every form of this page is one.
 */
function MutationForm<T>({
  mutation,
  submitLabel,
  done,
  children,
}: {
  mutation: UseMutationResult<T, Error, void>;
  submitLabel: string;
  done?: (result: T) => ReactNode;
  children: ReactNode;
}) {
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        mutation.mutate();
      }}
    >
      <Stack gap="sm">
        {children}
        <Group>
          <Button type="submit" loading={mutation.isPending}>
            {submitLabel}
          </Button>
          {mutation.data !== undefined && done?.(mutation.data)}
        </Group>
        {mutation.isError && <ApiErrorAlert error={mutation.error} />}
      </Stack>
    </form>
  );
}

interface TenantSettings {
  name: string;
  /** As typed: "sim_beta, sim_alpha". */
  processors: string;
  schedule: Schedule;
}

/** The settings a tenant is created with and later changed: one form for both. */
function TenantSettingsFields({
  settings,
  onChange,
}: {
  settings: TenantSettings;
  onChange: (changes: Partial<TenantSettings>) => void;
}) {
  return (
    <>
      <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
        <TextInput
          label="Name"
          required
          value={settings.name}
          onChange={(e) => onChange({ name: e.currentTarget.value })}
        />
        <TextInput
          label="Processors in order (primary first, failover after)"
          value={settings.processors}
          onChange={(e) => onChange({ processors: e.currentTarget.value })}
        />
      </SimpleGrid>
      <ScheduleFields schedule={settings.schedule} onChange={(schedule) => onChange({ schedule })} />
    </>
  );
}

const settingsBody = (settings: TenantSettings) => ({
  name: settings.name.trim(),
  processors: processorList(settings.processors),
  settlement_schedule: settings.schedule,
});

function useSettings(initial: TenantSettings) {
  const [settings, setSettings] = useState(initial);
  return [settings, (changes: Partial<TenantSettings>) => setSettings((s) => ({ ...s, ...changes }))] as const;
}

function CreateTenant({ onCreated }: { onCreated: (id: string) => void }) {
  const client = useQueryClient();
  const [settings, change] = useSettings({
    name: '',
    processors: 'sim_alpha, sim_beta',
    schedule: { type: 'daily', delay_days: 2, automatic_payouts: false },
  });
  const create = useMutation({
    mutationFn: async () => (await api.POST('/v1/tenants', { body: settingsBody(settings) })).data!,
    onSuccess: (tenant) => {
      void client.invalidateQueries({ queryKey: ['operator', 'tenants'] });
      onCreated(tenant.id);
    },
  });
  const created = create.data;
  return (
    <Card withBorder padding="md" component="section" aria-labelledby="create-tenant">
      <Title order={2} size="h4" id="create-tenant" mb="sm">
        Create a tenant
      </Title>
      <MutationForm mutation={create} submitLabel="Create tenant">
        <TenantSettingsFields settings={settings} onChange={change} />
      </MutationForm>
      {created && (
        <Alert color="indigo" mt="sm" title={`Created ${created.name}`} data-testid="created-tenant">
          <Stack gap={4}>
            <Text size="sm">
              Tenant <Code data-testid="created-tenant-id">{created.id}</Code>. Its secret keys are shown this once:
              hand them to the tenant over a safe channel.
            </Text>
            {created.secret_keys && (
              <>
                <Text size="sm">
                  Test: <Code data-testid="created-test-key">{created.secret_keys.test.secret}</Code>
                </Text>
                <Text size="sm">
                  Live: <Code>{created.secret_keys.live.secret}</Code>
                </Text>
              </>
            )}
          </Stack>
        </Alert>
      )}
    </Card>
  );
}

/** Puts a changed tenant in its panel's cache and has the list read it again. */
function useTenantChanged() {
  const client = useQueryClient();
  return (tenant: Tenant) => {
    client.setQueryData(['operator', 'tenant', tenant.id], tenant);
    void client.invalidateQueries({ queryKey: ['operator', 'tenants'] });
  };
}

function EditTenant({ tenant }: { tenant: Tenant }) {
  const changed = useTenantChanged();
  const [settings, change] = useSettings({
    name: tenant.name,
    processors: tenant.processors.join(', '),
    schedule: tenant.settlement_schedule,
  });
  const save = useMutation({
    mutationFn: async () =>
      (await api.POST('/v1/tenants/{id}', { params: { path: { id: tenant.id } }, body: settingsBody(settings) })).data!,
    onSuccess: changed,
  });
  return (
    <Card withBorder padding="md" component="section" aria-labelledby="routing">
      <Title order={3} size="h5" id="routing" mb="sm">
        Name, routing and settlement
      </Title>
      <MutationForm
        mutation={save}
        submitLabel="Save routing and settlement"
        done={() => (
          <Text size="sm" role="status">
            Saved.
          </Text>
        )}
      >
        <TenantSettingsFields settings={settings} onChange={change} />
      </MutationForm>
    </Card>
  );
}

/** Suspend (with a reason, confirmed) or reactivate; what a suspension stops is said before it happens. */
function Suspension({ tenant, writable }: { tenant: Tenant; writable: boolean }) {
  const changed = useTenantChanged();
  const [reason, setReason] = useState('');
  const path = { params: { path: { id: tenant.id } } };
  if (tenant.status === 'suspended')
    return (
      <Alert color="red" mt="sm" title="Suspended" data-testid="tenant-suspended">
        <Stack gap="xs">
          <Text size="sm">
            Since {tenant.suspended_at ? formatTime(tenant.suspended_at) : '—'}: {tenant.suspension_reason}. Its keys
            and dashboard sessions are refused; settlements, payouts and webhook deliveries go on.
          </Text>
          {writable && (
            <Group>
              <ConfirmAction
                label="Reactivate"
                title="Reactivate tenant"
                onConfirm={async () => changed((await api.POST('/v1/tenants/{id}/reactivate', path)).data!)}
              >
                <Text size="sm">Its keys and dashboard sessions work again, on every server within seconds.</Text>
              </ConfirmAction>
            </Group>
          )}
        </Stack>
      </Alert>
    );
  if (!writable) return null;
  return (
    <Group mt="sm">
      <ConfirmAction
        label="Suspend"
        title="Suspend tenant"
        color="red"
        disabled={!reason.trim()}
        onConfirm={async () => {
          changed((await api.POST('/v1/tenants/{id}/suspend', { ...path, body: { reason: reason.trim() } })).data!);
          setReason('');
        }}
      >
        <Text size="sm">
          {tenant.name}&apos;s API keys, access tokens and dashboard sessions will be refused (403) on every server
          within seconds; requests already running finish. Settlements, payouts and webhook deliveries of what it has go
          on.
        </Text>
        <TextInput
          label="Reason (shown to the tenant)"
          required
          maxLength={500}
          value={reason}
          onChange={(e) => setReason(e.currentTarget.value)}
        />
      </ConfirmAction>
    </Group>
  );
}

interface PlanForm {
  livemode: 'test' | 'live';
  type: 'blended' | 'interchange_plus';
  percent_bps: number;
  fixed: number;
  credit_bps: number;
  debit_bps: number;
  prepaid_bps: number;
  scheme_fee_bps: number;
  international_bps: number;
  currency_conversion_bps: number;
  instant_settlement_bps: number;
  refund_fee: number;
  dispute_fee: number;
}

// The platform's default plan (README "Pricing"), as the starting point of a new one.
const DEFAULT_PLAN: PlanForm = {
  livemode: 'test',
  type: 'blended',
  percent_bps: 290,
  fixed: 30,
  credit_bps: 180,
  debit_bps: 80,
  prepaid_bps: 120,
  scheme_fee_bps: 13,
  international_bps: 150,
  currency_conversion_bps: 100,
  instant_settlement_bps: 100,
  refund_fee: 0,
  dispute_fee: 1500,
};

function pricingBody(form: PlanForm): PricingBody {
  const common = {
    livemode: form.livemode === 'live',
    international_bps: form.international_bps,
    currency_conversion_bps: form.currency_conversion_bps,
    instant_settlement_bps: form.instant_settlement_bps,
    refund_fee: { fixed: form.refund_fee },
    dispute_fee: { fixed: form.dispute_fee },
  };
  if (form.type === 'blended')
    return {
      ...common,
      type: 'blended',
      processing: { percent_bps: form.percent_bps, fixed: form.fixed },
    } as PricingBody;
  return {
    ...common,
    type: 'interchange_plus',
    interchange_plus: {
      interchange_bps: { credit: form.credit_bps, debit: form.debit_bps, prepaid: form.prepaid_bps },
      scheme_fee_bps: form.scheme_fee_bps,
      markup: { percent_bps: form.percent_bps, fixed: form.fixed },
    },
  } as PricingBody;
}

function Pricing({ tenant }: { tenant: Tenant }) {
  const [form, setForm] = useState<PlanForm>(DEFAULT_PLAN);
  const set = (changes: Partial<PlanForm>) => setForm((f) => ({ ...f, ...changes }));
  const save = useMutation({
    mutationFn: async () =>
      (await api.PUT('/v1/tenants/{id}/pricing', { params: { path: { id: tenant.id } }, body: pricingBody(form) }))
        .data!,
  });
  const field = (key: keyof PlanForm, label: string) => (
    <NumberInput
      key={key}
      label={label}
      min={0}
      allowDecimal={false}
      value={form[key] as number}
      onChange={(value) => set({ [key]: num(value) || 0 })}
    />
  );
  return (
    <Card withBorder padding="md" component="section" aria-labelledby="pricing">
      <Title order={3} size="h5" id="pricing" mb="sm">
        Pricing plan
      </Title>
      <Text size="xs" c="dimmed" mb="sm">
        Rates in basis points; fixed fees in hundredths of a major unit (30 is 0.30 USD). Each save is a new version for
        payments created afterwards.
      </Text>
      <MutationForm
        mutation={save}
        submitLabel="Set pricing plan"
        done={(plan) => (
          <Text size="sm" role="status" data-testid="pricing-saved">
            Version {plan.version} set for {plan.livemode ? 'live' : 'test'} mode.
          </Text>
        )}
      >
        <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
          <NativeSelect
            label="Mode"
            value={form.livemode}
            data={[
              { value: 'test', label: 'Test' },
              { value: 'live', label: 'Live' },
            ]}
            onChange={(e) => set({ livemode: e.currentTarget.value as PlanForm['livemode'] })}
          />
          <NativeSelect
            label="Plan type"
            value={form.type}
            data={[
              { value: 'blended', label: 'Blended' },
              { value: 'interchange_plus', label: 'Interchange++' },
            ]}
            onChange={(e) => set({ type: e.currentTarget.value as PlanForm['type'] })}
          />
          {field('percent_bps', form.type === 'blended' ? 'Processing (bps)' : 'Markup (bps)')}
          {field('fixed', form.type === 'blended' ? 'Processing fixed' : 'Markup fixed')}
          {form.type === 'interchange_plus' && (
            <>
              {field('credit_bps', 'Interchange credit (bps)')}
              {field('debit_bps', 'Interchange debit (bps)')}
              {field('prepaid_bps', 'Interchange prepaid (bps)')}
              {field('scheme_fee_bps', 'Scheme fee (bps)')}
            </>
          )}
          {field('international_bps', 'International (bps)')}
          {field('currency_conversion_bps', 'Currency conversion (bps)')}
          {field('instant_settlement_bps', 'Instant settlement (bps)')}
          {field('refund_fee', 'Refund fee (fixed)')}
          {field('dispute_fee', 'Dispute fee (fixed)')}
        </SimpleGrid>
      </MutationForm>
    </Card>
  );
}

function TenantPanel({ id, writable }: { id: string; writable: boolean }) {
  const query = useQuery({
    queryKey: ['operator', 'tenant', id],
    queryFn: async () => (await api.GET('/v1/tenants/{id}', { params: { path: { id } } })).data!,
  });
  return (
    <QueryState query={query}>
      {(tenant) => (
        <Stack gap="md" data-testid="tenant-panel">
          <Card withBorder padding="md" component="section" aria-labelledby="tenant-name">
            <Group gap="sm">
              <Title order={2} size="h4" id="tenant-name">
                {tenant.name}
              </Title>
              <TenantStatus status={tenant.status} />
            </Group>
            <Text size="sm">
              <Code>{tenant.id}</Code> · created {formatTime(tenant.created)} · API version {tenant.api_version}
            </Text>
            <Text size="sm" data-testid="tenant-routing">
              Routing: {tenant.processors.join(' → ')} · settlement {tenant.settlement_schedule.type}
              {tenant.settlement_schedule.type === 'daily' &&
                `, ${tenant.settlement_schedule.delay_days} business days`}
              {tenant.settlement_schedule.automatic_payouts ? ', automatic payouts' : ''}
            </Text>
            <Suspension key={`${tenant.id}-${tenant.status}`} tenant={tenant} writable={writable} />
          </Card>
          {writable && (
            <>
              <EditTenant key={`${tenant.id}-settings`} tenant={tenant} />
              <Pricing key={`${tenant.id}-pricing`} tenant={tenant} />
            </>
          )}
        </Stack>
      )}
    </QueryState>
  );
}

function TenantStatus({ status }: { status: string }) {
  return (
    <Badge color={status === 'active' ? 'green' : 'red'} variant="dot" tt="none" data-testid="tenant-status">
      {status}
    </Badge>
  );
}

const LIST_FILTERS = ['tenant', 'status', 'name'] as const;

/** Every tenant from GET /v1/tenants, a hundred at a time, filtered by status and the start of the name. */
function TenantList({
  filters,
  open,
}: {
  filters: Record<(typeof LIST_FILTERS)[number], string>;
  open: (id: string) => void;
}) {
  const query = {
    limit: 100,
    ...(filters.status ? { status: filters.status as Tenant['status'] } : {}),
    ...(filters.name.trim() ? { name_prefix: filters.name.trim() } : {}),
  };
  const columns: TextColumn<Tenant>[] = [
    {
      id: 'name',
      header: 'Name',
      text: (t) => t.name,
      cell: (t) => (
        <Anchor component="button" type="button" size="sm" onClick={() => open(t.id)}>
          {t.name}
        </Anchor>
      ),
    },
    { id: 'status', header: 'Status', text: (t) => t.status, cell: (t) => <TenantStatus status={t.status} /> },
    { id: 'id', header: 'Id', text: (t) => t.id },
    { id: 'routing', header: 'Routing', text: (t) => t.processors.join(' → ') },
    { id: 'created', header: 'Created', text: (t) => formatTime(t.created) },
  ];
  return (
    <CursorTable<Tenant>
      queryKey={['operator', 'tenants', query]}
      fetchPage={afterLast(
        async (cursor) => (await api.GET('/v1/tenants', { params: { query: { ...query, ...cursor } } })).data!,
      )}
      columns={columns}
      rowKey={(t) => t.id}
      caption="Tenants, newest first"
      empty={filters.status || filters.name ? 'No tenant matches these filters.' : 'No tenant yet.'}
      height={360}
    />
  );
}

/** Only operator_admin may change tenants; operator_support reads (the API refuses its changes anyway). */
const mayChange = (role: string) => role === 'operator_admin';

export default function OperatorTenants() {
  const session = useSession();
  const writable = mayChange(session.role);
  const [filters, setFilters] = useUrlFilters(LIST_FILTERS);
  const open = (id: string) => setFilters({ tenant: id });
  return (
    <Stack gap="md">
      <Title order={1}>Tenants</Title>
      {writable ? (
        <CreateTenant onCreated={open} />
      ) : (
        <Text size="sm" c="dimmed" data-testid="read-only">
          Your role ({session.role}) reads tenants; creating and changing them is for operator_admin.
        </Text>
      )}
      <Section title="All tenants">
        <form role="search" aria-label="Tenants" onSubmit={(event) => event.preventDefault()}>
          <SimpleGrid cols={{ base: 1, xs: 2 }} spacing="sm" mb="sm">
            <TextInput
              label="Tenant name starts with"
              value={filters.name}
              onChange={(e) => setFilters({ name: e.currentTarget.value })}
            />
            <NativeSelect
              label="Status"
              value={filters.status}
              data={[
                { value: '', label: 'Any' },
                { value: 'active', label: 'Active' },
                { value: 'suspended', label: 'Suspended' },
              ]}
              onChange={(e) => setFilters({ status: e.currentTarget.value })}
            />
          </SimpleGrid>
        </form>
        <TenantList filters={filters} open={open} />
      </Section>
      {filters.tenant && <TenantPanel key={filters.tenant} id={filters.tenant} writable={writable} />}
    </Stack>
  );
}
