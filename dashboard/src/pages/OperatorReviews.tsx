import { Card, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { api } from '../lib/api.ts';
import { QueryState } from '../components/states.tsx';

function OpenReviews({ livemode }: { livemode: boolean }) {
  const mode = livemode ? 'live' : 'test';
  const query = useQuery({
    queryKey: ['operator', 'backlog', livemode],
    queryFn: async () =>
      (await api.GET('/v1/analytics/platform/review_backlog', { params: { query: { livemode } } })).data!,
    refetchInterval: 30_000,
  });
  return (
    <Card withBorder padding="md" data-testid={`backlog-${mode}`}>
      <Text size="sm" c="dimmed">
        Open fraud reviews, {mode} mode
      </Text>
      <QueryState query={query}>
        {(backlog) => (
          <Text size="xl" fw={700} data-testid={`backlog-${mode}-value`}>
            {backlog.open_reviews.toLocaleString('en')}
          </Text>
        )}
      </QueryState>
    </Card>
  );
}

export default function OperatorReviews() {
  return (
    <Stack gap="md">
      <Title order={1}>Review backlog</Title>
      <Text size="sm" c="dimmed">
        Payments held for a fraud review across every tenant, counted every 30 seconds. Each tenant&apos;s team decides
        its own reviews (Fraud page); the operator sees the backlog, not the payments.
      </Text>
      <SimpleGrid cols={{ base: 1, xs: 2 }} spacing="sm">
        <OpenReviews livemode={false} />
        <OpenReviews livemode />
      </SimpleGrid>
    </Stack>
  );
}
