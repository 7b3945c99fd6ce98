import { Code, NativeSelect, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { api, type Schema } from '../lib/api.ts';
import { formatMoney } from '../lib/format.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { CursorTable } from '../components/blocks.tsx';
import { afterLast } from '../lib/cursor-list.ts';
import type { TextColumn } from '../components/DataTable.tsx';

type Discrepancy = Schema<'ReconciliationDiscrepancy'>;

const KINDS: Record<Discrepancy['kind'], string> = {
  missing_in_ledger: 'Missing in our ledger',
  missing_in_report: 'Missing in the processor’s report',
  amount_mismatch: 'Amounts differ',
};

const day = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 10);
const amount = (value: number | null, currency: string) => (value === null ? '—' : formatMoney(value, currency));

const COLUMNS: TextColumn<Discrepancy>[] = [
  { id: 'tenant', header: 'Tenant', text: (d) => `${d.tenant_name} (${d.tenant})` },
  { id: 'date', header: 'Report day', text: (d) => day(d.report_date) },
  { id: 'processor', header: 'Processor', text: (d) => d.processor },
  { id: 'kind', header: 'Kind', text: (d) => KINDS[d.kind] ?? d.kind },
  { id: 'reference', header: 'Reference', text: (d) => d.reference, cell: (d) => <Code>{d.reference}</Code> },
  { id: 'processor_amount', header: 'Processor amount', text: (d) => amount(d.processor_amount, d.currency) },
  { id: 'ledger_amount', header: 'Ledger amount', text: (d) => amount(d.ledger_amount, d.currency) },
  { id: 'difference', header: 'Difference', text: (d) => formatMoney(d.difference, d.currency) },
];

const FILTERS = ['mode', 'kind', 'tenant'] as const;

export default function OperatorReconciliation() {
  const [filters, setFilters] = useUrlFilters(FILTERS);
  const query = {
    limit: 100,
    livemode: filters.mode === 'live',
    ...(filters.kind ? { kind: filters.kind as Discrepancy['kind'] } : {}),
    ...(filters.tenant.trim() ? { tenant: filters.tenant.trim() } : {}),
  };
  return (
    <Stack gap="md">
      <Title order={1}>Reconciliation</Title>
      <Text size="sm" c="dimmed">
        Every tenant’s lines that did not match in their latest daily reconciliation (each processor’s settlement report
        against our ledger), newest first. A rerun that matches them removes them. Amounts are signed: refunds are
        negative.
      </Text>
      <form role="search" aria-label="Discrepancies" onSubmit={(event) => event.preventDefault()}>
        <SimpleGrid cols={{ base: 1, xs: 3 }} spacing="sm">
          <NativeSelect
            label="Mode"
            value={filters.mode || 'test'}
            data={[
              { value: 'test', label: 'Test' },
              { value: 'live', label: 'Live' },
            ]}
            onChange={(e) => setFilters({ mode: e.currentTarget.value === 'live' ? 'live' : null })}
          />
          <NativeSelect
            label="Kind"
            value={filters.kind}
            data={[{ value: '', label: 'Any' }, ...Object.entries(KINDS).map(([value, label]) => ({ value, label }))]}
            onChange={(e) => setFilters({ kind: e.currentTarget.value })}
          />
          <TextInput
            label="Tenant id"
            placeholder="ten_…"
            value={filters.tenant}
            onChange={(e) => setFilters({ tenant: e.currentTarget.value })}
          />
        </SimpleGrid>
      </form>
      <CursorTable<Discrepancy>
        queryKey={['operator', 'discrepancies', query]}
        fetchPage={afterLast(
          async (cursor) =>
            (
              await api.GET('/v1/platform/reconciliation_discrepancies', {
                params: { query: { ...query, ...cursor } },
              })
            ).data!,
        )}
        columns={COLUMNS}
        rowKey={(d) => d.id}
        caption="Reconciliation discrepancies, newest first"
        empty="No discrepancy: every reconciled line matched."
      />
    </Stack>
  );
}
