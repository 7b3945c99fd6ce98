import type { ReactNode } from 'react';
import { Button, Card, Group, Title } from '@mantine/core';
import { downloadText, toCsv } from '../lib/csv.ts';

/**
 * A chart (or table) with its title and a "Download CSV" of exactly the numbers it shows: `header` and `rows` are
 * what the chart was drawn from, unformatted (amounts in minor units, rates in basis points, times in UTC).
 */
export function ChartCard({
  title,
  csvName,
  header,
  rows,
  children,
}: {
  title: string;
  csvName: string;
  header: string[];
  rows: string[][];
  children: ReactNode;
}) {
  return (
    <Card withBorder padding="md" component="section" aria-label={title} data-testid={`card-${csvName}`}>
      <Group justify="space-between" mb="xs" wrap="nowrap">
        <Title order={2} size="h4">
          {title}
        </Title>
        <Button
          variant="default"
          size="compact-sm"
          onClick={() => downloadText(`${csvName}.csv`, toCsv(header, rows))}
          aria-label={`Download ${title} as CSV`}
          disabled={rows.length === 0}
        >
          CSV
        </Button>
      </Group>
      {children}
    </Card>
  );
}
