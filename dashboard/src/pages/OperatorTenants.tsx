import { useState, type FormEvent } from 'react';
import {
  Alert,
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
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type RequestBody, type ResponseBody } from '../lib/api.ts';
import { formatTime } from '../lib/format.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { useSession } from '../session.tsx';
import { ApiErrorAlert, QueryState } from '../components/states.tsx';

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

function CreateTenant({ onCreated }: { onCreated: (id: string) => void }) {
  const [name, setName] = useState('');
  const [processors, setProcessors] = useState('sim_alpha, sim_beta');
  const [schedule, setSchedule] = useState<Schedule>({ type: 'daily', delay_days: 2, automatic_payouts: false });
  const create = useMutation({
    mutationFn: async () =>
      (
        await api.POST('/v1/tenants', {
          body: { name: name.trim(), processors: processorList(processors), settlement_schedule: schedule },
        })
      ).data!,
    onSuccess: (tenant) => onCreated(tenant.id),
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  const created = create.data;
  return (
    <Card withBorder padding="md" component="section" aria-labelledby="create-tenant">
      <Title order={2} size="h4" id="create-tenant" mb="sm">
        Create a tenant
      </Title>
      <form onSubmit={submit}>
        <Stack gap="sm">
          <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
            <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            <TextInput
              label="Routing (processors in order, comma-separated)"
              value={processors}
              onChange={(e) => setProcessors(e.currentTarget.value)}
            />
          </SimpleGrid>
          <ScheduleFields schedule={schedule} onChange={setSchedule} />
          <Group>
            <Button type="submit" loading={create.isPending}>
              Create tenant
            </Button>
          </Group>
          {create.isError && <ApiErrorAlert error={create.error} />}
          {created && (
            <Alert color="indigo" title={`Created ${created.name}`} data-testid="created-tenant">
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
        </Stack>
      </form>
    </Card>
  );
}

function Routing({ tenant }: { tenant: Tenant }) {
  const client = useQueryClient();
  const [processors, setProcessors] = useState(tenant.processors.join(', '));
  const [schedule, setSchedule] = useState<Schedule>(tenant.settlement_schedule);
  const save = useMutation({
    mutationFn: async () =>
      (
        await api.POST('/v1/tenants/{id}', {
          params: { path: { id: tenant.id } },
          body: { processors: processorList(processors), settlement_schedule: schedule },
        })
      ).data!,
    onSuccess: (updated) => client.setQueryData(['operator', 'tenant', tenant.id], updated),
  });
  return (
    <Card withBorder padding="md" component="section" aria-labelledby="routing">
      <Title order={3} size="h5" id="routing" mb="sm">
        Routing and settlement
      </Title>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          save.mutate();
        }}
      >
        <Stack gap="sm">
          <TextInput
            label="Processors in order (primary first, failover after)"
            value={processors}
            onChange={(e) => setProcessors(e.currentTarget.value)}
          />
          <ScheduleFields schedule={schedule} onChange={setSchedule} />
          <Group>
            <Button type="submit" loading={save.isPending}>
              Save routing and settlement
            </Button>
            {save.isSuccess && (
              <Text size="sm" role="status">
                Saved.
              </Text>
            )}
          </Group>
          {save.isError && <ApiErrorAlert error={save.error} />}
        </Stack>
      </form>
    </Card>
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
      <form
        onSubmit={(event) => {
          event.preventDefault();
          save.mutate();
        }}
      >
        <Stack gap="sm">
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
          <Group>
            <Button type="submit" loading={save.isPending}>
              Set pricing plan
            </Button>
            {save.data && (
              <Text size="sm" role="status" data-testid="pricing-saved">
                Version {save.data.version} set for {save.data.livemode ? 'live' : 'test'} mode.
              </Text>
            )}
          </Group>
          {save.isError && <ApiErrorAlert error={save.error} />}
        </Stack>
      </form>
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
            <Title order={2} size="h4" id="tenant-name">
              {tenant.name}
            </Title>
            <Text size="sm">
              <Code>{tenant.id}</Code> · created {formatTime(tenant.created)} · API version {tenant.api_version}
            </Text>
            <Text size="sm" data-testid="tenant-routing">
              Routing: {tenant.processors.join(' → ')} · settlement {tenant.settlement_schedule.type}
              {tenant.settlement_schedule.type === 'daily' &&
                `, ${tenant.settlement_schedule.delay_days} business days`}
              {tenant.settlement_schedule.automatic_payouts ? ', automatic payouts' : ''}
            </Text>
            <Alert color="gray" mt="sm" title="Suspending a tenant">
              The API has no suspension endpoint yet, so the console cannot suspend a tenant. Revoking its keys (POST
              /v1/api_keys/&#123;id&#125;/revoke with the operator key) stops its API traffic meanwhile.
            </Alert>
          </Card>
          {writable && (
            <>
              <Routing key={`${tenant.id}-routing`} tenant={tenant} />
              <Pricing key={`${tenant.id}-pricing`} tenant={tenant} />
            </>
          )}
        </Stack>
      )}
    </QueryState>
  );
}

/** Only operator_admin may change tenants; operator_support reads (the API refuses its changes anyway). */
const mayChange = (role: string) => role === 'operator_admin';

export default function OperatorTenants() {
  const session = useSession();
  const writable = mayChange(session.role);
  const [filters, setFilters] = useUrlFilters(['tenant'] as const);
  const [lookup, setLookup] = useState(filters.tenant);
  return (
    <Stack gap="md">
      <Title order={1}>Tenants</Title>
      {writable ? (
        <CreateTenant
          onCreated={(id) => {
            setLookup(id);
            setFilters({ tenant: id });
          }}
        />
      ) : (
        <Text size="sm" c="dimmed" data-testid="read-only">
          Your role ({session.role}) reads tenants; creating and changing them is for operator_admin.
        </Text>
      )}
      <Card withBorder padding="md" component="section" aria-labelledby="open-tenant">
        <Title order={2} size="h4" id="open-tenant" mb="sm">
          Open a tenant
        </Title>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            setFilters({ tenant: lookup.trim() });
          }}
        >
          <Group align="end" gap="sm">
            <TextInput
              label="Tenant id"
              placeholder="ten_…"
              value={lookup}
              onChange={(e) => setLookup(e.currentTarget.value)}
              style={{ flex: 1 }}
            />
            <Button type="submit" variant="default">
              Open
            </Button>
          </Group>
        </form>
        <Text size="xs" c="dimmed" mt="xs">
          The API lists no tenants yet: open one by its id (from its creation, an audit log entry or a support request).
        </Text>
      </Card>
      {filters.tenant && <TenantPanel key={filters.tenant} id={filters.tenant} writable={writable} />}
    </Stack>
  );
}
