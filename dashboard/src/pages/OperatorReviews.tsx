import { Card, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { api } from '../lib/api.ts';
import { formatTime } from '../lib/format.ts';
import { Section, SimpleTable } from '../components/blocks.tsx';
import { Empty, QueryState } from '../components/states.tsx';

/** How long a review has waited, in the largest whole units that say it: "3 d 4 h", "2 h 5 min", "40 min". */
function waited(since: number, now = Date.now() / 1000): string {
  const minutes = Math.max(0, Math.floor((now - since) / 60));
  const [days, hours] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60)];
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes % 60} min`;
  return `${minutes} min`;
}

function Backlog({ livemode }: { livemode: boolean }) {
  const mode = livemode ? 'live' : 'test';
  const query = useQuery({
    queryKey: ['operator', 'backlog', livemode],
    queryFn: async () =>
      (await api.GET('/v1/analytics/platform/review_backlog', { params: { query: { livemode } } })).data!,
    refetchInterval: 30_000,
  });
  return (
    <QueryState query={query}>
      {(backlog) => (
        <Stack gap="sm">
          <Card withBorder padding="md" data-testid={`backlog-${mode}`}>
            <Text size="sm" c="dimmed">
              Open fraud reviews, {mode} mode
            </Text>
            <Text size="xl" fw={700} data-testid={`backlog-${mode}-value`}>
              {backlog.open_reviews.toLocaleString('en')}
            </Text>
          </Card>
          <Section title={`By tenant, ${mode} mode`}>
            {backlog.tenants.length === 0 ? (
              <Empty>No tenant has a review waiting.</Empty>
            ) : (
              <SimpleTable
                caption={`Tenants with open reviews in ${mode} mode, longest-waiting first`}
                head={['Tenant', 'Open reviews', 'Oldest waiting', 'Opened']}
                rowKeys={backlog.tenants.map((t) => t.tenant)}
                rows={backlog.tenants.map((t) => [
                  `${t.tenant_name} (${t.tenant})`,
                  t.open_reviews.toLocaleString('en'),
                  waited(t.oldest_opened),
                  formatTime(t.oldest_opened),
                ])}
              />
            )}
          </Section>
        </Stack>
      )}
    </QueryState>
  );
}

export default function OperatorReviews() {
  return (
    <Stack gap="md">
      <Title order={1}>Review backlog</Title>
      <Text size="sm" c="dimmed">
        Payments held for a fraud review across every tenant, counted every 30 seconds. Each tenant&apos;s team decides
        its own reviews (Fraud page); the operator sees the backlog per tenant and how long it has waited, not the
        payments.
      </Text>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="sm">
        <Backlog livemode={false} />
        <Backlog livemode />
      </SimpleGrid>
    </Stack>
  );
}
