import { useMemo } from 'react';
import { SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { api, type ResponseBody } from '../lib/api.ts';
import { bpsPercent, bucketLabel } from '../lib/analytics.ts';
import { useUrlFilters } from '../lib/url-state.ts';
import { Chart, type ChartOption } from '../components/Chart.tsx';
import { ChartCard } from '../components/ChartCard.tsx';
import { operatorPeriod, PeriodControls } from '../components/PeriodControls.tsx';
import { Empty, QueryState } from '../components/states.tsx';

type Health = ResponseBody<'/v1/analytics/platform/processors', 'get'>;
type Point = Health['data'][number];

const HEADER = [
  'bucket_start',
  'processor',
  'attempts',
  'succeeded',
  'declined',
  'errors',
  'pending',
  'error_rate_bps',
  'average_latency_ms',
];

/** One line per processor over the buckets that had calls; a bucket without calls to it is a gap, not a zero. */
function perProcessor(health: Health, value: (p: Point) => number | null): ChartOption {
  const starts = [...new Set(health.data.map((p) => p.start))].sort((a, b) => a - b);
  const processors = [...new Set(health.data.map((p) => p.processor))].sort();
  const at = new Map(health.data.map((p) => [`${p.processor} ${p.start}`, p]));
  return {
    legend: { top: 0, data: processors },
    xAxis: { type: 'category', data: starts.map((s) => bucketLabel(s, health.interval)) },
    yAxis: { type: 'value' },
    series: processors.map((processor) => ({
      name: processor,
      type: 'line',
      connectNulls: false,
      data: starts.map((s) => {
        const point = at.get(`${processor} ${s}`);
        return point ? value(point) : null;
      }),
    })),
  };
}

interface Total {
  processor: string;
  attempts: number;
  succeeded: number;
  declined: number;
  errors: number;
  completed: number;
  latencySum: number;
}

function totals(health: Health): Total[] {
  const byProcessor = new Map<string, Total>();
  for (const p of health.data) {
    const t = byProcessor.get(p.processor) ?? {
      processor: p.processor,
      attempts: 0,
      succeeded: 0,
      declined: 0,
      errors: 0,
      completed: 0,
      latencySum: 0,
    };
    t.attempts += p.attempts;
    t.succeeded += p.succeeded;
    t.declined += p.declined;
    t.errors += p.errors;
    // The bucket's mean latency is over its completed calls: weight it by them for the period's mean.
    if (p.average_latency_ms !== null) {
      t.completed += p.attempts - p.pending;
      t.latencySum += p.average_latency_ms * (p.attempts - p.pending);
    }
    byProcessor.set(p.processor, t);
  }
  return [...byProcessor.values()];
}

function HealthView({ health }: { health: Health }) {
  const latency = useMemo(() => perProcessor(health, (p) => p.average_latency_ms), [health]);
  const errors = useMemo(
    () => perProcessor(health, (p) => (p.error_rate_bps === null ? null : p.error_rate_bps / 100)),
    [health],
  );
  const rows = health.data.map((p) => [
    bucketLabel(p.start, health.interval),
    p.processor,
    String(p.attempts),
    String(p.succeeded),
    String(p.declined),
    String(p.errors),
    String(p.pending),
    p.error_rate_bps === null ? '' : String(p.error_rate_bps),
    p.average_latency_ms === null ? '' : String(p.average_latency_ms),
  ]);
  if (health.data.length === 0) return <Empty>No processor calls in this period.</Empty>;
  return (
    <Stack gap="md">
      <Table.ScrollContainer
        minWidth={560}
        scrollAreaProps={{ viewportProps: { tabIndex: 0, 'aria-label': 'Processor totals, table' } }}
      >
        <Table data-testid="processor-totals">
          <Table.Caption>Totals of the period per processor</Table.Caption>
          <Table.Thead>
            <Table.Tr>
              <Table.Th scope="col">Processor</Table.Th>
              <Table.Th scope="col">Calls</Table.Th>
              <Table.Th scope="col">Succeeded</Table.Th>
              <Table.Th scope="col">Declined</Table.Th>
              <Table.Th scope="col">Errors</Table.Th>
              <Table.Th scope="col">Error rate</Table.Th>
              <Table.Th scope="col">Mean latency</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {totals(health).map((t) => (
              <Table.Tr key={t.processor}>
                <Table.Td>{t.processor}</Table.Td>
                <Table.Td>{t.attempts}</Table.Td>
                <Table.Td>{t.succeeded}</Table.Td>
                <Table.Td>{t.declined}</Table.Td>
                <Table.Td>{t.errors}</Table.Td>
                <Table.Td>
                  {bpsPercent(t.attempts === 0 ? null : Math.round((t.errors * 10_000) / t.attempts))}
                </Table.Td>
                <Table.Td>{t.completed === 0 ? '—' : `${Math.round(t.latencySum / t.completed)} ms`}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
        <ChartCard title="Mean latency (ms)" csvName="processor-health" header={HEADER} rows={rows}>
          <Chart option={latency} label={`Mean latency per processor by ${health.interval}`} />
        </ChartCard>
        <ChartCard title="Error rate (%)" csvName="processor-errors" header={HEADER} rows={rows}>
          <Chart option={errors} label={`Error rate per processor by ${health.interval}`} />
        </ChartCard>
      </SimpleGrid>
    </Stack>
  );
}

export default function OperatorProcessors() {
  const [filters, setFilters] = useUrlFilters(['range', 'interval', 'mode'] as const);
  const period = operatorPeriod(filters);
  const query = useQuery({
    queryKey: ['operator', 'processors', period],
    queryFn: async () =>
      (await api.GET('/v1/analytics/platform/processors', { params: { query: period } })).data! as Health,
  });
  return (
    <Stack gap="md">
      <Title order={1}>Processor health</Title>
      <Text size="sm" c="dimmed">
        Calls to each processor from every tenant, by the hour or day they began: outcomes, error rate (timeouts and
        failures, what failover moves on from) and mean latency of the calls that completed.
      </Text>
      <PeriodControls period={period} onChange={setFilters} />
      <QueryState query={query}>{(health) => <HealthView health={health} />}</QueryState>
    </Stack>
  );
}
